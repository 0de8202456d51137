#!/usr/bin/env bash
# Data-parallel scaling benchmark (issue #5): images/s of fmnist-cnn and lenet5 training with 1 and
# 2 ranks (one per core) at per-rank batch 64 and 128, bucketed overlap on and off, next to PyTorch
# DDP (gloo, one thread per process) measured in the same run. Each figure is the median of REPS
# runs; ratios are against the 1-rank dptrain run of the same row.
# A second table (issue #14) puts threads beside ranks on the same two cores, per-core batch 64:
# 1 rank x 1 thread (batch 64), 1 rank x 2 threads (batch 128, --bind-to none so both threads get
# a core), 2 ranks x 1 thread (global batch 128) and PyTorch in one process with 2 threads
# (batch 128), all measured in this run.
#   scripts/bench-scaling.sh [REPS=3] [STEPS=60]     THREADS_ONLY=1: the second table only
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
    local model=$1 np=$2 b=$3 bind=core
    shift 3
    case " $* " in *" --threads "*) bind=none ;; esac # a rank's threads need cores of their own
    for _ in $(seq "$reps"); do
        mpirun -np "$np" --bind-to "$bind" --oversubscribe "$build/dptrain" train --model "$model" \
            --data "$data" --epochs 1 --batch $((b * np)) --max-steps "$steps" --quiet "$@" |
            grep -oE '[0-9.]+ images/s' | awk '{ print $1 }'
    done | median
}

torch_rate() { # model ranks per-rank-batch [threads]
    for _ in $(seq "$reps"); do
        /usr/bin/python3 scripts/bench-ddp.py --model "$1" --ranks "$2" --batch "$3" \
            --threads "${4:-1}" \
            --steps $((steps / 6 + 2)) --windows 3 | grep -oE 'images/s=[0-9.]+' | cut -d= -f2
    done | median
}

if [ "${THREADS_ONLY:-0}" != 1 ]; then
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
fi

echo
printf '%-11s %6s | %9s %9s %9s %9s | %8s %8s %8s\n' model b/core 1r1t 1r2t 2r1t torch-2t \
    1r2t/1r1t 1r2t/2r1t 1r2t/t2t
for model in fmnist-cnn lenet5; do
    b=64
    one=$(dptrain_rate "$model" 1 "$b")
    thr=$(dptrain_rate "$model" 1 $((2 * b)) --threads 2)
    two=$(dptrain_rate "$model" 2 "$b")
    tt=$(torch_rate "$model" 1 $((2 * b)) 2)
    awk -v m="$model" -v b="$b" -v o="$one" -v h="$thr" -v t="$two" -v p="$tt" \
        'BEGIN { printf "%-11s %6d | %9.0f %9.0f %9.0f %9.0f | %7.2fx %7.2fx %7.2fx\n",
                 m, b, o, h, t, p, h / o, h / t, h / p }'
done
