"""A CPython whose frame layout memledger does not know (argv[1]: 3.7 by
default): one warning line naming the version, python_frames off in the
snapshot, no Python frame in any stack, and the leaks of
programs/py_leaks.py still counted in full as native stacks (the PyMem
hooks work on every CPython 3)."""
import json
import os
import sys

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "3.7"
python = python_for(spec)
SCRIPT = os.path.join(SOURCE, "programs", "py_leaks.py")
d = snapdir()
p = run_under([python, SCRIPT, "10"], d)
sizes = json.loads(p.stdout.strip().splitlines()[-1])
warnings = [l for l in p.stderr.splitlines() if l.startswith("memledger:")]
check(len(warnings) == 1, "expected one warning line, got:\n" + p.stderr)
check("CPython %s." % spec in warnings[0] and "stacks stay native" in warnings[0], "warning: " + warnings[0])
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
head = snap_path(d, pid, 2)
H = read_snapshot(head)
check(header(H, "python_frames")[0] == "off", "python_frames %s" % header(H, "python_frames"))
report = diff_json(snap_path(d, pid, 1), head)
py = [s for s in report["stacks"] if any(f["kind"] == "python" for f in s["frames"])]
check(not py, "Python frames in %d stacks" % len(py))
truth = sizes["iter"] * (sizes["bytes"] + sizes["cycle"] + sizes["closure"] + sizes["thread"])
grown = sum(s["growth_bytes"] for s in report["stacks"])
check(within(grown, truth), "grew %d bytes in all, the script leaked %d" % (grown, truth))
print("ok: %s; native stacks grew %d bytes (leaked %d)" % (warnings[0], grown, truth))
