"""Deep Python stacks, for test_python_deep.py: one function recurses DEPTH
calls deep and leaks at the bottom, reached from two different callers.
Halfway down, one level calls the next through a C function (map), so the
recursion spans two eval-loop calls. Snapshot 1 comes after a warm-up
round, then ITER rounds leak through each caller, then snapshot 2. Prints
what it used, one JSON line: the depth, the rounds, and the size of one
leaked object as the interpreter counts it."""
import json
import sys

import mlsnap

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 300
ITER = 20
BYTES = 100000

keep = []


def recurse(n):
    if n == 0:
        blob = bytes(BYTES)  # LEAK:bottom
        keep.append(blob)
    elif n == DEPTH // 2:
        list(map(recurse, [n - 1]))  # MARK:through_c
    else:
        recurse(n - 1)  # MARK:recurse


def caller_a():
    recurse(DEPTH)  # MARK:caller_a


def caller_b():
    recurse(DEPTH)  # MARK:caller_b


def rounds(n):
    for _ in range(n):
        caller_a()  # MARK:call_a
        caller_b()  # MARK:call_b


rounds(1)  # warm-up: list growth, the frames' memory
keep.clear()
mlsnap.snapshot(1)
rounds(ITER)  # MARK:module
mlsnap.snapshot(2)
print(json.dumps({"depth": DEPTH, "iter": ITER, "size": sys.getsizeof(keep[0])}))
