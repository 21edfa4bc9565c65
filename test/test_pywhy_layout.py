"""`memledger why`'s table of CPython layouts (src/python/whylayout.c) agrees
with each installed version's own headers: test/programs/pywhy_probe.c is
compiled against the version's include directory and each offsetof() figure
it prints must equal what pywhy_dump prints from the table, and the table
must have every figure the probe prints. argv: the versions (a pyenv
major.minor, or 'debian' for /usr/include/python3.11)."""
import glob
import os
import subprocess
import sys
import tempfile

from mltest import *

PROBE = os.path.join(SOURCE, "programs", "pywhy_probe.c")
DUMP = os.path.join(PROGRAMS, "pywhy_dump")
tmp = snapdir("mltest.pywhy.")
checked, missing = [], []
for spec in sys.argv[1:]:
    if spec == "debian":
        inc = ["/usr/include/python3.11", "/usr/include/x86_64-linux-gnu/python3.11"]
        if not os.path.exists("/usr/include/python3.11/Python.h"):
            missing.append("debian (python3.11-dev)")
            continue
    else:
        dirs = sorted(glob.glob(os.path.join(PYENV, "versions", spec + ".*", "include", "python" + spec)))
        if not dirs:
            missing.append(spec)
            continue
        inc = [dirs[-1]]
    exe = os.path.join(tmp, "probe-" + spec)
    cc = subprocess.run(["cc", "-w", "-o", exe, PROBE] + ["-I" + i for i in inc],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(cc.returncode == 0, "%s: the probe does not build against %s:\n%s" % (spec, inc, cc.stdout[-3000:]))
    probe = dict(l.split() for l in subprocess.run([exe], stdout=subprocess.PIPE, text=True).stdout.splitlines())
    d = subprocess.run([DUMP, "%x" % int(probe["hex"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(d.returncode == 0, "%s: pywhy_dump: %s" % (spec, d.stderr))
    table = dict(l.split() for l in d.stdout.splitlines())
    for k, v in probe.items():
        check(k in table, "%s: the why table has no %s" % (spec, k))
        check(table[k] == v, "%s: %s is %s in the why table, %s in the headers" % (spec, k, table[k], v))
    checked.append("%s (%d offsets)" % (spec, len(probe)))
if not checked:
    skip("no CPython headers installed for %s" % ", ".join(sys.argv[1:]))
print("ok: %s agree with their headers%s" % (", ".join(checked),
                                             "; not installed: " + ", ".join(missing) if missing else ""))
