"""PyTorch (Debian's python3-torch, under /usr/bin/python3): tensors kept
in a global list at a known line grow at that line by numel x element size
(within 10%), and their stack holds libtorch's native frames below the
Python line: the allocation is native (c10's CPU allocator), reached from
Python through torch's bindings, which release the GIL first, so the
Python frames are read from a thread that does not hold it.

Sampled at 64 KiB: `import torch` alone makes about 600,000 distinct native
stacks (1.35 million with Python frames), more than the default stack
table holds, and a snapshot of them takes a minute to write. At 64 KiB a
1 MiB tensor is sampled with probability 1 - exp(-16), so its estimate is
exact to 1e-7, while the import's small allocations mostly pass."""
import json
import os
import subprocess

from mltest import *

python = python_for("debian")
if subprocess.run([python, "-c", "import torch"], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL).returncode != 0:
    fail("python3-torch is not installed (scripts/setup-deps test installs it)")
SCRIPT = os.path.join(SOURCE, "programs", "py_torch.py")
d = snapdir()
p = run_under([python, SCRIPT, "20"], d, extra_env={"MEMLEDGER_SAMPLE_BYTES": "64KiB"}, timeout=600)
info = json.loads(p.stdout.strip().splitlines()[-1])
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
report = diff_json(snap_path(d, pid, 1), snap_path(d, pid, 2))
line = marker_line(SCRIPT, "tensor")
stacks, grown = growth_at(report, SCRIPT, line)
truth = info["iter"] * info["numel"] * info["element_size"]
check(stacks, "no growing stack at %s:%d" % (SCRIPT, line))
check(within(grown, truth), "tensors grew %d bytes at line %d, the script kept %d" % (grown, line, truth))
big = max(stacks, key=lambda s: s["growth_bytes"])
check(within(big["growth_bytes"], truth), "the tensor data is not in one stack: biggest %d of %d"
      % (big["growth_bytes"], truth))
fr = big["frames"]
py0 = next(i for i, f in enumerate(fr) if f["kind"] == "python")
below = [f for f in fr[:py0] if f["module"] and ("libtorch" in f["module"] or "libc10" in f["module"])]
check(below, "no libtorch/libc10 frame below the Python line; below it:\n%s"
      % "\n".join("  %s [%s]" % (f["function"], f["module"]) for f in fr[:py0]))
check(fr[py0]["line"] == line and fr[py0]["function"] == "step", "innermost Python frame %s" % fr[py0])
names = [f["function"] for f in fr if f["kind"] == "python"]
check(names[:2] == ["step", "serve"], "Python frames out of order: %s" % names)
named = [f["function"] for f in below if f["function"]]
print("ok: torch %s: %d tensors of %d bytes grew %d bytes at line %d (%+.2f%%), domain %s, %d libtorch/c10 frames "
      "below it, from %s to %s" % (info["torch"], info["iter"], info["numel"] * info["element_size"], grown, line,
                                   100.0 * (grown - truth) / truth, big["domain"], len(below),
                                   named[0][:40], named[-1][:40]))
