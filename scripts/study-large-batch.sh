#!/usr/bin/env bash
# The small- vs large-batch study of docs/large-batch.md (Keskar et al. 2017 on Fashion-MNIST).
#   scripts/study-large-batch.sh [OUT] [RANKS] [PARTS]    (default runs/large-batch, 2, "1 2 3")
# Part 1 (the acceptance study, timed): SB 256 vs LB 5000 from the same initialization, lenet5,
#   Adam 1e-3, 30 epochs; epsilon-sharpness of both minima at 1e-3 and 5e-4; the loss along the
#   line from SB (alpha 0) to LB (alpha 1).
# Part 2: the remedies at batch 5000 (linear and sqrt lr scaling with warmup, LAMB, ghost batch
#   norm on a LeNet-5 with batch norm, plus its small-batch reference).
# Part 3: a ladder of batch sizes with the gradient noise scale B_simple logged.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/large-batch}
np=${2:-2}
parts=${3:-1 2 3}
dpt=${DPTRAIN:-build/dptrain}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
run() { mpirun -np "$np" --oversubscribe "$dpt" "$@"; }
common=(--data fashion-mnist --optim adam --lr 1e-3 --epochs 30 --no-progress --quiet)
lenet_bn="conv2d(6,5,pad=2) bn relu maxpool(2) conv2d(16,5) bn relu maxpool(2) flatten dense(120) relu dense(84) relu dense(10)"

if [[ " $parts " == *" 1 "* ]]; then
    start=$(date +%s)
    rm -rf "$out/sb-lb"
    run sweep "${common[@]}" --model lenet5 --batch-sizes 256,5000 --micro-batch 1000 \
        --out "$out/sb-lb"
    for p in 00 01; do
        for eps in 1e-3 5e-4; do
            run sharpness "$out/sb-lb/points/$p/checkpoints/final.h5" --data fashion-mnist \
                --epsilon "$eps" --out "$out/sb-lb/sharpness.csv"
        done
    done
    run interpolate "$out/sb-lb/points/00/checkpoints/final.h5" \
        "$out/sb-lb/points/01/checkpoints/final.h5" --data fashion-mnist --points 25 \
        --range -1,2 --h5 "$out/sb-lb/interpolation.h5" --csv "$out/sb-lb/interpolation.csv"
    echo "part 1 (sweep, sharpness, interpolation): $(($(date +%s) - start)) s"
fi
if [[ " $parts " == *" 2 "* ]]; then
    rm -rf "$out/remedies" "$out/remedies-bn-sb"
    run sweep "${common[@]}" --model lenet5 --batch-sizes 5000 \
        --variant linear-warmup='--lr-ref-batch 256 --lr-scaling linear --warmup-epochs 5' \
        --variant sqrt-warmup='--lr-ref-batch 256 --lr-scaling sqrt --warmup-epochs 5' \
        --variant lamb='--optim lamb --lr 1e-2 --warmup-epochs 5' \
        --variant bn="--model '$lenet_bn'" \
        --variant ghost-bn="--model '$lenet_bn' --bn ghost:256" \
        --out "$out/remedies"
    run sweep "${common[@]}" --model "$lenet_bn" --batch-sizes 256 --out "$out/remedies-bn-sb"
fi
if [[ " $parts " == *" 3 "* ]]; then
    rm -rf "$out/ladder"
    run sweep "${common[@]}" --epochs 10 --model lenet5 --batch-sizes 128,512,2048,8192 \
        --micro-batch 64 --noise-scale-every 10 --out "$out/ladder"
fi
python3 scripts/plot.py "$out"/*/ "$out/sb-lb/interpolation.h5" "$out/sb-lb/sharpness.csv" \
    2>/dev/null || true
