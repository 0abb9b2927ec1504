"""PyTorch's ResNet-50 train step under torch.profiler, the peer table for `npm run bench:profile`.

Run with Debian's interpreter (apt-get install python3-torch python3-torchvision):
  /usr/bin/python3 bench/torch_resnet50_profile.py --batch 16 --threads 2 --steps 3
The step is torch_resnet50_step.py's. After one warm-up step it times --steps plain steps, then
profiles --steps steps (forward, backward and update each in a record_function range) and prints
one JSON line: the plain step of median length with its phases, and the profiled step of median
length with its phases and each op's self CPU time (wall time on the calling thread, which waits
for the intra-op threads).
"""
import json
import time

from torch_resnet50_step import ALLOCATOR, setup  # first: it sets the allocator up before torch loads

import torch
from torch.profiler import ProfilerActivity, profile, record_function

args, model, optimizer, loss_fn, images, labels = setup()
PHASES = ("forward", "backward", "update")


def step():
    """One step; returns each phase's wall time in ms."""
    marks = [time.perf_counter()]
    with record_function("forward"):
        loss = loss_fn(model(images), labels)
    marks.append(time.perf_counter())
    with record_function("backward"):
        loss.backward()
    marks.append(time.perf_counter())
    with record_function("update"):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    return {p: (marks[i + 1] - marks[i]) * 1e3 for i, p in enumerate(PHASES)}


def profiled_step():
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        phases = step()
    events = prof.events()
    ranges = {e.name: e.time_range for e in events if e.name in PHASES}
    ops, op_ms = {}, {p: 0.0 for p in PHASES}
    for e in events:
        if e.name in PHASES:
            continue
        phase = next((p for p, r in ranges.items() if r.start <= e.time_range.start < r.end), None)
        ms = e.self_cpu_time_total / 1e3
        row = ops.setdefault(e.name, {"name": e.name, "calls": 0, "ms": 0.0})
        row["calls"] += 1
        row["ms"] += ms
        if phase is not None:
            op_ms[phase] += ms
    return {
        "wallMs": sum(phases.values()),
        "opsMs": sum(r["ms"] for r in ops.values()),
        "phases": {p: {"wallMs": phases[p], "opsMs": op_ms[p]} for p in PHASES},
        "ops": sorted(ops.values(), key=lambda r: -r["ms"]),
    }


step()  # warm-up
plain = sorted((step() for _ in range(args.steps)), key=lambda p: sum(p.values()))
profiled = sorted((profiled_step() for _ in range(args.steps)), key=lambda s: s["wallMs"])
print(json.dumps({
    "bench": "resnet50-profile",
    "peer": f"pytorch {torch.__version__}",
    "threads": args.threads,
    "batch": args.batch,
    "size": args.size,
    "allocator": ALLOCATOR,
    "plainStepMs": sum(plain[len(plain) // 2].values()),
    "plainPhasesMs": plain[len(plain) // 2],
    "profiledStepMs": [s["wallMs"] for s in profiled],
    **profiled[len(profiled) // 2],
}))
