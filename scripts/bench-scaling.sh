#!/usr/bin/env bash
# Data-parallel scaling benchmark (issue #5): images/s of fmnist-cnn and lenet5 training with 1 and
# 2 ranks (one per core) at per-rank batch 64 and 128, bucketed overlap on and off, next to PyTorch
# DDP (gloo, one thread per process) measured in the same run. Each figure is the median of REPS
# runs; ratios are against the 1-rank dptrain run of the same row.
#   scripts/bench-scaling.sh [REPS=3] [STEPS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
steps=${2:-60}
build=${BUILD:-build}
[ -x "$build/dptrain" ] || { echo "bench-scaling: build first (scripts/run.sh or cmake)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
data=${DATA:-fashion-mnist}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

dptrain_rate() { # model ranks per-rank-batch extra-options...
    local model=$1 np=$2 b=$3
    shift 3
    for _ in $(seq "$reps"); do
        mpirun -np "$np" --bind-to core --oversubscribe "$build/dptrain" train --model "$model" \
            --data "$data" --epochs 1 --batch $((b * np)) --max-steps "$steps" --quiet "$@" |
            grep -oE '[0-9.]+ images/s' | awk '{ print $1 }'
    done | median
}

torch_rate() { # model ranks per-rank-batch
    for _ in $(seq "$reps"); do
        /usr/bin/python3 scripts/bench-ddp.py --model "$1" --ranks "$2" --batch "$3" \
            --steps $((steps / 6 + 2)) --windows 3 | grep -oE 'images/s=[0-9.]+' | cut -d= -f2
    done | median
}

printf '%-11s %6s | %9s %9s %9s %7s %7s | %9s %9s %7s | %s\n' model batch dpt-1r dpt-2r \
    dpt-2r-blk scale blk-sc torch-1r torch-2r t-scale "dpt-2r / torch-2r"
for model in fmnist-cnn lenet5; do
    for b in 64 128; do
        one=$(dptrain_rate "$model" 1 "$b")
        two=$(dptrain_rate "$model" 2 "$b")
        blk=$(dptrain_rate "$model" 2 "$b" --no-overlap)
        t1=$(torch_rate "$model" 1 "$b")
        t2=$(torch_rate "$model" 2 "$b")
        awk -v m="$model" -v b="$b" -v o="$one" -v t="$two" -v k="$blk" -v p="$t1" -v q="$t2" \
            'BEGIN { printf "%-11s %6d | %9.0f %9.0f %9.0f %6.2fx %6.2fx | %9.0f %9.0f %6.2fx | %.2fx\n",
                     m, b, o, t, k, t / o, k / o, p, q, q / p, t / q }'
    done
done
