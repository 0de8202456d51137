#!/usr/bin/env bash
# Communication over emulated links (issue 13 items 4 and 5; docs/scaling.md), on demand, as root.
#   scripts/bench-links.sh [--build DIR] [--runs N] [--steps S] [--only allreduce|train]
# 1. allreduce: tests/bench/bench_allreduce's MPI_Allreduce latency (4 B .. 16 MiB) over shared
#    memory (1 host, 2 and 4 ranks) and over TCP between emulated hosts (scripts/cluster.sh:
#    2 hosts x 1 rank unshaped, at 10 Gbit/s and at 1 Gbit/s, and 2 hosts x 2 ranks at 1 Gbit/s),
#    and the ring model T(n) = 2(p-1) alpha + 2(p-1)/p n/beta fitted to each (alpha from the small
#    messages, beta from the large ones): alpha, beta, the worst misfit.
# 2. train: fmnist-cnn and lenet5, 2 ranks at batch 64 per rank, over shared memory and over 2
#    hosts x 1 rank at 10 and 1 Gbit/s, with gradient overlap on (default buckets, and 0.5 MiB
#    buckets: --bucket-mb 0.5) and off (--no-overlap): median
#    images/s over N runs (default 3) of S steps (default 60), the allreduce wait fraction from
#    --profile, and the ratio to shared memory with overlap measured in the same run.
# Links are shaped with tbf when the kernel lacks netem (then no delay can be added; the fit's
# alpha is that of the veth pair and TCP stack). Everything runs on this machine's cores: the
# hosts share them, so the compute side is that of 2 ranks on 2 cores in every row.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build runs=3 steps=60 only="" small_mb=0.5
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--runs N] [--steps S] [--only allreduce|train]" >&2; exit 2 ;;
    esac
done
dptrain=$PWD/$build/dptrain
bench=$PWD/$build/tests/bench/bench_allreduce
[ -x "$dptrain" ] || { echo "$dptrain: not built" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export DPT_CLUSTER_DIR=${DPT_CLUSTER_DIR:-/tmp/dpt-bench-links}
tmp=$(mktemp -d)
trap 'scripts/cluster.sh down >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# link NAME: brings the emulated cluster into the state NAME needs (shm: none)
link() {
    scripts/cluster.sh down >/dev/null 2>&1 || true
    case $1 in
    shm) ;;
    tcp) scripts/cluster.sh up 2 --slots 2 >/dev/null ;;
    10gbit | 1gbit) scripts/cluster.sh up 2 --slots 2 --rate "$1" >/dev/null ;;
    esac
}

# launch NAME NP PER-HOST COMMAND...: mpirun over shared memory or across the 2 hosts
launch() {
    local name=$1 np=$2 per=$3
    shift 3
    if [ "$name" = shm ]; then
        mpirun -np "$np" --oversubscribe --bind-to none "$@"
    else
        scripts/cluster.sh mpirun -np "$np" --map-by "ppr:$per:node" "$@"
    fi
}

# fit FILE NP: alpha (us) and beta (MB/s) of the ring model from "bytes latency_us" lines, in two
# regimes as Hockney fits do: alpha from the messages of at most 1 KiB (their median latency),
# beta from those of at least 1 MiB (least squares through the alpha term), then the worst
# relative misfit over all sizes (the eager/rendezvous switch in between is not in the model)
fit() {
    awk -v p="$2" '
    { n[NR] = $1; t[NR] = $2 }
    END {
        k = 0
        for (i = 1; i <= NR; i++) if (n[i] <= 1024) { # insertion sort (mawk has no asort)
            v = t[i]; for (j = k; j >= 1 && small[j] > v; j--) small[j + 1] = small[j]
            small[j + 1] = v; k++
        }
        a = small[int((k + 1) / 2)]
        for (i = 1; i <= NR; i++) if (n[i] >= 1048576) { snn += n[i] * n[i]; snt += n[i] * (t[i] - a) }
        b = snt / snn
        alpha = a / (2 * (p - 1)); beta = 2 * (p - 1) / p / b # bytes/us = MB/s
        worst = 0
        for (i = 1; i <= NR; i++) {
            e = (a + b * n[i]) / t[i] - 1; if (e < 0) e = -e
            if (e > worst) { worst = e; at = n[i] }
        }
        printf "%.1f %.0f %.0f %d\n", alpha, beta, 100 * worst, at
    }' "$1"
}

if [ "$only" != train ]; then
    [ -x "$bench" ] || { echo "$bench: not built (-DDPT_BUILD_BENCH=ON)" >&2; exit 1; }
    echo "## MPI_Allreduce (float sum): ring model fit, T(n) = 2(p-1) alpha + 2(p-1)/p n / beta"
    echo
    echo "| link | ranks | alpha (us) | beta (MB/s) | worst misfit | T(4 B) us | T(1 MiB) us | T(16 MiB) us |"
    echo "|---|---|---|---|---|---|---|---|"
    for spec in "shm 2 2" "shm 4 4" "tcp 2 1" "10gbit 2 1" "1gbit 2 1" "1gbit 4 2"; do
        read -r name np per <<<"$spec"
        link "$name"
        launch "$name" "$np" "$per" "$bench" --steps 1 >"$tmp/ar-$name-$np.log" 2>&1 ||
            { echo "bench_allreduce failed on $name x $np:"; tail -n 5 "$tmp/ar-$name-$np.log"; exit 1; }
        # the latency table: "bytes iters latency_us algbw busbw"
        awk '/^# MPI_Allreduce/ { on = 1; next } on && $1 ~ /^[0-9]+$/ && NF == 5 { print $1, $3 }
             on && /^#/ && !/bytes/ { on = 0 }' "$tmp/ar-$name-$np.log" >"$tmp/ar-$name-$np.dat"
        read -r alpha beta worst at <<<"$(fit "$tmp/ar-$name-$np.dat" "$np")"
        lat() { awk -v b="$1" '$1 == b { print $2 }' "$tmp/ar-$name-$np.dat"; }
        echo "| $name | $np | $alpha | $beta | ${worst}% at $at B | $(lat 4) | $(lat 1048576) | $(lat 16777216) |"
        echo "$name $np $alpha $beta" >>"$tmp/fits"
        cp "$tmp/ar-$name-$np.dat" "${DPT_BENCH_KEEP:-$tmp}/allreduce-$name-$np.dat" 2>/dev/null || true
    done
    echo
fi

med() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# measure MODEL LINK NP BATCH [OPTIONS...]: $runs runs; sets the medians ips (images/s), wait (%),
# ms (allreduce wait per step) and bwd (backward's share of forward + backward + optimizer)
measure() {
    local model=$1 name=$2 np=$3 batch=$4 r
    shift 4
    : >"$tmp/ips" && : >"$tmp/wait" && : >"$tmp/ms" && : >"$tmp/bwd"
    for r in $(seq "$runs"); do
        launch "$name" "$np" 1 "$dptrain" train --data "$data" --model "$model" --batch "$batch" \
            --max-steps "$steps" --epochs 1 --test-samples 256 --profile --no-progress --quiet \
            "$@" >"$tmp/run.log" 2>&1 ||
            { echo "training failed ($model, $name, $np ranks, $*):"; tail -n 5 "$tmp/run.log"; exit 1; }
        sed -n 's/.* \([0-9.]*\) images\/s.*/\1/p' "$tmp/run.log" | tail -n 1 >>"$tmp/ips"
        # the profile's lines: "allreduce wait 0.416 69.2%", "backward 0.103 17.2%"
        awk -v s="$steps" '/allreduce wait/ { print $NF + 0 >>"'"$tmp/wait"'"; print 1000 * $(NF - 1) / s >>"'"$tmp/ms"'" }
            $1 == "forward" || $1 == "backward" || $1 == "optimizer" { t[$1] = $2 }
            END { d = t["forward"] + t["backward"] + t["optimizer"]; if (d > 0) print t["backward"] / d >>"'"$tmp/bwd"'" }' \
            "$tmp/run.log"
    done
    ips=$(med "$tmp/ips") wait=$(med "$tmp/wait") ms=$(med "$tmp/ms") bwd=$(med "$tmp/bwd")
}

if [ "$only" != allreduce ]; then
    data=${DPT_DATA:-fashion-mnist}
    echo "## Training: 2 ranks, batch 64 per rank, $steps steps, median of $runs runs"
    echo
    echo "| model | link | overlap | images/s | vs shm, overlap on | allreduce wait | wait per step (ms) |"
    echo "|---|---|---|---|---|---|---|"
    for model in fmnist-cnn lenet5; do
        link shm
        measure "$model" shm 1 64 # 1 rank at batch 64: the compute alone
        echo "| $model | 1 rank | - | $ips | - | - | - |"
        echo "$model $ips $bwd" >>"$tmp/one"
        base=""
        for name in shm 10gbit 1gbit; do
            link "$name"
            for overlap in on "on, ${small_mb} MiB buckets" off; do
                case $overlap in
                on) flag=() ;;
                off) flag=(--no-overlap) ;;
                *) flag=(--bucket-mb "$small_mb") ;;
                esac
                measure "$model" "$name" 2 128 "${flag[@]}"
                [ -z "$base" ] && base=$ips
                echo "| $model | $name | $overlap | $ips | $(awk -v a="$ips" -v b="$base" 'BEGIN { printf "%.2f", a / b }') | $wait % | $(printf %.2f "$ms") |"
            done
        done
    done
fi

# 3. predictions from the fits and the 1-rank compute time measured above
if [ -z "$only" ]; then
    read -r _ ips bwd <<<"$(grep '^fmnist-cnn ' "$tmp/one")"
    read -r params mflops <<<"$("$dptrain" train --data "${DPT_DATA:-fashion-mnist}" \
        --model fmnist-cnn --print-model | awk '$1 == "total" { print $2, $3 }')"
    links=()
    while read -r name np alpha beta; do
        case "$name $np" in "shm 4" | "10gbit 2" | "1gbit 2") links+=(--link "$name:$alpha:$beta") ;; esac
    done <"$tmp/fits"
    step=$(awk -v i="$ips" 'BEGIN { printf "%.3f", 64 / i * 1000 }')
    echo
    echo "## Predicted efficiency, fmnist-cnn ($params parameters) at batch 64 per rank"
    echo "(one rank's step: $step ms measured above, backward share $(printf %.2f "$bwd"))"
    echo
    scripts/predict-scaling.sh --step-ms "$step" --params "$params" --backward "$bwd" "${links[@]}"
    # A ResNet-50-sized model: 25.6 M parameters, 7.6 GFLOP per image forward (3.8 G
    # multiply-adds, He et al. 2016), batch 32 per rank, at the FLOP rate fmnist-cnn reaches here.
    rstep=$(awk -v s="$step" -v m="$mflops" 'BEGIN { printf "%.1f", s / 64 * 32 * 7600 / m }')
    echo
    echo "## Predicted efficiency, a 25.6 M-parameter model (ResNet-50-sized) at batch 32 per rank"
    echo "(one rank's step: $rstep ms, fmnist-cnn's step scaled by FLOPs: 7600 / $mflops MFLOP per image, x 32/64)"
    echo
    scripts/predict-scaling.sh --step-ms "$rstep" --params 25600000 --backward "$bwd" "${links[@]}"
fi
