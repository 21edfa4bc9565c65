"""torch_infer — a small PyTorch CPU inference loop for scripts/bench: a
three-layer MLP on batches of 16, argv[1] batches (default 5000) after a
warm-up, one intra-op thread so runs compare; small enough that the
framework's per-op work (tensors made and freed, dispatch) weighs as much
as the arithmetic. Prints the loop's elapsed seconds and nothing else (the
import is not timed)."""
import sys
import time

import torch

BATCHES = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 128), torch.nn.ReLU(),
    torch.nn.Linear(128, 128), torch.nn.ReLU(),
    torch.nn.Linear(128, 10)).eval()
batch = torch.randn(16, 64)
with torch.no_grad():
    for _ in range(50):
        model(batch)
    start = time.perf_counter()
    for _ in range(BATCHES):
        out = model(batch).softmax(dim=1)
        best = out.argmax(dim=1).tolist()
print("%.3f" % (time.perf_counter() - start))
