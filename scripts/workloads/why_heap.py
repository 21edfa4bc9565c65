"""A service-like heap for `scripts/bench --only why` (argv: SIZE_MB STOPFILE).
Half of SIZE_MB is small Python objects (records: a dict holding an int, a
str and a list of two ints, all in a list), half is 1 MiB bytearrays in a
dict keyed by request id. After snapshot 1 (the base) a leak grows: bytes
kept in a module-level list. Then it prints "ready" and, until STOPFILE
appears, a thread sleeps 1 ms at a time and notes the longest it took to
wake: the pause the program itself felt. It prints that (ms), one JSON
line."""
import json
import os
import signal
import sys
import threading
import time

SIZE_MB, STOP = int(sys.argv[1]), sys.argv[2]
RECORD = 400  # bytes a record costs, about (dict, str, list, two ints)

records = [{"id": i, "name": "user-%d" % i, "tags": [i + 1000, i + 2000]}
           for i in range(SIZE_MB * (1 << 20) // 2 // RECORD)]
buffers = {"req-%d" % i: bytearray(1 << 20) for i in range(SIZE_MB // 2)}


def snapshot(seq):
    path = os.path.join(os.environ.get("MEMLEDGER_DIR", "."), "memledger.%d.%d.snap" % (os.getpid(), seq))
    os.kill(os.getpid(), signal.SIGUSR2)
    while not os.path.exists(path):
        time.sleep(0.01)


snapshot(1)
history = []
for i in range(20):
    history.append(bytes(100000))  # the leak

stall = [0.0]


def watch():
    while not os.path.exists(STOP):
        t = time.monotonic()
        time.sleep(0.001)
        stall[0] = max(stall[0], time.monotonic() - t - 0.001)


w = threading.Thread(target=watch)
w.start()
print("ready", flush=True)
w.join()
print(json.dumps({"max_stall_ms": round(stall[0] * 1000, 1), "records": len(records), "buffers": len(buffers)}))
