"""An embedder loads libpython with dlopen after the program started
(argv[1]: the pyenv CPython whose shared libpython to use): memledger
notices it through its module registry and attaches from its own thread.
The leak at a known line then grows there (within 10%) in the python
domain with its Python frames; the MEM and OBJ domains are hooked, RAW is
left to the malloc hooks (see src/python/python.c)."""
import glob
import json
import os
import sys

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "3.12"
python = python_for(spec)
libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(python)), "lib", "libpython%s*.so.1.0" % spec))
check(libs, "CPython %s at %s has no shared libpython" % (spec, python))
SCRIPT = os.path.join(SOURCE, "programs", "py_embedded.py")
d = snapdir()
p = run_under([os.path.join(PROGRAMS, "py_embed"), libs[0], SCRIPT], d)
info = json.loads(p.stdout.strip().splitlines()[-1])
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
base, head = snap_path(d, pid, info["base"]), snap_path(d, pid, info["head"])
H = read_snapshot(head)
check(header(H, "python_pymem") == ["mem", "obj"], "python_pymem %s" % header(H, "python_pymem"))
check(header(H, "python_frames") == ["on"], "python_frames %s" % header(H, "python_frames"))
report = diff_json(base, head)
line = marker_line(SCRIPT, "embedded")
stacks, grown = growth_at(report, SCRIPT, line)
truth = info["iter"] * info["size"]
check(within(grown, truth), "grew %d bytes at line %d, the script leaked %d" % (grown, line, truth))
check(all(s["domain"] == "python" for s in stacks), "domains %s" % [s["domain"] for s in stacks])
big = max(stacks, key=lambda s: s["growth_bytes"])
check(any(f["function"] == "main" and f["kind"] == "native" for f in big["frames"]),
      "the embedder's main() is not below the Python frames")
print("ok: libpython %s loaded late (attached after %d snapshot(s)); line %d grew %d bytes (leaked %d)"
      % (os.path.basename(libs[0]), info["waited"], line, grown, truth))
