"""Every allocation function leaks at a known line: the diff of two
snapshots gives each site its exact bytes and count, the churn nets zero.
Modes: plain; --jemalloc (libjemalloc2 preloaded behind the ledger);
--tcmalloc (gperftools' libtcmalloc preloaded behind the ledger);
--exec (started through /bin/sh, so the preload crosses an exec)."""
import os
import sys

from mltest import *

SIZES = {  # site -> bytes per iteration, as leak_sites.c asks for them
    "malloc": 1000, "calloc": 3000, "realloc_grow": 5000, "realloc_shrink": 700,
    "realloc_move": 1 << 20, "posix_memalign": 2000, "aligned_alloc": 4096,
    "memalign": 3000, "valloc": 1234, "pvalloc": 100, "reallocarray": 777,
}
ITER = 25
SRC = os.path.join(SOURCE, "programs", "leak_sites.c")
PROG = os.path.join(PROGRAMS, "leak_sites")

mode = sys.argv[1] if len(sys.argv) > 1 else ""
d = snapdir()
preload = None
cmd = [PROG]
if mode == "--jemalloc":
    jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    check(os.path.exists(jemalloc), "libjemalloc2 is not installed")
    preload = LIB + ":" + jemalloc
elif mode == "--tcmalloc":
    tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"
    check(os.path.exists(tcmalloc), "libgoogle-perftools4 is not installed")
    preload = LIB + ":" + tcmalloc
elif mode == "--exec":
    cmd = ["/bin/sh", "-c", PROG + "; true"]
p = run_under(cmd, d, preload=preload)
if mode in ("--jemalloc", "--tcmalloc"):
    check("allocator " + mode[2:] in p.stdout, "%s did not serve the program: %s" % (mode[2:], p.stdout))
snaps = sorted(f for f in os.listdir(d) if f.endswith(".snap"))
pids = {f.split(".")[1] for f in snaps}
check(len(snaps) == 2 and len(pids) == 1, "expected two snapshots of one process, got %s" % snaps)
pid = int(pids.pop())
if mode == "--exec":
    shell_pid = None  # the program is a child of sh; its pid differs from any we started
report = diff_json(snap_path(d, pid, 1), snap_path(d, pid, 2))

for site, size in SIZES.items():
    fn = "leak_" + site
    found = stacks_at(report, fn)
    check(len(found) == 1, "%s: expected one growing stack, got %d" % (fn, len(found)))
    s = found[0]
    want_line = marker_line(SRC, site)
    f0 = innermost(s)
    check(f0["line"] == want_line, "%s: innermost line %s, expected %d" % (fn, f0["line"], want_line))
    check(f0["file"] and f0["file"].endswith("leak_sites.c"), "%s: file %s" % (fn, f0["file"]))
    check(s["growth_bytes"] == size * ITER,
          "%s: grew %d bytes, expected exactly %d" % (fn, s["growth_bytes"], size * ITER))
    check(s["growth_count"] == ITER,
          "%s: grew %d allocations, expected exactly %d" % (fn, s["growth_count"], ITER))
    check(s["domain"] == "malloc", "%s: domain %s" % (fn, s["domain"]))
    check(any(f["function"] == "main" for f in s["frames"]), "%s: main not on the stack" % fn)

# nothing else from the program grows: make_block feeds realloc (net zero),
# churn frees everything
for s in report["stacks"]:
    f0 = innermost(s)
    if f0.get("file") and f0["file"].endswith("leak_sites.c"):
        check(f0["function"].startswith("leak_"),
              "unexpected growth at %s:%s (%s): %d bytes" % (f0["file"], f0["line"], f0["function"],
                                                            s["growth_bytes"]))
check(not leftover_temp_files(d), "temporary files left behind")
for f in snaps:
    st = os.stat(os.path.join(d, f))
    check(st.st_mode & 0o777 == 0o600, "%s has mode %o, expected 600" % (f, st.st_mode & 0o777))
print("ok: %d sites exact over %d iterations (%s)" % (len(SIZES), ITER, mode or "plain"))
