"""One training epoch of the reproduction's model in PyTorch, for `npm run bench:epoch`.

The reproduction's ResNet-8 (3x3/1 stem of 16 channels, no max-pool, one torchvision BasicBlock
per stage at 16/32/64, average pool, a linear layer), its augmentation (RandomResizedCrop(28,
scale) and a flip over ImageFolder's JPEGs, normalized) and its SGD step (Nesterov momentum 0.9,
weight decay, label smoothing), on the same prepared images. Two ways, as PyTorch users run it:
  single <root> <batch> <threads> <images>  one process, `threads` intra-op threads
  ddp <root> <batch> <world> <images>       `world` processes with Gloo (DDP), one thread each
Prints one JSON line: the images trained and the seconds the epoch took (data loading and the
first batch included, as in thor-ts's trainSeconds; building the dataset and the model excluded).
"""
import json, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
from torch_peer import ALLOCATOR  # first: it sets the allocator up before torch loads (each rank too)

import torch
import torch.distributed as dist
import torch.nn as nn
import torchvision
from torchvision import transforms
from torchvision.models.resnet import BasicBlock


class ResNet8(nn.Module):
    def __init__(self, classes=10, widths=(16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, inplanes = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != w:
                down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride, bias=False), nn.BatchNorm2d(w))
            stages.append(nn.Sequential(BasicBlock(inplanes, w, stride, down)))
            inplanes = w
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def epoch(root, batch, images, rank=0, world=1):
    torch.manual_seed(1 + rank)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(28, scale=(0.25, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.286] * 3, [0.353] * 3),
    ])
    data = torchvision.datasets.ImageFolder(os.path.join(root, 'train'), tf)
    data = torch.utils.data.Subset(data, torch.randperm(len(data))[:images].tolist())
    sampler = torch.utils.data.distributed.DistributedSampler(data, world, rank) if world > 1 else None
    loader = torch.utils.data.DataLoader(data, batch_size=batch // world, shuffle=sampler is None,
                                         sampler=sampler, num_workers=0, drop_last=True)
    model = ResNet8()
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.196, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    trained, start = 0, time.perf_counter()
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        trained += x.shape[0] * world
    return trained, time.perf_counter() - start


def ddp_rank(rank, root, batch, world, images, port, out):
    os.environ['MASTER_ADDR'], os.environ['MASTER_PORT'] = '127.0.0.1', str(port)
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    trained, seconds = epoch(root, batch, images, rank, world)
    if rank == 0:
        out.put((trained, seconds))
    dist.destroy_process_group()


if __name__ == '__main__':
    mode, root, batch, n, images = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if mode == 'single':
        torch.set_num_threads(n)
        trained, seconds = epoch(root, batch, images)
    else:
        import socket
        import torch.multiprocessing as mp
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        ctx = mp.get_context('spawn')
        out = ctx.SimpleQueue()
        procs = [ctx.Process(target=ddp_rank, args=(r, root, batch, n, images, port, out)) for r in range(n)]
        for p in procs:
            p.start()
        trained, seconds = out.get()
        for p in procs:
            p.join()
    print(json.dumps({'images': trained, 'seconds': seconds, 'allocator': ALLOCATOR}))
