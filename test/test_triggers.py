"""Snapshot triggers other than the signal, and what the CLI does with bad
files: MEMLEDGER_INTERVAL writes snapshots on its own (trigger `interval`),
MEMLEDGER_AT_EXIT writes one when the program exits (trigger `exit`, holding
the program's leaks), a truncated or foreign file is an error naming the
file and line with exit status 2."""
import os
import subprocess
import time

from mltest import *

# interval: the demo service serves for ~1.5 s with snapshots every 300 ms
d = snapdir()
p = run_under([os.path.join(PROGRAMS, "demo_service"), "3000"], d, extra_env={"MEMLEDGER_INTERVAL": "300ms"})
snaps = sorted((f for f in os.listdir(d) if f.endswith(".snap")), key=lambda f: int(f.split(".")[2]))
check(len(snaps) >= 3, "interval snapshots: %s" % snaps)
with open_snapshot(os.path.join(d, snaps[0])) as f:
    check("trigger\tinterval\n" in f.read(), "first snapshot is not an interval snapshot")
r = diff_json(*[os.path.join(d, s) for s in snaps[:3]])
audit = stacks_at(r, "audit_log")
check(audit and audit[0]["only_grows"], "audit_log does not grow in every interval")

# at exit: leak_sites's leaks are all live in the exit snapshot
d = snapdir()
run_under([os.path.join(PROGRAMS, "leak_sites")], d, extra_env={"MEMLEDGER_AT_EXIT": "1"})
snaps = sorted((f for f in os.listdir(d) if f.endswith(".snap")), key=lambda f: int(f.split(".")[2]))
check(len(snaps) == 3, "expected two signal snapshots and one at exit, got %s" % snaps)
last = os.path.join(d, snaps[-1])
with open_snapshot(last) as f:
    check("trigger\texit\n" in f.read(), "last snapshot was not written at exit")
t = top_json(last)
# main reaches round_of_leaks from two call sites (warm-up, loop): two stacks
m = stacks_at(t, "leak_malloc")
live = (sum(s["live_bytes"] for s in m), sum(s["live_count"] for s in m))
check(live == (1000 * 26, 26), "at exit leak_malloc holds %s bytes in %s" % live)

# bad files
bad = os.path.join(d, "truncated.snap")
with open_snapshot(last) as f:
    text = f.read()
with open(bad, "w") as f:
    f.write(text[: len(text) // 2])
lines = text[: len(text) // 2].count("\n")
for cmd in (["top", bad], ["diff", last, bad]):
    e = cli(*cmd, expect_rc=2).stderr
    check(bad in e and ("%s:%d:" % (bad, lines + 1)) in e, "%s: error does not name the file and line: %r" % (cmd[0], e))
foreign = os.path.join(d, "foreign.snap")
with open(foreign, "w") as f:
    f.write("hello\tworld\n")
e = cli("top", foreign, expect_rc=2).stderr
check(foreign + ":1:" in e and "not a memledger snapshot" in e, e)
e = cli("top", os.path.join(d, "missing.snap"), expect_rc=2).stderr
check("missing.snap" in e and "No such file" in e, e)
print("ok: %d interval snapshots; exit snapshot exact; bad files rejected with file:line" % len(snaps))
