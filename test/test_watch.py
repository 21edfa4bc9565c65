"""`memledger watch PID --every S` on the demo service (under `memledger
run`): a progress line per snapshot, then the stacks that have grown in
every interval so far: the two planted leaks (audit_log, remember_config),
never the bounded cache or the temporaries. SIGINT ends it cleanly with
status 0; the snapshots it took stay on disk, one per progress line, and
`memledger diff` reads them. --count stops on its own; a process without
the ledger, or a bad --every, is refused with status 2; a process that ends
under watch gives status 1."""
import os
import re
import signal
import subprocess
import time

from mltest import *

d = snapdir()
svc = subprocess.Popen([CLI, "run", "--dir", d, "--", os.path.join(PROGRAMS, "demo_service")],
                       stdout=subprocess.PIPE, text=True)
try:
    check(svc.stdout.readline().startswith("ready"), "demo did not get ready")
    w = subprocess.Popen([CLI, "watch", str(svc.pid), "--every", "300ms", "--color", "never"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, progress = [], []
    deadline = time.monotonic() + 60
    while len(progress) < 4 and time.monotonic() < deadline:
        line = w.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.match(r"\[\d+\] \+", line):
            progress.append(line)
    check(len(progress) == 4, "watch printed %d progress lines:\n%s" % (len(progress), "\n".join(lines)))
    w.send_signal(signal.SIGINT)
    # read through the same buffered file: communicate() would skip what readline() has buffered
    lines += w.stdout.read().splitlines()
    err = w.stderr.read()
    w.wait(timeout=60)
    check(w.returncode == 0, "watch exited %d after SIGINT: %s" % (w.returncode, err))
finally:
    svc.send_signal(signal.SIGTERM)
    svc.wait(timeout=30)

text = "\n".join(lines)
check(lines[0].startswith("memledger watch: pid %d every 0.3 s; snapshots go to %s" % (svc.pid, d)), lines[0])
check(re.search(r"memledger watch: stopped after \d+ snapshots; they are kept in " + re.escape(d), text), text)
paths = [re.search(r"\s(/\S+\.snap)\s", p).group(1) for p in progress]
check(paths == [snap_path(d, svc.pid, i) for i in range(1, 5)], "progress paths: %s" % paths)
check(all(os.path.exists(p) for p in paths), "watch's snapshots are gone")
check("(the baseline)" in progress[0], progress[0])

# after each later snapshot: the leaks, and only them
blocks = re.split(r"^\[\d+\] .*$", text, flags=re.M)[2:]
check(len(blocks) >= 3, "no stack lists:\n" + text)
for i, block in enumerate(blocks[:3], start=2):
    listed = re.findall(r"^\s+\+[\d.]+ \S+\s+[+-]\d+\s+malloc\s+(\w+) at", block, flags=re.M)
    check("audit_log" in listed, "snapshot %d: audit_log not listed:\n%s" % (i, block))
    check(not {"cache_response", "handle_request"} & set(listed), "snapshot %d lists %s" % (i, listed))
    check(re.search(r"\d+ only grows?\b", progress[i - 1]), progress[i - 1])

# the same snapshots, diffed: audit_log only grows across them all
r = diff_json(*paths)
audit = stacks_at(r, "audit_log")
check(audit and audit[0]["only_grows"] and audit[0]["intervals"] == 3, "diff of watch's snapshots: %s" % audit)

# --count: stops by itself, status 0
svc = subprocess.Popen([CLI, "run", "--dir", d, "--", os.path.join(PROGRAMS, "demo_service")],
                       stdout=subprocess.PIPE, text=True)
try:
    check(svc.stdout.readline().startswith("ready"), "demo did not get ready")
    p = cli("watch", svc.pid, "--every", "200ms", "--count", "2", "--group-by", "function")
    check(len(re.findall(r"^\[\d\] ", p.stdout, flags=re.M)) == 2 and "done after 2 snapshots" in p.stdout, p.stdout)
    # the process ends while watched: status 1, and it says so
    w = subprocess.Popen([CLI, "watch", str(svc.pid), "--every", "200ms"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    svc.send_signal(signal.SIGTERM)
    svc.wait(timeout=30)
    out, err = w.communicate(timeout=60)
    check(w.returncode == 1 and "process %d" % svc.pid in err, "watch of an ended process: %d %r" % (w.returncode, err))
finally:
    if svc.poll() is None:
        svc.kill()

sleeper = subprocess.Popen(["sleep", "30"])
try:
    p = cli("watch", sleeper.pid, "--every", "1", expect_rc=2)
    check("does not have libmemledger.so loaded" in p.stderr and sleeper.poll() is None, p.stderr)
finally:
    sleeper.kill()
for args in (["1"], ["1", "--every", "soon"], ["1", "--every", "10ms"], ["--every", "1"], ["x", "--every", "1"]):
    cli("watch", *args, expect_rc=2)
print("ok: watch listed the leaks after each of %d snapshots, exited 0 on SIGINT, kept its snapshots" % len(paths))
