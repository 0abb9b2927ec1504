"""torchvision's ImageNet training input pipeline on a folder, for bench/data.ts.

Usage: torchvision_data.py <train_dir> <workers> <batch_size>
Prints one JSON line: {"images": n, "seconds": s, "rate": n / s} for one timed epoch, after a
warm-up of two batches. workers=1 runs in the main process (DataLoader num_workers=0).
"""
import json
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
it = iter(loader)
next(it)
next(it)
start = time.perf_counter()
images = 0
for x, y in loader:
    images += x.shape[0]
seconds = time.perf_counter() - start
print(json.dumps({"images": images, "seconds": seconds, "rate": images / seconds}))
