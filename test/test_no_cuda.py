"""A process that never touches CUDA, under memledger with the most eager
CUDA setting (MEMLEDGER_CUDA=cupti): no CUDA library is mapped into it,
the snapshot says the CUDA backend was never used, and dlsym answers as
without memledger (RTLD_NEXT keeps its meaning, see shim/dlsym.c)."""
import os

from mltest import *

PROG = os.path.join(PROGRAMS, "no_cuda")

# without memledger first: what the answers are
plain = subprocess.run([PROG], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
check(plain.returncode == 0, "no_cuda fails on its own: %s" % plain.stderr)
check("RTLD_NEXT malloc libc.so.6" in plain.stdout, plain.stdout)

for cuda in ("cupti", "auto"):
    d = snapdir("mltest.nocuda.")
    p = run_under([PROG], d, extra_env={"MEMLEDGER_CUDA": cuda, "MEMLEDGER_AT_EXIT": "1"}, check_rc=False)
    check(p.returncode == 0, "MEMLEDGER_CUDA=%s: exit %d\n%s%s" % (cuda, p.returncode, p.stdout, p.stderr))
    # preloaded, memledger's malloc is the first after the executable
    check("RTLD_NEXT malloc libmemledger.so" in p.stdout and "cuda mappings 0" in p.stdout, p.stdout)
    check("memledger:" not in p.stderr, "unexpected message: %r" % p.stderr)
    snaps = [f for f in os.listdir(d) if f.endswith(".snap")]
    check(len(snaps) == 1, "expected one exit snapshot, got %s" % snaps)
    with open_snapshot(os.path.join(d, snaps[0])) as f:
        lines = f.read().splitlines()
    check("cuda\tbackend\tunused\tbound\t0" in lines,
          "cuda header: %s" % [l for l in lines if l.startswith("cuda")])
print("ok: no CUDA mapped, backend unused, dlsym unchanged")
