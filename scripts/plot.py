#!/usr/bin/env python3
"""Plot a dptrain run: RUN_DIR/metrics.csv -> RUN_DIR/loss.png and RUN_DIR/accuracy.png.

Usage: python3 scripts/plot.py RUN_DIR   (needs Debian's python3-matplotlib)
"""
import csv
import math
import sys


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
        print("plot.py: error: matplotlib is missing: apt-get install python3-matplotlib",
              file=sys.stderr)
        return 1
    path = f"{run}/metrics.csv"
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        print(f"plot.py: error: {path}: {e.strerror}", file=sys.stderr)
        return 1
    if not rows:
        print(f"plot.py: error: {path}: no epochs recorded", file=sys.stderr)
        return 1
    epochs = [int(float(r["epoch"])) for r in rows]
    for metric, ylabel in (("loss", "cross-entropy loss"), ("acc", "accuracy")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in ("train", "val", "test"):
            ys = [float(r[f"{split}_{metric}"]) for r in rows]
            if all(math.isnan(y) for y in ys):
                continue
            ax.plot(epochs, ys, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(run)
        out = f"{run}/{'loss' if metric == 'loss' else 'accuracy'}.png"
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
