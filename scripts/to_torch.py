#!/usr/bin/env python3
"""Export a dptrain checkpoint to PyTorch (issue 12 item 10).

    scripts/to_torch.py CKPT.h5 [--data fashion-mnist|DIR|FILE.h5] [--split test|train]
                                [--save MODEL.pt] [--device cpu]

Builds the torch.nn.Sequential equivalent of the checkpoint from the checkpoint alone: the root
attribute model_spec (the grammar of src/nn/model_spec.c), /input_shape, /params/NN_kind/{weight,
bias} and /buffers/NN_batchnorm*/{running_mean,running_var}. With --data it evaluates the model
in eval mode on that data with the checkpoint's normalization applied exactly as dptrain does
(uint8 / 255 in float32, then (x - mean) / std in double, rounded to float32) and prints
`test accuracy X.XXXX (loss Y.YYYY) on N samples` like `dptrain eval`. With --save it writes the
module with torch.save. Needs h5py, numpy and torch. A user tool, not a test dependency.
"""
import argparse
import gzip
import os
import re
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def fail(msg):
    sys.exit("to_torch: error: " + msg)


# ---- the spec grammar (src/nn/model_spec.c) ----

def tokenize(spec):
    """'conv2d(32,3,pad=1) bn relu' -> [('conv2d', ['32', '3'], {'pad': '1'}), ...]."""
    out = []
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)(?:\(([^)]*)\))?", spec):
        name, inner = m.group(1), m.group(2)
        pos, kw = [], {}
        for a in (inner.split(",") if inner and inner.strip() else []):
            a = a.strip()
            if "=" in a:
                k, v = a.split("=", 1)
                kw[k.strip()] = v.strip()
            else:
                pos.append(a)
        out.append((name, pos, kw))
    return out


def arg(pos, kw, i, key, default):
    if key in kw:
        return kw[key]
    if i is not None and i < len(pos):
        return pos[i]
    return default


def dims_of(text, dims):
    """'3' or '3x5' (one value per spatial dimension) -> a tuple of `dims` ints."""
    v = [int(p) for p in str(text).split("x")]
    if len(v) == 1:
        v = v * dims
    if len(v) != dims:
        fail(f"'{text}' needs {dims} values joined by 'x'")
    return tuple(v)


ACTS = {"relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu"}


def build(spec, input_shape, n_classes, params, buffers):
    """nn.Sequential for `spec` on samples of shape input_shape (C, L) / (C, H, W) / (C, D, H, W).
    params[i], buffers[i]: dicts of arrays for layer index i (as stored in the checkpoint)."""
    layers = []
    shape = tuple(int(s) for s in input_shape)
    for i, (name, pos, kw) in enumerate(tokenize(spec)):
        p, b = params.get(i, {}), buffers.get(i, {})
        m = re.fullmatch(r"(conv|maxpool|avgpool|batchnorm)([123])d", name)
        base, nd = (m.group(1), int(m.group(2))) if m else (name, len(shape) - 1)
        if base == "bn":
            base = "batchnorm"
        if base == "conv":
            O = int(arg(pos, kw, 0, "out", 0))
            k = dims_of(arg(pos, kw, 1, "k", 1), nd)
            stride = dims_of(arg(pos, kw, None, "stride", 1), nd)
            pad = dims_of(arg(pos, kw, None, "pad", 0), nd)
            dil = dims_of(arg(pos, kw, None, "dilation", 1), nd)
            groups = int(arg(pos, kw, None, "groups", 1))
            bias = int(arg(pos, kw, None, "bias", 1)) != 0
            cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
            layer = cls(shape[0], O, k, stride=stride, padding=pad, dilation=dil, groups=groups,
                        bias=bias)
            load(layer, p, i, name)
            sp = [(n + 2 * pd - d * (kk - 1) - 1) // s + 1
                  for n, kk, s, pd, d in zip(shape[1:], k, stride, pad, dil)]
            shape = (O, *sp)
        elif base in ("maxpool", "avgpool"):
            k = dims_of(arg(pos, kw, 0, "k", 1), nd)
            stride = dims_of(arg(pos, kw, None, "stride", "x".join(map(str, k))), nd)
            pad = dims_of(arg(pos, kw, None, "pad", 0), nd)
            if base == "maxpool":
                cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd]
                layer = cls(k, stride=stride, padding=pad)
            else:
                cip = int(arg(pos, kw, None, "count_include_pad", 1)) != 0
                cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[nd]
                layer = cls(k, stride=stride, padding=pad, count_include_pad=cip)
            sp = [(n + 2 * pd - kk) // s + 1 for n, kk, s, pd in zip(shape[1:], k, stride, pad)]
            shape = (shape[0], *sp)
        elif base == "batchnorm":
            C = shape[0]
            eps = float(arg(pos, kw, None, "eps", 1e-5))
            mom = float(arg(pos, kw, None, "momentum", 0.1))
            # batchnorm1d on (N, C, L) and on (N, C) (after flatten) are both BatchNorm1d
            cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[max(nd, 1)]
            layer = cls(C, eps=eps, momentum=mom)
            load(layer, p, i, name)
            with torch.no_grad():
                layer.running_mean.copy_(torch.from_numpy(b["running_mean"]).float())
                layer.running_var.copy_(torch.from_numpy(b["running_var"]).float())
        elif base == "dense":
            text = arg(pos, kw, 0, "out", "")
            O = n_classes if text == "classes" else int(text)
            bias = int(arg(pos, kw, None, "bias", 1)) != 0
            fan_in = int(np.prod(shape))
            layer = nn.Linear(fan_in, O, bias=bias)
            if len(shape) > 1:
                layers.append(nn.Flatten())
            load(layer, p, i, name)
            shape = (O,)
        elif base == "flatten":
            layer = nn.Flatten()
            shape = (int(np.prod(shape)),)
        elif base == "dropout":
            layer = nn.Dropout(float(arg(pos, kw, 0, "p", 0.5)))
        elif base in ACTS:
            if base == "relu":
                layer = nn.ReLU()
            elif base == "leaky_relu":
                layer = nn.LeakyReLU(float(arg(pos, kw, 0, "slope", 0.01)))
            elif base == "elu":
                layer = nn.ELU(float(arg(pos, kw, 0, "alpha", 1.0)))
            elif base == "gelu":
                layer = nn.GELU()  # exact (erf) gelu, as src/kernels/activation.c
            elif base == "tanh":
                layer = nn.Tanh()
            else:
                layer = nn.Sigmoid()
        else:
            fail(f"model spec: layer {i} \"{name}\" is not known to this exporter")
        layers.append(layer)
    return nn.Sequential(*layers)


def load(layer, p, i, name):
    with torch.no_grad():
        for key in ("weight", "bias"):
            t = getattr(layer, key, None)
            if t is None:
                continue
            if key not in p:
                fail(f"/params/{i:02d}_{name}/{key} is missing")
            a = torch.from_numpy(np.asarray(p[key], dtype=np.float32))
            if tuple(a.shape) != tuple(t.shape):
                fail(f"/params/{i:02d}_{name}/{key} has shape {tuple(a.shape)}, "
                     f"torch wants {tuple(t.shape)}")
            t.copy_(a)


def read_checkpoint(path):
    with h5py.File(path, "r") as f:
        spec = f.attrs["model_spec"]
        spec = spec.decode() if isinstance(spec, bytes) else str(spec)
        input_shape = [int(v) for v in f["input_shape"][()]]
        params, buffers = {}, {}
        for group, out in (("params", params), ("buffers", buffers)):
            if group not in f:
                continue
            for key in f[group]:
                idx = int(key.split("_", 1)[0])
                out[idx] = {k: np.asarray(v[()]) for k, v in f[group][key].items()}
        mean = np.asarray(f["data/norm_mean"][()], dtype=np.float64)
        std = np.asarray(f["data/norm_std"][()], dtype=np.float64)
    # the class count is the width of the last dense layer's weight
    last = max((i for i, p in params.items() if "weight" in p and p["weight"].ndim == 2),
               default=None)
    n_classes = int(params[last]["weight"].shape[0]) if last is not None else 0
    return spec, input_shape, n_classes, params, buffers, mean, std


# ---- data, as src/data reads it ----

def read_idx(path):
    op = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with op(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    nd = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    body = raw[4 + 4 * nd:]
    if magic >> 8 == 0x08:
        return np.frombuffer(body, np.uint8).reshape(dims)
    if magic >> 8 == 0x0D:
        return np.frombuffer(body, ">f4").astype(np.float32).reshape(dims)
    fail(f"{path}: IDX type 0x{(magic >> 8) & 0xFF:02X} is not supported")


def find_idx(d, prefixes, kind):
    for p in prefixes:
        for s in (".gz", ""):
            path = os.path.join(d, f"{p}-{kind}-ubyte{s}")
            if os.path.exists(path):
                return path
    fail(f"{d}: no {prefixes[0]}-{kind}-ubyte[.gz]")


def load_data(spec, split):
    if spec in ("fashion-mnist", "sample"):
        spec = FASHION_MNIST_DIR if spec == "fashion-mnist" else os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "datasets", "fashion-mnist-sample")
    if os.path.isdir(spec):
        prefixes = ["train"] if split == "train" else ["t10k", "test"]
        x = read_idx(find_idx(spec, prefixes, "images-idx3"))
        y = read_idx(find_idx(spec, prefixes, "labels-idx1")).astype(np.int64)
        x = x[:, None]  # (N, 1, H, W)
    else:
        with h5py.File(spec, "r") as f:
            x = f[f"{split}/x"][()]
            y = f[f"{split}/y"][()].astype(np.int64)
            layout = f[f"{split}/x"].attrs.get("layout", b"")
            layout = layout.decode() if isinstance(layout, bytes) else str(layout)
        if x.ndim == 3 and layout != "NCL":
            x = x[:, None]
    # uint8 -> float32 b / 255, as idx.c and hdf5_dataset.c
    x = x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.astype(np.float32)
    return x, y


def normalize(x, mean, std):
    """(x - mean[c]) / std[c] in double, rounded to float32 (dpt_dataset_normalize)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    sd = np.where(std > 0, std, 1.0)
    return ((x.astype(np.float64) - mean.reshape(shape)) / sd.reshape(shape)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", help="fashion-mnist, sample, a directory of IDX files or an .h5")
    ap.add_argument("--split", default="test", choices=("test", "train"))
    ap.add_argument("--save", help="write the torch module here (torch.save)")
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()

    torch.set_grad_enabled(False)
    spec, input_shape, K, params, buffers, mean, std = read_checkpoint(args.checkpoint)
    model = build(spec, input_shape, K, params, buffers).eval()
    print(model if not args.data else f"model: {spec}", file=sys.stderr)
    if args.save:
        torch.save(model, args.save)
    if not args.data:
        return
    x, y = load_data(args.data, args.split)
    if list(x.shape[1:]) != input_shape:
        fail(f"{args.data}: samples are {list(x.shape[1:])}, the model takes {input_shape}")
    x = normalize(x, mean, std)
    correct, loss_sum = 0, 0.0
    for s in range(0, len(x), args.batch):
        xb = torch.from_numpy(x[s:s + args.batch])
        yb = torch.from_numpy(y[s:s + args.batch])
        logits = model(xb)
        loss_sum += float(F.cross_entropy(logits.double(), yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    n = len(x)
    print(f"{args.split} accuracy {correct / n:.4f} (loss {loss_sum / n:.4f}) on {n} samples")


if __name__ == "__main__":
    main()
