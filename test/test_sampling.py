"""Sampling mode (MEMLEDGER_SAMPLE_BYTES=512KiB): a leak of 100 MiB in 4 KiB
blocks and another of 100 MiB in 256-byte blocks are estimated without bias.

With 512 KiB sampling each leak gets about 200 samples, so one run's
estimate has a standard error of about 7% (the Poisson spread of 200
samples): about 84% of single runs land within 10%. The test therefore
runs 24 independent processes and asserts that the mean estimate is within
5% of the truth (3.5 standard errors of the mean) and every single run
within 35% (5 standard errors); it prints how many single runs fell within
10%. The churn must not show up. Exact
mode (the default) of the same program gives the exact figures."""
import os
import statistics

from mltest import *

TRUTH = 100 * 1024 * 1024
PROG = os.path.join(PROGRAMS, "sample_leak")
RUNS = 24


def growth_by_site(report):
    out = {"leak_big": 0, "leak_small": 0}
    for s in report["stacks"]:
        fn = innermost(s).get("function")
        if fn in out:
            out[fn] += s["growth_bytes"]
    return out


def run(env):
    d = snapdir()
    p = run_under([PROG], d, extra_env=env)
    pid = int([f for f in os.listdir(d) if f.endswith(".snap")][0].split(".")[1])
    return diff_json(snap_path(d, pid, 1), snap_path(d, pid, 2))


exact = growth_by_site(run({}))
check(exact == {"leak_big": TRUTH, "leak_small": TRUTH}, "exact mode: %s" % exact)

estimates = {"leak_big": [], "leak_small": []}
for i in range(RUNS):
    r = run({"MEMLEDGER_SAMPLE_BYTES": "512KiB"})
    check(r["snapshots"][0]["sample_bytes"] == 512 * 1024, "sample_bytes not recorded in the snapshot")
    g = growth_by_site(r)
    for site, v in g.items():
        estimates[site].append(v)
    churn = [s for s in r["stacks"] if innermost(s).get("function") == "main"]
    check(not churn or max(s["growth_bytes"] for s in churn) < TRUTH // 100,
          "churn shows growth: %s" % [s["growth_bytes"] for s in churn])
for site, vals in estimates.items():
    mean = statistics.mean(vals)
    worst = max(abs(v - TRUTH) / TRUTH for v in vals)
    within10 = sum(abs(v - TRUTH) / TRUTH <= 0.10 for v in vals)
    check(abs(mean - TRUTH) / TRUTH <= 0.05,
          "%s: mean estimate %.1f MiB over %d runs, truth 100 MiB" % (site, mean / 2**20, RUNS))
    check(worst <= 0.35, "%s: a single run was %.0f%% off" % (site, worst * 100))
    print("%s: mean %.2f MiB (truth 100), single runs within 10%%: %d/%d, worst %.1f%%"
          % (site, mean / 2**20, within10, RUNS, worst * 100))
print("ok")
