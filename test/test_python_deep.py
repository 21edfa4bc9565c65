"""Deep Python stacks (issue 16), for one CPython (argv[1]: a pyenv version
such as 3.11, or 'debian'). programs/py_deep.py recurses 300 calls deep and
leaks at the bottom, from two different callers, 20 times each between two
snapshots; halfway down, one level calls the next through map() (a C
function), so the recursion spans two eval-loop calls.

A stack keeps its innermost 127 and outermost 128 Python frames, with one
mark for the frames between them. So the diff must show two rows, one per
caller, each with exactly 20 leaked objects' bytes, each keeping the
innermost line (the LEAK line), a mark `[49 Python frames elided]` (304
Python frames: 301 of recurse, the caller, rounds and <module>), then the
caller at its line, rounds at the line that called it, and `<module>`.
No stack may show a native _PyEval_EvalFrameDefault frame (each one stands
for the Python frames it ran), nor map's native frames: they were among
the frames left out, so the merge must leave them out too."""
import json
import os
import re
import sys

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "debian"
python = python_for(spec)
SCRIPT = os.path.join(SOURCE, "programs", "py_deep.py")
KEEP = 127 + 128
d = snapdir()
p = run_under([python, SCRIPT], d)
out = json.loads(p.stdout.strip().splitlines()[-1])
check(not [l for l in p.stderr.splitlines() if l.startswith("memledger:")], "memledger complained:\n" + p.stderr)
python_frames = out["depth"] + 1 + 3  # recurse(depth..0), the caller, rounds, <module>
elided = python_frames - KEEP
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
base, head = snap_path(d, pid, 1), snap_path(d, pid, 2)
report = diff_json(base, head)

bottom = marker_line(SCRIPT, "bottom")
lines = {name: marker_line(SCRIPT, name, tag="MARK") for name in ("caller_a", "caller_b", "call_a", "call_b", "module")}
mark_text = "[%d Python frames elided]" % elided

rows = {"caller_a": [], "caller_b": []}
for s in report["stacks"]:
    fr = script_frames(s, SCRIPT)
    if not fr or fr[0]["line"] != bottom:
        continue
    callers = [f["function"] for f in fr if f["function"] in rows]
    check(len(callers) == 1, "a stack at the LEAK line holds callers %s, expected one:\n%s" % (
        callers, json.dumps([f["function"] for f in s["frames"]])[:3000]))
    rows[callers[0]].append(s)

for caller, call in (("caller_a", "call_a"), ("caller_b", "call_b")):
    found = rows[caller]
    check(found, "no stack at the LEAK line %s:%d comes from %s" % (SCRIPT, bottom, caller))
    grown = sum(s["growth_bytes"] for s in found)
    truth = out["iter"] * out["size"]
    check(grown == truth, "%s: the stacks at the LEAK line grew %d bytes, the script leaked %d x %d = %d" % (
        caller, grown, out["iter"], out["size"], truth))
    for s in found:
        names = [f["function"] for f in s["frames"]]
        marks = [i for i, f in enumerate(s["frames"]) if re.fullmatch(r"\[\d+ Python frames elided\]", f["function"] or "")]
        check(len(marks) == 1, "%s: %d elision marks, expected 1: %s" % (caller, len(marks), names))
        m = marks[0]
        check(s["frames"][m]["function"] == mark_text, "%s: the mark reads %r, expected %r" % (
            caller, s["frames"][m]["function"], mark_text))
        inner = [f for f in s["frames"][:m] if f["kind"] == "python"]
        outer = [f for f in s["frames"][m + 1:] if f["kind"] == "python"]
        check(len(inner) == 127 and len(outer) == 128, "%s: %d Python frames inside the mark and %d outside, "
              "expected 127 and 128" % (caller, len(inner), len(outer)))
        check(inner[0]["function"] == "recurse" and inner[0]["line"] == bottom,
              "%s: the innermost Python frame is %s:%s, expected recurse:%d" % (caller, inner[0]["function"],
                                                                             inner[0]["line"], bottom))
        want = [("<module>", lines["module"]), ("rounds", lines[call]), (caller, lines[caller])]
        got = [(f["function"], f["line"]) for f in outer[-3:][::-1]]
        check(got == want, "%s: the outermost Python frames are %s, expected %s" % (caller, got, want))
        check(all(f["function"] == "recurse" for f in outer[:-3]), "%s: outer frames other than recurse: %s" % (
            caller, [f["function"] for f in outer[:-3]]))
    print("ok: %s: %d stack(s) grew %d bytes (20 x %d), keeping <module>:%d, rounds:%d, %s:%d, "
          "the LEAK line %d, and %s" % (caller, len(found), grown, out["size"], lines["module"], lines[call],
                                         caller, lines[caller], bottom, mark_text))

# the merge stays aligned: every eval-loop frame is replaced by its Python
# frames, and in the leak's stacks, where map's level is among the frames
# left out, map's native frames are left out with them
for s in report["stacks"]:
    for f in s["frames"]:
        check(f["function"] != "_PyEval_EvalFrameDefault",
              "a stack shows a native _PyEval_EvalFrameDefault frame: %s" % [g["function"] for g in s["frames"]])
for s in rows["caller_a"] + rows["caller_b"]:
    for f in s["frames"]:
        check(not (f["kind"] == "native" and f["function"] and re.match(r"map_(next|vectorcall|new)$", f["function"])),
              "a leak stack shows map's native frame %s, which ran among the frames left out" % f["function"])

# the mark in the snapshot file itself (docs/format.md)
H = read_snapshot(head)
check(any(f["kind"] == "mark" and f["function"] == mark_text for f in H["frames"]),
      "%s has no mark frame %r" % (head, mark_text))
print("ok: the snapshot holds a mark frame %r; no stack shows an eval-loop or map frame" % mark_text)
