"""PyTorch's figures for `npm run bench:model`: forward (eval) and train-step img/s of a torchvision
ResNet at 224², median over --steps after a warm-up. Run with Debian's interpreter:
  /usr/bin/python3 bench/torch_model.py --arch resnet50 --batch 8 --threads 1
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../scripts"))
from torch_peer import ALLOCATOR  # noqa: E402  (first: it sets the allocator up before torch loads)

import torch  # noqa: E402
import torchvision  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet50")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=3)
a = p.parse_args()
torch.set_num_threads(a.threads)
# Randomly initialized deep nets in eval mode produce denormal activations, which x86 handles
# ~100x slower unless flushed; trained networks do not, so flush them to measure the network.
torch.set_flush_denormal(True)
torch.manual_seed(0)
model = getattr(torchvision.models, a.arch)()
x = torch.randn(a.batch, 3, 224, 224)
y = torch.randint(0, 1000, (a.batch,))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def timed(fn):
    times = []
    for _ in range(a.steps + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


model.eval()
with torch.no_grad():
    forward = timed(lambda: model(x))
model.train()


def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


train = timed(step)
print(json.dumps({"arch": a.arch, "batch": a.batch, "threads": a.threads, "allocator": ALLOCATOR,
                  "forwardImagesPerSecond": a.batch / forward, "trainImagesPerSecond": a.batch / train}))
