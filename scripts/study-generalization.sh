#!/usr/bin/env bash
# The seed's regularizers measured in one sweep (docs/generalization.md): a LeNet-5 with batch
# norm, Adam 1e-3, batch 128, 10 epochs on Fashion-MNIST, every regularizer as a --variant, 3
# seeds each; then a 5-fold cross-validated choice of the weight decay. Prints the tables.
#   scripts/study-generalization.sh [OUT] [RANKS]      (default runs/generalization, 2 ranks)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/generalization}
np=${2:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
bn="conv2d(6,5,pad=2) bn relu maxpool(2) conv2d(16,5) bn relu maxpool(2) flatten dense(120) relu dense(84) relu dense(10)"
nobn="conv2d(6,5,pad=2) relu maxpool(2) conv2d(16,5) relu maxpool(2) flatten dense(120) relu dense(84) relu dense(10)"
drop="conv2d(6,5,pad=2) bn relu maxpool(2) conv2d(16,5) bn relu maxpool(2) flatten dense(120) relu dropout(0.5) dense(84) relu dropout(0.5) dense(10)"
common=(--data fashion-mnist --optim adam --lr 1e-3 --epochs 10 --no-progress --quiet)
start=$(date +%s)
rm -rf "$out/sweep"
mpirun -np "$np" --oversubscribe build/dptrain sweep "${common[@]}" --model "$bn" \
    --batch-sizes 128 \
    --variant none= \
    --variant l2='--weight-decay 5e-4' \
    --variant dropout="--model '$drop'" \
    --variant augmentation='--flip 0.5 --shift 2' \
    --variant input-noise='--noise 0.1' \
    --variant label-smoothing='--label-smoothing 0.1' \
    --variant mixup='--mixup 0.2' \
    --variant cutmix='--cutmix 1.0' \
    --variant cutout='--cutout 8' \
    --variant early-stopping='--val-fraction 0.1 --early-stop 2' \
    --variant no-bn="--model '$nobn'" \
    --vary seed=1,2,3 --out "$out/sweep"
echo "sweep: $(($(date +%s) - start)) s"
for wd in 0 1e-4 5e-4 2e-3; do
    rm -rf "$out/cv-wd$wd"
    mpirun -np "$np" --oversubscribe build/dptrain cv --folds 5 --stratified "${common[@]}" \
        --model "$bn" --batch 128 --weight-decay "$wd" --out "$out/cv-wd$wd" |
        grep "^cv validation"
done
echo "all: $(($(date +%s) - start)) s"
/usr/bin/python3 - "$out/sweep/sweep.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    name = [t.split("=", 1)[1] for t in r["label"].split() if t.startswith("variant=")][0]
    groups.setdefault(name, []).append(r)
def ms(vals):
    return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"
print("| regularizer | test accuracy | train − test accuracy | test loss |")
print("|---|---|---|---|")
for name, rs in groups.items():
    acc = [float(r["test_acc"]) for r in rs]
    gap = [float(r["gap_acc"]) for r in rs]
    loss = [float(r["test_loss"]) for r in rs]
    print(f"| {name} | {ms(acc)} | {ms(gap)} | {ms(loss)} |")
PY
