"""Every CUDA driver allocation family leaks at a known line, through the
stand-in driver (test/fakecuda): the diff of two snapshots gives each site
its exact bytes and count in its sub-kind (cuda, cuda.managed, cuda.host,
cuda.vmm), the churn through every alloc/free pair nets zero, and a VMM
handle mapped twice counts once.

Usage: test_cuda_leaks.py MODE [OPTION]
  MODE: linked (the program links libcuda), dlsym (dlopen + dlsym),
        gpa (cuGetProcAddress_v2), gpa_v1 (cuGetProcAddress, 11.x)
  --unexported   cuGetProcAddress hands out unexported copies
  --off          `memledger run --cuda off`: nothing recorded, nothing wrapped
  --cupti        MEMLEDGER_CUDA=cupti over the stand-in CUPTI
  --cupti-busy   the same with a profiler already subscribed: falls back
  --cupti-real=DIR  the toolkit's libcupti from DIR, on the stand-in driver
  --cupti-unbuilt   MEMLEDGER_CUDA=cupti in a build without the CUPTI backend
"""
import os
import sys

from mltest import *

ITER = 25
ROUNDS = ITER + 1
MIB2 = 2 << 20
LEAKS = {  # function -> (bytes per iteration, sub-kind)
    "leak_alloc": (1 << 20, "cuda"),
    "leak_pitch": (1024 * 30, "cuda"),       # 1000-byte rows padded to 512: pitch 1024
    "leak_async": (3000, "cuda"),
    "leak_async_ptsz": (5000, "cuda"),
    "leak_pool": (7000, "cuda"),
    "leak_pool_ptsz": (9000, "cuda"),
    "leak_managed": (11000, "cuda.managed"),
    "leak_host_alloc": (13000, "cuda.host"),
    "leak_alloc_host": (15000, "cuda.host"),
    "leak_vmm": (MIB2, "cuda.vmm"),          # one handle, mapped twice
    "leak_vmm_mapped": (MIB2, "cuda.vmm"),   # released, still mapped
    "leak_array": (64 * 32 * 4 * 4, "cuda"),
    "leak_array3d": (16 * 16 * 8, "cuda"),
}
MARKERS = {fn: fn[len("leak_"):] for fn in LEAKS}
# (cuMemHostAlloc: 2 calls of the program, 2 made by cuMemAllocHost_v2)
# calls the program makes per round to the entry points memledger wraps
# (see cuda_leaks.c: leaks 17, churn_device 64, churn_host 5, churn_vmm 16,
# churn_arrays 4); with --unexported every one must reach the driver's
# unexported copy through memledger's wrapper
WRAPPED_CALLS_PER_ROUND = 106
SRC = os.path.join(SOURCE, "programs", "cuda_leaks.c")
FAKECUDA = os.path.join(PROGRAMS, "fakecuda")
FAKECUPTI = os.path.join(PROGRAMS, "fakecupti")

mode = sys.argv[1]
opt = sys.argv[2] if len(sys.argv) > 2 else ""
prog = os.path.join(PROGRAMS, "cuda_leaks_linked" if mode == "linked" else "cuda_leaks")
cmd = [prog] if mode == "linked" else [prog, mode]
libpath = [FAKECUDA]
env = {}
if opt == "--unexported":
    env["FAKECUDA_GPA_PRIVATE"] = "1"
elif opt == "--off":
    pass  # through the CLI, below
elif opt in ("--cupti", "--cupti-busy"):
    env["MEMLEDGER_CUDA"] = "cupti"
    libpath.append(FAKECUPTI)
    if opt == "--cupti-busy":
        env["FAKECUPTI_OTHER_SUBSCRIBER"] = "1"
elif opt == "--cupti-unbuilt":
    env["MEMLEDGER_CUDA"] = "cupti"
elif opt.startswith("--cupti-real="):
    env["MEMLEDGER_CUDA"] = "cupti"
    libpath.append(opt.split("=", 1)[1])
elif opt:
    fail("unknown option " + opt)
env["LD_LIBRARY_PATH"] = ":".join(libpath)

d = snapdir("mltest.cuda.")
if opt == "--off":
    # the CLI preloads the library itself (and must not carry it: in the
    # sanitizer builds it is sanitized)
    e = dict(os.environ, **env)
    e.pop("LD_PRELOAD", None)
    p = subprocess.run([CLI, "run", "--dir", d, "--cuda", "off", "--"] + cmd, env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    check(p.returncode == 0, "memledger run --cuda off: exit %d\n%s" % (p.returncode, p.stderr))
else:
    p = run_under(cmd, d, extra_env=env)
snaps = sorted(f for f in os.listdir(d) if f.endswith(".snap"))
pids = {f.split(".")[1] for f in snaps}
check(len(snaps) == 2 and len(pids) == 1, "expected two snapshots of one process, got %s" % snaps)
pid = int(pids.pop())
base, head = snap_path(d, pid, 1), snap_path(d, pid, 2)


def header(path, key):
    with open_snapshot(path) as f:
        for line in f:
            if line.startswith("module\t"):
                break
            fields = line.rstrip("\n").split("\t")
            if fields[0] == key:
                return fields[1:]
    return None


def domain_live(path):
    out = {}
    with open_snapshot(path) as f:
        for line in f:
            if line.startswith("domain\t"):
                _, name, live_bytes, live_count, _, _ = line.rstrip("\n").split("\t")
                out[name] = (int(live_bytes), int(live_count))
    return out


# ---- which backend recorded, and what it said ----
backend = header(head, "cuda")
check(backend is not None and backend[0] == "backend", "no cuda header line: %s" % backend)
want_backend = {"--off": "off", "--cupti": "cupti"}.get(opt, "hooks")
check(backend[1] == want_backend, "backend %s, expected %s (stderr: %s)" % (backend[1], want_backend, p.stderr))
if opt == "--cupti-busy":
    check("another CUPTI subscriber" in p.stderr and "MULTIPLE_SUBSCRIBERS" in p.stderr
          and "driver hooks instead" in p.stderr, "no clear fallback message: %r" % p.stderr)
elif opt.startswith("--cupti-real"):
    # the toolkit's libcupti needs the real driver's private interfaces
    check("MEMLEDGER_CUDA=cupti: cuptiSubscribe failed" in p.stderr and "driver hooks instead" in p.stderr,
          "no clear fallback message: %r" % p.stderr)
elif opt == "--cupti-unbuilt":
    check("built without the CUPTI backend" in p.stderr and "driver hooks instead" in p.stderr,
          "no clear fallback message: %r" % p.stderr)
else:
    check("memledger:" not in p.stderr, "unexpected message: %r" % p.stderr)
with open_snapshot(head) as f:
    problems = dict(l.rstrip("\n").split("\t")[1:3] for l in f if l.startswith("problem\t"))
# address_reused_untracked: an address recorded twice, e.g. cuMemAllocHost_v2
# and the cuMemHostAlloc it calls both counting one block
for name in ("cuda_unwrapped", "cuda_vmm_table_full", "address_reused_untracked"):
    check(problems.get(name) == "0", "problem %s: %s" % (name, problems.get(name)))

# ---- the driver ran the forms the program asked for ----
calls = dict((l.split()[1], int(l.split()[2])) for l in p.stdout.splitlines() if l.startswith("calls "))
for name, per_round in (("cuMemAllocAsync", 5), ("cuMemAllocAsync_ptsz", 5), ("cuMemAllocFromPoolAsync", 5),
                        ("cuMemAllocFromPoolAsync_ptsz", 5), ("cuMemFreeAsync", 8), ("cuMemFreeAsync_ptsz", 8),
                        ("cuMemHostAlloc", 4), ("cuMemAllocHost_v2", 2)):
    check(calls.get(name) == per_round * ROUNDS,
          "%s ran %s times, expected %d" % (name, calls.get(name), per_round * ROUNDS))
want_private = WRAPPED_CALLS_PER_ROUND * ROUNDS if opt == "--unexported" else 0
check(calls.get("private") == want_private, "unexported copies ran %s times, expected %d"
      % (calls.get("private"), want_private))

report = diff_json(base, head, extra=("--domain", "cuda"))
if opt == "--off":
    check(not report["stacks"], "MEMLEDGER_CUDA=off recorded %d stacks" % len(report["stacks"]))
    check(all(v == (0, 0) for k, v in domain_live(head).items() if k.startswith("cuda")),
          "MEMLEDGER_CUDA=off: live cuda memory %s" % domain_live(head))
    print("ok: MEMLEDGER_CUDA=off records nothing (%s)" % mode)
    sys.exit(0)

# ---- each leak: exact bytes and count, at its line, in its sub-kind ----
for fn, (size, kind) in LEAKS.items():
    found = stacks_at(report, fn)
    check(len(found) == 1, "%s: expected one growing stack, got %d" % (fn, len(found)))
    s = found[0]
    f0 = innermost(s)
    want_line = marker_line(SRC, MARKERS[fn])
    check(f0["line"] == want_line and f0["file"] and f0["file"].endswith("cuda_leaks.c"),
          "%s: innermost frame %s:%s, expected cuda_leaks.c:%d" % (fn, f0["file"], f0["line"], want_line))
    check(s["domain"] == kind, "%s: sub-kind %s, expected %s" % (fn, s["domain"], kind))
    check(s["growth_bytes"] == size * ITER,
          "%s: grew %d bytes, expected exactly %d" % (fn, s["growth_bytes"], size * ITER))
    check(s["growth_count"] == ITER, "%s: grew %d allocations, expected %d" % (fn, s["growth_count"], ITER))
    check(any(f["function"] == "main" for f in s["frames"]), "%s: main not on the stack" % fn)

# nothing else grows: the churn nets zero, nothing is counted twice
check(len(report["stacks"]) == len(LEAKS),
      "%d cuda stacks grew, expected %d: %s" % (len(report["stacks"]), len(LEAKS),
                                                [innermost(s).get("function") for s in report["stacks"]]))
want_total = sum(size for size, _ in LEAKS.values()) * ITER
check(report["growth_bytes"] == want_total, "cuda grew %d bytes, expected %d" % (report["growth_bytes"], want_total))

# the domain totals of the snapshots agree, sub-kind by sub-kind
b, h = domain_live(base), domain_live(head)
for kind in ("cuda", "cuda.managed", "cuda.host", "cuda.vmm"):
    want_bytes = sum(size for size, k in LEAKS.values() if k == kind) * ITER
    want_count = sum(1 for _, k in LEAKS.values() if k == kind) * ITER
    hk, bk = h.get(kind, (0, 0)), b.get(kind, (0, 0))
    got = (hk[0] - bk[0], hk[1] - bk[1])
    check(got == (want_bytes, want_count), "%s live grew %s, expected %s" % (kind, got, (want_bytes, want_count)))
    # every leak round before snapshot 1 is live there too: nothing else is
    check(bk == (want_bytes // ITER, want_count // ITER),
          "%s live at snapshot 1 is %s, expected one round: %s" % (kind, bk, (want_bytes // ITER, want_count // ITER)))

# a sub-kind alone
vmm = diff_json(base, head, extra=("--domain", "cuda.vmm"))
check(sorted(innermost(s)["function"] for s in vmm["stacks"]) == ["leak_vmm", "leak_vmm_mapped"],
      "--domain cuda.vmm: %s" % [innermost(s)["function"] for s in vmm["stacks"]])
print("ok: %d CUDA leak sites exact over %d iterations (%s%s, backend %s)"
      % (len(LEAKS), ITER, mode, " " + opt if opt else "", backend[1]))
