"""Leaks at known lines, for test_python_leaks.py. After one warm-up round
(so one-time allocations are in the base) it takes snapshot 1, leaks ITER
times at each LEAK line, and takes snapshot 2. The MARK:churn allocation is
freed before its function returns and must show no growth.
Prints the sizes it used, one JSON line."""
import gc
import json
import sys
import threading

import mlsnap

ITER = int(sys.argv[1]) if len(sys.argv) > 1 else 20
BYTES, CYCLE, CLOSURE, THREAD, CHURN = 100000, 65536, 200000, 30000, 80000

keep = []
callbacks = []
thread_keep = []


def leak_bytes():
    keep.append(bytes(BYTES))  # LEAK:bytes


def leak_cycle():
    d = {"payload": bytearray(CYCLE)}; d["self"] = d  # LEAK:cycle


def make_callback():
    big = bytearray(CLOSURE)  # LEAK:closure
    return lambda: len(big)


def leak_closure():
    callbacks.append(make_callback())


def churn():
    tmp = bytes(CHURN)  # MARK:churn
    return len(tmp)


def thread_work(n):
    for _ in range(n):
        thread_keep.append(bytes(THREAD))  # LEAK:thread


def one_round(n):
    for _ in range(n):
        leak_bytes()
        leak_cycle()
        leak_closure()
        churn()
    t = threading.Thread(target=thread_work, args=(n,))
    t.start()
    t.join()


gc.disable()
one_round(1)
mlsnap.snapshot(1)
one_round(ITER)
mlsnap.snapshot(2)
print(json.dumps({"iter": ITER, "bytes": BYTES, "cycle": CYCLE, "closure": CLOSURE,
                  "thread": THREAD, "churn": CHURN}))
