"""The demo service under `memledger run`, snapshotted twice from outside
with `memledger snapshot PID`: the diff names the two planted leaks, every
audit_log allocation is exactly 512 bytes, and neither the bounded cache nor
the temporaries show growth. Also: snapshot refuses a process without the
library, and bad usage exits 2."""
import os
import signal
import subprocess
import time

from mltest import *

d = snapdir()
svc = subprocess.Popen([CLI, "run", "--dir", d, "--", os.path.join(PROGRAMS, "demo_service")],
                       stdout=subprocess.PIPE, text=True)
try:
    line = svc.stdout.readline()
    check(line.startswith("ready"), "demo did not get ready: %r" % line)
    first = cli("snapshot", svc.pid).stdout.strip()
    check(first == snap_path(d, svc.pid, 1), "snapshot printed %r" % first)
    time.sleep(1.0)
    second = cli("snapshot", svc.pid, "--timeout", "30").stdout.strip()
    check(second == snap_path(d, svc.pid, 2), "snapshot printed %r" % second)
    # symbolizing must not have pulled a network client into the service
    with open("/proc/%d/maps" % svc.pid) as f:
        maps = f.read()
    for lib in ("libdebuginfod", "libcurl", "libssl", "libgnutls"):
        check(lib not in maps, "%s was loaded into the service by a snapshot" % lib)
finally:
    svc.send_signal(signal.SIGTERM)
    svc.wait(timeout=30)
r = diff_json(first, second)
audit = stacks_at(r, "audit_log")
config = [s for s in r["stacks"] if any(f["function"] == "remember_config" for f in s["frames"])]
check(len(audit) == 1, "audit_log leak not found")
check(audit[0]["growth_count"] > 10, "audit_log grew only %d times" % audit[0]["growth_count"])
check(audit[0]["growth_bytes"] == 512 * audit[0]["growth_count"],
      "audit_log: %d bytes in %d allocations is not 512 each" % (audit[0]["growth_bytes"],
                                                                audit[0]["growth_count"]))
check(config, "remember_config leak not found")
for quiet in ("cache_response", "handle_request"):
    check(not stacks_at(r, quiet), "%s should not grow" % quiet)
text = cli("diff", first, second).stdout
check("audit_log" in text and "demo_service.c" in text, "text diff lacks the leak: " + text)

# refusing to signal a process that has no ledger (SIGUSR2 would kill it)
sleeper = subprocess.Popen(["sleep", "30"])
try:
    p = cli("snapshot", sleeper.pid, expect_rc=2)
    check("does not have libmemledger.so loaded" in p.stderr, p.stderr)
    check(sleeper.poll() is None, "the process without the ledger was killed")
finally:
    sleeper.kill()
cli("snapshot", expect_rc=2)
cli("snapshot", "notapid", expect_rc=2)
cli("diff", first, expect_rc=2)
cli("nosuchcommand", expect_rc=2)
print("ok: audit_log +%d x 512 B; remember_config found; cache and temporaries quiet"
      % audit[0]["growth_count"])
