#!/usr/bin/env bash
# End-to-end checks of the dptrain command line. Oracles: exit statuses, one-line error messages
# naming the option or file, a training run on the bundled sample whose loss must fall below a
# bound, and `dptrain eval` reproducing the logged test accuracy exactly.
. "$(dirname "$0")/common.sh"

# bad input: one clear line, non-zero exit
check unknown-option fail "dptrain: error: .*unknown option '--bogus'" "$dptrain" train --bogus 1
check bad-number fail "dptrain: error: .*--lr: 'abc' is not a number" "$dptrain" train --lr abc
check out-of-range fail "dptrain: error: .*--epochs: 0 is out of range" "$dptrain" train --epochs 0
check missing-value fail "dptrain: error: .*--batch: missing value" "$dptrain" train --batch
check unknown-command fail "dptrain: error: .*unknown command 'trian'" "$dptrain" trian
check bad-model fail "dptrain: error: .*conv9d" "$dptrain" train --data sample --model "conv9d(3)"
check bad-optim fail "dptrain: error: .*--optim" "$dptrain" train --optim adamax
printf 'garbage' >"$tmp/bad.h5"
check corrupt-data fail "dptrain: error: .*bad.h5" "$dptrain" train --data "$tmp/bad.h5"
check corrupt-ckpt fail "dptrain: error: .*bad.h5" "$dptrain" eval "$tmp/bad.h5" --data sample
check value-is-option fail "dptrain: error: .*--lr: missing value \(the next argument '--deterministic'" \
    "$dptrain" train --lr --deterministic
check lr-overflow fail "dptrain: error: .*--lr: 1e400 is out of range" "$dptrain" train --lr 1e400
check nan-value fail "dptrain: error: .*--epochs: 'nan' is not a number" "$dptrain" train --epochs nan
# --keep-last is a flag: the option after it is parsed as an option, not taken as its value
check keep-last-flag 0 "final test accuracy" "$dptrain" train --data sample --model lenet5 \
    --keep-last --max-steps 2 --batch 32 --test-samples 64 --quiet
check keep-last-deterministic fail "dptrain: error: .*--deterministic: not with --keep-last" \
    "$dptrain" train --data sample --model lenet5 --keep-last --deterministic --micro-batch 8 \
    --batch 32 --max-steps 2
check help 0 "--micro-batch" "$dptrain" train --help
check print-model 0 "dense" "$dptrain" train --data sample --print-model

# a short run on the bundled sample: the training loss must fall well below log(10) = 2.30
check train-sample 0 "final test accuracy" "$dptrain" train --data sample --epochs 2 --batch 64 \
    --model lenet5 --out "$tmp/run" --quiet
loss=$(tail -n 1 "$tmp/run/metrics.csv" 2>/dev/null | cut -d, -f4)
if awk -v l="${loss:-9}" 'BEGIN { exit !(l < 1.0) }'; then
    passed=$((passed + 1))
else
    failures=$((failures + 1))
    echo "FAIL train-loss: epoch-2 training loss ${loss:-missing} is not below 1.0"
fi
acc=$(grep -oE "final test accuracy [0-9.]+" "$tmp/out" | awk '{print $4}')
check eval-reproduces 0 "test accuracy ${acc:-x} " "$dptrain" eval "$tmp/run/checkpoints/final.h5" \
    --data sample

# two ranks: same run, error on every rank agrees, and a NaN guard stops all ranks
check train-np2 0 "2 ranks" "$mpirun" -np 2 --oversubscribe "$dptrain" train --data sample \
    --epochs 1 --batch 64 --model lenet5 --max-steps 10 --test-samples 64
check nan-loss fail "non-finite" "$mpirun" -np 2 --oversubscribe "$dptrain" train --data sample \
    --epochs 1 --batch 64 --model lenet5 --optim sgd --lr 1e30 --max-steps 20 --test-samples 64
check np2-bad-data fail "dptrain: error: .*nowhere" timeout 60 "$mpirun" -np 2 --oversubscribe \
    "$dptrain" train --data /nowhere/data.h5

# an error on one rank only (its copy of the data is missing; with --data-copy rank every rank
# reads its own): every rank exits non-zero, within 10 s, and rank 0 prints the failing rank's
# message
cat >"$tmp/rank1_no_data.sh" <<EOS
#!/bin/sh
[ "\$OMPI_COMM_WORLD_RANK" = 1 ] && export DPT_DATA_PATH=/nonexistent
exec "$dptrain" "\$@"
EOS
chmod +x "$tmp/rank1_no_data.sh"
start=$(date +%s)
check one-rank-error fail "dptrain: error: rank 1: .*sample" timeout 30 "$mpirun" -np 2 \
    --oversubscribe "$tmp/rank1_no_data.sh" train --data sample --epochs 1 --model lenet5 \
    --data-copy rank
elapsed=$(($(date +%s) - start))
if [ $elapsed -le 10 ]; then
    passed=$((passed + 1))
else
    failures=$((failures + 1))
    echo "FAIL one-rank-error: took ${elapsed}s to stop every rank (limit 10 s)"
fi

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
