"""cuGetProcAddress and dlsym under memledger, request by request against
the stand-in driver (programs/cuda_gpa_matrix.c): a wrapper exactly when
the driver returned an entry point memledger wraps, for every version and
stream flag, the driver's own pointer otherwise, the driver's return code
always. --unexported: the driver hands out unexported copies (the version
table decides). --off: MEMLEDGER_CUDA=off wraps nothing."""
import os
import sys

from mltest import *

opt = sys.argv[1] if len(sys.argv) > 1 else ""
PROG = os.path.join(PROGRAMS, "cuda_gpa_matrix")
env = {"LD_LIBRARY_PATH": os.path.join(PROGRAMS, "fakecuda")}
if opt == "--unexported":
    env["FAKECUDA_GPA_PRIVATE"] = "1"
if opt == "--off":
    env["MEMLEDGER_CUDA"] = "off"
d = snapdir("mltest.gpa.")
p = run_under([PROG] + (["off"] if opt == "--off" else []), d, extra_env=env)
fields = p.stdout.split()
check(fields[:1] == ["requests"], "unexpected output: %r" % p.stdout)
requests, wrapped, distinct = int(fields[1]), int(fields[3]), int(fields[5])
# 36 names x 12 versions x 3 flags
check(requests == 36 * 12 * 3, "%d requests" % requests)
if opt == "--off":
    check(wrapped == 0, "wrapped %d with MEMLEDGER_CUDA=off" % wrapped)
else:
    # wrapped requests: sum over the wrapped names of (versions at or above
    # its first) x 3 flags; the stand-in has every one of them
    versions = [2000, 2020, 3000, 3020, 6000, 10020, 11000, 11020, 11030, 11080, 12000, 13000]
    since = {"cuInit": 2000, "cuGetProcAddress": 11030, "cuMemAlloc": 3020, "cuMemAllocPitch": 3020,
             "cuMemFree": 3020, "cuMemAllocHost": 3020, "cuArrayCreate": 3020, "cuArray3DCreate": 3020,
             "cuMemFreeHost": 2000, "cuMemHostAlloc": 2020, "cuArrayDestroy": 2000, "cuMemAllocManaged": 6000,
             "cuMemCreate": 10020, "cuMemRelease": 10020, "cuMemMap": 10020, "cuMemUnmap": 10020,
             "cuMemRetainAllocationHandle": 11000, "cuMemAllocAsync": 11020, "cuMemAllocFromPoolAsync": 11020,
             "cuMemFreeAsync": 11020}
    want = sum(3 * len([v for v in versions if v >= s]) for s in since.values())
    check(wrapped == want, "wrapped %d requests, expected %d" % (wrapped, want))
    # one wrapper per driver function: 20 names, the three async ones in a
    # legacy and a per-thread form, cuGetProcAddress in a 4- and 5-argument one
    check(distinct == 20 + 3 + 1, "%d distinct wrappers, expected 24" % distinct)
print("ok: %s (%s)" % (p.stdout.strip(), opt or "exported"))
