#!/usr/bin/python3
"""Writes a synthetic dataset in dptrain's HDF5 format (datasets/README.md), as large as asked,
for `dptrain train --data FILE --stream` (docs/streaming.md): /train/x (N, H, W) or (N, C, H, W)
uint8, chunked along N (optionally deflated), /train/y int64 labels, /test/x and /test/y the same
way, and the root attribute n_classes. Each image is its class's pattern plus noise, so a model
learns something. Written a block of chunks at a time: memory stays small whatever N is.

Usage: /usr/bin/python3 scripts/make-synthetic-h5.py OUT N [--test M] [--size 28] [--channels 1]
          [--classes 10] [--chunk-rows 1024] [--deflate LEVEL] [--seed S]
Needs Debian's python3-h5py and python3-numpy; never used by the build or the tests (they use
tests/tools/make_stream_h5.c).
"""
import argparse
import sys

import h5py
import numpy as np


def write_split(f, name, n, args, rng, patterns):
    shape = (n, args.size, args.size) if args.channels == 1 else \
        (n, args.channels, args.size, args.size)
    chunk = (min(args.chunk_rows, n),) + shape[1:]
    g = f.create_group(name)
    x = g.create_dataset("x", shape=shape, dtype="uint8", chunks=chunk,
                         compression="gzip" if args.deflate else None,
                         compression_opts=args.deflate or None)
    y = g.create_dataset("y", shape=(n,), dtype="int64")
    block = max(1, (64 << 20) // max(1, int(np.prod(shape[1:])))) // chunk[0] * chunk[0]
    block = max(block, chunk[0])
    for start in range(0, n, block):
        stop = min(n, start + block)
        labels = rng.integers(0, args.classes, size=stop - start)
        noise = rng.integers(0, 96, size=(stop - start,) + shape[1:], dtype=np.int16)
        x[start:stop] = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
        y[start:stop] = labels
        print(f"\r{name}: {stop}/{n}", end="", file=sys.stderr)
    print(file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("n", type=int, help="training samples")
    p.add_argument("--test", type=int, default=1000, help="test samples [1000]")
    p.add_argument("--size", type=int, default=28, help="image side [28]")
    p.add_argument("--channels", type=int, default=1, help="channels [1]")
    p.add_argument("--classes", type=int, default=10, help="classes [10]")
    p.add_argument("--chunk-rows", type=int, default=1024, help="samples per chunk [1024]")
    p.add_argument("--deflate", type=int, default=0, help="gzip level 1-9 [0: none]")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if min(args.n, args.test, args.size, args.channels, args.chunk_rows) < 1 or args.classes < 2:
        p.error("counts and sizes must be >= 1, classes >= 2")
    rng = np.random.default_rng(args.seed)
    sample = (args.size, args.size) if args.channels == 1 else (args.channels, args.size, args.size)
    patterns = rng.integers(0, 160, size=(args.classes,) + sample, dtype=np.int16)  # both splits
    with h5py.File(args.out, "w") as f:
        f.attrs["n_classes"] = np.int64(args.classes)
        write_split(f, "train", args.n, args, rng, patterns)
        write_split(f, "test", args.test, args, rng, patterns)


if __name__ == "__main__":
    main()
