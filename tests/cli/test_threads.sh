#!/usr/bin/env bash
# Threads inside a rank (--threads, DPT_THREADS) end to end. Oracle: the one-thread run of the same
# command, bit for bit (h5diff -d 0 on /params and /optimizer of the final checkpoint):
#  - fmnist-cnn, lenet5 and a batch-norm + dropout model, 20 steps on --data sample at 1, 2 and 3
#    threads, with a batch (50) that neither the thread count nor the 16-image block of a conv
#    weight gradient divides;
#  - DPT_THREADS=3 in the environment equals --threads 1; --threads 2 with DPT_THREADS=3 too;
#  - a hybrid launch, 2 ranks x 2 threads (oversubscribed, --bind-to none), --deterministic, equals
#    1 rank x 1 thread (DESIGN §6: bit-identical for any rank count; and for any thread count);
#  - a run resumed at 2 threads from a 1-thread checkpoint equals the uninterrupted run;
#  - a rank whose CPU affinity has fewer CPUs than --threads is warned about (taskset -c 0);
#  - --print-model counts one workspace per thread;
#  - bad values are refused with one line naming the option or the variable.
. "$(dirname "$0")/common.sh"

bnd="conv2d(8,3,pad=1) bn relu maxpool(2) conv2d(16,3,pad=1) bn relu maxpool(2) flatten
     dense(32) bn relu dropout(0.3) dense(10)"
common=(--data sample --epochs 3 --batch 50 --max-steps 20 --test-samples 64 --quiet
        --no-progress)

same() { # name dir-a dir-b
    local ok=0
    for obj in /params /optimizer; do
        if ! h5diff -d 0 "$2/checkpoints/final.h5" "$3/checkpoints/final.h5" "$obj" \
            >"$tmp/diff" 2>&1; then
            echo "FAIL $1: $obj differs"
            head -n 8 "$tmp/diff"
            ok=1
        fi
    done
    pass_if $ok "$1"
}

for name in fmnist-cnn lenet5 bn-dropout; do
    model=$name
    [ "$name" = bn-dropout ] && model=$bnd
    for T in 1 2 3; do
        check "$name-threads-$T" 0 "model saved" "$dptrain" train "${common[@]}" --model "$model" \
            --threads "$T" --out "$tmp/$name-t$T"
    done
    same "$name: 2 threads vs 1" "$tmp/$name-t1" "$tmp/$name-t2"
    same "$name: 3 threads vs 1" "$tmp/$name-t1" "$tmp/$name-t3"
done

# -- the environment variable, and --threads over it
DPT_THREADS=3 check env-threads 0 "model saved" "$dptrain" train "${common[@]}" --model lenet5 \
    --out "$tmp/env"
same "DPT_THREADS=3 vs --threads 1" "$tmp/lenet5-t1" "$tmp/env"
DPT_THREADS=3 check env-over 0 "model saved" "$dptrain" train "${common[@]}" --model lenet5 \
    --threads 2 --out "$tmp/env-over"
same "--threads 2 over DPT_THREADS=3" "$tmp/lenet5-t1" "$tmp/env-over"

# -- hybrid: ranks x threads, deterministic sums
det=(--data sample --epochs 1 --model lenet5 --batch 32 --micro-batch 8 --deterministic
     --max-steps 12 --optim momentum --lr 0.05 --test-samples 64 --quiet --no-progress)
check det-1x1 0 "model saved" "$dptrain" train "${det[@]}" --out "$tmp/det-1x1"
check det-2x2 0 "model saved" "$mpirun" -np 2 --oversubscribe --bind-to none "$dptrain" train \
    "${det[@]}" --threads 2 --out "$tmp/det-2x2"
same "2 ranks x 2 threads vs 1 x 1 (--deterministic)" "$tmp/det-1x1" "$tmp/det-2x2"

# -- resume on another thread count
check resume-first 0 "model saved" "$dptrain" train "${common[@]}" --model lenet5 --max-steps 10 \
    --checkpoint-every 10steps --out "$tmp/resume"
check resume-rest 0 "model saved" "$dptrain" train --resume "$tmp/resume" --max-steps 20 \
    --threads 2 --quiet --no-progress
same "resumed at 2 threads vs uninterrupted at 1" "$tmp/lenet5-t1" "$tmp/resume"

# -- threads that would share one CPU (Open MPI's default binding for 2 or fewer ranks)
check affinity-warning 0 "dptrain: warning: --threads 2, but 1 of 1 ranks may run on fewer CPUs" \
    taskset -c 0 "$dptrain" train "${common[@]}" --model lenet5 --max-steps 2 --threads 2

# -- --print-model sizes the model a run at that thread count builds: a workspace per thread
workspace() {
    "$dptrain" train --data sample --model fmnist-cnn --batch 50 --threads "$1" --print-model |
        grep -oE 'workspace [0-9.]+' | cut -d' ' -f2
}
ws1=$(workspace 1) ws3=$(workspace 3)
if awk -v a="$ws1" -v b="$ws3" 'BEGIN { exit !(a > 0 && b >= 3 * a) }'; then ok=0; else ok=1; fi
pass_if $ok "print-model: workspace at 3 threads ($ws3 MiB) >= 3x at 1 ($ws1 MiB)"

# -- refused values: one line naming the option
check threads-zero fail "^dptrain: error: (rank 0: )?--threads: 0 is out of range \[1, 1024\]" \
    "$dptrain" train "${common[@]}" --threads 0
check threads-huge fail "^dptrain: error: (rank 0: )?--threads: 100000 is out of range" \
    "$dptrain" train "${common[@]}" --threads 100000
check threads-text fail "^dptrain: error: (rank 0: )?--threads: 'two' is not a number" \
    "$dptrain" train "${common[@]}" --threads two
DPT_THREADS=-1 check env-bad fail "^dptrain: error: (rank 0: )?DPT_THREADS: '-1' is not an integer" \
    "$dptrain" train "${common[@]}"
check help 0 "--threads T" "$dptrain" train --help
check sweep-help 0 "--threads T" "$dptrain" sweep --help

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
