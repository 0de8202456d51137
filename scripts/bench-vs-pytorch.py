#!/usr/bin/python3
"""PyTorch (oneDNN) side of the per-layer convolution benchmark: the layers of fmnist-cnn and lenet5
at batch 64 and 256, one thread, thread CPU time (as the C side),
each pass timed alone through aten.convolution_backward. Prints one
line per (layer, batch, pass): "torch LAYER N PASS GFLOPS SECONDS" with the same layer names as
tests/bench/bench_conv_simd.c, which reads these lines (scripts/bench-conv.sh joins the two)."""
import argparse
import statistics
import sys
import time

import torch

# name, C, O, input extent, kernel, padding (2-D, stride 1); fmnist-cnn then lenet5.
LAYERS = [
    ("fmnist.conv1", 1, 32, 28, 3, 1),
    ("fmnist.conv2", 32, 32, 28, 3, 1),
    ("fmnist.conv3", 32, 64, 14, 3, 1),
    ("fmnist.conv4", 64, 64, 14, 3, 1),
    ("lenet5.conv1", 1, 6, 28, 5, 2),
    ("lenet5.conv2", 6, 16, 14, 5, 0),
]


def median_time(fn, reps, min_seconds):
    fn()
    fn()
    times = []
    start = time.thread_time()
    while len(times) < reps or time.thread_time() - start < min_seconds:
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
        if len(times) >= 20 * reps:
            break
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--min-seconds", type=float, default=0.3)
    ap.add_argument("--only", default="", help="comma-separated layer names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    only = set(filter(None, args.only.split(",")))
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} "
          f"mkldnn={torch.backends.mkldnn.is_available()}", flush=True)
    for batch in [int(b) for b in args.batches.split(",")]:
        for name, c, o, s, k, p in LAYERS:
            if only and name not in only:
                continue
            x = torch.randn(batch, c, s, s)
            w = torch.randn(o, c, k, k) * 0.1
            b = torch.randn(o)
            y = torch.nn.functional.conv2d(x, w, b, padding=p)
            dy = torch.randn_like(y)
            flops = 2.0 * batch * o * y.shape[2] * y.shape[3] * c * k * k
            conv_bwd = torch.ops.aten.convolution_backward

            def fwd():
                torch.nn.functional.conv2d(x, w, b, padding=p)

            def bwd(mask):
                return lambda: conv_bwd(dy, x, w, [o], [1, 1], [p, p], [1, 1], False, [0, 0],
                                        1, mask)

            with torch.no_grad():
                for pas, fn in (("fwd", fwd), ("bwd_data", bwd([True, False, False])),
                                ("bwd_weight", bwd([False, True, True]))):
                    t = median_time(fn, args.reps, args.min_seconds)
                    print(f"torch {name} {batch} {pas} {flops / t / 1e9:.2f} {t:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
