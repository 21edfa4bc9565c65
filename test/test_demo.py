"""The Python demo service of scripts/demo (programs/demo_service.py), run
the way the demo runs it: `memledger run`, three snapshots taken from
outside while it serves, `memledger diff`. Exactly the two planted leaks
grow in every interval, at the lines that allocate what is kept:
bytearray(2048) buffers of 2049 bytes (LEAK:history) and bytearray(512)
buffers of 513 bytes (LEAK:callback), one each per request, and the
closure that keeps the second (LEAK:closure). The bounded cache and the
temporaries show no growth in the diff."""
import os
import signal
import subprocess
import time

from mltest import *

python = python_for("debian")
SCRIPT = os.path.join(SOURCE, "programs", "demo_service.py")
d = snapdir()
svc = subprocess.Popen([CLI, "run", "--dir", d, "--", python, SCRIPT],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
snaps = []
try:
    check(svc.stdout.readline().startswith("ready"), "the demo service did not get ready")
    for _ in range(3):
        snaps.append(cli("snapshot", svc.pid).stdout.strip())
        time.sleep(0.7)
finally:
    svc.send_signal(signal.SIGTERM)
    out, err = svc.communicate(timeout=60)
check(svc.returncode == 0, "the demo service exited %d: %s" % (svc.returncode, err))
check(not [l for l in err.splitlines() if l.startswith("memledger:")], "memledger complained:\n" + err)
check(snaps == [snap_path(d, svc.pid, i) for i in (1, 2, 3)], "snapshot paths: %s" % snaps)

report = diff_json(*snaps)
growing = [s for s in report["stacks"] if s["only_grows"]]


def biggest_at(marker):
    line = marker_line(SCRIPT, marker)
    stacks, _ = growth_at(report, SCRIPT, line)
    check(stacks, "no growing stack has %s:%d as its innermost script frame" % (SCRIPT, line))
    big = max(stacks, key=lambda s: s["growth_bytes"])
    check(big["only_grows"], "the stack at line %d did not grow in every interval" % line)
    return line, big


h_line, history = biggest_at("history")
c_line, callback = biggest_at("callback")
k_line, closure = biggest_at("closure")
requests = history["growth_count"]
check(requests > 100, "only %d requests between the first and last snapshot" % requests)
check(history["growth_bytes"] == 2049 * requests,
      "history: %d bytes over %d allocations, not 2049 each" % (history["growth_bytes"], requests))
# both leaks happen once per request; a snapshot may fall between the two lines
check(abs(callback["growth_count"] - requests) <= 1,
      "callback grew by %d allocations, history by %d" % (callback["growth_count"], requests))
check(callback["growth_bytes"] == 513 * callback["growth_count"],
      "callback: %d bytes over %d allocations, not 513 each" % (callback["growth_bytes"], callback["growth_count"]))
check(abs(closure["growth_count"] - requests) <= 1,
      "closure grew by %d allocations, history by %d" % (closure["growth_count"], requests))

# every stack that grew in every interval by more than a few allocations is one of
# the leaks, or the cell that makes `out` reachable from the closure: CPython creates
# it when handle() starts, before its first line, so that frame has no line
leak_lines = {h_line, c_line, k_line}
for s in growing:
    fr = script_frames(s, SCRIPT)
    where = (fr[0]["function"], fr[0]["line"]) if fr else None
    if s["growth_count"] > 8:
        check((where and where[1] in leak_lines) or where == ("handle", None),
              "a stack outside the leaks only grows (%s, %s, %d allocations)"
              % (s["domain"], where, s["growth_count"]))
for marker in ("cache", "temporaries"):
    line = marker_line(SCRIPT, marker, tag="MARK")
    stacks, grown = growth_at(report, SCRIPT, line)
    check(abs(grown) <= 4096, "%s (line %d) grew %d bytes" % (marker, line, grown))
print("ok: %d requests; history +%d B, callback +%d B, closure +%d B; %d stacks only grow"
      % (requests, history["growth_bytes"], callback["growth_bytes"], closure["growth_bytes"], len(growing)))
