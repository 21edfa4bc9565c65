"""The fast unwinder gives exactly the stacks libunwind gives. One program
with hard call chains (see programs/unwind_shapes.c), built with and without
frame pointers, is run once with MEMLEDGER_UNWIND=libunwind and once with
the default; the two snapshots, compared by address-free identity, must hold
the same stacks with the same live bytes and counts — in both directions.
Known truths are checked too: the twin callers that reach one leaf at the
same depth get 300 and 100 blocks, each recursion depth its own stack, and
the default run used the slow unwinder for only a small share of stacks."""
import os
import sys

from mltest import *

variant = sys.argv[1]  # "fp" or "nofp"
prog = os.path.join(PROGRAMS, "unwind_shapes_" + variant)
runs = {}
for mode in ("libunwind", "auto"):
    d = snapdir()
    run_under([prog], d, extra_env={"MEMLEDGER_UNWIND": mode})
    snaps = [f for f in os.listdir(d) if f.endswith(".snap")]
    check(len(snaps) == 1, "%s: expected one snapshot, got %s" % (mode, snaps))
    runs[mode] = os.path.join(d, snaps[0])


def program_stacks(snap):
    """identity -> (live bytes, live count) for stacks whose innermost frame is in the program"""
    out = {}
    for s in top_json(snap)["stacks"]:
        f0 = innermost(s)
        if not (f0.get("file") or "").endswith("unwind_shapes.c"):
            continue
        key = tuple((f["module"], f.get("offset"), f["function"]) for f in s["frames"])
        out[key] = (s["live_bytes"], s["live_count"])
    return out


slow, fast = program_stacks(runs["libunwind"]), program_stacks(runs["auto"])
check(slow, "no program stacks in the libunwind run")
for key in set(slow) | set(fast):
    check(slow.get(key) == fast.get(key),
          "stack differs between unwinders:\n  %s\n  libunwind %s, fast %s"
          % (" <- ".join(k[2] or "?" for k in key), slow.get(key), fast.get(key)))
# the diff tool agrees: nothing grew either way
for a, b in ((runs["libunwind"], runs["auto"]), (runs["auto"], runs["libunwind"])):
    grown = [s for s in diff_json(a, b)["stacks"]
             if (innermost(s).get("file") or "").endswith("unwind_shapes.c")]
    check(not grown, "diff between unwinders shows growth: %s" % grown[:1])

# known truths in the fast run
t = top_json(runs["auto"])
leaf = stacks_at(t, "leaf")
by_twin = {}
for s in leaf:
    callers = [f["function"] for f in s["frames"][1:3]]
    # summed: the compiler may peel a loop, giving one line two call sites
    by_twin[callers[0]] = by_twin.get(callers[0], 0) + s["live_count"]
check(by_twin.get("twin_a") == 300 and by_twin.get("twin_b") == 100,
      "twin callers: %s (expected twin_a 300, twin_b 100)" % by_twin)
rec = stacks_at(t, "recurse")
depths = {}
for s in rec:
    d = sum(1 for f in s["frames"] if f["function"] == "recurse")
    depths[d] = depths.get(d, 0) + s["live_count"]
check(depths == {d: 60 for d in range(11, 16)}, "recursion depths: %s" % depths)
check(sum(s["live_count"] for s in stacks_at(t, "variable_frame")) == 300, "alloca frames")
sig = stacks_at(t, "on_alarm")
check(sum(s["live_count"] for s in sig) == 6, "signal handler allocations: %s" % sig)

# the fast path did the work
with open_snapshot(runs["auto"]) as f:
    lines = [l.rstrip("\n").split("\t") for l in f]
unwind = [l for l in lines if l[0] == "unwind"]
check(unwind, "no unwind line in the snapshot header")
fields = dict(zip(unwind[0][1::2], unwind[0][2::2]))
check(fields["mode"] == "auto", "mode %s" % fields["mode"])
fields["slow"] = int(fields["slow"])
fields["captures"] = sum(int(l[5]) for l in lines if l[0] == "domain")
share = fields["slow"] / max(1, fields["captures"])
check(share < 0.2, "slow unwinder took %d of %d captures" % (fields["slow"], fields["captures"]))
print("ok (%s): %d stacks identical; slow unwinder for %d of %d captures"
      % (variant, len(slow), fields["slow"], fields["captures"]))
