"""py_alloc_loop — an allocation-heavy Python loop for scripts/bench: each
round builds and drops dicts, lists and strings at call depth argv[2]
(default 12: web-framework stacks are far deeper, ~80), a fixed amount of
work (argv[1] rounds, default 1000000). Prints its elapsed seconds and
nothing else."""
import sys
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
DEPTH = int(sys.argv[2]) if len(sys.argv) > 2 else 12
sys.setrecursionlimit(max(1000, DEPTH + 100))


def work(i):
    d = {"id": i, "name": "item-%d" % i, "tags": [str(i), str(i + 1)]}
    s = "-".join(d["tags"]) + d["name"]
    rows = [s, d, [i] * 4]
    return len(rows[0]) + len(d)


def descend(depth, i):
    if depth == 0:
        return work(i)
    return descend(depth - 1, i)


start = time.perf_counter()
total = 0
for i in range(ROUNDS):
    total += descend(DEPTH - 1, i)
print("%.3f" % (time.perf_counter() - start))
