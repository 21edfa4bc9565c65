"""How `memledger snapshot` asks (issue 14).
- Its request is marked (sigqueue with memledger's value): the library
  writes the snapshot and the program's own SIGUSR2 handler does not run
  for it; a plain `kill -USR2` from anyone else still reaches that handler
  (and still gets a snapshot). Debian's python3 with signal.signal.
- A process that cannot write into its snapshot directory (it dropped to
  uid 65534; the directory is root's, mode 0755): `memledger snapshot`
  says so in under 2 s, with the library's reason (EACCES) and the uid,
  and exits 1; so does `--tree`. The process runs on.
- `snapshot --tree` of a shell that is not under the ledger, whose child
  is: the child's path on stdout, a note on stderr naming the skipped pid."""
import os
import signal
import subprocess
import time

from mltest import *

PY = "/usr/bin/python3"
HANDLER = r'''
import os, signal, sys, time
calls = []
signal.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
print("ready", flush=True)
for line in sys.stdin:
    print(len(calls), flush=True)
'''

# ---- marked requests are not chained; a plain kill is ----
d = snapdir()
env = dict(os.environ, LD_PRELOAD=LIB, MEMLEDGER_DIR=d)
p = subprocess.Popen([PY, "-c", HANDLER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
try:
    check(p.stdout.readline().strip() == "ready", "the program did not start")
    for seq in (1, 2):
        path = cli("snapshot", p.pid).stdout.strip()
        check(path == snap_path(d, p.pid, seq), "snapshot %d: %r" % (seq, path))
    p.stdin.write("\n")
    p.stdin.flush()
    n = int(p.stdout.readline())
    check(n == 0, "the program's SIGUSR2 handler ran %d times for memledger's own requests" % n)
    os.kill(p.pid, signal.SIGUSR2)
    for _ in range(3000):
        if os.path.exists(snap_path(d, p.pid, 3)):
            break
        time.sleep(0.01)
    check(os.path.exists(snap_path(d, p.pid, 3)), "kill -USR2 wrote no snapshot")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        p.stdin.write("\n")
        p.stdin.flush()
        n = int(p.stdout.readline())
        if n:
            break
        time.sleep(0.05)
    check(n == 1, "after a plain kill -USR2 the handler ran %d times" % n)
finally:
    p.stdin.close()
    p.wait(timeout=30)
print("ok: memledger's requests: 2 snapshots, the program's handler not run; a plain kill: snapshot 3 and the "
      "handler ran once")

# ---- a directory the process cannot write into ----
locked = snapdir()
os.chmod(locked, 0o755)  # root's: uid 65534 cannot create files in it
DROP = r'''
import os, sys, time
os.setgid(65534)
os.setuid(65534)
print("ready", flush=True)
time.sleep(60)
'''
env = dict(os.environ, LD_PRELOAD=LIB, MEMLEDGER_DIR=locked)
p = subprocess.Popen([PY, "-c", DROP], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    check(p.stdout.readline().strip() == "ready", "the program did not start")
    for args in (("snapshot", p.pid), ("snapshot", "--tree", p.pid)):
        t = time.monotonic()
        r = cli(*args, expect_rc=1)
        took = time.monotonic() - t
        check(took < 2.0, "%s took %.2f s to report the failure" % (args, took))
        check("could not write snapshot" in r.stderr and locked in r.stderr and "Permission denied (EACCES)" in
              r.stderr and "uid 65534" in r.stderr, "%s said: %r" % (args, r.stderr))
        check(r.stdout == "", "%s printed %r" % (args, r.stdout))
        print("ok: %s failed in %.3f s: %s" % (" ".join(map(str, args[:-1])), took, r.stderr.strip()))
    check(p.poll() is None, "the process died")
    check(os.listdir(locked) == [], "files in the locked directory: %s" % os.listdir(locked))
finally:
    p.kill()
    p.communicate()

# ---- --tree skips what is not under the ledger, and says so ----
d = snapdir()
kids = []
sh = subprocess.Popen(["/bin/sh", "-c", "LD_PRELOAD=%s MEMLEDGER_DIR=%s %s -c 'import time; print(1, flush=True); "
                       "time.sleep(60)'" % (LIB, d, PY)], stdout=subprocess.PIPE, text=True)
try:
    check(sh.stdout.readline().strip() == "1", "the child did not start")
    kids = [int(x) for x in subprocess.run(["pgrep", "-P", str(sh.pid)], stdout=subprocess.PIPE,
                                            text=True).stdout.split()]
    check(len(kids) == 1, "children of the shell: %s" % kids)
    r = cli("snapshot", "--tree", "-v", sh.pid)
    check(r.stdout.split() == [snap_path(d, kids[0], 1)], "--tree printed %r" % r.stdout)
    check("skipped pid %d" % sh.pid in r.stderr and "does not have libmemledger.so loaded" in r.stderr and
          "pid %d, child 1 of %d" % (kids[0], sh.pid) in r.stderr, "--tree said %r" % r.stderr)
finally:
    for k in kids:
        os.kill(k, signal.SIGKILL)
    sh.kill()
    sh.wait()
print("ok: --tree: the shell skipped with a note, its child snapshotted")
