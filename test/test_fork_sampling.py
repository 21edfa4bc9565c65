"""Sampling after fork (issue 14): a master forks two workers that make the
very same allocations (programs/fork_sample.c: 4000 blocks of 4096 bytes,
kept, spread over 32 stacks by call depth, 125 blocks each). With
MEMLEDGER_SAMPLE_BYTES=64KiB each worker takes about 250 samples, about 8
per stack. A worker that kept its master's random state would take
exactly its sibling's samples: the same estimate on every one of the 32
stacks. The two must differ (two independent workers agree on all 32 with
a probability far below 1e-20), and each worker's total stays near the
truth (16000 KiB, within 30%: five standard errors). Exact mode (the
default) gives each stack exactly 125 x 4096 in both. Each worker's
snapshot says which worker it is: `worker 1 MASTER`, `worker 2 MASTER`,
with its own start_time."""
import json
import os

from mltest import *

PROG = os.path.join(PROGRAMS, "fork_sample")
TRUTH = 4000 * 4096
DEPTHS = 32


def run(env):
    d = snapdir()
    p = run_under([PROG], d, extra_env=env)
    workers = json.loads(p.stdout.strip().splitlines()[-1])["workers"]
    out = []
    for i, w in enumerate(workers, 1):
        path = snap_path(d, w, 1)
        s = read_snapshot(path)
        wh = header(s, "worker")
        check(wh and int(wh[0]) == i and int(wh[1]) == int(header(s, "ppid")[0]),
              "worker %d's snapshot says worker %s (ppid %s)" % (w, wh, header(s, "ppid")))
        check(header(s, "start_time"), "no start_time header in %s" % path)
        by_depth = {}
        for x in top_json(path)["stacks"]:
            if innermost(x).get("function") != "leak_site":
                continue
            depth = sum(1 for f in x["frames"] if f["function"] == "nest") - 1
            by_depth[depth] = by_depth.get(depth, 0) + x["live_bytes"]
        out.append(by_depth)
    return out


exact = run({})
for e in exact:
    check(e == {k: 125 * 4096 for k in range(DEPTHS)}, "exact mode: %s" % e)
sampled = run({"MEMLEDGER_SAMPLE_BYTES": "64KiB"})
check(sampled[0] != sampled[1], "the two workers sampled alike, stack for stack: %s (a child kept its parent's "
      "random state)" % sampled[0])
totals = [sum(s.values()) for s in sampled]
for t in totals:
    check(abs(t - TRUTH) <= 0.30 * TRUTH, "an estimate far from the truth: %s, truth %d" % (totals, TRUTH))
same = sum(1 for k in range(DEPTHS) if sampled[0].get(k) == sampled[1].get(k))
print("ok: forked workers sample differently (%d of %d stacks estimated alike): %d and %d bytes (truth %d); "
      "exact mode %d each" % (same, DEPTHS, totals[0], totals[1], TRUTH, TRUTH))
