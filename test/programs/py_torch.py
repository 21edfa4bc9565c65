"""Tensors kept in a global list, for test_python_torch.py: after a warm-up
step, snapshot 1; ITER steps, each keeping a ROWS x COLS float32 tensor;
snapshot 2. Prints the tensor's size, one JSON line."""
import json
import sys

import torch

import mlsnap

ITER = int(sys.argv[1]) if len(sys.argv) > 1 else 20
ROWS, COLS = 256, 1024
history = []


def step():
    history.append(torch.ones(ROWS, COLS))  # LEAK:tensor


def serve(n):
    for _ in range(n):
        step()


serve(1)
mlsnap.snapshot(1)
serve(ITER)
mlsnap.snapshot(2)
t = history[-1]
print(json.dumps({"iter": ITER, "numel": t.numel(), "element_size": t.element_size(),
                  "torch": torch.__version__}))
