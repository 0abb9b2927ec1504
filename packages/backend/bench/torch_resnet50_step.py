"""PyTorch's ResNet-50 train step, the peer figure for `npm run bench:step`.

Run with Debian's interpreter (apt-get install python3-torch python3-torchvision):
  /usr/bin/python3 bench/torch_resnet50_step.py --batch 16 --threads 2 --steps 3
Prints one JSON line: median seconds per step after one warm-up step, and img/s.
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


def setup():
    """The command line's settings, and the step's model, optimizer, loss and batch."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 1000, (args.batch,))
    return args, model, optimizer, loss_fn, images, labels


def main():
    args, model, optimizer, loss_fn, images, labels = setup()
    times = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times[1:])
    print(json.dumps({
        "bench": "resnet50-step",
        "peer": f"pytorch {torch.__version__}",
        "threads": args.threads,
        "batch": args.batch,
        "size": args.size,
        "allocator": ALLOCATOR,
        "secondsPerStep": seconds,
        "imagesPerSecond": args.batch / seconds,
    }))


if __name__ == "__main__":
    main()
