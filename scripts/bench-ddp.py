#!/usr/bin/env python3
"""PyTorch DDP (gloo) baseline for scripts/bench-scaling.sh: the same model trained data-parallel
with one thread per process (or --threads T), images/s as the median of several timed windows.

Usage: python3 scripts/bench-ddp.py --model fmnist-cnn|lenet5 --ranks R --batch PER_RANK
          [--threads T] [--steps N] [--warmup W] [--windows K]
Prints one line: "pytorch-ddp MODEL ranks=R batch=B images/s=X".
Needs only Debian's python3-torch; never used by the build or the tests.
"""
import argparse
import os
import statistics
import sys
import time


def make_model(name, nn):
    if name == "fmnist-cnn":  # the dptrain preset, layer for layer
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(128, 10))
    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10))
    raise SystemExit(f"bench-ddp.py: error: unknown model {name}")


def worker(rank, args, port, out):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    torch.set_num_threads(args.threads)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    torch.manual_seed(1)
    model = make_model(args.model, nn)
    ddp = nn.parallel.DistributedDataParallel(model) if args.ranks > 1 else model
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(args.batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(ddp(x), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    rates = []
    for _ in range(args.windows):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        dist.barrier()
        rates.append(args.steps * args.batch * args.ranks / (time.perf_counter() - t0))
    if rank == 0:
        out.put(statistics.median(rates))
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="fmnist-cnn")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--windows", type=int, default=5)
    args = p.parse_args()
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=worker, args=(r, args, port, out)) for r in range(args.ranks)]
    for pr in procs:
        pr.start()
    rate = out.get()
    for pr in procs:
        pr.join()
    print(f"pytorch-ddp {args.model} ranks={args.ranks} threads={args.threads} batch={args.batch} "
          f"images/s={rate:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
