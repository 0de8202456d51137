#!/usr/bin/env bash
# End-to-end checks of ensembles and cross-validation in rank groups, under a real mpirun.
# Oracles: the 1-rank run of the same member (bit-identical weights with --deterministic, h5diff
# with no tolerance; losses within 1e-5 relative in float mode), the printed layout against the
# rule P = min(G, R), `dptrain eval` of the manifest reproducing the logged ensemble accuracy
# exactly, and the clock for a failing member (every rank stops within 10 s).
. "$(dirname "$0")/common.sh"

np_run() { # np, then dptrain arguments
    local np=$1
    shift
    "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@"
}
common=(--data sample --model lenet5 --batch 32 --test-samples 128 --no-progress)

# -- group-size invariance: member j trained in a group of k ranks equals member j trained alone
for np in 1 2 4; do
    check "bagging-det-np$np" 0 "ensemble test accuracy" np_run $np train "${common[@]}" \
        --ensemble bagging --members 2 --deterministic --micro-batch 8 --max-steps 12 \
        --optim momentum --lr 0.05 --out "$tmp/det$np"
    cp "$tmp/out" "$tmp/det$np.log"
done
grep -q "2 members on 1 rank: 1 group of 1 rank" "$tmp/det1.log"
pass_if $? "layout np 1: both members queued on one group"
grep -q "2 members on 2 ranks: 2 groups of 1 rank" "$tmp/det2.log"
pass_if $? "layout np 2: 2 groups x 1 rank"
grep -q "2 members on 4 ranks: 2 groups of 2 ranks" "$tmp/det4.log"
pass_if $? "layout np 4: 2 groups x 2 ranks"
for np in 2 4; do
    for m in 00 01; do
        h5diff "$tmp/det1/members/$m/checkpoints/final.h5" \
            "$tmp/det$np/members/$m/checkpoints/final.h5" /params >"$tmp/diff" 2>&1
        pass_if $? "deterministic member $m at np $np differs from np 1: $(head -n 3 "$tmp/diff")"
    done
done
# the two members are different models (own bootstrap sample and initialization)
! h5diff -q "$tmp/det1/members/00/checkpoints/final.h5" "$tmp/det1/members/01/checkpoints/final.h5" \
    /params >/dev/null 2>&1
pass_if $? "members 0 and 1 have identical weights"

# float mode: the same member in a group of 2 ranks and alone, losses within 1e-5 relative
for np in 2 4; do
    check "bagging-float-np$np" 0 "ensemble test accuracy" np_run $np train "${common[@]}" \
        --ensemble bagging --members 2 --max-steps 20 --optim sgd --lr 0.05 --out "$tmp/flt$np"
done
a=$(tail -n 1 "$tmp/flt2/members/01/metrics.csv" | cut -d, -f4,8)
b=$(tail -n 1 "$tmp/flt4/members/01/metrics.csv" | cut -d, -f4,8)
awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, ","); split(b, y, ",");
    for (i = 1; i <= 2; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (!(d <= 1e-5 * x[i])) exit 1 } }'
pass_if $? "float member 1: losses alone ($a) and in 2 ranks ($b) differ by more than 1e-5"

# -- 5 members queued on 2 groups; the manifest reproduces the ensemble accuracy exactly
check bagging-queued 0 "group 0: rank 0, members 0 2 4" np_run 2 train "${common[@]}" \
    --ensemble bagging --members 5 --epochs 1 --out "$tmp/q5"
grep -q "group 1: rank 1, members 1 3" "$tmp/out"
pass_if $? "queued layout: group 1 runs members 1 and 3"
acc=$(grep -oE "^ensemble test accuracy [0-9.]+" "$tmp/out" | awk '{print $4}')
n=$(ls "$tmp"/q5/members/*/checkpoints/final.h5 2>/dev/null | wc -l)
[ "$n" = 5 ]
pass_if $? "queued run wrote $n member checkpoints, not 5"
check eval-manifest 0 "test accuracy ${acc:-x} on 128 samples" "$dptrain" eval \
    "$tmp/q5/ensemble.h5" --data sample --test-samples 128 --predictions "$tmp/pred.h5"
check eval-predictions 0 "DATASET \"probs\"" h5dump -H "$tmp/pred.h5"
check eval-manifest-np2 0 "test accuracy ${acc:-x} on 128 samples" np_run 2 eval \
    "$tmp/q5/ensemble.h5" --data sample --test-samples 128
check eval-train-split 0 "train accuracy [0-9.]+ .* on 3000 samples" "$dptrain" eval \
    "$tmp/q5/members/02/checkpoints/final.h5" --data sample --split train
check eval-val-split 0 "val accuracy" "$dptrain" eval "$tmp/q5/members/02/checkpoints/final.h5" \
    --data sample --split val

# -- one failing member stops the whole launch within 10 s; it leaves no final.h5
mkdir -p "$tmp/fail/members/01"
echo "not a folder" >"$tmp/fail/members/01/checkpoints"
start=$(date +%s)
check failing-member fail "dptrain: error: member 1: .*checkpoints" timeout 60 \
    "$mpirun" -np 2 --oversubscribe "$dptrain" train --data sample --model lenet5 --batch 32 \
    --epochs 400 --ensemble bagging --members 2 --out "$tmp/fail" --no-progress
elapsed=$(($(date +%s) - start))
[ $elapsed -le 10 ]
pass_if $? "failing member: the launch took ${elapsed}s to stop (limit 10 s)"
[ ! -e "$tmp/fail/members/01/checkpoints/final.h5" ] && [ ! -e "$tmp/fail/members/00/checkpoints/final.h5" ]
pass_if $? "failing member: a final.h5 was written"

# -- cross-validation: one fold per group, per-fold numbers and mean +- std
check cv-5-folds 0 "cv validation accuracy [0-9.]+ \+- [0-9.]+" np_run 2 cv "${common[@]}" \
    --folds 5 --stratified --epochs 1 --out "$tmp/cv"
[ "$(grep -cE '^ +[0-4] +600 ' "$tmp/out")" = 5 ]
pass_if $? "cv: expected 5 fold lines of 600 validation samples"
check cv-fold-indices 0 "SIMPLE \{ \( 600 \)" h5dump -H -d /member/heldout_indices \
    "$tmp/cv/members/03/checkpoints/final.h5"

# -- boosting: SAMME rounds, manifest weighted by alpha
check boosting 0 "ensemble test accuracy" np_run 2 train --data sample --model mlp --batch 64 \
    --epochs 1 --test-samples 128 --no-progress --ensemble boosting --rounds 3 --out "$tmp/boost"
acc=$(grep -oE "^ensemble test accuracy [0-9.]+" "$tmp/out" | awk '{print $4}')
check eval-boosting 0 "test accuracy ${acc:-x} on 128 samples" "$dptrain" eval \
    "$tmp/boost/ensemble.h5" --data sample --test-samples 128

# -- options that need a partner, and layouts that cannot be formed
check members-alone fail "dptrain: error: .*--members needs --ensemble bagging" "$dptrain" train \
    --members 3
check folds-in-train fail "dptrain: error: .*--folds is an option of dptrain cv" "$dptrain" train \
    --folds 3
check ensemble-no-out fail "dptrain: error: .*--ensemble needs --out" "$dptrain" train \
    --ensemble bagging --members 2
check bad-layout fail "dptrain: error: .*members: 4 ranks cannot form 3 groups" np_run 4 train \
    "${common[@]}" --ensemble bagging --members 3 --out "$tmp/bad"

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
