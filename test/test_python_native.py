"""Native code under Python, for one CPython (argv[1]: 3.8 ... 3.13 or
'debian'), through programs/py_native.py and the pyhelper library:
- a ctypes call to malloc never freed: its stacks grow by exactly what was
  leaked, in the malloc domain, with the Python line that made the call
  right above the native frames of the call (ctypes releases the GIL for
  the call: the frames are read by a thread that does not hold it);
- Python -> C (pyhelper's ml_test_call) -> Python callback -> allocation:
  the frames stand in the real call order, innermost first: the callback's
  line, then ml_test_call at its call of the callback, then the Python line
  that called ml_test_call, then its caller;
- a thread that Python never ran on (no thread state) leaks: its stack
  grows by exactly the leak and holds no Python frame at all."""
import json
import os
import sys

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "debian"
python = python_for(spec)
SCRIPT = os.path.join(SOURCE, "programs", "py_native.py")
HELPER_SRC = os.path.join(SOURCE, "programs", "pyhelper.c")
HELPER = os.path.join(PROGRAMS, "libpyhelper.so")
check(os.path.exists(HELPER), "%s is not built" % HELPER)
d = snapdir()
p = run_under([python, SCRIPT, HELPER, "20"], d)
sizes = json.loads(p.stdout.strip().splitlines()[-1])
n = sizes["iter"]
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
report = diff_json(snap_path(d, pid, 1), snap_path(d, pid, 2))


def index(frames, pred, what):
    for i, f in enumerate(frames):
        if pred(f):
            return i
    fail("%s not on the stack:\n%s" % (what, "\n".join("  %s %s:%s" % (f["function"], f["file"], f["line"])
                                                        for f in frames)))


# ctypes -> malloc
line = marker_line(SCRIPT, "ctypes_malloc")
stacks, grown = growth_at(report, SCRIPT, line)
check(grown == n * sizes["malloc"], "ctypes malloc: grew %d bytes, leaked exactly %d" % (grown, n * sizes["malloc"]))
for s in stacks:
    check(s["domain"] == "malloc", "ctypes malloc: domain %s" % s["domain"])
    py0 = index(s["frames"], lambda f: f["kind"] == "python", "a Python frame")
    check(py0 > 0 and all(f["kind"] == "native" for f in s["frames"][:py0]),
          "ctypes malloc: the frames below the Python line are not all native")
    check(s["frames"][py0]["line"] == line and s["frames"][py0]["function"] == "ctypes_malloc",
          "ctypes malloc: the Python frame above malloc is %s" % s["frames"][py0])
print("ok: ctypes malloc at line %d grew exactly %d bytes, %d native frames below it"
      % (line, grown, py0))

# Python -> C -> Python -> allocation
line = marker_line(SCRIPT, "callback")
stacks, grown = growth_at(report, SCRIPT, line)
check(within(grown, n * sizes["callback"]), "callback: grew %d bytes, leaked %d" % (grown, n * sizes["callback"]))
big = max(stacks, key=lambda s: s["growth_bytes"])
fr = big["frames"]
call_line = marker_line(HELPER_SRC, "callback_call", tag="MARK")
outer_line = marker_line(SCRIPT, "outer", tag="MARK")
i_cb = index(fr, lambda f: f["kind"] == "python" and f["line"] == line, "the callback's line")
i_c = index(fr, lambda f: f["function"] == "ml_test_call", "ml_test_call")
i_outer = index(fr, lambda f: f["kind"] == "python" and f["function"] == "outer", "outer()")
i_round = index(fr, lambda f: f["kind"] == "python" and f["function"] == "one_round", "one_round()")
check(fr[i_c]["line"] == call_line and fr[i_c]["file"].endswith("pyhelper.c"),
      "ml_test_call at %s:%s, expected pyhelper.c:%d" % (fr[i_c]["file"], fr[i_c]["line"], call_line))
check(fr[i_outer]["line"] == outer_line, "outer() at line %s, expected %d" % (fr[i_outer]["line"], outer_line))
check(i_cb < i_c < i_outer < i_round, "call order broken: callback %d, ml_test_call %d, outer %d, one_round %d"
      % (i_cb, i_c, i_outer, i_round))
check(all(f["kind"] == "native" for f in fr[i_cb + 1:i_outer] if f is not fr[i_c]),
      "Python frames between the callback and its C caller's caller")
print("ok: callback line %d (frame %d) < ml_test_call pyhelper.c:%d (frame %d) < outer line %d (frame %d)"
      % (line, i_cb, call_line, i_c, outer_line, i_outer))

# a thread without a Python thread state
nt_line = marker_line(HELPER_SRC, "native_thread")
found = [s for s in report["stacks"] if any(f["function"] == "native_thread" and f["line"] == nt_line
                                            for f in s["frames"])]
check(len(found) == 1, "native thread: expected one growing stack, got %d" % len(found))
s = found[0]
check(s["growth_bytes"] == n * sizes["thread"], "native thread: grew %d, leaked exactly %d"
      % (s["growth_bytes"], n * sizes["thread"]))
check(not [f for f in s["frames"] if f["kind"] == "python"], "native thread: Python frames on a thread Python "
      "never ran on: %s" % [f for f in s["frames"] if f["kind"] == "python"])
print("ok: native thread grew exactly %d bytes with %d native frames and no Python frame"
      % (s["growth_bytes"], len(s["frames"])))
