"""Threads allocate with every function of the malloc family, reallocate
and free (some across threads) while snapshot signals arrive every 2 ms and
short-lived threads come and go: every snapshot parses, no temporary file is
left, the totals of every stack never go down from one snapshot to the next
(a snapshot holds the stacks that hold memory now or did at the one
before: a stack in two consecutive snapshots is compared), and at the end
the ledger's live bytes and allocations for the workers' stacks equal the
program's own count, exactly, as do the totals ever allocated there (the
program keeps the first allocation of each of its stacks, so every one is
in the final snapshot with its totals).
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


def stack_totals(path):
    """Totals per stack identity (domain and frames), equal entries summed."""
    out = {}
    for s in read_snapshot(path)["stacks"]:
        key = (s["domain"], tuple((f["kind"], f["module"], f["function"], f["file"], f["line"])
                                  for f in s["frames"]))
        t = out.setdefault(key, [0, 0])
        t[0] += s["total_bytes"]
        t[1] += s["total_count"]
    return out


# every snapshot parses (through the CLI and on its own), and the totals of
# a stack in two consecutive snapshots only grow from one to the next
prev = None
compared = 0
last = {}  # stack -> its totals where it was last written
pid = int(snaps[0].split(".")[1])
for f in snaps:
    cli("top", os.path.join(d, f), "-n", "1")  # exits 0 only when the file parses
    totals = stack_totals(os.path.join(d, f))
    if int(f.split(".")[2]) <= result["final_seq"]:
        last.update(totals)
    if prev:
        for key, t in totals.items():
            if key in prev:
                compared += 1
                check(t[0] >= prev[key][0] and t[1] >= prev[key][1],
                      "%s: totals of a stack went down from %s to %s: %s" % (f, prev[key], t, key[1][:3]))
    prev = totals
check(compared > 0, "no stack was in two consecutive snapshots")
final = worker_sums(snap_path(d, pid, result["final_seq"]))
for fn in WORKER:
    final[fn][2:] = [sum(t[k] for key, t in last.items() if key[1] and key[1][0][2] == fn) for k in (0, 1)]
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
