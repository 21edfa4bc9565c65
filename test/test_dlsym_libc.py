"""A C program reaching the malloc family through an explicitly opened libc
(dlsym(dlopen("libc.so.6", RTLD_NOW), name): libc's own definitions, past
every interposer) is tracked exactly: memledger's dlsym hands it memledger's
entry points (the very ones dlsym(RTLD_DEFAULT) finds). Each function leaks
at its line with exact bytes and count; blocks held through the looked-up
malloc are credited when freed through the looked-up free. With --jemalloc
(jemalloc preloaded behind memledger) the same holds. A library's own malloc
(tcmalloc_minimal opened with dlopen, not the allocator in use) is left as
found."""
import json
import os
import sys

from mltest import *

ITER = 50
SIZES = {"malloc": 1000, "calloc": 3000, "realloc": 5000, "reallocarray": 777, "posix_memalign": 2000,
         "aligned_alloc": 4096, "memalign": 3000, "valloc": 1234, "freed": 8000}
SRC = os.path.join(SOURCE, "programs", "dlsym_libc.c")
PROG = os.path.join(PROGRAMS, "dlsym_libc")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"  # opened, never used
check(os.path.exists(TCMALLOC), "libtcmalloc-minimal4 is not installed (scripts/setup-deps test)")
jemalloc = "--jemalloc" in sys.argv[1:]
check(not jemalloc or os.path.exists(JEMALLOC), "libjemalloc2 is not installed (scripts/setup-deps test)")

d = snapdir()
p = run_under([PROG, TCMALLOC], d, preload=LIB + ":" + JEMALLOC if jemalloc else None)
out = json.loads(p.stdout.strip().splitlines()[-1])
check(out["same_as_default"], "dlsym(libc, \"malloc\") is not the process's malloc: %s" % out)
# tcmalloc opened by name, not the allocator in use: its malloc stays its own
check(out["own_malloc_left"], "dlsym(tcmalloc_minimal, \"malloc\") was swapped: %s" % out)
check(p.stderr == "", "stderr: %s" % p.stderr)
first, second, third = snapshots_of(d)
if jemalloc:
    check(any("libjemalloc" in m["path"] for m in read_snapshot(second)["modules"]), "jemalloc is not loaded")
report = diff_json(first, second)
for site, size in SIZES.items():
    found = [s for s in report["stacks"] if innermost(s).get("line") == marker_line(SRC, site)
             and (innermost(s).get("file") or "").endswith("dlsym_libc.c")]
    check(len(found) == 1, "%s: expected one growing stack at line %d, got %d" % (site, marker_line(SRC, site),
                                                                                 len(found)))
    s = found[0]
    check((s["growth_bytes"], s["growth_count"]) == (size * ITER, ITER),
          "%s: grew %d bytes in %d blocks, expected exactly %d x %d" % (site, s["growth_bytes"], s["growth_count"],
                                                                         ITER, size))
    check(s["domain"] == "malloc", "%s: domain %s" % (site, s["domain"]))
    check(any(f["function"] == "main" for f in s["frames"]), "%s: main not on the stack" % site)
    print("ok: %s at dlsym_libc.c:%d: +%d bytes in %d blocks" % (site, marker_line(SRC, site), s["growth_bytes"],
                                                                 s["growth_count"]))
# the realloc's first block (make_block) moved to the realloc's line: nothing left
for s in report["stacks"]:
    f0 = innermost(s)
    check(not (f0.get("file") or "").endswith("dlsym_libc.c") or f0["line"] in
          [marker_line(SRC, k) for k in SIZES], "unexpected growth at dlsym_libc.c:%s: %d bytes"
          % (f0.get("line"), s["growth_bytes"]))

# the held blocks, freed through the looked-up free
line = marker_line(SRC, "freed")
for snap, want in ((second, (ITER * 8000, ITER)), (third, (0, 0))):
    held = [s for s in read_snapshot(snap)["stacks"] if s["frames"] and s["frames"][0]["line"] == line
            and (s["frames"][0]["file"] or "").endswith("dlsym_libc.c")]
    got = (sum(s["live_bytes"] for s in held), sum(s["live_count"] for s in held))
    totals = (sum(s["total_bytes"] for s in held), sum(s["total_count"] for s in held))
    check(got == want and totals == (ITER * 8000, ITER),
          "%s: line %d holds %d bytes in %d blocks (allocated %s); expected %s" % (os.path.basename(snap), line,
                                                                                  got[0], got[1], totals, want))
r3 = diff_json(second, third)
check(not [s for s in r3["stacks"] if (innermost(s).get("file") or "").endswith("dlsym_libc.c")],
      "something grew between snapshots 2 and 3")
print("ok: %d x 8000 bytes held through dlsym(libc)'s malloc, all credited when freed through its free%s"
      % (ITER, " (jemalloc behind)" if jemalloc else ""))
