# torch.distributed Gloo all-reduce on loopback, same sizes and rank counts as allreduce.ts.
# Usage: python3 allreduce_gloo.py <ranks> <port> <bytes,bytes,...> <iters>; prints JSON per-rank
# wall-clock and CPU times (the process's, its Gloo threads included).
import json
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, n, port, sizes, iters, queue):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=n)
    times = {}
    cpu = {}
    rounds = 5
    warmup = 5  # untimed, as nccl-tests' default -w 5
    for nbytes in sizes:
        buf = torch.empty(nbytes // 4, dtype=torch.float32)
        count = max(3, min(iters, round(2e8 / nbytes)))
        # Checked once; then zeros, so that back-to-back sums stay finite.
        buf.fill_(1)
        dist.all_reduce(buf)
        assert buf[0].item() == n and buf[-1].item() == n
        buf.fill_(0)
        for _ in range(warmup):
            dist.all_reduce(buf)
        t = []
        c = []
        # Like nccl-tests: each round times `count` all-reduces back to back after one barrier.
        for _ in range(rounds):
            dist.barrier()
            c0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(count):
                dist.all_reduce(buf)
            t.append((time.perf_counter() - t0) * 1e3 / count)
            c.append((time.process_time() - c0) * 1e3 / count)
        times[str(nbytes)] = t
        cpu[str(nbytes)] = c
    queue.put((rank, {'ms': times, 'cpu': cpu}))
    dist.destroy_process_group()


if __name__ == '__main__':
    n, port, sizes, iters = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    sizes = [int(s) for s in sizes.split(',')]
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, n, port, sizes, iters, queue)) for r in range(n)]
    for p in procs:
        p.start()
    results = dict(queue.get() for _ in range(n))
    for p in procs:
        p.join()
    print(json.dumps([results[r] for r in range(n)]))
