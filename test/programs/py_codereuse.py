"""Code objects that die and whose addresses come back, for
test_python_code_reuse.py: N times, compile a file gen_<i>.py whose
function leaks (i+1)*10000 bytes at its line 2, run it once, and drop
every reference to it, so its code object is freed before the next one is
made (pymalloc hands the same block out again). Snapshot 1 before, 2
after. Prints the code objects' ids, one JSON line."""
import json
import sys

import mlsnap

N = int(sys.argv[1]) if len(sys.argv) > 1 else 12
SRC = "def f(keep):\n    keep.append(bytes(%d))\n"
keep = []
ids = []


def run_one(i):
    code = compile(SRC % ((i + 1) * 10000), "gen_%d.py" % i, "exec")
    g = {}
    exec(code, g)
    f = g.pop("f")
    ids.append(id(f.__code__))
    f(keep)


mlsnap.snapshot(1)
for i in range(N):
    run_one(i)
mlsnap.snapshot(2)
print(json.dumps({"n": N, "ids": ids}))
