"""Run by programs/py_embed (libpython loaded with dlopen, late), for
test_python_embedded.py: memledger attaches from its own thread once the
loader reports libpython, so first wait until a snapshot says it has (a
python_version header line); then snapshot, leak ITER times, snapshot."""
import json
import time

import mlsnap

ITER, SIZE = 20, 50000
keep = []


def leak():
    keep.append(bytes(SIZE))  # LEAK:embedded


seq = 1
while True:
    with mlsnap.open_text(mlsnap.snapshot(seq)) as f:
        if any(line.startswith("python_version\t") for line in f):
            break
    if seq > 500:
        raise SystemExit("memledger never attached to the interpreter")
    seq += 1
    time.sleep(0.01)
leak()
mlsnap.snapshot(seq + 1)
for _ in range(ITER):
    leak()
mlsnap.snapshot(seq + 2)
print(json.dumps({"base": seq + 1, "head": seq + 2, "iter": ITER, "size": SIZE, "waited": seq}))
