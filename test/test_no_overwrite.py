"""A snapshot never overwrites another file. A pid comes back (a
container's service is pid 1 after every restart; exec keeps the pid), so
memledger.<pid>.1.snap may hold an earlier process's snapshot: the new
process's snapshots take the numbers after the highest one there, and are
renamed into place only where no file is.

1. The issue's case: the shell puts a real snapshot of another run at
   memledger.$$.1.snap, then execs a program under the ledger with
   MEMLEDGER_AT_EXIT=1. That program asks for a snapshot (it becomes .2),
   then execs itself again under the ledger (same pid, the ledger counts
   from 1 again), and its exit snapshot becomes .3. The old file is
   byte-for-byte unchanged, and all three read, each with its own leak.
2. `memledger snapshot PID` prints the real path when older snapshots of
   that pid (.1 to .3, and a planted .7) are in the directory: .8."""
import hashlib
import os
import subprocess

from mltest import *

PROG = os.path.join(PROGRAMS, "snap_exec")
SRC = os.path.join(SOURCE, "programs", "snap_exec.c")


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def leak_at(snap, marker):
    """(bytes, count) live at the line marked LEAK:<marker>."""
    line = marker_line(SRC, marker)
    nb = nc = 0
    for s in top_json(snap)["stacks"]:
        if any(f["line"] == line and (f["file"] or "").endswith("snap_exec.c") for f in s["frames"][:2]):
            nb += s["live_bytes"]
            nc += s["live_count"]
    return nb, nc


d = snapdir()
# an earlier run's snapshot, from another process
run_under([PROG], d, extra_env={"MEMLEDGER_AT_EXIT": "1"})
(older,) = snapshots_of(d)
check(leak_at(older, "at_exit") == (200 * 2222, 200), "the earlier run's snapshot: %s" % (leak_at(older, "at_exit"),))

env = dict(os.environ, ML_LIB=LIB, MEMLEDGER_DIR=d, OLDER=older, LD_PRELOAD="")
p = subprocess.run(["/bin/sh", "-c", 'cp "$OLDER" "$MEMLEDGER_DIR/memledger.$$.1.snap"; echo $$; '
                    'LD_PRELOAD="$ML_LIB" MEMLEDGER_AT_EXIT=1 exec "$0" "$0"', PROG],
                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
check(p.stderr == "", "stderr: %s" % p.stderr)
pid = int(p.stdout.split()[0])
kept_old = snap_path(d, pid, 1)
check(digest(kept_old) == digest(older), "%s was overwritten" % kept_old)
names = sorted(os.path.basename(f) for f in snapshots_of(d, pid))
want = ["memledger.%d.%d.snap" % (pid, s) for s in (1, 2, 3)]
check(names == want, "snapshots of pid %d: %s, expected %s" % (pid, names, want))
check(not leftover_temp_files(d), "temporary files left: %s" % leftover_temp_files(d))

first, second = snap_path(d, pid, 2), snap_path(d, pid, 3)
for path, seq, trigger in ((first, 2, "signal"), (second, 3, "exit")):
    snap = read_snapshot(path)
    check(header(snap, "seq") == [str(seq)], "%s: header seq %s, expected %d" % (path, header(snap, "seq"), seq))
    check(header(snap, "trigger") == [trigger], "%s: trigger %s" % (path, header(snap, "trigger")))
    check(header(snap, "pid") == [str(pid)], "%s: pid %s" % (path, header(snap, "pid")))
# each holds its own image's leak, and the old one is still the old run's
check(leak_at(first, "before_exec") == (100 * 1111, 100), "first image: %s" % (leak_at(first, "before_exec"),))
check(leak_at(second, "at_exit") == (200 * 2222, 200), "second image: %s" % (leak_at(second, "at_exit"),))
check(leak_at(second, "before_exec") == (0, 0), "the second image holds the first's leak")
check(leak_at(kept_old, "at_exit") == (200 * 2222, 200), "the old file reads differently now")
cli("diff", kept_old, first, second)
print("ok: pid %d: the older memledger.%d.1.snap kept byte for byte; the new process wrote .2 (signal) and, "
      "after exec, .3 (exit), each read with its own leak" % (pid, pid))

# ---- `memledger snapshot` names the file it got ----
d2 = snapdir()
svc = subprocess.Popen(["/bin/sh", "-c", 'read go; LD_PRELOAD="$ML_LIB" exec "$0"', os.path.join(PROGRAMS, "demo_service")],
                       env=dict(env, MEMLEDGER_DIR=d2), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
planted = {}
for seq in (1, 2, 3, 7):
    path = snap_path(d2, svc.pid, seq)
    with open(older, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    planted[path] = digest(path)
try:
    svc.stdin.write("go\n")
    svc.stdin.flush()
    line = svc.stdout.readline()
    check(line.startswith("ready"), "demo did not get ready: %r" % line)
    got = cli("snapshot", svc.pid).stdout.strip()
    check(got == snap_path(d2, svc.pid, 8), "snapshot printed %r, expected %s" % (got, snap_path(d2, svc.pid, 8)))
    again = cli("snapshot", svc.pid).stdout.strip()
    check(again == snap_path(d2, svc.pid, 9), "second snapshot printed %r" % again)
finally:
    svc.terminate()
    svc.wait(timeout=30)
for path, h in planted.items():
    check(digest(path) == h, "%s was overwritten" % path)
for path in (got, again):
    snap = read_snapshot(path)
    check(header(snap, "pid") == [str(svc.pid)], "%s: pid %s" % (path, header(snap, "pid")))
check(stacks_at(diff_json(got, again), "audit_log"), "the demo's leak is not in the diff of the new snapshots")
print("ok: with .1-.3 and .7 of pid %d already there, memledger snapshot printed .8 and .9, the real files"
      % svc.pid)
