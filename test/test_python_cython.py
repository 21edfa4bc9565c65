"""Cython (a module built from programs/cyleak.pyx by cython3, run under
Debian's python3): a Cython function's native frame is shown with its
Python-level name beside the C symbol (JSON "cython": "cyleak.grab"; text
"cyleak.grab (Cython: __pyx_pw_6cyleak_1grab)"), for functions and
methods; what they leak grows at the Python line that called them; and a
callback goes Python -> Cython -> Python in that order on the stack."""
import json
import os
import sys

from mltest import *

moddir = sys.argv[1]
python = python_for("debian")
SCRIPT = os.path.join(SOURCE, "programs", "py_cython.py")
d = snapdir()
p = run_under([python, SCRIPT, moddir, "20"], d)
sizes = json.loads(p.stdout.strip().splitlines()[-1])
n = sizes["iter"]
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
base, head = snap_path(d, pid, 1), snap_path(d, pid, 2)
report = diff_json(base, head)


def cython_frame(stack, name):
    for i, f in enumerate(stack["frames"]):
        if f["kind"] == "native" and f.get("cython") == name:
            return i, f
    fail("no native frame named %s on the stack:\n%s" % (name, "\n".join(
        "  %s %s" % (f["function"], f.get("cython") or "") for f in stack["frames"])))


for marker, name, size in (("cy_grab", "cyleak.grab", sizes["grab"]),
                           ("cy_method", "cyleak.Holder.add_item", sizes["item"])):
    line = marker_line(SCRIPT, marker, tag="MARK")
    stacks, grown = growth_at(report, SCRIPT, line)
    check(within(grown, n * size), "%s: grew %d at line %d, leaked %d" % (name, grown, line, n * size))
    big = max(stacks, key=lambda s: s["growth_bytes"])
    i, f = cython_frame(big, name)
    py0 = next(k for k, fr in enumerate(big["frames"]) if fr["kind"] == "python")
    check(i < py0, "%s: the Cython frame is not below the Python line" % name)
    check(f["function"].startswith("__pyx_p"), "%s: C symbol %s" % (name, f["function"]))
    print("ok: %s grew %d bytes at line %d; frame %d is %s (Cython: %s)" % (name, grown, line, i, name,
                                                                          f["function"]))

line = marker_line(SCRIPT, "cy_callback")
stacks, grown = growth_at(report, SCRIPT, line)
check(within(grown, n * sizes["callback"]), "callback grew %d, leaked %d" % (grown, n * sizes["callback"]))
big = max(stacks, key=lambda s: s["growth_bytes"])
fr = big["frames"]
i_cb = next(k for k, f in enumerate(fr) if f["kind"] == "python" and f["line"] == line)
i_cy, _ = cython_frame(big, "cyleak.call")
outer_line = marker_line(SCRIPT, "cy_outer", tag="MARK")
i_out = next(k for k, f in enumerate(fr) if f["kind"] == "python" and f["line"] == outer_line)
check(i_cb < i_cy < i_out, "order: callback %d, cyleak.call %d, outer %d" % (i_cb, i_cy, i_out))
print("ok: callback line %d (frame %d) < cyleak.call (frame %d) < outer line %d (frame %d)"
      % (line, i_cb, i_cy, outer_line, i_out))

text = cli("diff", base, head, "-n", "0").stdout
check("cyleak.grab (Cython: __pyx_p" in text, "the text report does not name cyleak.grab:\n" + text[:3000])
print("ok: text shows " + next(l.strip() for l in text.splitlines() if "cyleak.grab (Cython:" in l))
