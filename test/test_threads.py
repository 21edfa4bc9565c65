"""Threads allocate, reallocate and free (some across threads) while
snapshot signals arrive every 2 ms: every snapshot parses, no temporary file
is left, and at the end the ledger's live bytes for the workers' stacks equal
the program's own count, exactly."""
import json
import os
import sys

from mltest import *

nthreads = sys.argv[1] if len(sys.argv) > 1 else "4"
ops = sys.argv[2] if len(sys.argv) > 2 else "200000"
d = snapdir()
p = run_under([os.path.join(PROGRAMS, "threads"), nthreads, ops], d)
result = json.loads(p.stdout.strip().splitlines()[-1])
snaps = sorted(f for f in os.listdir(d) if f.endswith(".snap"))
check(len(snaps) >= 2, "expected several snapshots, got %d" % len(snaps))
for f in snaps:
    cli("top", os.path.join(d, f), "-n", "1")  # exits 0 only when the file parses
check(not leftover_temp_files(d), "temporary files left: %s" % leftover_temp_files(d))
pid = int(snaps[0].split(".")[1])
final = top_json(snap_path(d, pid, result["final_seq"]))
live_bytes = live_count = 0
for s in final["stacks"]:
    if innermost(s).get("function") in ("worker_alloc", "worker_realloc"):
        live_bytes += s["live_bytes"]
        live_count += s["live_count"]
check(live_bytes == result["held_bytes"],
      "ledger says %d live bytes, the program holds %d" % (live_bytes, result["held_bytes"]))
check(live_count == result["held_count"],
      "ledger says %d live allocations, the program holds %d" % (live_count, result["held_count"]))
print("ok: %d snapshots from %d signals; %d bytes in %d allocations conserved"
      % (len(snaps), result["signals"], live_bytes, live_count))
