#!/usr/bin/env bash
# Rank-count invariance under a real mpirun (DESIGN §2, §6). Oracle: the 1-rank run.
#  --deterministic: final weights bit-identical at 1, 2 and 4 ranks (h5diff with no tolerance),
#                   for lenet5 and for fmnist-cnn with ghost batch norm;
#  default mode:    the same loss curve within 1e-5 relative after 20 steps (BN-free model): the
#                   training loss of the steps and the test loss of the final weights;
#  synced BN:       fmnist-cnn with --bn sync at 2 and 4 ranks equals batch norm over the whole
#                   global batch on one rank (same losses within 1e-5; measured: 1e-9 after 3
#                   steps — later steps of this tiny-batch BN net amplify rounding chaotically,
#                   6 steps already reach 7e-5 between two float orders of the same sums);
# The float-mode runs use SGD: Adam's first steps are lr*sign(g), which turns a rounding-level
# difference of a near-zero gradient into a whole lr step, so it cannot show rounding agreement.
#  accumulation:    --micro-batch 8 equals the whole batch in one pass (same losses within 1e-5).
# Every multi-rank run also checks after each epoch that its replicas are bit-identical (hash).
. "$(dirname "$0")/common.sh"

train() { # name np options...
    local name=$1 np=$2
    shift 2
    if ! "$mpirun" -np "$np" --oversubscribe "$dptrain" train --data sample --epochs 1 \
        --test-samples 128 --out "$tmp/$name-np$np" --quiet "$@" >"$tmp/$name-np$np.log" 2>&1; then
        echo "FAIL $name at $np ranks:"
        tail -n 5 "$tmp/$name-np$np.log"
        failures=$((failures + 1))
        return 1
    fi
}

compare() { # name np h5diff-options...
    local name=$1 np=$2
    shift 2
    if h5diff "$@" "$tmp/$name-np1/checkpoints/final.h5" "$tmp/$name-np$np/checkpoints/final.h5" \
        /params >"$tmp/diff" 2>&1; then
        passed=$((passed + 1))
    else
        echo "FAIL $name: np $np differs from np 1:"
        head -n 8 "$tmp/diff"
        failures=$((failures + 1))
    fi
}

for np in 1 2 4; do
    train det-lenet5 $np --model lenet5 --batch 32 --micro-batch 8 --deterministic \
        --max-steps 12 --optim momentum --lr 0.05
    train det-cnn $np --model fmnist-cnn --batch 32 --micro-batch 8 --deterministic \
        --bn ghost:8 --max-steps 6
    train float-lenet5 $np --model lenet5 --batch 32 --max-steps 20 --optim sgd --lr 0.05
    train sync-bn $np --model fmnist-cnn --batch 32 --bn sync --max-steps 3 --optim momentum \
        --lr 0.02
done
train micro-lenet5 1 --model lenet5 --batch 32 --micro-batch 8 --max-steps 20 --optim sgd --lr 0.05
cp -r "$tmp/float-lenet5-np1" "$tmp/micro-lenet5-np0"
same_losses() { # name np: columns train_loss (4) and test_loss (8) of metrics.csv
    local a b
    a=$(tail -n 1 "$tmp/$1-np1/metrics.csv" | cut -d, -f4,8)
    b=$(tail -n 1 "$tmp/$1-np$2/metrics.csv" | cut -d, -f4,8)
    if awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, ","); split(b, y, ",");
            for (i = 1; i <= 2; i++) { d = x[i] - y[i]; if (d < 0) d = -d;
                if (!(d <= 1e-5 * x[i])) exit 1 } }'; then
        passed=$((passed + 1))
    else
        echo "FAIL $1: losses at np $2 ($b) differ from np 1 ($a) by more than 1e-5 relative"
        failures=$((failures + 1))
    fi
}

for np in 2 4; do
    compare det-lenet5 $np
    compare det-cnn $np
    same_losses float-lenet5 $np
    same_losses sync-bn $np
done
same_losses micro-lenet5 0 # np0: the copy of the unaccumulated run

# --deterministic needs the same arithmetic on every rank: a rank on other OpenBLAS kernels or
# another convolution kernel is refused at start-up, naming the rank, instead of training with
# replicas that round differently.
for env in OPENBLAS_CORETYPE=Sandybridge DPT_KERNEL=ref; do
    cat >"$tmp/rank1_env.sh" <<EOS
#!/bin/sh
[ "\$OMPI_COMM_WORLD_RANK" = 1 ] && export $env
exec "$dptrain" "\$@"
EOS
    chmod +x "$tmp/rank1_env.sh"
    check "deterministic refuses rank 1 with $env" fail \
        "^dptrain: error: .*--deterministic: the OpenBLAS core \(OPENBLAS_CORETYPE\) or the convolution kernel \(DPT_KERNEL\) differs between ranks: rank 1 differs from rank 0" \
        "$mpirun" -np 2 --oversubscribe "$tmp/rank1_env.sh" train --data sample --model lenet5 \
        --batch 32 --micro-batch 8 --deterministic --max-steps 2 --epochs 1 --no-progress
done
echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
