"""memledger's table of CPython layouts (src/python/pyversions.c) agrees with each
installed version's own headers: test/programs/pyprobe.c is compiled
against the version's include directory and its offsetof() figures must
equal what pylayout_dump prints from the table (for 3.13, from the
_Py_DebugOffsets the library publishes in _PyRuntime). argv: the versions
(a pyenv major.minor, or 'debian' for /usr/include/python3.11)."""
import glob
import os
import subprocess
import sys
import tempfile

from mltest import *

PROBE = os.path.join(SOURCE, "programs", "pyprobe.c")
DUMP = os.path.join(PROGRAMS, "pylayout_dump")
tmp = snapdir("mltest.pyprobe.")
checked, missing = [], []
for spec in sys.argv[1:]:
    if spec == "debian":
        inc = ["/usr/include/python3.11", "/usr/include/x86_64-linux-gnu/python3.11"]
        lib = None
        if not os.path.exists("/usr/include/python3.11/Python.h"):
            missing.append("debian (python3.11-dev)")
            continue
    else:
        root = os.path.join(PYENV, "versions")
        dirs = sorted(glob.glob(os.path.join(root, spec + ".*", "include", "python" + spec)))
        if not dirs:
            missing.append(spec)
            continue
        inc = [dirs[-1]]
        libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(dirs[-1])), "lib", "libpython%s*.so.1.0" % spec))
        lib = libs[0] if libs else None
    exe = os.path.join(tmp, "probe-" + spec)
    cc = subprocess.run(["cc", "-w", "-o", exe, PROBE] + ["-I" + i for i in inc],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(cc.returncode == 0, "%s: the probe does not build against %s:\n%s" % (spec, inc, cc.stdout[-3000:]))
    probe = dict(l.split() for l in subprocess.run([exe], stdout=subprocess.PIPE, text=True).stdout.splitlines())
    args = [DUMP, "%x" % int(probe["hex"])] + ([lib] if lib else [])
    d = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(d.returncode == 0, "%s: pylayout_dump: %s" % (spec, d.stderr))
    table = dict(l.split() for l in d.stdout.splitlines())
    for k, v in probe.items():
        check(k in table, "%s: the table has no %s" % (spec, k))
        check(table[k] == v, "%s: %s is %s in memledger's table, %s in the headers" % (spec, k, table[k], v))
    checked.append("%s (%d offsets)" % (spec, len(probe)))
if not checked:
    skip("no CPython headers installed for %s" % ", ".join(sys.argv[1:]))
print("ok: %s agree with their headers%s" % (", ".join(checked),
                                             "; not installed: " + ", ".join(missing) if missing else ""))
