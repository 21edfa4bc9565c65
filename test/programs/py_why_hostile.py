"""Hostile objects for `memledger why`, for test_why_hostile.py, with gc
disabled. argv: ITER STOPFILE OBJECTS. Before the base snapshot it makes
OBJECTS live objects (small lists, each tracked by gc). Each of ITER
requests then keeps:
  hostile  a bytearray in a dict keyed by Hostile objects (all hashing
           alike), held by a dict subclass whose __iter__, keys and
           __getitem__ raise
  chain    bytes at the end of a chain of __slots__ nodes that grows by
           CHAIN // ITER nodes a request: the last is CHAIN hops deep
  cycle    a bytearray in a self-referencing dict, then dropped (so a search
           must walk every object to call it unreachable)
Once the requests are done it arms every hostile method: from then on
__eq__, __getattribute__ and the dict subclass's methods (__repr__ among
them) record the call and raise, and the keys' __hash__ and __repr__
record it and block for an hour. Then
it prints "ready" and keeps running Python code until STOPFILE appears,
and prints a summary that lists the hostile calls (there must be none:
nothing may call them) and checks what it kept, touching no hostile
method."""
import gc
import json
import os
import sys
import threading
import time

import mlsnap

gc.disable()
ITER, STOP, OBJECTS = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
CHAIN = 10000
SIZE = {"hostile": 70000, "chain": 60000, "cycle": 50000}
armed = False
calls = []


def hostile(what):
    if armed:
        calls.append(what)
        raise RuntimeError("hostile %s called" % what)


def block(what):
    if armed:
        calls.append(what)
        time.sleep(3600)


class Hostile:
    def __init__(self, i):
        self.i = i

    def __hash__(self):
        block("__hash__")
        return 42

    def __eq__(self, other):
        hostile("__eq__")
        return self is other

    def __repr__(self):
        block("__repr__")
        return "Hostile()"

    def __getattribute__(self, name):
        hostile("__getattribute__")
        return object.__getattribute__(self, name)


class HostileDict(dict):
    def __iter__(self):
        hostile("HostileDict.__iter__")
        return dict.__iter__(self)

    def keys(self):
        hostile("HostileDict.keys")
        return dict.keys(self)

    def __getitem__(self, k):
        hostile("HostileDict.__getitem__")
        return dict.__getitem__(self, k)

    def __repr__(self):
        hostile("HostileDict.__repr__")
        return "{}"


class Node:
    __slots__ = ("next", "payload")

    def __init__(self):
        self.next = None
        self.payload = None


many = [[i] for i in range(OBJECTS)]
hostile_map = HostileDict()
chain_head = Node()


def leak_hostile(i):
    dict.__setitem__(hostile_map, Hostile(i), bytearray(SIZE["hostile"]))  # LEAK:hostile


def leak_chain(i):
    node = chain_head  # walked, not remembered: the only path to a payload is the chain
    while node.next is not None:
        node = node.next
    for _ in range(CHAIN // ITER):
        node.next = Node()
        node = node.next
    node.payload = bytes(SIZE["chain"])  # LEAK:chain


def leak_cycle(i):
    d = {"payload": bytearray(SIZE["cycle"])}  # LEAK:cycle
    d["self"] = d


def request(i):
    leak_hostile(i)
    leak_chain(i)
    leak_cycle(i)


def chain_length():
    n, node = 0, chain_head
    while node.next is not None:
        node = node.next
        n += 1
    return n


def main():
    global armed
    mlsnap.snapshot(1)
    for i in range(ITER):
        request(i)
    armed = True
    print("ready", flush=True)
    done = threading.Event()
    t = threading.Thread(target=lambda: [time.sleep(0.001) for _ in iter(done.is_set, True)])
    t.start()
    ticks = 0
    while not os.path.exists(STOP):
        ticks = (ticks + sum(x * x for x in range(200))) % 1000003
        time.sleep(0.002)
    done.set()
    t.join()
    payloads = sum(1 for v in dict.values(hostile_map) if len(v) == SIZE["hostile"])
    print(json.dumps({"hostile_calls": calls, "objects": len(many), "chain": chain_length(), "payloads": payloads,
                      "gc_enabled": gc.isenabled()}, sort_keys=True))


main()
