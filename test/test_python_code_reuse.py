"""A freed code object whose address is reused must not lend its name to
another (argv[1]: the CPython, as in test_python_leaks.py). Through
programs/py_codereuse.py: each gen_<i>.py leaks (i+1)*10000 bytes at its
line 2 from a code object made after the previous one was freed, most at
the same address. Every file must show its own leak, and no other's.
With argv[2] 'pythonmalloc': under PYTHONMALLOC=malloc, which replaces the
PyMem hooks, so code objects are freed unseen and their fingerprints must
tell a new code object from the dead one at its address."""
import json
import os
import sys

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "debian"
unseen = len(sys.argv) > 2 and sys.argv[2] == "pythonmalloc"
python = python_for(spec)
SCRIPT = os.path.join(SOURCE, "programs", "py_codereuse.py")
d = snapdir()
p = run_under([python, SCRIPT, "12"], d, extra_env={"PYTHONMALLOC": "malloc"} if unseen else None)
info = json.loads(p.stdout.strip().splitlines()[-1])
n, ids = info["n"], info["ids"]
reused = n - len(set(ids))
check(reused > 0, "no code object address came back (%s): this run shows nothing" % ids)
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
base, head = snap_path(d, pid, 1), snap_path(d, pid, 2)
report = diff_json(base, head)
B, H = read_snapshot(base), read_snapshot(head)
for i in range(n):
    stacks, grown = growth_at(report, "gen_%d.py" % i, 2)
    truth = (i + 1) * 10000
    check(within(grown, truth, 0.01), "gen_%d.py:2 grew %d bytes, it leaked %d" % (i, grown, truth))
    for s in stacks:
        check(script_frames(s, "gen_%d.py" % i)[0]["function"] == "f", "gen_%d.py: function %s" % (i, s))
forgotten = int(header(H, "python_code")[1]) - int(header(B, "python_code")[1])
if unseen:
    check(header(H, "python_pymem") == ["-"], "python_pymem %s under PYTHONMALLOC=malloc" % header(H, "python_pymem"))
    # retired when their address came back with another code object
    check(forgotten >= reused, "only %d code objects retired over %d addresses reused" % (forgotten, reused))
else:
    check(forgotten >= n, "only %d code objects forgotten over %d freed" % (forgotten, n))
print("ok: %d generated files, %d code object addresses reused, each file grew by its own leak; "
      "%d code objects forgotten" % (n, reused, forgotten))
