"""Cython under Python, for test_python_cython.py (argv: the directory of
the built cyleak module, ITER): Python calls Cython functions that leak,
and a Cython function that calls back into Python, which leaks.
Snapshot 1 after a warm-up round, 2 after ITER rounds."""
import json
import sys

sys.path.insert(0, sys.argv[1])
import cyleak  # noqa: E402

import mlsnap  # noqa: E402

ITER = int(sys.argv[2]) if len(sys.argv) > 2 else 20
GRAB, ITEM, CALLBACK = 40000, 25000, 15000
keep = []
holder = cyleak.Holder()


def inner(x):
    keep.append(bytearray(CALLBACK))  # LEAK:cy_callback
    return x


def outer():
    return cyleak.call(inner, 1)  # MARK:cy_outer


def one_round(n):
    for _ in range(n):
        cyleak.grab(GRAB)  # MARK:cy_grab
        holder.add_item(ITEM)  # MARK:cy_method
        outer()


one_round(1)
mlsnap.snapshot(1)
one_round(ITER)
mlsnap.snapshot(2)
print(json.dumps({"iter": ITER, "grab": GRAB, "item": ITEM, "callback": CALLBACK}))
