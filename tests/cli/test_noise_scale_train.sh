#!/usr/bin/env bash
# End-to-end checks of --noise-scale-every under a real mpirun -np 2 (docs/noise-scale.md).
# Oracles: a finite positive b_simple in metrics.csv; the same b_simple from the three ways the
# local gradient norm is taken. Overlapped buckets, one blocking allreduce and tiny buckets give
# bit-identical gradients at 2 ranks (each element's sum is one commutative float addition), so
# only the double sum of squares is grouped differently: equal to the CSV's 9 digits (1e-8
# relative). --deterministic sums in fixed point instead of float, so its trajectory differs by
# rounding; SGD keeps that difference at rounding size (Adam's first steps are lr*sign(g)), and
# measured it is 2e-9 relative after 46 steps: the check allows 1e-5, as the other float-mode
# comparisons do. Columns off are nan; bad option values are errors naming the option.
. "$(dirname "$0")/common.sh"

np_run() { # np, then dptrain arguments
    local np=$1
    shift
    "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@"
}
common=(--data sample --model lenet5 --batch 64 --epochs 1 --quiet --no-progress)
col() { tail -n 1 "$1/metrics.csv" | cut -d, -f"$2"; } # run dir, column (12-14: the new ones)

check default 0 "" np_run 2 train "${common[@]}" --noise-scale-every 5 --out "$tmp/r"
head -n 1 "$tmp/r/metrics.csv" | grep -q ",grad_sq,trace_sigma,b_simple$"
pass_if $? "metrics.csv header does not end with grad_sq,trace_sigma,b_simple"
awk -v b="$(col "$tmp/r" 14)" -v g="$(col "$tmp/r" 12)" -v s="$(col "$tmp/r" 13)" \
    'BEGIN { exit !(b > 0 && b < 1e12 && g > 0 && s > 0 && (s / g - b) ^ 2 <= (1e-8 * b) ^ 2) }'
pass_if $? "b_simple $(col "$tmp/r" 14) is not finite and positive, or not trace_sigma/grad_sq"

sgd=(--noise-scale-every 5 --optim sgd --lr 0.05)
check float 0 "" np_run 2 train "${common[@]}" "${sgd[@]}" --out "$tmp/float"
check no-overlap 0 "" np_run 2 train "${common[@]}" "${sgd[@]}" --no-overlap --out "$tmp/block"
check buckets 0 "" np_run 2 train "${common[@]}" "${sgd[@]}" --bucket-mb 0.01 --out "$tmp/small"
check deterministic 0 "" np_run 2 train "${common[@]}" "${sgd[@]}" --deterministic \
    --micro-batch 8 --out "$tmp/det"
close() { # a, b, relative tolerance
    awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
        exit !(a > 0 && d <= r * a) }'
}
ref=$(col "$tmp/float" 14)
for run in block small; do
    close "$ref" "$(col "$tmp/$run" 14)" 1e-8
    pass_if $? "b_simple of $run ($(col "$tmp/$run" 14)) differs from overlapped ($ref)"
done
close "$ref" "$(col "$tmp/det" 14)" 1e-5
pass_if $? "b_simple of --deterministic ($(col "$tmp/det" 14)) differs from float ($ref)"

# one rank: the first micro-batch is the small batch; without micro-batches there is none
check one-rank 0 "" np_run 1 train "${common[@]}" --noise-scale-every 5 --micro-batch 16 \
    --out "$tmp/one"
awk -v b="$(col "$tmp/one" 14)" 'BEGIN { exit !(b > 0 && b < 1e12) }'
pass_if $? "one rank with --micro-batch 16: b_simple $(col "$tmp/one" 14) is not positive"
check one-rank-whole fail "dptrain: error: .*--noise-scale-every needs two batch sizes" \
    np_run 1 train "${common[@]}" --noise-scale-every 5 --out "$tmp/bad1"

check off 0 "" np_run 2 train "${common[@]}" --out "$tmp/off"
[ "$(tail -n 1 "$tmp/off/metrics.csv" | cut -d, -f12-14)" = "nan,nan,nan" ]
pass_if $? "without the option the columns are $(tail -n 1 "$tmp/off/metrics.csv" | cut -d, -f12-14)"
check zero fail "dptrain: error: .*--noise-scale-every: 0 is out of range" \
    np_run 2 train "${common[@]}" --noise-scale-every 0 --out "$tmp/bad0"

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
