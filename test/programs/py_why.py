"""A service that leaks through each kind of holder `memledger why` must name,
with gc disabled, for test_why.py. Each request keeps:
  list     bytes in a module-level list (history)
  closure  a bytearray captured by a closure kept in a list (callbacks)
  session  a bytearray in a dict keyed by the request id (sessions)
  cycle    a bytearray in a dict that refers to itself, then dropped
  attr     a bytearray held by an object's attribute (holders[i].buf)
  tensor   with --torch: a CPU tensor in a Registry instance's dict
                attribute (REGISTRY.tensors)
  classattr  bytes in a list that is a class attribute (Cache.entries)
  local    bytes in a list that is a local variable of main()
After a warm-up request it takes snapshot 1 (the base), serves ITER
requests, prints "ready", and keeps working (a thread and the main loop
both run Python code) until the file named by argv[2] appears; then it
serves ITER more requests, checks that everything it kept is intact, and
prints a summary. Everything it prints is a function of ITER alone, so the
test can tell that a `why` in the middle changed nothing."""
import gc
import json
import os
import sys
import threading
import time

import mlsnap

gc.disable()
ITER = int(sys.argv[1])
STOP = sys.argv[2]
TORCH = "--torch" in sys.argv
SIZE = {"list": 100000, "closure": 120000, "session": 140000, "cycle": 160000, "attr": 180000,
        "classattr": 90000, "local": 80000}
if TORCH:
    import torch

history = []
callbacks = []
sessions = {}
holders = []


class Registry:
    def __init__(self):
        self.tensors = {}


class Holder:
    pass


class Cache:
    entries = []


REGISTRY = Registry()


def leak_list(i):
    history.append(bytes(SIZE["list"]))  # LEAK:list


def make_handler(i):
    buf = bytearray(SIZE["closure"])  # LEAK:closure

    def handler():
        return len(buf) + i
    return handler


def leak_closure(i):
    callbacks.append(make_handler(i))


def leak_session(i):
    sessions["req-%d" % i] = bytearray(SIZE["session"])  # LEAK:session


def leak_cycle(i):
    d = {"id": i, "payload": bytearray(SIZE["cycle"])}  # LEAK:cycle
    d["self"] = d


def leak_attr(i):
    h = Holder()
    h.buf = bytearray(SIZE["attr"])  # LEAK:attr
    holders.append(h)


def leak_tensor(i):
    REGISTRY.tensors[i] = torch.ones(128, 256)  # LEAK:tensor


def leak_classattr(i):
    Cache.entries.append(bytes(SIZE["classattr"]))  # LEAK:classattr


def request(i, inflight):
    inflight.append(bytes(SIZE["local"]))  # LEAK:local
    leak_classattr(i)
    leak_list(i)
    leak_closure(i)
    leak_session(i)
    leak_cycle(i)
    leak_attr(i)
    if TORCH:
        leak_tensor(i)


def busy(stop_event, counter):
    while not stop_event.is_set():
        counter[0] = sum(range(1000)) + counter[0] % 7
        time.sleep(0.001)


def main():
    inflight = []
    request(0, inflight)
    mlsnap.snapshot(1)
    for i in range(1, ITER + 1):
        request(i, inflight)
    print("ready", flush=True)

    done = threading.Event()
    counter = [0]
    t = threading.Thread(target=busy, args=(done, counter))
    t.start()
    ticks = 0
    while not os.path.exists(STOP):
        ticks = (ticks + sum(x * x for x in range(200))) % 1000003
        time.sleep(0.002)
    done.set()
    t.join()

    for i in range(ITER + 1, 2 * ITER + 1):
        request(i, inflight)
    total = 2 * ITER + 1
    intact = (len(history) == total and all(len(b) == SIZE["list"] for b in history) and
              [h() for h in callbacks] == [SIZE["closure"] + i for i in range(total)] and
              sorted(sessions) == sorted("req-%d" % i for i in range(total)) and
              all(len(h.buf) == SIZE["attr"] for h in holders) and
              len(Cache.entries) == total and len(inflight) == total)
    if TORCH:
        intact = intact and len(REGISTRY.tensors) == total and \
            float(sum(t.sum() for t in REGISTRY.tensors.values())) == total * 128 * 256
    print(json.dumps({"requests": total, "intact": intact, "gc_enabled": gc.isenabled(), "sizes": SIZE},
                     sort_keys=True))


main()
