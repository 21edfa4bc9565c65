"""Python reaching the malloc family through an explicitly opened libc:
ctypes.CDLL("libc.so.6").malloc, ctypes.CDLL(find_library("c")).malloc and
cffi's ffi.dlopen("c") find libc's own definition by dlsym on libc's
handle, past every interposer. memledger's dlsym hands them its hooks
instead, so (Debian's python3, default settings):
- each leaking line grows by exactly N x its size in the malloc domain, at
  that Python line (calloc N x 100 x 33; realloc of a 100-byte block to
  6000: N x 6000 at the realloc's line);
- blocks allocated through the same handles are held exactly at their line
  (N x 9000), and once freed through them (ctypes' free, cffi's free) that
  line holds nothing, its N allocations still counted.
With --jemalloc, jemalloc is preloaded behind memledger: libc's definitions
are then not the allocator memledger forwards to, and the same holds."""
import json
import os
import sys

from mltest import *

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
jemalloc = "--jemalloc" in sys.argv[1:]
python = python_for("debian")
SCRIPT = os.path.join(SOURCE, "programs", "py_dlsym.py")
check(os.path.exists(JEMALLOC) or not jemalloc, "%s is missing (scripts/setup-deps test)" % JEMALLOC)
d = snapdir()
p = run_under([python, SCRIPT, "200"], d, preload=LIB + ":" + JEMALLOC if jemalloc else None,
              extra_env={"PYTHONPATH": os.path.join(SOURCE, "programs")})
out = json.loads(p.stdout.strip().splitlines()[-1])
check(out["null"] == 0, "allocations failed: %s" % out)
check(p.stderr == "", "stderr: %s" % p.stderr)
n = out["n"]
first, second, third = snapshots_of(d)
if jemalloc:
    maps = read_snapshot(second)["modules"]
    check(any("libjemalloc" in m["path"] for m in maps), "jemalloc is not loaded")
report = diff_json(first, second, extra=("--domain", "malloc"))

want = {"ctypes_libc": n * 5000, "ctypes_find_library": n * 3000, "cffi_malloc": n * 7000,
        "cffi_calloc": n * 100 * 33, "ctypes_realloc": n * 6000}
for marker, truth in want.items():
    line = marker_line(SCRIPT, marker)
    stacks, grown = growth_at(report, SCRIPT, line)
    check(grown == truth, "%s (line %d): grew %d bytes in the malloc domain, leaked exactly %d"
          % (marker, line, grown, truth))
    check(sum(s["growth_count"] for s in stacks) == n, "%s: grew by %d blocks, leaked %d"
          % (marker, sum(s["growth_count"] for s in stacks), n))
    print("ok: %s at line %d: +%d bytes, exact" % (marker, line, grown))

# blocks freed through the same handles: held at snapshot 2 (exact), gone
# at snapshot 3, with every allocation still counted on their stacks
snap2, snap3 = read_snapshot(second), read_snapshot(third)


def at_line(snap, line):
    stacks = [s for s in snap["stacks"] if s["domain"] == "malloc" and
              [f["line"] for f in s["frames"] if f["kind"] == "python" and f["file"] == SCRIPT][:1] == [line]]
    return tuple(sum(s[k] for s in stacks) for k in ("live_bytes", "live_count", "total_bytes", "total_count"))


for marker in ("ctypes_freed", "cffi_freed"):
    line = marker_line(SCRIPT, marker, tag="MARK")
    held, gone = at_line(snap2, line), at_line(snap3, line)
    check(held == (n * 9000, n, n * 9000, n), "%s (line %d) at snapshot 2: live %d bytes in %d blocks, "
          "%d bytes in %d allocated; expected %d x 9000 live" % ((marker, line) + held + (n,)))
    check(gone == (0, 0, n * 9000, n), "%s (line %d) after the frees: live %d bytes in %d blocks, %d bytes in "
          "%d allocated; expected none live, %d x 9000 allocated" % ((marker, line) + gone + (n,)))
    print("ok: %s at line %d: %d x 9000 bytes held, then freed through the same handle: none live" % (marker, line, n))
report3 = diff_json(second, third, extra=("--domain", "malloc"))
for marker in want:
    _, grown = growth_at(report3, SCRIPT, marker_line(SCRIPT, marker))
    check(grown == 0, "%s changed by %d bytes between snapshots 2 and 3" % (marker, grown))
print("ok: libc reached by handle is tracked%s" % (" with jemalloc preloaded behind" if jemalloc else ""))
