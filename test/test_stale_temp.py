"""A writer killed mid-snapshot (issue 17, "stale temporaries"), at default
settings but for MEMLEDGER_DIR:
- a big process (2^16 live stacks, so a snapshot takes a while) is asked
  for snapshot 1 and SIGKILLed while its temporary file is being written:
  the temporary file stays, as nothing in the process can run any more;
- reading the directory then says nothing confusing: `memledger diff
  --by-process DIR` over it and another process's two complete snapshots
  reports that process alone, names no temporary file and exits 0, and
  `memledger top` of the complete snapshot is unaffected;
- the next writer in the directory removes the dead writer's temporary
  file once it is 10 minutes old (its mtime is set back here: the age is
  what tells a dead writer's file from one a writer in another pid
  namespace, sharing the directory, is still writing), and keeps its own
  snapshots."""
import os
import signal
import subprocess
import time

from mltest import *

PROG = os.path.join(PROGRAMS, "exit_snapshot")
d = snapdir()
env = dict(os.environ, LD_PRELOAD=LIB, MEMLEDGER_DIR=d)

# ---- a writer killed mid-snapshot ----
p = subprocess.Popen([PROG, "big", "16", "1"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
seen = []
while True:
    line = p.stdout.readline()
    if not line:
        fail("the program ended before snapshot 1 began: %r %s" % (seen, p.stderr.read()))
    seen.append(line.strip())
    if line.startswith("writing"):
        break
os.kill(p.pid, signal.SIGKILL)
p.wait()
stale = leftover_temp_files(d)
check(len(stale) == 1 and stale[0].startswith(".memledger.%d.1.snap." % p.pid),
      "a SIGKILLed writer should leave its one temporary file: %s" % os.listdir(d))
check(not snapshots_of(d), "no complete snapshot from the killed writer: %s" % os.listdir(d))

# ---- another process's snapshots beside it ----
late = subprocess.run([PROG, "late"], env=dict(env, MEMLEDGER_AT_EXIT="1"), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True, timeout=120)
check(late.returncode == 0 and late.stderr == "", "late: exit %d %r" % (late.returncode, late.stderr))
mine = snapshots_of(d)
check(len(mine) >= 2, "the second process's snapshots: %s" % os.listdir(d))
# younger than 10 minutes: not taken for a dead writer's yet
check(os.path.exists(os.path.join(d, stale[0])), "a fresh temporary file was removed: %s" % os.listdir(d))

c = cli("diff", "--by-process", d, expect_rc=None)
out = c.stdout + c.stderr
check(c.returncode == 0, "diff --by-process over the directory: exit %d\n%s" % (c.returncode, out))
check(".tmp" not in out and "cannot read" not in out and "bad" not in out.lower(),
      "diff --by-process mentions the temporary file or an error:\n%s" % out)
check(str(p.pid) not in out, "diff --by-process names the killed writer:\n%s" % out)
t = cli("top", mine[0], expect_rc=None)
check(t.returncode == 0 and ".tmp" not in t.stdout + t.stderr, "top: exit %d\n%s" % (t.returncode, t.stderr))

# ---- the next writer removes it once it is old enough ----
old = time.time() - 11 * 60
os.utime(os.path.join(d, stale[0]), (old, old))
again = subprocess.run([PROG, "late"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=120)
check(again.returncode == 0 and again.stderr == "", "late again: exit %d %r" % (again.returncode, again.stderr))
check(not leftover_temp_files(d), "the dead writer's temporary file is still there: %s" % os.listdir(d))
check(set(mine) <= set(snapshots_of(d)) and len(snapshots_of(d)) == len(mine) + 1,
      "the complete snapshots should all stay: %s" % os.listdir(d))
print("ok: a SIGKILLed writer's %s stays, the directory reads cleanly (%d snapshots), and the next writer "
      "removed it once 10 minutes old" % (stale[0], len(mine)))
