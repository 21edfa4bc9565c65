"""Threads allocate with every function of the malloc family, reallocate
and free (some across threads) while snapshot signals arrive every 2 ms and
short-lived threads come and go: every snapshot parses, no temporary file is
left, the totals of every stack never go down from one snapshot to the next,
and at the end the ledger's live bytes and allocations for the workers'
stacks equal the program's own count, exactly, as do the totals ever
allocated there.
Usage: test_threads.py NTHREADS OPS_PER_THREAD [TRANSIENT_THREADS] [--preload LIB]"""
import json
import os
import sys

from mltest import *

args = sys.argv[1:]
preload_extra = None
if "--preload" in args:
    i = args.index("--preload")
    preload_extra = args[i + 1]
    check(os.path.exists(preload_extra), "%s is not installed" % preload_extra)
    del args[i:i + 2]
nthreads = args[0] if len(args) > 0 else "4"
ops = args[1] if len(args) > 1 else "200000"
transient = args[2] if len(args) > 2 else "0"
d = snapdir()
p = run_under([os.path.join(PROGRAMS, "threads"), nthreads, ops, transient], d,
              preload=LIB + ":" + preload_extra if preload_extra else None)
result = json.loads(p.stdout.strip().splitlines()[-1])
snaps = sorted((f for f in os.listdir(d) if f.endswith(".snap")), key=lambda f: int(f.split(".")[2]))
check(len(snaps) >= 2, "expected several snapshots, got %d" % len(snaps))
check(not leftover_temp_files(d), "temporary files left: %s" % leftover_temp_files(d))
WORKER = ("worker_alloc", "worker_realloc")


def worker_sums(path):
    sums = {fn: [0, 0, 0, 0] for fn in WORKER}
    for s in read_snapshot(path)["stacks"]:
        fn = innermost(s).get("function")
        if fn in sums:
            for k, key in enumerate(("live_bytes", "live_count", "total_bytes", "total_count")):
                sums[fn][k] += s[key]
    return sums


# every snapshot parses (through the CLI and on its own), and totals only grow from one to the next
prev = None
for f in snaps:
    cli("top", os.path.join(d, f), "-n", "1")  # exits 0 only when the file parses
    sums = worker_sums(os.path.join(d, f))
    if prev:
        for fn in WORKER:
            check(sums[fn][2] >= prev[fn][2] and sums[fn][3] >= prev[fn][3],
                  "%s: %s totals went down from %s to %s" % (f, fn, prev[fn][2:], sums[fn][2:]))
    prev = sums
pid = int(snaps[0].split(".")[1])
final = worker_sums(snap_path(d, pid, result["final_seq"]))
live_bytes = final["worker_alloc"][0] + final["worker_realloc"][0]
live_count = final["worker_alloc"][1] + final["worker_realloc"][1]
check(live_bytes == result["held_bytes"],
      "ledger says %d live bytes, the program holds %d" % (live_bytes, result["held_bytes"]))
check(live_count == result["held_count"],
      "ledger says %d live allocations, the program holds %d" % (live_count, result["held_count"]))
check(final["worker_alloc"][2:] == [result["alloc_bytes"], result["alloc_count"]],
      "worker_alloc totals: ledger %s, program %s" % (final["worker_alloc"][2:],
                                                      [result["alloc_bytes"], result["alloc_count"]]))
check(final["worker_realloc"][2:] == [result["realloc_bytes"], result["realloc_count"]],
      "worker_realloc totals: ledger %s, program %s" % (final["worker_realloc"][2:],
                                                        [result["realloc_bytes"], result["realloc_count"]]))
ops_done = int(nthreads) * int(ops)
print("ok: %d threads x %s ops (+%d transient threads), %d snapshots from %d signals; "
      "%d allocations and %d reallocations totalled exactly; %d bytes in %d allocations live, exact"
      % (int(nthreads), ops, result["transient"], len(snaps), result["signals"], result["alloc_count"],
         result["realloc_count"], live_bytes, live_count))
