"""torchvision's ImageNet training input pipeline on a folder, for bench/data.ts.

Usage: torchvision_data.py <train_dir> <workers> <batch_size>
Prints one JSON line: {"images": n, "seconds": s, "rate": n / s, "cpuSeconds": c} for one timed
epoch, after a warm-up of two batches; c is the CPU time (user + system) of this process and its
loader workers over that epoch, from /proc. workers=1 runs in the main process (DataLoader
num_workers=0).
"""
import json
import os
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

root, workers, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
pipeline = transforms.Compose(
    [
        transforms.RandomResizedCrop(224),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ]
)
dataset = datasets.ImageFolder(root, pipeline)
loader = DataLoader(
    dataset,
    batch_size=batch_size,
    shuffle=True,
    num_workers=0 if workers == 1 else workers,
    persistent_workers=workers > 1,
)


def cpu_seconds(pids):
    """User + system time of the processes `pids`, from /proc/<pid>/stat (fields 14 and 15)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


it = iter(loader)
next(it)
next(it)
# Persistent workers serve the timed epoch too: measure this process and them.
pids = [os.getpid()] + [w.pid for w in getattr(loader._iterator, "_workers", [])]
cpu_start = cpu_seconds(pids)
start = time.perf_counter()
images = 0
for x, y in loader:
    images += x.shape[0]
seconds = time.perf_counter() - start
cpu = cpu_seconds(pids) - cpu_start
print(json.dumps({"images": images, "seconds": seconds, "rate": images / seconds, "cpuSeconds": cpu}))
