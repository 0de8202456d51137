#!/usr/bin/python3
"""Writes tests/reference/*.h5: the project's own PyTorch reference vectors for the golden runner
(tests/golden), in the file format of ../shared/golden/README.md (format_version 1), written from
that specification alone. They are a second set, independent of ../shared/golden: other shapes,
other seeds, another generator.

Every operand is drawn in float32 from a fixed seed; every reference is computed by PyTorch itself
in float64 from the exactly upcast operands (torch.nn.functional for the kernels, autograd for
every gradient, torch.optim for the optimizer trajectories, torch.nn modules for the model step).

Run by hand from the repository root with Debian's python3-torch and python3-h5py:
    /usr/bin/python3 tests/reference/make_reference.py
It prints the torch version and one line per file. Deterministic (fixed seeds, one thread). The
tests never run Python.
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)))
GENERATOR = "make_reference.py"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
D = torch.float64


# ---- HDF5 writing (README §1) ---------------------------------------------------------------

def put_str(obj, name, s):
    """Fixed-length, NUL-terminated ASCII string attribute with a scalar dataspace."""
    b = s.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(b) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    aid = h5py.h5a.create(obj.id, name.encode("ascii"), tid, space)
    aid.write(np.array(b, dtype="S%d" % (len(b) + 1)))


def put_int(obj, name, v):
    obj.attrs.create(name, np.int32(v), dtype="<i4")


def put_ints(obj, name, vs):
    obj.attrs.create(name, np.asarray(list(vs), dtype="<i4"), dtype="<i4")


def put_f64(obj, name, v):
    obj.attrs.create(name, np.float64(v), dtype="<f8")


def put_f64s(obj, name, vs):
    obj.attrs.create(name, np.asarray(list(vs), dtype="<f8"), dtype="<f8")


def ds_in(g, name, t):
    """An operand: float32 (or int32 for labels), contiguous, no filters."""
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    if a.dtype.kind == "i":
        g.create_dataset(name, data=a.astype("<i4"), dtype="<i4")
    else:
        assert a.dtype == np.float32, (name, a.dtype)
        g.create_dataset(name, data=a, dtype="<f4")


def ds_ref(g, name, t):
    """A reference: float64; rank 0 for a scalar."""
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    a = np.asarray(a, dtype=np.float64)
    assert np.all(np.isfinite(a)), name
    g.create_dataset(name, data=a, dtype="<f8")


class H5Out:
    """One output file: root attributes, then case_000, case_001, ... in order."""

    def __init__(self, kind):
        self.kind = kind
        self.path = os.path.join(OUT, kind + ".h5")
        self.f = h5py.File(self.path, "w", libver="earliest")
        self.n = 0
        self.ops = {}
        self.seed = 1000 * (1 + sorted(FILES).index(kind))

    def case(self, op, desc):
        """A new case group with op, desc and seed set; seeds torch's RNG with that seed."""
        g = self.f.create_group("case_%03d" % self.n)
        seed = self.seed + self.n
        self.n += 1
        self.ops[op] = self.ops.get(op, 0) + 1
        put_str(g, "op", op)
        put_str(g, "desc", desc)
        put_int(g, "seed", seed)
        torch.manual_seed(seed)
        return g

    def close(self):
        r = self.f
        put_str(r, "generator", GENERATOR)
        put_str(r, "torch_version", torch.__version__)
        put_int(r, "format_version", 1)
        put_str(r, "kind", self.kind)
        put_int(r, "num_cases", self.n)
        put_str(r, "reference_dtype", "float64")
        r.close()
        ops = ", ".join("%s %d" % kv for kv in self.ops.items())
        print("%-15s %3d cases %7d bytes  (%s)" % (self.kind + ".h5", self.n,
                                                  os.path.getsize(self.path), ops))


FILES = ["conv", "pool", "dense", "norm", "act", "loss", "optim", "model_step"]


def randn(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def grads_of(out, dy, inputs):
    """(d<out, dy>/d input) for each input, by autograd in float64."""
    return torch.autograd.grad(out, inputs, grad_outputs=dy.to(D), allow_unused=False)


# ---- conv.h5 (README §4.1) ------------------------------------------------------------------

def conv_case(h, nd, N, C, O, S, K, stride, pad, dil, groups, bias):
    desc = "conv%dd N=%d C=%d->%d in=%s k=%s s=%s p=%s d=%s g=%d bias=%d" % (
        nd, N, C, O, "x".join(map(str, S)), "x".join(map(str, K)), list(stride), list(pad),
        list(dil), groups, int(bias))
    g = h.case("conv%dd" % nd, desc)
    x = randn(N, C, *S)
    w = randn(O, C // groups, *K, scale=(C // groups * np.prod(K)) ** -0.5)
    b = randn(O, scale=0.5) if bias else None
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    xd, wd = x.to(D).requires_grad_(), w.to(D).requires_grad_()
    bd = b.to(D).requires_grad_() if bias else None
    y = fn(xd, wd, bd, stride=stride, padding=pad, dilation=dil, groups=groups)
    dy = randn(*y.shape)
    grads = grads_of(y, dy, [xd, wd] + ([bd] if bias else []))
    put_ints(g, "stride", stride)
    put_ints(g, "padding", pad)
    put_ints(g, "dilation", dil)
    put_int(g, "groups", groups)
    put_int(g, "has_bias", int(bias))
    ds_in(g, "x", x)
    ds_in(g, "w", w)
    if bias:
        ds_in(g, "b", b)
    ds_in(g, "dy", dy)
    ds_ref(g, "y", y)
    ds_ref(g, "dx", grads[0])
    ds_ref(g, "dw", grads[1])
    if bias:
        ds_ref(g, "db", grads[2])


def make_conv():
    h = H5Out("conv")
    conv_case(h, 1, 2, 3, 4, [11], [3], [1], [1], [1], 1, True)
    conv_case(h, 1, 1, 4, 6, [13], [5], [2], [2], [1], 2, False)
    conv_case(h, 1, 2, 2, 3, [12], [3], [1], [2], [2], 1, True)
    conv_case(h, 2, 2, 3, 5, [6, 6], [3, 3], [1, 1], [1, 1], [1, 1], 1, True)
    conv_case(h, 2, 1, 4, 6, [9, 8], [3, 3], [2, 2], [1, 1], [1, 1], 1, True)
    conv_case(h, 2, 1, 6, 8, [5, 5], [1, 1], [1, 1], [0, 0], [1, 1], 1, False)
    conv_case(h, 2, 1, 4, 6, [8, 8], [3, 3], [1, 1], [2, 2], [2, 2], 2, True)
    conv_case(h, 2, 2, 2, 3, [8, 7], [5, 5], [1, 1], [0, 1], [1, 1], 1, True)
    conv_case(h, 2, 2, 3, 4, [6, 7], [3, 2], [1, 2], [1, 0], [1, 1], 1, False)
    conv_case(h, 2, 1, 5, 17, [5, 5], [3, 3], [1, 1], [1, 1], [1, 1], 1, True)
    conv_case(h, 3, 1, 2, 3, [5, 5, 5], [3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1], 1, True)
    conv_case(h, 3, 2, 2, 3, [5, 4, 4], [3, 3, 3], [2, 2, 2], [1, 1, 1], [1, 1, 1], 1, False)
    conv_case(h, 3, 1, 4, 4, [5, 5, 4], [2, 2, 2], [1, 1, 1], [0, 0, 1], [2, 2, 2], 2, True)
    h.close()


# ---- pool.h5 (README §4.2) ------------------------------------------------------------------

def pool_case(h, kind, nd, N, C, S, K, stride, pad, cip=None):
    op = "%spool%dd" % (kind, nd)
    desc = "%s N=%d C=%d in=%s k=%s s=%s p=%s" % (op, N, C, "x".join(map(str, S)), list(K),
                                                  list(stride), list(pad))
    if kind == "avg":
        desc += " count_include_pad=%d" % cip
    g = h.case(op, desc)
    n = N * C * int(np.prod(S))
    if kind == "max":   # pairwise distinct values: the argmax is unique
        x = ((torch.randperm(n).float() - n / 2) / 16.0).reshape(N, C, *S).float()
    else:
        x = randn(N, C, *S)
    xd = x.to(D).requires_grad_()
    if kind == "max":
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
        y = fn(xd, K, stride, pad)
    else:
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        y = fn(xd, K, stride, pad, count_include_pad=bool(cip))
    dy = randn(*y.shape)
    (dx,) = grads_of(y, dy, [xd])
    put_ints(g, "kernel", K)
    put_ints(g, "stride", stride)
    put_ints(g, "padding", pad)
    if kind == "avg":
        put_int(g, "count_include_pad", cip)
    ds_in(g, "x", x)
    ds_in(g, "dy", dy)
    ds_ref(g, "y", y)
    ds_ref(g, "dx", dx)


def make_pool():
    h = H5Out("pool")
    pool_case(h, "max", 1, 2, 3, [11], [3], [2], [1])
    pool_case(h, "max", 2, 2, 3, [6, 7], [2, 2], [2, 2], [0, 0])
    pool_case(h, "max", 2, 1, 3, [7, 9], [3, 3], [2, 2], [1, 1])
    pool_case(h, "max", 2, 2, 2, [5, 5], [3, 2], [1, 1], [0, 1])
    pool_case(h, "max", 3, 1, 2, [5, 5, 4], [3, 3, 2], [2, 2, 2], [1, 1, 0])
    pool_case(h, "avg", 1, 2, 3, [11], [2], [2], [0], 1)
    pool_case(h, "avg", 1, 1, 2, [10], [3], [2], [1], 0)
    pool_case(h, "avg", 2, 1, 3, [7, 9], [3, 3], [2, 2], [1, 1], 1)
    pool_case(h, "avg", 2, 1, 3, [7, 9], [3, 3], [2, 2], [1, 1], 0)
    pool_case(h, "avg", 2, 2, 2, [5, 5], [3, 2], [1, 1], [1, 1], 0)
    pool_case(h, "avg", 3, 1, 2, [4, 5, 4], [2, 2, 2], [2, 2, 2], [0, 0, 0], 1)
    pool_case(h, "avg", 3, 1, 2, [5, 5, 5], [3, 3, 3], [2, 2, 2], [1, 1, 1], 0)
    h.close()


# ---- dense.h5 (README §4.3) -----------------------------------------------------------------

def dense_case(h, N, I, O):
    g = h.case("dense", "dense N=%d in=%d out=%d" % (N, I, O))
    x = randn(N, I)
    w = randn(O, I, scale=I ** -0.5)
    b = randn(O, scale=0.5)
    xd, wd, bd = (t.to(D).requires_grad_() for t in (x, w, b))
    y = F.linear(xd, wd, bd)
    dy = randn(N, O)
    dx, dw, db = grads_of(y, dy, [xd, wd, bd])
    for name, t in (("x", x), ("w", w), ("b", b), ("dy", dy)):
        ds_in(g, name, t)
    for name, t in (("y", y), ("dx", dx), ("dw", dw), ("db", db)):
        ds_ref(g, name, t)


def make_dense():
    h = H5Out("dense")
    dense_case(h, 1, 5, 3)
    dense_case(h, 3, 17, 9)
    dense_case(h, 6, 33, 20)
    dense_case(h, 2, 130, 7)
    h.close()


# ---- norm.h5 (README §4.4) ------------------------------------------------------------------

def bn_case(h, shape, training, eps=1e-5, momentum=0.1, shift=0.0):
    C = shape[1]
    desc = "batchnorm %s x=%s eps=%g momentum=%g" % ("train" if training else "eval",
                                                     "x".join(map(str, shape)), eps, momentum)
    if shift:
        desc += " mean-shift=%g" % shift
    g = h.case("batchnorm", desc)
    x = (randn(*shape) * 1.5 + shift).float()
    gamma = (1.0 + randn(C, scale=0.3)).float()
    beta = randn(C, scale=0.3)
    rm = randn(C, scale=0.5)
    rv = (0.5 + torch.rand(C)).float()
    put_int(g, "training", int(training))
    put_f64(g, "eps", eps)
    put_f64(g, "momentum", momentum)
    ds_in(g, "x", x)
    ds_in(g, "gamma", gamma)
    ds_in(g, "beta", beta)
    ds_in(g, "running_mean_in", rm)
    ds_in(g, "running_var_in", rv)
    rmd, rvd = rm.to(D).clone(), rv.to(D).clone()
    xd, gd, bd = (t.to(D).requires_grad_() for t in (x, gamma, beta))
    y = F.batch_norm(xd, rmd, rvd, gd, bd, training=bool(training), momentum=momentum, eps=eps)
    if training:
        dy = randn(*shape)
        dx, dgamma, dbeta = grads_of(y, dy, [xd, gd, bd])
        ds_in(g, "dy", dy)
        ds_ref(g, "y", y)
        ds_ref(g, "running_mean_out", rmd)
        ds_ref(g, "running_var_out", rvd)
        ds_ref(g, "dx", dx)
        ds_ref(g, "dgamma", dgamma)
        ds_ref(g, "dbeta", dbeta)
    else:
        ds_ref(g, "y_eval", y)


def make_norm():
    h = H5Out("norm")
    bn_case(h, (6, 5), True)
    bn_case(h, (2, 3), True)
    bn_case(h, (3, 4, 7), True)
    bn_case(h, (2, 3, 5, 4), True)
    bn_case(h, (3, 2, 3, 3), True, eps=1e-3, momentum=0.01, shift=20.0)
    bn_case(h, (2, 2, 3, 3, 4), True)
    bn_case(h, (6, 5), False)
    bn_case(h, (2, 3, 4, 4), False, eps=1e-3)
    h.close()


# ---- act.h5 (README §4.5) -------------------------------------------------------------------

def act_case(h, op, shape, scale, param=None, zeros=0):
    desc = "%s x=%s scale=%g" % (op, "x".join(map(str, shape)), scale)
    if param is not None:
        desc += " %s=%g" % param
    if zeros:
        desc += " exact-zeros=%d" % zeros
    g = h.case(op, desc)
    x = randn(*shape, scale=scale)
    if zeros:   # f'(0) is the x <= 0 branch (README §4.5)
        x.view(-1)[torch.randperm(x.numel())[:zeros]] = 0.0
    dy = randn(*shape)
    xd = x.to(D).requires_grad_()
    if op == "relu":
        y = F.relu(xd)
    elif op == "leaky_relu":
        y = F.leaky_relu(xd, param[1])
    elif op == "sigmoid":
        y = torch.sigmoid(xd)
    elif op == "tanh":
        y = torch.tanh(xd)
    elif op == "elu":
        y = F.elu(xd, param[1])
    elif op == "gelu":
        y = F.gelu(xd, approximate="none")
    elif op == "softmax":
        y = F.softmax(xd, dim=1)
    (dx,) = grads_of(y, dy, [xd])
    if param is not None:
        put_f64(g, param[0], param[1])
    if op == "gelu":
        put_str(g, "approximate", "none")
    if op == "softmax":
        put_int(g, "dim", 1)
    ds_in(g, "x", x)
    ds_in(g, "dy", dy)
    ds_ref(g, "y", y)
    ds_ref(g, "dx", dx)


def make_act():
    h = H5Out("act")
    act_case(h, "relu", (3, 11), 1, zeros=3)
    act_case(h, "relu", (2, 3, 3, 4), 1)
    act_case(h, "leaky_relu", (3, 11), 1, ("slope", 0.01), zeros=3)
    act_case(h, "leaky_relu", (2, 3, 5), 2, ("slope", 0.25))
    act_case(h, "sigmoid", (3, 11), 4)
    act_case(h, "tanh", (3, 11), 2)
    act_case(h, "elu", (3, 11), 2, ("alpha", 1.0))
    act_case(h, "elu", (2, 3, 2, 3), 2, ("alpha", 0.5))
    act_case(h, "gelu", (3, 11), 3)
    act_case(h, "softmax", (3, 10), 2)
    act_case(h, "softmax", (2, 6, 3), 60)   # overflows float32 without the max subtracted
    act_case(h, "softmax", (2, 5, 2, 3), 2)
    h.close()


# ---- loss.h5 (README §4.6) ------------------------------------------------------------------

def ce_case(h, N, K, ls, scale=1.0):
    g = h.case("cross_entropy", "cross_entropy N=%d K=%d label_smoothing=%g scale=%g" %
               (N, K, ls, scale))
    logits = randn(N, K, scale=scale)
    labels = torch.randint(0, K, (N,), dtype=torch.int32)
    ld = logits.to(D).requires_grad_()
    loss = F.cross_entropy(ld, labels.long(), reduction="mean", label_smoothing=ls)
    (dl,) = torch.autograd.grad(loss, [ld])
    put_str(g, "reduction", "mean")
    put_f64(g, "label_smoothing", ls)
    ds_in(g, "logits", logits)
    ds_in(g, "labels", labels)
    ds_ref(g, "loss", loss)
    ds_ref(g, "dlogits", dl)


def soft_ce_case(h, N, K, kind):
    g = h.case("soft_cross_entropy", "soft_cross_entropy N=%d K=%d %s" % (N, K, kind))
    logits = randn(N, K, scale=2.0)
    if kind == "mixup":
        lam = torch.rand(N, 1, dtype=D)
        a, b = torch.randint(0, K, (N,)), torch.randint(0, K, (N,))
        t = lam * F.one_hot(a, K).to(D) + (1 - lam) * F.one_hot(b, K).to(D)
    else:
        t = torch.softmax(torch.randn(N, K, dtype=D) * 2, dim=1)
    t = t.float()       # the stored operand; rows sum to 1 up to float32 rounding
    ld = logits.to(D).requires_grad_()
    loss = F.cross_entropy(ld, t.to(D), reduction="mean")
    (dl,) = torch.autograd.grad(loss, [ld])
    put_str(g, "reduction", "mean")
    ds_in(g, "logits", logits)
    ds_in(g, "target_probs", t)
    ds_ref(g, "loss", loss)
    ds_ref(g, "dlogits", dl)


def mse_case(h, shape):
    g = h.case("mse", "mse x=%s" % "x".join(map(str, shape)))
    pred, target = randn(*shape), randn(*shape)
    pd = pred.to(D).requires_grad_()
    loss = F.mse_loss(pd, target.to(D), reduction="mean")
    (dp,) = torch.autograd.grad(loss, [pd])
    put_str(g, "reduction", "mean")
    ds_in(g, "pred", pred)
    ds_in(g, "target", target)
    ds_ref(g, "loss", loss)
    ds_ref(g, "dpred", dp)


def make_loss():
    h = H5Out("loss")
    ce_case(h, 4, 10, 0.0)
    ce_case(h, 7, 5, 0.1)
    ce_case(h, 1, 3, 0.0)
    ce_case(h, 5, 6, 0.2, scale=20.0)
    soft_ce_case(h, 5, 10, "mixup")
    soft_ce_case(h, 3, 7, "dense-probs")
    mse_case(h, (4, 6))
    mse_case(h, (2, 3, 2, 2))
    h.close()


# ---- optim.h5 (README §4.7) -----------------------------------------------------------------

OPTIMS = {
    # op: (torch class, fixed kwargs, attribute names written besides lr and weight_decay)
    "sgd": (torch.optim.SGD, {}, ["momentum", "dampening", "nesterov"]),
    "momentum": (torch.optim.SGD, {}, ["momentum", "dampening", "nesterov"]),
    "nesterov": (torch.optim.SGD, {"nesterov": True}, ["momentum", "dampening", "nesterov"]),
    "adagrad": (torch.optim.Adagrad, {}, ["eps", "lr_decay", "initial_accumulator_value"]),
    "rmsprop": (torch.optim.RMSprop, {}, ["alpha", "eps", "momentum", "centered"]),
    "adadelta": (torch.optim.Adadelta, {}, ["rho", "eps"]),
    "adam": (torch.optim.Adam, {}, ["betas", "eps", "amsgrad"]),
    "adamw": (torch.optim.AdamW, {}, ["betas", "eps", "amsgrad"]),
}
BOOL_ATTRS = {"nesterov", "centered", "amsgrad"}


def optim_case(h, op, n, T, source, gdecay=None, **hp):
    cls, fixed, names = OPTIMS[op]
    kw = dict(fixed)
    kw.update(hp)
    opt_probe = cls([torch.zeros(1, dtype=D, requires_grad=True)], **kw)
    full = opt_probe.param_groups[0]    # torch's defaults filled in
    shown = " ".join("%s=%s" % (k, full[k]) for k in ["lr"] + names[:2] + ["weight_decay"]
                     + [k for k in names[2:] if full.get(k)])
    desc = "%s n=%d T=%d %s %s" % (op, n, T, source, shown)
    if gdecay:
        desc += " gdecay=%g" % gdecay
    g = h.case(op, desc)
    p0 = randn(n)
    put_f64(g, "lr", full["lr"])
    put_f64(g, "weight_decay", full["weight_decay"])
    put_int(g, "steps", T)
    put_str(g, "grad_source", source)
    for k in names:
        v = full.get(k, 0)
        if k == "betas":
            put_f64s(g, k, v)
        elif k in BOOL_ATTRS:
            put_int(g, k, int(bool(v)))
        else:
            put_f64(g, k, v)
    p = p0.to(D).clone().requires_grad_(False)
    p = torch.nn.Parameter(p)
    opt = cls([p], foreach=False, maximize=False, **kw)
    params = torch.zeros(T, n, dtype=D)
    if source == "given":
        decay = torch.tensor([gdecay ** t if gdecay else 1.0 for t in range(T)])[:, None]
        grads = (torch.randn(T, n) * decay).float()
        for t in range(T):
            p.grad = grads[t].to(D).clone()
            opt.step()
            params[t] = p.detach()
        ds_in(g, "grads", grads)
    else:
        a = (0.2 + 2.0 * torch.rand(n)).float()
        grads = torch.zeros(T, n, dtype=D)
        for t in range(T):
            grads[t] = a.to(D) * p.detach()     # gradient of 1/2 sum a*theta^2, in float64
            p.grad = grads[t].clone()
            opt.step()
            params[t] = p.detach()
        ds_in(g, "a", a)
        ds_ref(g, "grads", grads)
    ds_in(g, "p0", p0)
    ds_ref(g, "params", params)


def make_optim():
    h = H5Out("optim")
    n, T = 7, 5
    optim_case(h, "sgd", n, T, "given", lr=0.1)
    optim_case(h, "sgd", n, T, "given", lr=0.05, weight_decay=0.01)
    optim_case(h, "momentum", n, T, "given", lr=0.1, momentum=0.9)
    optim_case(h, "momentum", n, T, "given", lr=0.01, momentum=0.8, weight_decay=1e-3,
               dampening=0.3)
    optim_case(h, "nesterov", n, T, "given", lr=0.1, momentum=0.9)
    optim_case(h, "nesterov", n, T, "given", lr=0.05, momentum=0.7, weight_decay=5e-4)
    optim_case(h, "adagrad", n, T, "given", lr=0.1)
    optim_case(h, "adagrad", n, T, "given", lr=0.05, weight_decay=0.01, lr_decay=0.1,
               initial_accumulator_value=0.2)
    optim_case(h, "rmsprop", n, T, "given", lr=0.01)
    optim_case(h, "rmsprop", n, T, "given", lr=0.01, centered=True)
    optim_case(h, "rmsprop", n, T, "given", lr=0.01, alpha=0.9, weight_decay=0.01, momentum=0.5,
               centered=True)
    optim_case(h, "adadelta", n, T, "given", lr=1.0)
    optim_case(h, "adadelta", n, T, "given", lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.01)
    optim_case(h, "adam", n, T, "given", lr=1e-3)
    optim_case(h, "adam", n, T, "given", lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)
    optim_case(h, "adam", n, 8, "given", gdecay=0.6, lr=1e-3, betas=(0.9, 0.9), amsgrad=True)
    optim_case(h, "adamw", n, T, "given", lr=1e-3, weight_decay=0.01)
    optim_case(h, "adamw", n, 8, "given", gdecay=0.6, lr=0.01, weight_decay=0.1,
               betas=(0.9, 0.9), amsgrad=True)
    T = 8
    optim_case(h, "nesterov", n, T, "quadratic", lr=0.1, momentum=0.9)
    optim_case(h, "adagrad", n, T, "quadratic", lr=0.1)
    optim_case(h, "rmsprop", n, T, "quadratic", lr=0.01, centered=True)
    optim_case(h, "adadelta", n, T, "quadratic", lr=1.0)
    optim_case(h, "adamw", n, T, "quadratic", lr=1e-2, weight_decay=0.01)
    h.close()


# ---- model_step.h5 (README §4.8) ------------------------------------------------------------

def model_case(h, N, in_shape, K, layers):
    """layers: list of (type, kwargs). Builds the torch modules in float64 from float32 weights."""
    names = [t for t, _ in layers]
    g = h.case("model_step", "model_step N=%d in=%s: %s" % (N, "x".join(map(str, in_shape)),
                                                           " ".join(names)))
    put_str(g, "loss_fn", "cross_entropy")
    put_str(g, "reduction", "mean")
    put_int(g, "num_classes", K)
    put_int(g, "num_layers", len(layers))
    put_f64(g, "sgd_lr", 0.1)
    put_f64(g, "sgd_momentum", 0.9)
    put_f64(g, "sgd_dampening", 0.0)
    put_int(g, "sgd_nesterov", 0)
    put_f64(g, "adam_lr", 1e-3)
    put_f64s(g, "adam_betas", (0.9, 0.999))
    put_f64(g, "adam_eps", 1e-8)
    put_f64(g, "weight_decay", 0.0)
    x = randn(N, *in_shape)
    labels = torch.randint(0, K, (N,), dtype=torch.int32)
    lg_root = g.create_group("layers")
    put_int(lg_root, "num_layers", len(layers))
    mods, groups, params = [], [], []   # params: (module, torch name, file name, layer group)
    shape = (N,) + tuple(in_shape)
    for i, (typ, kw) in enumerate(layers):
        lg = lg_root.create_group("%02d_%s" % (i, typ))
        put_str(lg, "type", typ)
        if typ == "conv2d":
            C = shape[1]
            m = torch.nn.Conv2d(C, kw["out"], kw["k"], kw.get("s", 1), kw.get("p", 0),
                                kw.get("d", 1), kw.get("g", 1), kw["bias"])
            fan = C // m.groups * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = randn(*m.weight.shape, scale=(2.0 / fan) ** 0.5)
            put_int(lg, "in_channels", C)
            put_int(lg, "out_channels", kw["out"])
            put_ints(lg, "kernel", m.kernel_size)
            put_ints(lg, "stride", m.stride)
            put_ints(lg, "padding", m.padding)
            put_ints(lg, "dilation", m.dilation)
            put_int(lg, "groups", m.groups)
            put_int(lg, "has_bias", int(kw["bias"]))
            params.append((m, "weight", "weight", lg))
            if kw["bias"]:
                m.bias.data = randn(kw["out"], scale=0.1)
                params.append((m, "bias", "bias", lg))
        elif typ == "batchnorm2d":
            C = shape[1]
            m = torch.nn.BatchNorm2d(C, eps=kw.get("eps", 1e-5), momentum=kw.get("momentum", 0.1))
            m.weight.data = (1.0 + randn(C, scale=0.2)).float()
            m.bias.data = randn(C, scale=0.2)
            m.running_mean.data = randn(C, scale=0.1)
            m.running_var.data = (0.8 + 0.4 * torch.rand(C)).float()
            put_int(lg, "num_features", C)
            put_f64(lg, "eps", m.eps)
            put_f64(lg, "momentum", m.momentum)
            ds_in(lg, "running_mean", m.running_mean)
            ds_in(lg, "running_var", m.running_var)
            params.append((m, "weight", "gamma", lg))
            params.append((m, "bias", "beta", lg))
        elif typ == "relu":
            m = torch.nn.ReLU()
        elif typ == "maxpool2d":
            m = torch.nn.MaxPool2d(kw["k"], kw.get("s", kw["k"]), kw.get("p", 0))
            pair = lambda v: [v, v] if isinstance(v, int) else list(v)
            put_ints(lg, "kernel", pair(m.kernel_size))
            put_ints(lg, "stride", pair(m.stride))
            put_ints(lg, "padding", pair(m.padding))
        elif typ == "flatten":
            m = torch.nn.Flatten()
        elif typ == "dense":
            I = shape[1]
            m = torch.nn.Linear(I, kw["out"])
            m.weight.data = randn(kw["out"], I, scale=(1.0 / I) ** 0.5)
            m.bias.data = randn(kw["out"], scale=0.1)
            put_int(lg, "in_features", I)
            put_int(lg, "out_features", kw["out"])
            params.append((m, "weight", "weight", lg))
            params.append((m, "bias", "bias", lg))
        for _, pname, fname, plg in params:
            if plg is lg:
                ds_in(lg, fname, getattr(m, pname).data)
        m.double().eval()
        with torch.no_grad():   # the output shape; eval mode leaves running statistics alone
            shape = tuple(m(torch.zeros(shape, dtype=D)).shape)
        m.train()
        mods.append(m)
        groups.append(lg)
    assert shape == (N, K), shape
    ds_in(g, "x", x)
    ds_in(g, "labels", labels)

    a = x.to(D)
    for m, lg in zip(mods, groups):
        a = m(a)
        a.retain_grad()
        ds_ref(lg, "out", a)
        if isinstance(m, torch.nn.BatchNorm2d):
            ds_ref(lg, "running_mean_out", m.running_mean)
            ds_ref(lg, "running_var_out", m.running_var)
    loss = F.cross_entropy(a, labels.long(), reduction="mean")
    ds_ref(g, "logits", a)
    ds_ref(g, "loss", loss)
    loss.backward()
    plist = [getattr(m, pn) for m, pn, _, _ in params]
    for (m, pn, fn, lg), p in zip(params, plist):
        ds_ref(lg, "grad_" + fn, p.grad)
    for oname, make in (("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                            foreach=False)),
                        ("adam", lambda ps: torch.optim.Adam(ps, lr=1e-3, betas=(0.9, 0.999),
                                                             eps=1e-8, foreach=False))):
        copies = [torch.nn.Parameter(p.detach().clone()) for p in plist]
        for c, p in zip(copies, plist):
            c.grad = p.grad.clone()
        make(copies).step()
        for (m, pn, fn, lg), c in zip(params, copies):
            ds_ref(lg, "after_%s_%s" % (oname, fn), c.detach())


def make_model_step():
    h = H5Out("model_step")
    # The small CNN of README §4.8 with a 3-channel input, an overlapping padded pool, a grouped
    # convolution and 5 classes.
    model_case(h, 2, (3, 7, 7), 5, [
        ("conv2d", dict(out=4, k=3, p=1, bias=False)), ("batchnorm2d", {}), ("relu", {}),
        ("maxpool2d", dict(k=3, s=2, p=1)), ("conv2d", dict(out=6, k=3, p=1, g=2, bias=True)),
        ("relu", {}), ("maxpool2d", dict(k=2)), ("flatten", {}), ("dense", dict(out=5))])
    # fmnist-cnn's layer sequence (without dropout) at a sixteenth of its width, on 6x6 inputs;
    # one strided convolution and a batch norm with eps 1e-3 and momentum 0.2.
    model_case(h, 2, (1, 6, 6), 10, [
        ("conv2d", dict(out=2, k=3, p=1, bias=False)), ("batchnorm2d", {}), ("relu", {}),
        ("conv2d", dict(out=2, k=3, p=1, bias=False)), ("batchnorm2d", {}), ("relu", {}),
        ("maxpool2d", dict(k=2)),
        ("conv2d", dict(out=4, k=3, p=1, bias=False)), ("batchnorm2d", {}), ("relu", {}),
        ("conv2d", dict(out=4, k=3, s=2, p=1, bias=False)),
        ("batchnorm2d", dict(eps=1e-3, momentum=0.2)), ("relu", {}),
        ("flatten", {}), ("dense", dict(out=8)), ("relu", {}), ("dense", dict(out=10))])
    h.close()


def main():
    print("make_reference.py: torch %s, h5py %s, HDF5 %s, numpy %s" %
          (torch.__version__, h5py.__version__, h5py.version.hdf5_version, np.__version__))
    for f in (make_conv, make_pool, make_dense, make_norm, make_act, make_loss, make_optim,
              make_model_step):
        f()
    total = sum(os.path.getsize(os.path.join(OUT, k + ".h5")) for k in FILES)
    print("total %d bytes in %s" % (total, OUT))


if __name__ == "__main__":
    sys.exit(main())
