#!/usr/bin/env python3
"""Plot a dptrain run directory (needs Debian's python3-matplotlib; python3-h5py for results.h5).

Usage: python3 scripts/plot.py RUN_DIR

Plain run (RUN_DIR/metrics.csv):
  loss.png, accuracy.png    train/val/test loss and accuracy per epoch
Ensemble or CV run (RUN_DIR/results.h5 from `dptrain train --ensemble ...` or `dptrain cv`):
  ensemble.png              bagging/boosting: ensemble test accuracy vs number of members,
                            each member's own accuracy, their mean (and the OOB score, bagging)
  bias_variance.png         bagging: 0-1 and squared-error loss, bias, variance vs ensemble size
  boosting.png              boosting: alpha and weighted training error per round
  cv.png                    cv: validation accuracy per fold with mean and mean +- std band
  members.png               any of the above: test accuracy per epoch of RUN_DIR/members/NN/metrics.csv
"""
import csv
import math
import os
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
    else:
        return error(f"{path}: neither /ensemble nor /cv results")
    plot_members(plt, run, kind)
    return 0


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    run = sys.argv[1]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return error("matplotlib is missing: apt-get install python3-matplotlib")
    plain = os.path.exists(f"{run}/metrics.csv")
    results = os.path.exists(f"{run}/results.h5")
    if not plain and not results:
        return error(f"{run}: neither metrics.csv nor results.h5 found")
    rc = plot_plain_run(plt, run) if plain else 0
    if results:
        rc = plot_results(plt, run) or rc
    return rc


if __name__ == "__main__":
    sys.exit(main())
