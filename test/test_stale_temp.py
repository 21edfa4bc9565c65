"""A writer killed mid-snapshot (issue 17, "stale temporaries"), at default
settings but for MEMLEDGER_DIR:
- beside another process's two complete snapshots, a big process (2^16
  live stacks, so a snapshot takes a while) is asked for snapshot 1 and
  SIGKILLed while its temporary file is being written: the temporary file
  stays, as nothing in the process can run any more;
- reading the directory then says nothing confusing: `memledger diff
  --by-process DIR` reports the other process alone, names no temporary
  file and exits 0, and `memledger top` of a complete snapshot is
  unaffected;
- the next writer in the directory removes the dead writer's temporary
  file (the kernel dropped the lock the writer held on it; a live writer
  in another pid namespace, whose pid means nothing here, still holds
  its), and keeps every snapshot. The file's time is set back 5 s first:
  a file written to in the last 2 s may be one a writer has just created
  and not locked yet, so the next run leaves it that long."""
import os
import signal
import subprocess
import time

from mltest import *

PROG = os.path.join(PROGRAMS, "exit_snapshot")
d = snapdir()
env = dict(os.environ, LD_PRELOAD=LIB, MEMLEDGER_DIR=d)

def late(**extra):
    r = subprocess.run([PROG, "late"], env=dict(env, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    check(r.returncode == 0 and r.stderr == "", "late: exit %d %r" % (r.returncode, r.stderr))


# ---- another process's snapshots ----
late(MEMLEDGER_AT_EXIT="1")
mine = snapshots_of(d)
check(len(mine) == 2, "the other process's snapshots: %s" % os.listdir(d))

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
check(snapshots_of(d) == mine, "no complete snapshot from the killed writer: %s" % os.listdir(d))

# ---- the directory read with it there ----
c = cli("diff", "--by-process", d, expect_rc=None)
out = c.stdout + c.stderr
check(c.returncode == 0, "diff --by-process over the directory: exit %d\n%s" % (c.returncode, out))
check(".tmp" not in out and "cannot read" not in out and "bad" not in out.lower(),
      "diff --by-process mentions the temporary file or an error:\n%s" % out)
check(str(p.pid) not in out, "diff --by-process names the killed writer:\n%s" % out)
t = cli("top", mine[0], expect_rc=None)
check(t.returncode == 0 and ".tmp" not in t.stdout + t.stderr, "top: exit %d\n%s" % (t.returncode, t.stderr))

# ---- the next writer removes it ----
path = os.path.join(d, stale[0])
back = time.time() - 5
os.utime(path, (back, back))
late()
check(not leftover_temp_files(d), "the dead writer's temporary file is still there: %s" % os.listdir(d))
now = snapshots_of(d)
check(set(mine) <= set(now) and len(now) == len(mine) + 1, "the complete snapshots should all stay: %s" % now)
print("ok: a SIGKILLed writer's %s stayed, the directory read cleanly beside it (%d snapshots), and the next "
      "writer removed it" % (stale[0], len(mine)))
