"""Sampling after fork (issue 14): a master forks two workers that make the
very same allocations (programs/fork_sample.c: 4000 blocks of 4096 bytes
each, kept). With MEMLEDGER_SAMPLE_BYTES=64KiB each worker takes about 250
samples; a worker that kept its master's random state would take exactly
its sibling's, so their estimates would be equal to the byte. They must
differ (and each stay near the truth, 16000 KiB, within 30%: five standard
errors). Exact mode (the default) gives both the truth exactly. Each
worker's snapshot says which worker it is: `worker 1 MASTER`, `worker 2
MASTER`, with its own start_time."""
import json
import os

from mltest import *

PROG = os.path.join(PROGRAMS, "fork_sample")
TRUTH = 4000 * 4096


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
        site = [x for x in top_json(path)["stacks"] if innermost(x).get("function") == "leak_site"]
        check(len(site) == 1, "worker %d: leak_site stacks %d" % (w, len(site)))
        out.append((site[0]["live_bytes"], site[0]["live_count"]))
    return out


exact = run({})
check(exact == [(TRUTH, 4000)] * 2, "exact mode: %s" % exact)
sampled = run({"MEMLEDGER_SAMPLE_BYTES": "64KiB"})
check(sampled[0] != sampled[1], "the two workers sampled alike: %s (a child kept its parent's random state)" % sampled)
for b, c in sampled:
    check(abs(b - TRUTH) <= 0.30 * TRUTH, "an estimate far from the truth: %s, truth %d" % (sampled, TRUTH))
print("ok: forked workers sample differently: %s and %s bytes (truth %d); exact mode %d each"
      % (sampled[0][0], sampled[1][0], TRUTH, TRUTH))
