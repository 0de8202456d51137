#!/usr/bin/env bash
# Data-parallel scaling benchmark (issue #5): images/s of fmnist-cnn and lenet5 training with 1 and
# 2 ranks (one per core) at per-rank batch 64 and 128, bucketed overlap on and off, next to PyTorch
# DDP (gloo, one thread per process) measured in the same run. Each figure is the median of REPS
# runs, and the runs of one row take turns (rep 1 of every column, then rep 2, ...), so that the
# shared machine's drift hits every column alike; ratios are against the 1-rank dptrain run of the
# same row.
# A second table (issue #14) puts threads beside ranks on the same two cores, per-core batch 64:
# 1 rank x 1 thread (batch 64, and batch 128: the same work per step as the 2-thread run),
# 1 rank x 2 threads (batch 128, --bind-to none so both threads get a core), 2 ranks x 1 thread
# (global batch 128), PyTorch in one process with 2 threads (batch 128), and two independent
# 1-rank processes at once, one on each of CPUs 0 and 1 (2x1r1t: the sum of their images/s, what
# the two cores give work that never meets), all in this run.
#   scripts/bench-scaling.sh [REPS=3] [STEPS=60]     THREADS_ONLY=1: the second table only;
#   MODELS="fmnist-cnn": those models only
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

dptrain_once() { # model ranks per-rank-batch extra-options...
    local model=$1 np=$2 b=$3 bind=core
    shift 3
    case " $* " in *" --threads "*) bind=none ;; esac # a rank's threads need cores of their own
    mpirun -np "$np" --bind-to "$bind" --oversubscribe "$build/dptrain" train --model "$model" \
        --data "$data" --epochs 1 --batch $((b * np)) --max-steps "$steps" --quiet "$@" |
        grep -oE '[0-9.]+ images/s' | awk '{ print $1 }'
}

torch_once() { # model ranks per-rank-batch [threads]
    /usr/bin/python3 scripts/bench-ddp.py --model "$1" --ranks "$2" --batch "$3" \
        --threads "${4:-1}" \
        --steps $((steps / 6 + 2)) --windows 3 | grep -oE 'images/s=[0-9.]+' | cut -d= -f2
}

# Two independent 1-rank 1-thread runs at once, one pinned to each of CPUs 0 and 1: the sum of
# their images/s, what two cores give work that never meets (the ceiling for threads and ranks).
pinned_once() { # cpu model batch: one 1-rank run (no mpirun) on that CPU, its images/s
    taskset -c "$1" "$build/dptrain" train --model "$2" --data "$data" --epochs 1 --batch "$3" \
        --max-steps "$steps" --quiet | grep -oE '[0-9.]+ images/s' | awk '{ print $1 }'
}

pair_once() { # model per-process-batch
    local first second
    first=$(mktemp)
    pinned_once 0 "$1" "$2" >"$first" &
    second=$(pinned_once 1 "$1" "$2")
    wait
    awk -v s="$second" '{ print $1 + s }' "$first"
    rm -f "$first"
}

# Runs the commands given as arguments (each one string, eval'ed) in turn, REPS rounds, and prints
# the median of each command's figures, in order.
medians_in_turn() {
    local runs
    runs=$(mktemp)
    for _ in $(seq "$reps"); do
        local line=""
        for cmd in "$@"; do
            line="$line $(eval "$cmd")"
        done
        echo "$line" >>"$runs"
    done
    for k in $(seq $#); do
        awk -v k="$k" '{ print $k }' "$runs" | median
    done | tr '\n' ' '
    echo
    rm -f "$runs"
}

if [ "${THREADS_ONLY:-0}" != 1 ]; then
printf '%-11s %6s | %9s %9s %9s %7s %7s | %9s %9s %7s | %s\n' model batch dpt-1r dpt-2r \
    dpt-2r-blk scale blk-sc torch-1r torch-2r t-scale "dpt-2r / torch-2r"
for model in ${MODELS:-fmnist-cnn lenet5}; do
    for b in 64 128; do
        read -r one two blk t1 t2 < <(medians_in_turn "dptrain_once $model 1 $b" \
            "dptrain_once $model 2 $b" "dptrain_once $model 2 $b --no-overlap" \
            "torch_once $model 1 $b" "torch_once $model 2 $b")
        awk -v m="$model" -v b="$b" -v o="$one" -v t="$two" -v k="$blk" -v p="$t1" -v q="$t2" \
            'BEGIN { printf "%-11s %6d | %9.0f %9.0f %9.0f %6.2fx %6.2fx | %9.0f %9.0f %6.2fx | %.2fx\n",
                     m, b, o, t, k, t / o, k / o, p, q, q / p, t / q }'
    done
done
fi

echo
printf '%-11s %6s | %9s %9s %9s %9s %9s %9s | %8s %8s %8s %8s %8s\n' model b/core 1r1t 1r1t-b128 \
    1r2t 2r1t torch-2t 2x1r1t 1r2t/1r1t 1r2t/b128 1r2t/2r1t 1r2t/t2t 2x/1r1t
for model in ${MODELS:-fmnist-cnn lenet5}; do
    b=64
    read -r one one128 thr two tt pair < <(medians_in_turn "dptrain_once $model 1 $b" \
        "dptrain_once $model 1 $((2 * b))" "dptrain_once $model 1 $((2 * b)) --threads 2" \
        "dptrain_once $model 2 $b" "torch_once $model 1 $((2 * b)) 2" "pair_once $model $b")
    awk -v m="$model" -v b="$b" -v o="$one" -v w="$one128" -v h="$thr" -v t="$two" -v p="$tt" \
        -v x="$pair" 'BEGIN { printf "%-11s %6d | %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f | %7.2fx %7.2fx %7.2fx %7.2fx %7.2fx\n",
                 m, b, o, w, h, t, p, x, h / o, h / w, h / t, h / p, x / o }'
done
