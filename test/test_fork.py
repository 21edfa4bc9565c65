"""fork(): parent and child each snapshot their own leaks under their own
pid, with a thread churning through the fork."""
import json
import os

from mltest import *

d = snapdir()
p = run_under([os.path.join(PROGRAMS, "forker")], d)
pids = json.loads(p.stdout.strip().splitlines()[-1])
SRC = os.path.join(SOURCE, "programs", "forker.c")
for who, fn, size, count, other in (("parent", "parent_leak", 2222, 4, "child_leak"),
                                     ("child", "child_leak", 1111, 7, "parent_leak")):
    pid = pids[who]
    a, b = snap_path(d, pid, 1), snap_path(d, pid, 2)
    check(os.path.exists(a) and os.path.exists(b), "%s (pid %d) did not write its snapshots" % (who, pid))
    r = diff_json(a, b)
    s = stacks_at(r, fn)
    check(len(s) == 1, "%s: expected one growing stack at %s, got %d" % (who, fn, len(s)))
    check(s[0]["growth_bytes"] == size * count and s[0]["growth_count"] == count,
          "%s: %s grew %d bytes in %d, expected %d in %d"
          % (who, fn, s[0]["growth_bytes"], s[0]["growth_count"], size * count, count))
    check(innermost(s[0])["line"] == marker_line(SRC, who), "%s: wrong line" % who)
    check(not stacks_at(r, other), "%s sees %s growth" % (who, other))
    # the leak made before fork is live in both processes
    t = top_json(a)
    before = stacks_at(t, "before_fork_leak")
    check(len(before) == 1 and before[0]["live_bytes"] == 3 * 777,
          "%s: before_fork_leak should hold 3x777 bytes" % who)
check(not leftover_temp_files(d), "temporary files left behind")
print("ok: parent %d and child %d each see their own leak" % (pids["parent"], pids["child"]))
