#!/usr/bin/env python3
"""Cut the bundled Fashion-MNIST sample out of the Debian package's IDX files.

Writes the first N_TRAIN training and N_TEST test images (and their labels) as IDX .gz files
into datasets/fashion-mnist-sample/. Only the standard library is used; the gzip header
carries no file name and mtime 0, so reruns give byte-identical files.

    python3 datasets/make_sample.py [SOURCE_DIR [OUT_DIR]]
"""
import gzip
import os
import struct
import sys

N_TRAIN = 3000
N_TEST = 1000
FILES = [
    ("train-images-idx3-ubyte.gz", 0x00000803, N_TRAIN),
    ("train-labels-idx1-ubyte.gz", 0x00000801, N_TRAIN),
    ("t10k-images-idx3-ubyte.gz", 0x00000803, N_TEST),
    ("t10k-labels-idx1-ubyte.gz", 0x00000801, N_TEST),
]


def cut(src, dst, magic, count):
    with gzip.open(src, "rb") as f:
        got = struct.unpack(">I", f.read(4))[0]
        if got != magic:
            sys.exit(f"{src}: bad magic 0x{got:08x} (expected 0x{magic:08x})")
        ndim = magic & 0xFF
        dims = list(struct.unpack(">" + "I" * ndim, f.read(4 * ndim)))
        if dims[0] < count:
            sys.exit(f"{src}: only {dims[0]} items, need {count}")
        item = 1
        for d in dims[1:]:
            item *= d
        body = f.read(count * item)
        if len(body) != count * item:
            sys.exit(f"{src}: truncated")
    dims[0] = count
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * ndim, *dims)
    with open(dst, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as g:
            g.write(header + body)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "fashion-mnist-sample")
    os.makedirs(out_dir, exist_ok=True)
    for name, magic, count in FILES:
        src = os.path.join(src_dir, name)
        if not os.path.exists(src):
            sys.exit(f"{src}: not found; install it with `apt-get install dataset-fashion-mnist`"
                     " (see datasets/fetch.sh)")
        cut(src, os.path.join(out_dir, name), magic, count)
        print(f"{os.path.join(out_dir, name)}: {count} items")


if __name__ == "__main__":
    main()
