"""A Python process leaking device memory through the stand-in driver, the
way a framework reaches it: ctypes loads libcuda.so.1 and looks the entry
points up by name (dlsym). Between two snapshots the script leaks 25 blocks
of 1 MiB at one line and allocates and frees 25 more: `memledger diff
--domain cuda` shows exactly one growing stack, 25 MiB in 25 allocations,
on the ctypes call path. (Python frames join native ones with issue 3; the
script's line will then be asserted here too.)"""
import os

from mltest import *

PY = "/usr/bin/python3"
check(os.path.exists(PY), "Debian's python3 is not installed")
SCRIPT = r'''
import ctypes, os, signal, sys, time
cu = ctypes.CDLL("libcuda.so.1")
ptr = ctypes.c_ulonglong()
ctx = ctypes.c_void_p()
assert cu.cuInit(0) == 0 and cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0) == 0

def snapshot(seq):
    path = os.path.join(os.environ["MEMLEDGER_DIR"], "memledger.%d.%d.snap" % (os.getpid(), seq))
    os.kill(os.getpid(), signal.SIGUSR2)
    for _ in range(6000):
        if os.path.exists(path):
            return
        time.sleep(0.01)
    sys.exit("no snapshot " + path)

kept = []
def leak():
    assert cu.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(1 << 20)) == 0  # LEAK:py_alloc
    kept.append(ptr.value)

def churn():
    assert cu.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(3 << 20)) == 0
    assert cu.cuMemFree_v2(ptr) == 0

leak(); churn()
snapshot(1)
for _ in range(25):
    leak(); churn()
snapshot(2)
'''
d = snapdir("mltest.cudapy.")
script = os.path.join(d, "leak.py")
with open(script, "w") as f:
    f.write(SCRIPT)
p = run_under([PY, script], d, extra_env={"LD_LIBRARY_PATH": os.path.join(PROGRAMS, "fakecuda")})
snaps = sorted(f for f in os.listdir(d) if f.endswith(".snap"))
check(len(snaps) == 2, "snapshots: %s" % snaps)
report = diff_json(os.path.join(d, snaps[0]), os.path.join(d, snaps[1]), extra=("--domain", "cuda"))
check(len(report["stacks"]) == 1, "%d cuda stacks grew, expected 1" % len(report["stacks"]))
s = report["stacks"][0]
check((s["domain"], s["growth_bytes"], s["growth_count"]) == ("cuda", 25 << 20, 25),
      "grew %s %d bytes in %d, expected cuda %d in 25" % (s["domain"], s["growth_bytes"], s["growth_count"], 25 << 20))
modules = {os.path.basename(f.get("module") or "") for f in s["frames"]}
check(any(m.startswith("_ctypes") or m.startswith("libffi") for m in modules),
      "the stack does not pass through ctypes: %s" % sorted(modules))
print("ok: a Python process's device leak through ctypes: %d bytes in %d allocations" % (s["growth_bytes"],
                                                                                       s["growth_count"]))
