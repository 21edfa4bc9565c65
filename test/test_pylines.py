"""memledger's line-table decoding (ml_pyline in src/python/pycode.c) gives every
instruction the line CPython itself gives it, for each format: the sample
module of programs/py_linevectors.py is compiled by each installed CPython
(argv), which prints its tables and its own address -> line answers, and
pyline_check must agree on every address."""
import os
import subprocess
import sys

from mltest import *

VECTORS = os.path.join(SOURCE, "programs", "py_linevectors.py")
CHECK = os.path.join(PROGRAMS, "pyline_check")
done, absent = [], []
for spec in sys.argv[1:]:
    try:
        python = python_for(spec)
    except SystemExit:
        absent.append(spec)
        continue
    v = subprocess.run([python, VECTORS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(v.returncode == 0, "%s: %s" % (spec, v.stderr))
    c = subprocess.run([CHECK], input=v.stdout, stdout=subprocess.PIPE, text=True)
    check(c.returncode == 0, "%s: %s" % (spec, c.stdout))
    done.append("%s: %s" % (spec, c.stdout.strip().splitlines()[-1]))
if not done:
    skip("none of %s is installed" % sys.argv[1:])
print("ok:\n  " + "\n  ".join(done) + ("\n  not installed: " + ", ".join(absent) if absent else ""))
