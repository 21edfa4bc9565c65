"""A copy of the library under another name (a package's own file name for
it, or a copy an operator made) is preloaded into Debian's python3 and
tracks as libmemledger.so does. The executable is not position-independent
and takes malloc's address, so its PLT entry is where the process's scope
finds malloc: the library must not take that for "loaded late by `memledger
attach`" and wait for an attach that never comes (it did: nothing tracked,
no snapshot, and SIGUSR2 killed the process). Also through a space- and
colon-separated LD_PRELOAD list with another library in it."""
import os
import shutil

from mltest import *

PY = python_for("debian")
d = snapdir()
lib = os.path.join(snapdir("mltest.renamed."), "profiler-preload.so")
shutil.copy(LIB, lib)
SCRIPT = """import sys
sys.path.insert(0, %r)
from mlsnap import snapshot
keep = []
snapshot(1)
for i in range(400):
    keep.append(bytearray(5000))  # LEAK:renamed
snapshot(2)
""" % os.path.join(SOURCE, "programs")
script = os.path.join(d, "renamed_leak.py")
with open(script, "w") as f:
    f.write(SCRIPT)
line = marker_line(script, "renamed")
lists = [lib, "%s:%s" % (lib, "libm.so.6"), "libm.so.6 %s" % lib]
for pre in lists:
    for f in os.listdir(d):
        if f.endswith(".snap"):
            os.unlink(os.path.join(d, f))
    p = run_under([PY, script], d, extra_env={"LD_PRELOAD": pre}, check_rc=False)
    check(p.returncode == 0, "LD_PRELOAD=%r: exit %d (-12: SIGUSR2 with no handler, memledger never started)\n%s"
          % (pre, p.returncode, p.stderr))
    snaps = sorted(s for s in os.listdir(d) if s.endswith(".snap"))
    check(len(snaps) == 2, "LD_PRELOAD=%r: snapshots %s" % (pre, snaps))
    report = diff_json(os.path.join(d, snaps[0]), os.path.join(d, snaps[1]))
    found, grew = growth_at(report, script, line)
    check(found and within(grew, 400 * 5000), "LD_PRELOAD=%r: line %d grew by %d, expected about %d"
          % (pre, line, grew, 400 * 5000))
    print("ok: LD_PRELOAD=%r: %s:%d +%d B" % (pre, os.path.basename(script), line, grew))
