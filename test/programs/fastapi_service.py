"""A small FastAPI inference-style service with five planted leaks, for
test_services.py: served by Debian's uvicorn, e.g.

    uvicorn --host 127.0.0.1 --port 8000 --app-dir test/programs fastapi_service:app

GET /work handles one request on the event loop (an `async def` endpoint):
it runs a small numpy "model" (temporaries, freed), keeps what the LEAK
lines keep (LEAK_BYTES of buffer each, per request), fills a warm-up cache
during the first WARMUP requests only, and makes scratch buffers that are
freed (MARK:churn). GET /stats says which process serves and how many
/work requests it has served."""
import ctypes
import gc
import os

import numpy as np
from fastapi import FastAPI

LEAK_BYTES = 16384
WARMUP = 50

app = FastAPI()
rng = np.random.default_rng(0)
weights = rng.standard_normal((64, 64))
libc = ctypes.CDLL(None)  # the process's own malloc: the preloaded one when there is one
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]

warm_cache = {}  # bounded: filled while warming up, then only read
history = []     # "for debugging": every result kept
callbacks = []   # closures kept, each holding a buffer
kv_cache = {}    # per-request key/value blocks, never evicted
gc.disable()     # and self-referencing dicts pile up
served = 0
# with several workers, /stats answers from whichever one accepts: each
# worker also keeps its count in SERVICE_STATS_DIR/served.PID when set
STATS_DIR = os.environ.get("SERVICE_STATS_DIR")


def count_served():
    if STATS_DIR:
        with open(os.path.join(STATS_DIR, "served.%d" % os.getpid()), "w") as f:
            f.write(str(served))


def make_callback(n):
    buf = np.empty(n, dtype=np.uint8)  # LEAK:closure
    return lambda: int(buf[0])


@app.get("/work")
async def work():
    global served
    rid = served
    x = rng.standard_normal((16, 64))
    y = np.tanh(x @ weights)  # temporaries: activations, freed
    scratch = [bytearray(1024) for _ in range(8)]  # MARK:churn
    if len(warm_cache) < WARMUP:
        warm_cache[rid] = bytearray(LEAK_BYTES)  # MARK:warmcache
    history.append(bytearray(LEAK_BYTES))  # LEAK:history
    callbacks.append(make_callback(LEAK_BYTES))
    kv_cache[rid] = {"k": np.zeros(LEAK_BYTES // 16), "v": np.zeros(LEAK_BYTES // 16)}  # LEAK:kv
    cycle = {"payload": bytearray(LEAK_BYTES)}  # LEAK:cycle
    cycle["self"] = cycle
    libc.malloc(LEAK_BYTES)  # LEAK:ctypes
    served += 1
    count_served()
    return {"request": rid, "score": float(y.sum()) + len(scratch)}


@app.get("/stats")
async def stats():
    return {"pid": os.getpid(), "served": served, "leak_bytes": LEAK_BYTES, "warmup": WARMUP,
            "numpy": np.__version__}
