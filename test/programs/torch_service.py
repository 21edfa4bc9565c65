"""A small PyTorch inference service with five planted leaks, for
test_services.py and scripts/bench. Each request runs a model on a batch,
keeps what the marked lines keep (LEAK_BYTES each, per request), fills a
warm-up cache during the first WARMUP requests only, and makes temporaries
that are freed. It stops after the request counts given on the command
line, prints "at N" and waits for a line on stdin (a snapshot is taken from
outside meanwhile), and ends with one JSON line: what it kept per request.
Usage: torch_service.py STOP [STOP...]   (e.g. 100 400)"""
import ctypes
import gc
import json
import sys

import torch

LEAK_BYTES = 16384
WARMUP = 50
STOPS = [int(a) for a in sys.argv[1:]] or [100, 400]

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256))
model.eval()
libc = ctypes.CDLL(None)  # the process's own malloc: the preloaded one when there is one
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]

warm_cache = {}  # bounded: filled while warming up, then only read
history = []     # "for debugging": every result kept
callbacks = []   # closures kept, each holding a tensor
kv_cache = {}    # per-request key/value blocks, never evicted
gc.disable()     # and self-referencing dicts pile up


def make_callback(n):
    t = torch.empty(n // 4)  # LEAK:closure
    return lambda: float(t.sum())


def handle(i):
    x = torch.randn(32, 256)
    with torch.no_grad():
        y = model(x)  # temporaries: activations, freed
    scratch = [torch.empty(1024) for _ in range(8)]  # MARK:churn
    if len(warm_cache) < WARMUP:
        warm_cache[i] = torch.empty(LEAK_BYTES // 4)  # MARK:warmcache
    history.append(torch.empty(LEAK_BYTES // 4))  # LEAK:history
    callbacks.append(make_callback(LEAK_BYTES))
    kv_cache[i] = {"k": torch.empty(LEAK_BYTES // 8), "v": torch.empty(LEAK_BYTES // 8)}  # LEAK:kv
    cycle = {"payload": bytearray(LEAK_BYTES)}  # LEAK:cycle
    cycle["self"] = cycle
    libc.malloc(LEAK_BYTES)  # LEAK:ctypes
    return float(y.sum()) + len(scratch)


served = 0
for stop in STOPS:
    while served < stop:
        handle(served)
        served += 1
    print("at %d" % served, flush=True)
    sys.stdin.readline()
print(json.dumps({"leak_bytes": LEAK_BYTES, "warmup": WARMUP, "served": served, "torch": torch.__version__}))
