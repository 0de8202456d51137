#!/usr/bin/env bash
# Input hardening (issue 12, item 5): where the class count comes from (the model's last layer,
# --classes or what the data declares, never the largest label), model-spec integers out of range
# before any wrap-around, non-ASCII spec characters named by code point and position, long spec
# tokens shortened, and option values that are NaN, inf, negative or zero where meaningless.
. "$(dirname "$0")/common.sh"
err='^dptrain: error: '
quick=(--data sample --epochs 1 --max-steps 1 --test-samples 50 --no-progress --quiet)

# An IDX directory declares no class count: copy the bundled sample's files into one.
mkdir -p "$tmp/idx"
cp "$src"/datasets/fashion-mnist-sample/*-ubyte.gz "$tmp/idx/"
idx=(--data "$tmp/idx" --epochs 1 --max-steps 1 --test-samples 50 --no-progress --quiet)

# 1. the class count
check "undeclared classes need --classes" fail \
    "$err.*--data .*/idx: the class count is not known .*give --classes K" \
    "$dptrain" train "${idx[@]}" --model lenet5
check "--classes gives it" 0 "^final test accuracy" \
    "$dptrain" train "${idx[@]}" --model lenet5 --classes 10
check "the model's dense(N) gives it" 0 "dense\(10\)" \
    "$dptrain" train "${idx[@]}" --model "flatten dense(32) relu dense(10)" --print-model
check "--classes against the model" fail \
    "$err.*--classes 12: the model's last layer dense\(10\) has 10 outputs" \
    "$dptrain" train "${idx[@]}" --model "flatten dense(10)" --classes 12
check "a label beyond --classes names file, sample, value" fail \
    "$err.*train-labels-idx1-ubyte.gz: label 9 at sample 0 is outside \[0, 5\)" \
    "$dptrain" train "${idx[@]}" --model lenet5 --classes 5
check "a label beyond the model's outputs" fail \
    "$err.*train-labels-idx1-ubyte.gz: label 9 at sample 0 is outside \[0, 4\)" \
    "$dptrain" train "${quick[@]}" --model "flatten dense(4)"
check "--classes 1 is meaningless" fail "$err.*--classes: 1 is out of range \[2, 1048576\]" \
    "$dptrain" train "${idx[@]}" --classes 1
check "--classes in help" 0 "--classes K +number of classes" "$dptrain" train --help

# 2. model-spec integers: out of range, named, before any arithmetic on them
check "channels beyond int32" fail \
    "$err.*\"conv2d\(4294967296,3\)\" \(layer 0\): out: 4294967296 is out of range \[1, 2147483647\]" \
    "$dptrain" train "${quick[@]}" --model "conv2d(4294967296,3) flatten dense(10)"
check "beyond int64" fail "$err.*k: 99999999999999999999 is out of range \[1, 2147483647\]" \
    "$dptrain" train "${quick[@]}" --model "conv2d(8,99999999999999999999) flatten dense(10)"
check "a 41-digit number" fail "$err.*\"9999999999.*\.\.\.\" is out of range" \
    "$dptrain" train "${quick[@]}" --model "conv2d(8,$(printf '9%.0s' $(seq 41))) flatten dense(10)"
check "per-dimension part out of range" fail "$err.*pad: 3000000000 is out of range" \
    "$dptrain" train "${quick[@]}" --model "conv2d(8,3,pad=1x3000000000) flatten dense(10)"
check "sizes that multiply past int64" fail \
    "$err.*\"dense\(2147483647\)\" \(layer 2\): weight \(2147483647, 2147483647\) is out of range" \
    "$dptrain" train "${quick[@]}" --model "flatten dense(2147483647) dense(2147483647) dense(10)"
check "a float out of range" fail "$err.*\"dropout\(1e999\)\" \(layer 3\): p: 1e999 is out of range \[0, 1\]" \
    "$dptrain" train "${quick[@]}" --model "conv2d(8,3) flatten dense(10) dropout(1e999)"
check "NaN in a spec" fail "$err.*p: expected a number in \[0, 1\], got \"nan\"" \
    "$dptrain" train "${quick[@]}" --model "flatten dense(10) dropout(nan)"
check "negative out" fail "$err.*out: -1 is out of range \[1, 2147483647\]" \
    "$dptrain" train "${quick[@]}" --model "flatten dense(-1)"

# 3. characters: a non-ASCII character by code point and position (arrows and no-break spaces
# come with specs copied from documents); bytes that are not UTF-8; control characters
check "U+2192 arrow" fail "$err.*model spec: non-ASCII character U\+2192 at character 12" \
    "$dptrain" train "${quick[@]}" --model "conv2d(8,3)→flatten dense(10)"
check "U+00A0 no-break space" fail "$err.*non-ASCII character U\+00A0 at character 8" \
    "$dptrain" train "${quick[@]}" --model $'flatten\u00a0dense(10)'
check "U+1F600 (4-byte UTF-8)" fail "$err.*non-ASCII character U\+1F600 at character 15" \
    "$dptrain" train "${quick[@]}" --model $'flatten dense(\U0001F600)'
check "a byte that is not UTF-8" fail "$err.*byte 0xA0 at character 8 is not UTF-8" \
    "$dptrain" train "${quick[@]}" --model $'flatten\xa0dense(10)'
check "a control character" fail "$err.*control character U\+0001 at character 8" \
    "$dptrain" train "${quick[@]}" --model $'flatten\x01 dense(10)'

# 4. long tokens are shortened in messages, and the reason stays
long="conv2d(8,3,pad=$(printf 'abcdefghij%.0s' $(seq 10)))"
check "long token shortened" fail \
    "$err.*\"conv2d\(8,3,pad=abcdefghijabc\.\.\.defghijabcdefghijabcdefghij\)\" \(layer 0\): argument" \
    "$dptrain" train "${quick[@]}" --model "$long flatten dense(10)"
"$dptrain" train "${quick[@]}" --model "$long flatten dense(10)" >"$tmp/long" 2>&1
[ "$(wc -c <"$tmp/long")" -lt 300 ]
pass_if $? "long token: the message is under 300 bytes ($(wc -c <"$tmp/long"))"

# 5. option values: NaN, inf, negative or zero where meaningless; integer bounds in full
check "lr inf" fail "$err.*--lr: inf is not finite" "$dptrain" train "${quick[@]}" --lr inf
check "lr nan" fail "$err.*--lr: 'nan' is not a number \(NaN\)" \
    "$dptrain" train "${quick[@]}" --lr nan
check "momentum -inf" fail "$err.*--momentum: -inf is not finite" \
    "$dptrain" train "${quick[@]}" --optim sgd --lr 0.1 --momentum -inf
check "clip-norm 0" fail "$err.*--clip-norm: 0 is out of range" \
    "$dptrain" train "${quick[@]}" --clip-norm 0
check "batch 0" fail "$err.*--batch: 0 is out of range \[1, 100000000\]" \
    "$dptrain" train "${quick[@]}" --batch 0
check "ghost batch 0" fail "$err.*--bn: 0 is out of range \[1, 1073741824\]" \
    "$dptrain" train "${quick[@]}" --bn ghost:0
check "seed -1" fail "$err.*--seed: -1 is out of range \[0, 4294967295\]" \
    "$dptrain" train "${quick[@]}" --seed -1
check "max-samples 0" fail "$err.*--max-samples: 0 is out of range" \
    "$dptrain" train "${quick[@]}" --ensemble bagging --members 2 --max-samples 0 --out "$tmp/b"
check "boost-lr nan" fail "$err.*--boost-lr: 'nan' is not a number" \
    "$dptrain" train "${quick[@]}" --ensemble boosting --rounds 2 --boost-lr nan --out "$tmp/o"
check "val-fraction 1" fail "$err.*--val-fraction: 1 is out of range \[0, 0.99\]" \
    "$dptrain" train "${quick[@]}" --val-fraction 1
check "checkpoint-every 0steps" fail "$err.*--checkpoint-every: '0steps' is not N followed by" \
    "$dptrain" train "${quick[@]}" --checkpoint-every 0steps --out "$tmp/c"
check "sweep batch size 0" fail "$err.*sweep point 1 \(batch=0\): --batch: 0 is out of range" \
    "$dptrain" sweep "${quick[@]}" --batch-sizes 64,0 --out "$tmp/s"
check "sweep batch size nan" fail "$err.*sweep point 0 \(batch=nan\): --batch: 'nan' is not a number" \
    "$dptrain" sweep "${quick[@]}" --batch-sizes nan --out "$tmp/s2"
check "epochs 1.5" fail "$err.*--epochs: '1.5' is not an integer" \
    "$dptrain" train "${quick[@]}" --epochs 1.5

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
