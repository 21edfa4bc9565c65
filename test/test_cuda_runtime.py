"""The toolkit's CUDA runtime on the stand-in driver, with and without
memledger. The runtime fetches every driver entry point through
cuGetProcAddress_v2 (found with dlsym on libcuda.so.1), then asks the
driver for private tables with cuGetExportTable, which the stand-in cannot
provide (docs/cuda.md): so cudaMalloc fails the same way in both runs, and
what this shows is that under memledger the runtime's lookups went through
memledger's cuGetProcAddress wrapper, asked for the same entry points, and
were handed wrappers for the allocating ones."""
import os
import re

from mltest import *

PROG = os.path.join(PROGRAMS, "cuda_runtime")
env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(PROGRAMS, "fakecuda"), FAKECUDA_TRACE="1")
plain = subprocess.run([PROG], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
check(plain.returncode == 0, "cuda_runtime: %s" % plain.stderr)
d = snapdir("mltest.cudart.")
p = run_under([PROG], d, extra_env={"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"], "FAKECUDA_TRACE": "1",
                                    "MEMLEDGER_AT_EXIT": "1"})

GPA = re.compile(r"^fakecuda: cuGetProcAddress (\S+) (\d+) (\d+) from (\S+)$", re.M)
asked_plain = GPA.findall(plain.stderr)
asked = GPA.findall(p.stderr)
check(len(asked_plain) > 100, "the runtime asked for %d entry points" % len(asked_plain))
# the same requests, in the same order; under memledger through its wrapper
check([a[:3] for a in asked] == [a[:3] for a in asked_plain], "the runtime's requests differ under memledger")
check(all(a[3].startswith("libcudart") for a in asked_plain),
      "without memledger the requests come from %s" % {a[3] for a in asked_plain})
check(all(a[3] == "libmemledger.so" for a in asked), "under memledger the requests come from %s"
      % {a[3] for a in asked})
# the same outcome: the runtime stops at the driver's private tables
out_plain = [l for l in plain.stdout.splitlines() if l.startswith("cuda")]
out = [l for l in p.stdout.splitlines() if l.startswith("cuda")]
check(out == out_plain, "cudaMalloc under memledger: %s, without: %s" % (out, out_plain))
check("fakecuda: cuGetExportTable" in p.stderr, "the runtime did not ask for a private table")
names = {a[0] for a in asked}
# what the runtime allocates with (it has no VMM and no cuMemAllocHost path)
for base in ("cuInit", "cuMemAlloc", "cuMemAllocPitch", "cuMemFree", "cuMemAllocAsync", "cuMemFreeAsync",
             "cuMemAllocFromPoolAsync", "cuMemHostAlloc", "cuMemFreeHost", "cuMemAllocManaged", "cuArrayCreate",
             "cuArray3DCreate", "cuArrayDestroy"):
    check(base in names, "the runtime never asked for %s" % base)
snaps = [f for f in os.listdir(d) if f.endswith(".snap")]
check(len(snaps) == 1, "snapshots: %s" % snaps)
with open_snapshot(os.path.join(d, snaps[0])) as f:
    cuda = [l.split("\t") for l in f.read().splitlines() if l.startswith("cuda\t")]
# one wrapper per driver function handed out: per wrapped name, its
# per-thread-stream form apart for the async ones, and cuGetProcAddress's
# 11.3 and 12.0 forms apart
SINCE = {"cuInit": 2000, "cuGetProcAddress": 11030, "cuMemAlloc": 3020, "cuMemAllocPitch": 3020, "cuMemFree": 3020,
         "cuMemAllocHost": 3020, "cuArrayCreate": 3020, "cuArray3DCreate": 3020, "cuMemFreeHost": 2000,
         "cuMemHostAlloc": 2020, "cuArrayDestroy": 2000, "cuMemAllocManaged": 6000, "cuMemCreate": 10020,
         "cuMemRelease": 10020, "cuMemMap": 10020, "cuMemUnmap": 10020, "cuMemRetainAllocationHandle": 11000,
         "cuMemAllocAsync": 11020, "cuMemAllocFromPoolAsync": 11020, "cuMemFreeAsync": 11020}
functions = set()
for name, version, flags, _ in asked:
    if name in SINCE and int(version) >= SINCE[name]:
        form = int(flags) & 2 if name.endswith("Async") else int(version) >= 12000 if name == "cuGetProcAddress" else 0
        functions.add((name, form))
check(cuda and cuda[0][1:3] == ["backend", "hooks"] and int(cuda[0][4]) == len(functions),
      "cuda header %s: expected %d wrappers bound for the runtime" % (cuda, len(functions)))
print("ok: %d runtime lookups through memledger, %s wrappers bound; %s" % (len(asked), cuda[0][4], out[0]))
