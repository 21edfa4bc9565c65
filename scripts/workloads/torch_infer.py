"""torch_infer — a small PyTorch CPU inference loop for scripts/bench: a
three-layer MLP on batches of 32, argv[1] batches (default 3000) after a
warm-up, one intra-op thread so runs compare. Prints the loop's elapsed
seconds and nothing else (the import is not timed)."""
import sys
import time

import torch

BATCHES = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(
    torch.nn.Linear(256, 512), torch.nn.ReLU(),
    torch.nn.Linear(512, 512), torch.nn.ReLU(),
    torch.nn.Linear(512, 10)).eval()
batch = torch.randn(32, 256)
with torch.no_grad():
    for _ in range(50):
        model(batch)
    start = time.perf_counter()
    for _ in range(BATCHES):
        out = model(batch).softmax(dim=1)
        best = out.argmax(dim=1).tolist()
print("%.3f" % (time.perf_counter() - start))
