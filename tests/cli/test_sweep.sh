#!/usr/bin/env bash
# End-to-end checks of `dptrain sweep` and `dptrain interpolate` under a real mpirun. Oracles:
# standalone `dptrain train` runs of the same configurations (bit-identical weights with
# --deterministic, h5diff with no tolerance), the Cartesian order of the grid written out by hand,
# one initial-weights checksum for every point, and `dptrain eval` of the two endpoints.
. "$(dirname "$0")/common.sh"

np_run() { # np, then dptrain arguments
    local np=$1
    shift
    "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@"
}
det=(--data sample --model lenet5 --test-samples 128 --no-progress --deterministic
     --micro-batch 8 --max-steps 6 --optim momentum --lr 0.05)

# -- 3 points at 2 ranks (2 groups, one queued) and at 4 ranks (2 groups of 2) equal standalone
for np in 2 4; do
    check "sweep-3-points-np$np" 0 "sweep: 3 points" np_run $np sweep "${det[@]}" \
        --batch-sizes 16,32,64 --out "$tmp/sw$np"
done
grep -q "3 points on 4 ranks: 2 groups of 2 ranks" "$tmp/out"
pass_if $? "3 points on 4 ranks: not laid out as 2 groups of 2"
i=0
for b in 16 32 64; do
    check "standalone-batch-$b" 0 "final test accuracy" "$dptrain" train "${det[@]}" --batch $b \
        --out "$tmp/alone$b"
    for np in 2 4; do
        h5diff "$tmp/alone$b/checkpoints/final.h5" "$tmp/sw$np/points/0$i/checkpoints/final.h5" \
            /params >"$tmp/diff" 2>&1
        pass_if $? "sweep point $i (batch $b) at np $np differs from the standalone run"
    done
    i=$((i + 1))
done

# -- the grid: batch sizes outermost, the last --vary fastest; one initial-weights checksum
check sweep-grid 0 "sweep: 8 points" np_run 2 sweep --data sample --model lenet5 --max-steps 2 \
    --test-samples 64 --no-progress --quiet --batch-sizes 32,64 --vary lr=0.01,0.1 \
    --vary weight-decay=0,1e-4 --out "$tmp/grid"
cut -d, -f2 "$tmp/grid/sweep.csv" | tail -n +2 >"$tmp/labels"
cat >"$tmp/want" <<'EOS'
"batch=32 lr=0.01 weight-decay=0"
"batch=32 lr=0.01 weight-decay=1e-4"
"batch=32 lr=0.1 weight-decay=0"
"batch=32 lr=0.1 weight-decay=1e-4"
"batch=64 lr=0.01 weight-decay=0"
"batch=64 lr=0.01 weight-decay=1e-4"
"batch=64 lr=0.1 weight-decay=0"
"batch=64 lr=0.1 weight-decay=1e-4"
EOS
diff "$tmp/want" "$tmp/labels" >/dev/null
pass_if $? "grid order: $(tr '\n' ' ' <"$tmp/labels")"
[ "$(awk -F, 'NR > 1 { print $(NF - 1) }' "$tmp/grid/sweep.csv" | sort -u | wc -l)" = 1 ]
pass_if $? "the points did not all start from the same weights"
awk -F, 'NR > 1 { if ($3 != (NR <= 5 ? 32 : 64)) exit 1 }' "$tmp/grid/sweep.csv"
pass_if $? "sweep.csv batch column does not follow the grid"

# -- a --variant axis of named option sets (words grouped by quotes), crossed with seeds
check sweep-variants 0 "sweep: 4 points from 4 initial weights" np_run 2 sweep --data sample \
    --model lenet5 --max-steps 2 --test-samples 64 --no-progress --batch-sizes 32 \
    --variant none= --variant small='--model "conv2d(4,5) relu maxpool(2) flatten dense(10)"' \
    --vary seed=1,2 --out "$tmp/var"
grep -q 'batch=32 variant=small seed=2' "$tmp/var/sweep.csv"
pass_if $? "variant labels missing from sweep.csv"
grep -q 'conv2d(4,5' "$tmp/var/points/02/metrics.csv" 2>/dev/null ||
    h5dump -a /model_spec "$tmp/var/points/02/checkpoints/final.h5" | grep -q 'conv2d(4,5'
pass_if $? "point 2 did not train the variant's model"

# -- sweep options that are wrong
check sweep-unknown fail "dptrain: error: .*sweep point 0 .*unknown option '--bogus'" np_run 2 \
    sweep --data sample --batch-sizes 32 --vary bogus=1,2 --out "$tmp/bad"
check sweep-batch fail "dptrain: error: .*--batch-sizes" "$dptrain" sweep --batch 32 --out "$tmp/bad"
check sweep-no-sizes fail "dptrain: error: .*needs --batch-sizes" "$dptrain" sweep --out "$tmp/bad"
check sweep-both fail "dptrain: error: .*--lr: both varied" "$dptrain" sweep --batch-sizes 32 \
    --lr 0.1 --vary lr=0.1,0.2 --out "$tmp/bad"

# -- interpolation: endpoints are `dptrain eval` of A and B; the same numbers at 1 and 2 ranks
a="$tmp/sw2/points/00/checkpoints/final.h5" b="$tmp/sw2/points/02/checkpoints/final.h5"
for np in 1 2; do
    check "interpolate-np$np" 0 "alpha" np_run $np interpolate "$a" "$b" --data sample --points 3 \
        --range 0,1 --test-samples 128 --h5 "$tmp/interp$np.h5"
    cp "$tmp/out" "$tmp/interp$np.log"
done
h5diff "$tmp/interp1.h5" "$tmp/interp2.h5" >/dev/null 2>&1
pass_if $? "interpolation differs between 1 and 2 ranks"
for end in a b; do
    ckpt=${!end}
    row=$([ $end = a ] && echo "0.0000" || echo "1.0000")
    "$dptrain" eval "$ckpt" --data sample --test-samples 128 >"$tmp/eval" 2>&1
    want=$(grep -oE "^test accuracy [0-9.]+ \(loss [0-9.]+\)" "$tmp/eval" |
        awk '{ gsub(/[()]/, ""); print $5, $3 }')
    got=$(awk -v r="$row" '$1 == r { print $4, $5 }' "$tmp/interp1.log")
    [ -n "$want" ] && [ "$want" = "$got" ]
    pass_if $? "endpoint $end: interpolate says '$got', eval says '$want' (test loss, acc)"
done
check interpolate-recompute 0 "re-estimated" np_run 2 interpolate "$a" "$b" --data sample \
    --points 2 --range 0,1 --bn recompute --test-samples 64 --train-samples 64
check interpolate-one fail "dptrain: error: .*interpolate: give two checkpoints" "$dptrain" interpolate "$a"
check interpolate-range fail "dptrain: error: .*--range" "$dptrain" interpolate "$a" "$b" \
    --range 1,0

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]

