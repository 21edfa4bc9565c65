"""A small Flask inference-style service with five planted leaks, for
test_services.py: served by Debian's gunicorn with one sync worker, e.g.

    gunicorn --workers 1 --bind 127.0.0.1:8000 --pythonpath test/programs flask_service:app

GET /work handles one request: it runs a small numpy "model" (temporaries,
freed), keeps what the LEAK lines keep (LEAK_BYTES of buffer each, per
request), fills a warm-up cache during the first WARMUP requests only, and
makes scratch buffers that are freed (MARK:churn). GET /stats says which
process serves (the gunicorn worker, not its master) and how many /work
requests it has served. The app is loaded in the worker (no --preload),
so everything below runs there."""
import ctypes
import gc
import os

import numpy as np
from flask import Flask, jsonify

LEAK_BYTES = 16384
WARMUP = 50

app = Flask(__name__)
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
    buf = bytearray(n)  # LEAK:closure
    return lambda: len(buf)


@app.route("/work")
def work():
    global served
    rid = served
    x = rng.standard_normal((16, 64))
    y = np.tanh(x @ weights)  # temporaries: activations, freed
    scratch = [bytearray(1024) for _ in range(8)]  # MARK:churn
    if len(warm_cache) < WARMUP:
        warm_cache[rid] = bytearray(LEAK_BYTES)  # MARK:warmcache
    history.append(np.ones(LEAK_BYTES // 8))  # LEAK:history
    callbacks.append(make_callback(LEAK_BYTES))
    kv_cache[rid] = {"k": np.zeros(LEAK_BYTES // 16), "v": np.zeros(LEAK_BYTES // 16)}  # LEAK:kv
    cycle = {"payload": bytearray(LEAK_BYTES)}  # LEAK:cycle
    cycle["self"] = cycle
    libc.malloc(LEAK_BYTES)  # LEAK:ctypes
    served += 1
    count_served()
    return jsonify(request=rid, score=float(y.sum()) + len(scratch))


@app.route("/stats")
def stats():
    return jsonify(pid=os.getpid(), served=served, leak_bytes=LEAK_BYTES, warmup=WARMUP,
                   numpy=np.__version__)
