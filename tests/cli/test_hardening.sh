#!/usr/bin/env bash
# Hardening (issue 12, item 6): options that would do nothing, option-named value errors,
# OUT/args.txt, a consistent best.h5 after early stopping, a blow-up on the last step, checksummed
# and value-checked checkpoints, long messages that keep their reason, --max-steps 0 and an
# oversized --micro-batch. Short runs on the bundled sample data (lenet5, a few steps).
. "$(dirname "$0")/common.sh"
tamper=${DPT_CKPT_TAMPER:-$(dirname "$dptrain")/tests/ckpt_tamper}
quick=(--data sample --model lenet5 --epochs 2 --max-steps 2 --test-samples 100 --no-progress
       --quiet)
err='^dptrain: error: '

# 1. options without their partner (train, cv and sweep share the check); mixup + cutmix is a
# defined combination (each sample draws one of the two, 50/50: src/data/mix.c), so it runs.
check "early-stop without val-fraction" fail "$err.*--early-stop needs .*--val-fraction" \
    "$dptrain" train "${quick[@]}" --early-stop 2
check "step-epochs without step" fail "$err.*--step-epochs needs --schedule step" \
    "$dptrain" train "${quick[@]}" --step-epochs 1
check "final-lr without cosine" fail "$err.*--final-lr needs --schedule cosine" \
    "$dptrain" train "${quick[@]}" --schedule step --step-epochs 1 --final-lr 0.1
check "gamma without step/exponential" fail "$err.*--gamma needs --schedule step or exponential" \
    "$dptrain" train "${quick[@]}" --schedule cosine --gamma 0.5
check "warmup longer than the run" fail "$err.*--warmup-epochs 3 is longer than the run \(--epochs 2\)" \
    "$dptrain" train "${quick[@]}" --warmup-epochs 3
check "cv: step-epochs without step" fail "$err.*--step-epochs needs --schedule step" \
    "$dptrain" cv --folds 2 "${quick[@]}" --step-epochs 1 --out "$tmp/cv"
check "sweep: gamma without schedule" fail "$err.*--gamma needs --schedule" \
    "$dptrain" sweep --batch-sizes 64 "${quick[@]}" --gamma 0.5 --out "$tmp/sweep"
check "mixup with cutmix runs" 0 "^final test accuracy" \
    "$dptrain" train "${quick[@]}" --mixup 0.2 --cutmix 1.0

# 2. hyper-parameter values name the option
check "lr -1 names --lr" fail "$err.*--lr: -1 is out of range \(adam needs lr >= 0\)" \
    "$dptrain" train "${quick[@]}" --lr -1
check "beta1 1.5 names --beta1" fail "$err.*--beta1: 1.5 is out of range \(adam needs beta1 in" \
    "$dptrain" train "${quick[@]}" --beta1 1.5
check "momentum with adam" fail "$err.*--momentum: adam has no momentum" \
    "$dptrain" train "${quick[@]}" --momentum 0.9
check "sgd without lr" fail "$err.*--optim sgd needs --lr" \
    "$dptrain" train "${quick[@]}" --optim sgd
check "lr 1e400" fail "$err.*--lr: 1e400 is out of range" \
    "$dptrain" train "${quick[@]}" --lr 1e400

# 3. OUT/args.txt: the command line and every option's resolved value; the checkpoint's config
check "run for args.txt" 0 "" "$dptrain" train "${quick[@]}" --out "$tmp/run"
grep -q -- "^dptrain train .*--out $tmp/run" "$tmp/run/args.txt" &&
    grep -qx -- "--lr 0.001" "$tmp/run/args.txt" && grep -qx -- "--batch 128" "$tmp/run/args.txt"
pass_if $? "args.txt lacks the command line or resolved values: $(head -c 400 "$tmp/run/args.txt")"
h5dump -a /config "$tmp/run/checkpoints/final.h5" | grep -q '"dptrain train '
pass_if $? "final.h5's config attribute does not hold the command line"

# 4. early stop: best.h5 is the best epoch's own state; final.h5 holds the same weights
es=(--data sample --model lenet5 --val-fraction 0.2 --early-stop 1 --epochs 6 --optim sgd --lr 0.3
    --test-samples 200 --no-progress --out "$tmp/es")
check "early stop run" 0 "early stop: .*restoring epoch" "$dptrain" train "${es[@]}"
best_epoch=$(sed -n 's/.*restoring epoch \([0-9]*\).*/\1/p' "$tmp/out")
h5dump -a /epoch "$tmp/es/checkpoints/best.h5" | grep -q "(0): $best_epoch\$"
pass_if $? "best.h5's epoch is not the restored epoch $best_epoch"
h5diff -d 0 "$tmp/es/checkpoints/best.h5" "$tmp/es/checkpoints/final.h5" /params >/dev/null
pass_if $? "best.h5 and final.h5 hold different weights after an early stop"
[ "$(h5dump -a /optimizer/step "$tmp/es/checkpoints/best.h5" | sed -n 's/.*(0): //p')" \
  -lt "$(h5dump -a /optimizer/step "$tmp/es/checkpoints/final.h5" | sed -n 's/.*(0): //p')" ]
pass_if $? "best.h5's optimizer state is not the best epoch's"

# 5. a blow-up on the last step fails, naming the step, and saves nothing
check "blow-up on the last step" fail "$err.*step 1 \(epoch 1\): .*(non-finite|diverged)" \
    "$dptrain" train "${quick[@]}" --optim sgd --lr 1e38 --max-steps 1 --out "$tmp/blow"
[ ! -e "$tmp/blow/checkpoints/final.h5" ]
pass_if $? "a diverged run wrote final.h5"

# 6. checksums: a flipped byte inside a weight's data is caught; a NaN weight is named
ckpt=$tmp/run/checkpoints/final.h5
check "checksummed checkpoint evaluates" 0 "accuracy" "$dptrain" eval "$ckpt" --data sample \
    --test-samples 100
h5dump -p -H "$ckpt" | grep -q "CHECKSUM FLETCHER32"
pass_if $? "final.h5 datasets carry no Fletcher32 filter"
cp "$ckpt" "$tmp/flip.h5"
off=$("$tamper" offset "$tmp/flip.h5" /params/03_conv2d/weight) && off=$((off + 100))
byte=$(od -An -tu1 -j "$off" -N1 "$tmp/flip.h5" | tr -d ' ')
printf "\\$(printf %03o $((byte ^ 4)))" | dd of="$tmp/flip.h5" bs=1 seek="$off" conv=notrunc 2>/dev/null
check "flipped byte" fail "$err.*flip.h5: checksum mismatch in params/03_conv2d/weight \(corrupt file\)" \
    "$dptrain" eval "$tmp/flip.h5" --data sample --test-samples 100
cp "$ckpt" "$tmp/nan.h5"
"$tamper" nan "$tmp/nan.h5" /params/07_dense/bias
check "NaN weight" fail "$err.*nan.h5: params/07_dense/bias\[0\] is nan \(non-finite weights\)" \
    "$dptrain" eval "$tmp/nan.h5" --data sample --test-samples 100

# 7. a long path is shortened in the middle; the reason survives (1 and 2 ranks)
seg=$(printf 'd%.0s' $(seq 250))
long=$tmp/$seg/$seg/$seg/$seg/$seg/x.h5 # 1270 characters, components under NAME_MAX
check "long path keeps the reason" fail "$err.*\.\.\..*/x\.h5: cannot open: No such file" \
    "$dptrain" eval "$long" --data sample
check "long path keeps the reason, 2 ranks" fail "$err.*\.\.\..*/x\.h5: cannot open: No such file" \
    "$mpirun" -np 2 --oversubscribe "$dptrain" eval "$long" --data sample

# 8. --max-steps 0 is refused (omit it); --micro-batch above --batch is refused, above a rank's
# slice (here 32 per rank) it is accepted: the slice goes in one pass
check "max-steps 0" fail "$err.*--max-steps: 0 is out of range \(N >= 1; omit it for no limit\)" \
    "$dptrain" train "${quick[@]}" --max-steps 0
check "help says omit max-steps" 0 "--max-steps N .*omit it for no limit" "$dptrain" train --help
check "micro-batch above batch" fail "$err.*--micro-batch 200 is larger than --batch 64" \
    "$dptrain" train "${quick[@]}" --batch 64 --micro-batch 200
check "micro-batch above the slice" 0 "^final test accuracy" \
    "$mpirun" -np 2 --oversubscribe "$dptrain" train "${quick[@]}" --batch 64 --micro-batch 48

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
