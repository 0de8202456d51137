#!/usr/bin/env python3
"""Plot dptrain outputs (needs Debian's python3-matplotlib; python3-h5py for .h5 files).

Usage: python3 scripts/plot.py PATH...   (each PATH a run or sweep directory, FILE.h5 or FILE.csv)

Plain run (RUN_DIR/metrics.csv):
  loss.png, accuracy.png    train/val/test loss and accuracy per epoch
Ensemble or CV run (RUN_DIR/results.h5 from `dptrain train --ensemble ...` or `dptrain cv`):
  ensemble.png              bagging/boosting: ensemble test accuracy vs number of members,
                            each member's own accuracy, their mean (and the OOB score, bagging)
  bias_variance.png         bagging: 0-1 and squared-error loss, bias, variance vs ensemble size
  boosting.png              boosting: alpha and weighted training error per round
  cv.png                    cv: validation accuracy per fold with mean and mean +- std band
  members.png               any of the above: test accuracy per epoch of RUN_DIR/members/NN/metrics.csv
Sweep (RUN_DIR/results.h5 with /sweep, from `dptrain sweep`):
  sweep.png                 test and train (eval mode) accuracy, and the generalization gap
                            (accuracy and loss), against batch size; one line per group of points
                            whose labels agree apart from batch=B
  sweep_curves.png          test accuracy per epoch of every RUN_DIR/points/NN/metrics.csv
  noise_scale.png           B_simple per optimizer step, when the points logged it
Interpolation (FILE.h5 with /interpolation from `dptrain interpolate --h5 FILE.h5`, or its --csv):
  FILE.png                  train/test loss and accuracy along (1 - alpha) A + alpha B
Sharpness (FILE.csv from `dptrain sharpness --out FILE.csv`, one row per measurement):
  sharpness.png             next to FILE.csv: sharpness per epsilon against the batch size of the
                            checkpoint's sweep point (.../points/NN/checkpoints/*.h5, looked up
                            in ../../../sweep.csv), else against the checkpoint
A results.h5 or metrics.csv given as a file plots its directory.
"""
import csv
import math
import os
import re
import sys

PROG = "plot.py"
DOC_SIZE = (6, 4)  # inches; new figures are saved at DOC_DPI
DOC_DPI = 100


def error(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1


def read_metrics(path: str) -> list:
    """Rows of a metrics.csv as dicts; raises OSError."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def column(rows: list, name: str) -> list:
    return [float(r[name]) for r in rows]


def save(plt, fig, path: str, dpi: int = DOC_DPI) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(path)


# ---------------------------------------------------------------- plain run

def plot_plain_run(plt, run: str) -> int:
    """RUN_DIR/metrics.csv -> loss.png and accuracy.png (unchanged from the original script)."""
    path = f"{run}/metrics.csv"
    try:
        rows = read_metrics(path)
    except OSError as e:
        return error(f"{path}: {e.strerror}")
    if not rows:
        return error(f"{path}: no epochs recorded")
    epochs = [int(float(r["epoch"])) for r in rows]
    for metric, ylabel in (("loss", "cross-entropy loss"), ("acc", "accuracy")):
        fig, ax = plt.subplots(figsize=DOC_SIZE)
        for split in ("train", "val", "test"):
            ys = column(rows, f"{split}_{metric}")
            if all(math.isnan(y) for y in ys):
                continue
            ax.plot(epochs, ys, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(run)
        save(plt, fig, f"{run}/{'loss' if metric == 'loss' else 'accuracy'}.png", dpi=120)
    return 0


# ---------------------------------------------------------------- results.h5

def load_results(h5py, path: str) -> dict:
    """Every dataset of an HDF5 file as {"/group/name": value}; strings decoded, arrays as lists."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            v = obj[()]
            if isinstance(v, bytes):
                v = v.decode()
            elif hasattr(v, "tolist"):
                v = v.tolist()
            out["/" + name] = v

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def integer_xaxis(ax, n: int) -> None:
    """x axis over 1..n with integer ticks (every one while there are few)."""
    from matplotlib.ticker import MaxNLocator
    if n <= 12:
        ax.set_xticks(range(1, n + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, n + 0.5)


def legend_below(ax, handles=None) -> None:
    """Legend under the axes, for plots where no spot inside is reliably free of data."""
    kw = {"handles": handles} if handles else {}
    ax.legend(fontsize="small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15), **kw)


def plot_ensemble(plt, run: str, r: dict, kind: str) -> None:
    """ensemble.png: staged ensemble accuracy vs m, member accuracies, their mean (+ OOB)."""
    by_m = r["/ensemble/acc_by_members"]
    member = r["/ensemble/member_test_acc"]
    who = "round" if kind == "boosting" else "member"
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    ms = range(1, len(by_m) + 1)
    ax.plot(ms, by_m, marker="o", label="ensemble of first m")
    ax.scatter(range(1, len(member) + 1), member, color="C1", zorder=3,
               label=f"{who} m alone")
    mean = sum(member) / len(member)
    ax.axhline(mean, color="C1", linestyle="--", label=f"mean {who} ({mean:.3f})")
    if "/ensemble/oob_score" in r:
        oob = r["/ensemble/oob_score"]
        ax.axhline(oob, color="C2", linestyle=":", label=f"OOB score ({oob:.3f})")
    integer_xaxis(ax, max(len(by_m), len(member)))
    ax.set_xlabel(f"number of {who}s m")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    legend_below(ax)
    vote = r.get("/ensemble/vote")
    ax.set_title(f"{kind}" + (f" ({vote} vote)" if vote else "")
                 + f": final test acc {r['/ensemble/test_acc']:.3f}")
    save(plt, fig, f"{run}/ensemble.png")


def plot_bias_variance(plt, run: str, r: dict) -> None:
    """bias_variance.png: 0-1 and squared-error decompositions vs ensemble size (log2 x)."""
    from matplotlib.ticker import NullLocator
    base = "/ensemble/bias_variance"
    sizes = r[f"{base}/n_members"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (("zero_one", "0-1 loss", ("loss", "bias", "variance")),
              ("squared", "squared error", ("loss", "bias\u00b2", "variance")))
    for ax, (key, title, labels) in zip(axes, panels):
        for part, label, marker in zip(("loss", "bias", "variance"), labels, "os^"):
            ax.plot(sizes, r[f"{base}/{key}/{part}"], marker=marker, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{s:g}" for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("ensemble size (members)")
        ax.set_ylabel(title)
        ax.set_title(f"bagging: {title} decomposition")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save(plt, fig, f"{run}/bias_variance.png")


def plot_boosting(plt, run: str, r: dict) -> None:
    """boosting.png: alpha (left axis) and weighted training error (right axis) per round."""
    alpha = r["/ensemble/alpha"]
    err = r["/ensemble/weighted_error"]
    rounds = range(1, len(alpha) + 1)
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    ax2 = ax.twinx()
    la = ax.plot(rounds, alpha, marker="o", color="C0", label="alpha (member weight)")
    le = ax2.plot(rounds, err, marker="s", color="C3", label="weighted error")
    integer_xaxis(ax, len(alpha))
    ax.set_xlabel("boosting round")
    ax.set_ylabel("alpha", color="C0")
    ax2.set_ylabel("weighted training error", color="C3")
    ax.grid(alpha=0.3)
    legend_below(ax, la + le)  # both axes' lines in one legend
    ax.set_title("boosting: alpha and weighted error per round")
    save(plt, fig, f"{run}/boosting.png")


def plot_cv(plt, run: str, r: dict) -> None:
    """cv.png: per-fold validation accuracy bars, mean line, mean +- std band, fold test acc."""
    val = r["/cv/fold_val_acc"]
    mean, std = r["/cv/mean_val_acc"], r["/cv/std_val_acc"]
    folds = list(range(1, len(val) + 1))
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    bars = ax.bar(folds, val, color="C0", alpha=0.8, label="validation accuracy")
    ax.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=-11, color="white")
    ax.axhline(mean, color="k", linestyle="--", label=f"mean ({mean:.3f})")
    ax.axhspan(mean - std, mean + std, color="k", alpha=0.12, label=f"mean \u00b1 std ({std:.3f})")
    test = r.get("/cv/fold_test_acc")
    if test:
        ax.scatter(folds, test, marker="x", color="C3", zorder=3, label="test accuracy")
    # Zoom in on the data: fold-to-fold differences are small next to the accuracy itself.
    shown = val + (test or []) + [mean - std, mean + std]
    lo, hi = min(shown), max(shown)
    pad = max(hi - lo, 0.01) * 0.6
    ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + 2.5 * pad))  # headroom for the legend
    ax.set_xticks(folds)
    ax.set_xlabel("fold")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small", loc="upper left", ncol=2)
    ax.set_title(f"{r.get('/cv/kind', 'cv')}: val acc mean \u00b1 std = {mean:.3f} \u00b1 {std:.3f}")
    save(plt, fig, f"{run}/cv.png")


def plot_members(plt, run: str, kind: str) -> None:
    """members.png: test accuracy per epoch of every RUN_DIR/members/NN/metrics.csv."""
    mdir = f"{run}/members"
    names = sorted(os.listdir(mdir)) if os.path.isdir(mdir) else []
    who = {"boosting": "round", "cv": "fold"}.get(kind, "member")
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    drawn = last_epoch = 0
    for i, name in enumerate(names):
        path = f"{mdir}/{name}/metrics.csv"
        try:
            rows = read_metrics(path)
        except OSError:
            continue
        if not rows:
            continue
        epochs = column(rows, "epoch")
        last_epoch = max(last_epoch, int(max(epochs)))
        ax.plot(epochs, column(rows, "test_acc"), marker="o", markersize=4,
                label=f"{who} {i + 1}")
        drawn += 1
    if not drawn:
        plt.close(fig)
        print(f"{PROG}: note: no {mdir}/NN/metrics.csv, members.png not drawn", file=sys.stderr)
        return
    integer_xaxis(ax, last_epoch)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=max(1, math.ceil(drawn / 8)))
    ax.set_title(f"{kind}: test accuracy per epoch of each {who}")
    save(plt, fig, f"{run}/members.png")


# ---------------------------------------------------------------- sweep (large-batch study)

def batch_axis(ax, batches: list) -> None:
    """Log-scale batch-size x axis with a tick at every batch size used."""
    from matplotlib.ticker import NullLocator
    ax.set_xscale("log")
    ticks = sorted(set(batches))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{b:g}" for b in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size")


def label_group(label: str) -> str:
    """The non-batch part of a sweep label ("batch=5000 lars=1" -> "lars=1")."""
    return " ".join(t for t in label.split() if not t.startswith("batch="))


def group_points(labels: list, batches: list) -> list:
    """[(group, [point indices sorted by batch])] in order of first appearance."""
    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(label_group(label), []).append(i)
    return [(g, sorted(idx, key=lambda i: batches[i])) for g, idx in groups.items()]


def group_name(group: str, n_groups: int) -> str:
    return group if group else ("baseline" if n_groups > 1 else "all points")


def style_legend(ax, groups: list, styles: list) -> None:
    """Legend with one colour entry per group and one black entry per line style."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=f"C{k}", marker="o", label=group_name(g, len(groups)))
               for k, (g, _) in enumerate(groups)] if len(groups) > 1 else []
    handles += [Line2D([], [], color="k", linestyle=ls, marker=m, label=lab,
                       markerfacecolor="k" if ls == "-" else "none")
                for ls, m, lab in styles]
    ax.legend(handles=handles, fontsize="small")


def sweep_labels(r: dict, n: int) -> list:
    return [r.get(f"/sweep/labels/{i:02d}", f"point {i}") for i in range(n)]


def plot_sweep(plt, run: str, r: dict) -> None:
    """sweep.png: accuracy (left) and generalization gap (right) against batch size."""
    batch = r["/sweep/batch"]
    labels = sweep_labels(r, len(batch))
    groups = group_points(labels, batch)
    fig, (ax, axg) = plt.subplots(1, 2, figsize=(10, 4))
    axl = axg.twinx()
    for k, (_, idx) in enumerate(groups):
        xs = [batch[i] for i in idx]
        c = f"C{k}"
        ax.plot(xs, [r["/sweep/test_acc"][i] for i in idx], color=c, marker="o")
        ax.plot(xs, [r["/sweep/train_acc"][i] for i in idx], color=c, marker="s",
                linestyle="--", markerfacecolor="none")
        axg.plot(xs, [r["/sweep/gap_acc"][i] for i in idx], color=c, marker="o")
        axl.plot(xs, [r["/sweep/gap_loss"][i] for i in idx], color=c, marker="s",
                 linestyle="--", markerfacecolor="none")
    for a in (ax, axg):
        batch_axis(a, batch)
        a.grid(alpha=0.3)
    ax.set_ylabel("final accuracy")
    ax.set_title("accuracy vs batch size")
    style_legend(ax, groups, (("-", "o", "test"), ("--", "s", "train (eval mode)")))
    axg.set_ylabel("accuracy gap (train \u2212 test)")
    axl.set_ylabel("loss gap (test \u2212 train), dashed")
    axg.set_title("generalization gap vs batch size")
    style_legend(axg, groups, (("-", "o", "accuracy gap (left)"),
                               ("--", "s", "loss gap (right)")))
    fig.suptitle(f"sweep {os.path.basename(os.path.normpath(run))}: {len(batch)} points")
    save(plt, fig, f"{run}/sweep.png")


def point_metrics(run: str, n: int) -> list:
    """[(point, rows)] of RUN_DIR/points/NN/metrics.csv that exist and are not empty."""
    out = []
    for i in range(n):
        try:
            rows = read_metrics(f"{run}/points/{i:02d}/metrics.csv")
        except OSError:
            continue
        if rows:
            out.append((i, rows))
    return out


def point_colors(n: int) -> list:
    import matplotlib
    cmap = matplotlib.colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_sweep_curves(plt, run: str, labels: list, metrics: list) -> None:
    """sweep_curves.png: test accuracy per epoch of every point."""
    if not metrics:
        print(f"{PROG}: note: no {run}/points/NN/metrics.csv, sweep_curves.png not drawn",
              file=sys.stderr)
        return
    colors = point_colors(len(labels))
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    last_epoch = 0
    for i, rows in metrics:
        epochs = column(rows, "epoch")
        last_epoch = max(last_epoch, int(max(epochs)))
        ax.plot(epochs, column(rows, "test_acc"), marker="o", markersize=4,
                color=colors[i], label=labels[i])
    integer_xaxis(ax, last_epoch)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=max(1, math.ceil(len(metrics) / 8)))
    ax.set_title("sweep: test accuracy per epoch of each point")
    save(plt, fig, f"{run}/sweep_curves.png")


def plot_noise_scale(plt, run: str, labels: list, batches: list, metrics: list) -> None:
    """noise_scale.png: B_simple against optimizer step (log y), batch size dotted."""
    from matplotlib.lines import Line2D
    colors = point_colors(len(labels))
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    handles = []
    for i, rows in metrics:
        pts = [(float(r["step"]), float(r["b_simple"])) for r in rows
               if r.get("b_simple") not in (None, "")]
        pts = [(s, b) for s, b in pts if math.isfinite(b) and b > 0]
        if not pts:
            continue
        handles += ax.plot(*zip(*pts), marker="o", markersize=3, color=colors[i],
                           label=labels[i])
        ax.axhline(batches[i], color=colors[i], linestyle=":", linewidth=1)
    if not handles:
        plt.close(fig)
        return  # no point ran with --noise-scale-every: nothing to draw, not an error
    handles.append(Line2D([], [], color="grey", linestyle=":", label="batch size B (dotted)"))
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("B_simple = tr(\u03a3) / |G|\u00b2")
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles=handles, fontsize="x-small", ncol=max(1, math.ceil(len(handles) / 8)))
    ax.set_title("gradient noise scale per point")
    save(plt, fig, f"{run}/noise_scale.png")


# ---------------------------------------------------------------- checkpoint names

_SWEEP_CKPT = re.compile(r"^(?:(.*)/)?(points/(\d+)/checkpoints/[^/]+\.h5)$")
_sweep_csv_cache = {}


def sweep_point(ckpt: str, base: str):
    """The sweep.csv row (a dict) of a checkpoint .../points/NN/checkpoints/X.h5, or None.

    The sweep directory is looked for as written (relative to the current directory) and then
    relative to base (the directory of the file that named the checkpoint). The row is the one
    whose checkpoint column names the same file, else the one whose point column is NN."""
    m = _SWEEP_CKPT.match(os.path.normpath(ckpt))
    if not m:
        return None
    prefix = "." if m.group(1) is None else (m.group(1) or "/")
    tail, nn = m.group(2), int(m.group(3))
    for root in ([prefix] if os.path.isabs(prefix) else [prefix, os.path.join(base, prefix)]):
        path = os.path.join(root, "sweep.csv")
        if path not in _sweep_csv_cache:
            try:
                _sweep_csv_cache[path] = read_metrics(path)
            except OSError:
                _sweep_csv_cache[path] = None
        rows = _sweep_csv_cache[path]
        if not rows:
            continue
        target = os.path.realpath(os.path.join(root, tail))
        for row in rows:
            if os.path.realpath(row.get("checkpoint", "")) == target:
                return row
        for row in rows:
            if row.get("point", "").strip().isdigit() and int(row["point"]) == nn:
                return row
    return None


def short_ckpt(ckpt: str, base: str) -> str:
    """A checkpoint's sweep label when it belongs to a sweep, else its last path components."""
    row = sweep_point(ckpt, base)
    if row and row.get("label"):
        return row["label"]
    parts = os.path.normpath(ckpt).split(os.sep)
    return ("\u2026/" if len(parts) > 3 else "") + "/".join(parts[-3:])


# ---------------------------------------------------------------- interpolation (FILE.h5)

def plot_interpolation(plt, path: str, r: dict) -> int:
    """FILE.png: loss (left) and accuracy (right) along theta = (1 - alpha) A + alpha B."""
    base = os.path.dirname(path) or "."
    alpha = r["/interpolation/alpha"]
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    ax2 = ax.twinx()
    lines = ax.plot(alpha, r["/interpolation/train_loss"], color="C0", label="train loss")
    lines += ax.plot(alpha, r["/interpolation/test_loss"], color="C0", linestyle="--",
                     label="test loss")
    lines += ax2.plot(alpha, r["/interpolation/train_acc"], color="C3", label="train accuracy")
    lines += ax2.plot(alpha, r["/interpolation/test_acc"], color="C3", linestyle="--",
                      label="test accuracy")
    losses = [v for k in ("train_loss", "test_loss") for v in r[f"/interpolation/{k}"]
              if math.isfinite(v) and v > 0]
    if losses and max(losses) / min(losses) > 100:
        ax.set_yscale("log")  # far from A and B the loss grows by orders of magnitude
    ax2.set_ylim(-0.02, 1.02)
    for x, name in ((0, "A"), (1, "B")):
        ax.axvline(x, color="grey", linestyle=":")
        ax.text(x, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontweight="bold")
    ax.set_xlabel("\u03b1   (\u03b8 = (1 \u2212 \u03b1) A + \u03b1 B)")
    ax.set_ylabel("cross-entropy loss", color="C0")
    ax2.set_ylabel("accuracy", color="C3")
    ax.grid(alpha=0.3)
    ax.legend(handles=lines, fontsize="small", ncol=4, loc="upper center",
              bbox_to_anchor=(0.5, -0.18))  # below the two-part x label
    title = "linear interpolation from A to B"
    if "/interpolation/a" in r and "/interpolation/b" in r:
        title = (f"A = {short_ckpt(r['/interpolation/a'], base)}, "
                 f"B = {short_ckpt(r['/interpolation/b'], base)}")
    if "/interpolation/bn" in r:
        title += f"\nbatch norm: {r['/interpolation/bn']}"
    ax.set_title(title, fontsize="medium", pad=14)
    out = os.path.splitext(path)[0] + ".png"
    save(plt, fig, out)
    return 0


# ---------------------------------------------------------------- sharpness (FILE.csv)

def fmt_eps(eps: float) -> str:
    return f"{eps:.0e}".replace("e-0", "e-") if eps < 0.01 else f"{eps:g}"


def distinct_names(paths: list) -> list:
    """The paths' basenames, lengthened by parent directories until they differ."""
    split = [os.path.normpath(p).split(os.sep) for p in paths]
    for k in range(1, max(map(len, split)) + 1):
        names = ["/".join(parts[-k:]) for parts in split]
        if len(set(names)) == len(names):
            break
    return names


def plot_sharpness(plt, path: str, rows: list) -> int:
    """sharpness.png next to FILE.csv: sharpness vs batch size, one line per epsilon."""
    base = os.path.dirname(path) or "."
    try:
        recs = [(r["ckpt"], float(r["epsilon"]), int(float(r["subspace"])),
                 float(r["sharpness"])) for r in rows]
    except (KeyError, TypeError, ValueError):
        return error(f"{path}: not a `dptrain sharpness --out` file "
                     "(ckpt,epsilon,subspace,samples,f,fmax,sharpness)")
    ckpts = list(dict.fromkeys(c for c, *_ in recs))  # in order of first appearance
    points = {c: sweep_point(c, base) for c in ckpts}
    by_batch = all(p and p.get("batch") for p in points.values())
    if by_batch:
        x_of = {c: float(points[c]["batch"]) for c in ckpts}
        group_of = {c: label_group(points[c].get("label", "")) for c in ckpts}
    else:
        x_of = {c: i for i, c in enumerate(ckpts)}
        group_of = {c: "" for c in ckpts}
    n_groups = len(set(group_of.values()))
    n_sub = len({s for _, _, s, _ in recs})
    lines = {}
    for c, eps, sub, sh in recs:
        lines.setdefault((eps, sub, group_of[c]), []).append((x_of[c], sh))
    fig, ax = plt.subplots(figsize=DOC_SIZE)
    for (eps, sub, group), pts in sorted(lines.items()):
        pts.sort()
        name = f"\u03b5 = {fmt_eps(eps)}"
        if n_sub > 1:
            name += ", full space" if sub == 0 else f", subspace {sub}"
        if n_groups > 1:
            name += f", {group_name(group, n_groups)}"
        ax.plot(*zip(*pts), marker="o", label=name)
    if by_batch:
        batch_axis(ax, list(x_of.values()))
    else:
        ax.set_xticks(range(len(ckpts)))
        ax.set_xticklabels(distinct_names(ckpts), rotation=20, ha="right", fontsize="small")
        ax.set_xlabel("checkpoint")
    ax.set_ylabel("sharpness (%)  100 (f_max \u2212 f) / (1 + f)")
    ax.grid(alpha=0.3)
    if len(lines) > 2:
        legend_below(ax)
    else:
        ax.legend(fontsize="small")
    ax.set_title("\u03b5-sharpness of the minimum" + (" vs batch size" if by_batch else ""))
    save(plt, fig, os.path.join(base, "sharpness.png"))
    return 0


# ---------------------------------------------------------------- dispatch

def plot_results(plt, run: str) -> int:
    """Dispatch on the kind recorded in RUN_DIR/results.h5."""
    try:
        import h5py
    except ImportError:
        return error("h5py is missing: apt-get install python3-h5py")
    path = f"{run}/results.h5"
    try:
        r = load_results(h5py, path)
    except OSError as e:
        return error(f"{path}: {e}")
    if "/ensemble/kind" in r:
        kind = r["/ensemble/kind"]
        plot_ensemble(plt, run, r, kind)
        if kind == "bagging" and "/ensemble/bias_variance/n_members" in r:
            plot_bias_variance(plt, run, r)
        if kind == "boosting":
            plot_boosting(plt, run, r)
    elif "/cv/kind" in r:
        kind = "cv"
        plot_cv(plt, run, r)
    elif "/sweep/batch" in r:
        batch = r["/sweep/batch"]
        labels = sweep_labels(r, len(batch))
        plot_sweep(plt, run, r)
        metrics = point_metrics(run, len(batch))
        plot_sweep_curves(plt, run, labels, metrics)
        plot_noise_scale(plt, run, labels, batch, metrics)
        return 0
    else:
        return error(f"{path}: neither /ensemble, /cv nor /sweep results")
    plot_members(plt, run, kind)
    return 0


def plot_run(plt, run: str) -> int:
    """A run directory: metrics.csv and/or results.h5."""
    plain = os.path.exists(f"{run}/metrics.csv")
    results = os.path.exists(f"{run}/results.h5")
    if not plain and not results:
        return error(f"{run}: neither metrics.csv nor results.h5 found")
    rc = plot_plain_run(plt, run) if plain else 0
    if results:
        rc = plot_results(plt, run) or rc
    return rc


def plot_h5_file(plt, path: str) -> int:
    """FILE.h5 from `dptrain interpolate --h5`, or a run's results.h5 (plots its directory)."""
    try:
        import h5py
    except ImportError:
        return error("h5py is missing: apt-get install python3-h5py")
    try:
        r = load_results(h5py, path)
    except OSError as e:
        return error(f"{path}: {e}")
    if "/interpolation/alpha" in r:
        return plot_interpolation(plt, path, r)
    if any(k.startswith(("/ensemble/", "/cv/", "/sweep/")) for k in r):
        return plot_run(plt, os.path.dirname(path) or ".")
    return error(f"{path}: no /interpolation, /ensemble, /cv or /sweep results")


def plot_csv_file(plt, path: str) -> int:
    """FILE.csv from `dptrain sharpness --out`, or a run's metrics.csv (plots its directory)."""
    try:
        rows = read_metrics(path)
    except OSError as e:
        return error(f"{path}: {e.strerror}")
    if os.path.basename(path) == "metrics.csv":
        return plot_run(plt, os.path.dirname(path) or ".")
    if not rows:
        return error(f"{path}: no rows")
    if "alpha" in rows[0]:  # `dptrain interpolate --csv FILE.csv`: no A, B or bn recorded
        try:
            r = {f"/interpolation/{k}": column(rows, k)
                 for k in ("alpha", "train_loss", "train_acc", "test_loss", "test_acc")}
        except (KeyError, TypeError, ValueError):
            return error(f"{path}: not a `dptrain interpolate --csv` file")
        return plot_interpolation(plt, path, r)
    return plot_sharpness(plt, path, rows)


def plot_path(plt, path: str) -> int:
    if os.path.isdir(path):
        return plot_run(plt, path)
    if not os.path.exists(path):
        return error(f"{path}: no such file or directory")
    if path.endswith(".h5"):
        return plot_h5_file(plt, path)
    if path.endswith(".csv"):
        return plot_csv_file(plt, path)
    return error(f"{path}: not a run directory, .h5 or .csv file")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return error("matplotlib is missing: apt-get install python3-matplotlib")
    rc = 0
    for path in sys.argv[1:]:
        rc = plot_path(plt, path) or rc
    return rc


if __name__ == "__main__":
    sys.exit(main())
