#!/usr/bin/env bash
# Checkpoints, resume, pre-emption and full disks (docs/resume.md). Oracle: the uninterrupted run
# with the same options. Final weights and optimizer state are compared with h5diff -d 0 (no
# tolerance), metrics.csv's deterministic columns (epoch .. test_acc, noise scale) with diff.
#  kill -9: 12 kill points, delays drawn from awk's generator seeded with 12 (reproducible), on 1
#     and 2 ranks (alternately rank 0, the writer, and rank 1), with DPT_TEST_SLOW_SAVE_MS making
#     each checkpoint write take 150 ms, so that about half of the kills land inside a write (a
#     NAME.tmp left behind counts them); each run is resumed from its run directory (or restarted
#     when no checkpoint exists yet) and must equal the oracle; no resume may find a corrupt file.
#  --deterministic: killed at 2 ranks, resumed at 1, equal to the 1-rank oracle.
#  batch norm + dropout + augmentation at 2 ranks: a mid-epoch checkpoint restores each rank's own
#     running statistics and running sums.
#  signals: SIGUSR1 to mpirun (forwarded; mpirun exits 75), SIGTERM to one rank (75), SIGTERM to
#     mpirun (ranks exit 75, Open MPI 4's mpirun itself 1): a checkpoint, a bit-exact resume.
#  refusals, a corrupt newest checkpoint, divergence, and a full tmpfs (needs root to mount).
. "$(dirname "$0")/common.sh"
mnt=$tmp/full
trap 'umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT

base=(--data sample --epochs 2 --batch 64 --test-samples 200 --no-progress --quiet
      --checkpoint-every 5steps --keep 2)
lenet=(--model lenet5)
bnnet=(--model "conv2d(8,3,pad=1) bn relu maxpool(2) flatten dense(32) relu dropout(0.25) dense(classes)"
       --flip 0.5 --shift 2)
det=(--model lenet5 --batch 32 --micro-batch 8 --deterministic --optim momentum --lr 0.05)

run() { # dir np options...: an uninterrupted run
    local dir=$1 np=$2
    shift 2
    "$mpirun" -np "$np" --oversubscribe "$dptrain" train "${base[@]}" --out "$dir" "$@" \
        >"$dir.log" 2>&1 || { echo "FAIL run $dir:"; tail -n 5 "$dir.log"; failures=$((failures + 1)); }
}

same() { # name oracle-dir dir: final weights, optimizer state and metrics equal the oracle's
    local a=$2/checkpoints/final.h5 b=$3/checkpoints/final.h5
    if h5diff -d 0 "$a" "$b" /params >"$tmp/diff" 2>&1 &&
        h5diff -d 0 "$a" "$b" /optimizer >>"$tmp/diff" 2>&1 &&
        diff <(cut -d, -f1-9,12-14 "$2/metrics.csv") <(cut -d, -f1-9,12-14 "$3/metrics.csv") \
            >>"$tmp/diff" 2>&1; then
        passed=$((passed + 1))
    else
        echo "FAIL $1: $3 differs from $2:"
        head -n 8 "$tmp/diff"
        failures=$((failures + 1))
    fi
}

resume() { # dir np [options]: resume until the run ends (restart when nothing was saved yet)
    local dir=$1 np=$2
    shift 2
    if ls "$dir"/checkpoints/*.h5 >/dev/null 2>&1; then
        "$mpirun" -np "$np" --oversubscribe "$dptrain" train --resume "$dir" "$@" \
            >"$dir.resume.log" 2>&1
    else
        restarts=$((restarts + 1))
        "$mpirun" -np "$np" --oversubscribe "$dptrain" train "${base[@]}" --out "$dir" "$@" \
            --overwrite >"$dir.resume.log" 2>&1
    fi
    local rc=$?
    if [ $rc -ne 0 ] || grep -q "skipping" "$dir.resume.log"; then
        echo "FAIL resume $dir (status $rc; a skipped corrupt checkpoint is a failure too):"
        tail -n 5 "$dir.resume.log"
        failures=$((failures + 1))
    fi
}

# kill_run dir np which delay resume-np options...: kill -9 rank `which` (1-based among the
# ranks) after `delay` seconds, then resume at resume-np ranks.
kill_run() {
    local dir=$1 np=$2 which=$3 delay=$4 np2=$5
    shift 5
    DPT_TEST_SLOW_SAVE_MS=150 "$mpirun" -np "$np" --oversubscribe "$dptrain" train "${base[@]}" \
        --out "$dir" "$@" >"$dir.log" 2>&1 &
    local pid=$!
    sleep "$delay"
    local victim
    victim=$(pgrep -P $pid | sort -n | sed -n "${which}p")
    if [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null; then
        kills=$((kills + 1))
        ls "$dir"/checkpoints/*.tmp >/dev/null 2>&1 && in_write=$((in_write + 1))
    else
        late=$((late + 1)) # the run ended first: not a kill point
    fi
    wait $pid 2>/dev/null
    resume "$dir" "$np2" "$@"
}

start=$(date +%s)
run "$tmp/ref1" 1 "${lenet[@]}"
run "$tmp/ref2" 2 "${lenet[@]}"
run "$tmp/refbn" 2 "${bnnet[@]}"
run "$tmp/refdet" 1 "${det[@]}"

kills=0 in_write=0 late=0 restarts=0
# DPT_TEST_KILLS: the number of kill points (12; scripts/test.sh --sanitize runs 4, one of each
# kind, since ASan's purpose there is memory errors, and the normal build runs all 12)
n_kills=${DPT_TEST_KILLS:-12}
read -r -a delays <<<"$(awk 'BEGIN { srand(12); for (i = 0; i < 12; i++) printf "%.2f ", 0.6 + 2.6 * rand() }')"
for i in $(seq 0 $((n_kills - 1))); do
    d=${delays[$i]}
    case $((i % 4)) in
    0) kill_run "$tmp/k$i" 1 1 "$d" 1 "${lenet[@]}"; same "kill $i (1 rank, ${d}s)" "$tmp/ref1" "$tmp/k$i" ;;
    1) kill_run "$tmp/k$i" 2 1 "$d" 2 "${lenet[@]}"; same "kill $i (2 ranks, rank 0, ${d}s)" "$tmp/ref2" "$tmp/k$i" ;;
    2) kill_run "$tmp/k$i" 2 2 "$d" 2 "${bnnet[@]}"; same "kill $i (2 ranks, bn, rank 1, ${d}s)" "$tmp/refbn" "$tmp/k$i" ;;
    3) kill_run "$tmp/k$i" 2 $((i % 2 + 1)) "$d" 1 "${det[@]}"; same "kill $i (deterministic 2 -> 1 rank, ${d}s)" "$tmp/refdet" "$tmp/k$i" ;;
    esac
done
echo "kill -9: $kills kills ($in_write inside a checkpoint write, $late after the end, $restarts before the first checkpoint), delays ${delays[*]}"
[ "$kills" -ge "$n_kills" ]
pass_if $? "at least 10 kills must land inside the runs ($kills did)"

# Signals: 60-epoch runs signalled after their first epoch, no slow saves (mpirun SIGKILLs 1 s after
# forwarding SIGTERM). An epoch takes 45-65 ms in the normal build, so about 3 s are left after the
# signal: with 20 epochs (0.9 s in all) a signal sent under ctest -j2 once landed after the end.
# DPT_TEST_SIG_EPOCHS=4 under ASan (scripts/test.sh --sanitize), 20 times slower per epoch.
sig=(--epochs "${DPT_TEST_SIG_EPOCHS:-60}" --checkpoint-every 1000steps "${lenet[@]}")
run "$tmp/refsig" 2 "${sig[@]}"
signal_run() { # name dir signal target want-status
    "$mpirun" -np 2 --oversubscribe "$dptrain" train "${base[@]}" --out "$2" "${sig[@]}" \
        >"$2.log" 2>&1 &
    local pid=$! rc waited=0
    # signal once training is under way (metrics.csv appears after epoch 1 of 20), however fast
    # or slow the machine is
    while [ ! -e "$2/metrics.csv" ] && [ $waited -lt 600 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if [ "$4" = mpirun ]; then kill -"$3" $pid; else kill -"$3" "$(pgrep -P $pid | sort -n | tail -n 1)"; fi
    wait $pid
    rc=$?
    if [ $rc = "$5" ] && grep -qE "stopped by .*checkpoint .*step-[0-9]+\.h5" "$2.log" &&
        ! [ -e "$2/checkpoints/final.h5" ]; then
        passed=$((passed + 1))
    else
        echo "FAIL $1: status $rc (wanted $5), or no checkpoint line, or the run had ended:"
        grep -v '^-\|^$' "$2.log" | tail -n 4
        failures=$((failures + 1))
    fi
    resume "$2" 2
    same "$1 resumed" "$tmp/refsig" "$2"
}
signal_run "SIGUSR1 to mpirun" "$tmp/usr1" USR1 mpirun 75
signal_run "SIGTERM to rank 1" "$tmp/term1" TERM rank 75
signal_run "SIGTERM to mpirun" "$tmp/termrun" TERM mpirun 1

# A corrupt newest checkpoint: one line names it, the previous one is used, the result is exact.
mkdir -p "$tmp/corrupt/checkpoints"
"$mpirun" -np 2 --oversubscribe "$dptrain" train "${base[@]}" "${lenet[@]}" --max-steps 30 \
    --out "$tmp/corrupt" >/dev/null 2>&1
head -c 50000 "$tmp/corrupt/checkpoints/step-000030.h5" >"$tmp/corrupt/checkpoints/step-000035.h5"
rm -f "$tmp/corrupt/checkpoints/final.h5"
check "corrupt newest checkpoint" 0 "warning: --resume: skipping .*step-000035.h5" \
    "$mpirun" -np 2 --oversubscribe "$dptrain" train --resume "$tmp/corrupt" --max-steps 0
same "resumed past a corrupt checkpoint" "$tmp/ref2" "$tmp/corrupt"

# Refusals name the option and both values; --epochs may grow.
check "refuse --lr" fail "--resume: --lr 0.01 differs from the checkpoint's 0.001" \
    "$dptrain" train --resume "$tmp/ref1" --lr 0.01
check "refuse --batch" fail "--resume: --batch 32 differs from the checkpoint's 64" \
    "$dptrain" train --resume "$tmp/ref1" --batch 32
check "refuse a missing run" fail "--resume $tmp/none: No such file" \
    "$dptrain" train --resume "$tmp/none"
check "extend --epochs" 0 "after 3 epochs" "$dptrain" train --resume "$tmp/ref1" --epochs 3 \
    --out "$tmp/ext"

# Divergence: the step and the first layer; --skip-nonfinite skips, then stops.
check "non-finite gradient" fail "error: .*step 2 \(epoch 1\): non-finite gradient, first in layer 00_conv2d/weight" \
    "$mpirun" -np 2 --oversubscribe "$dptrain" train --data sample --model lenet5 --batch 64 \
    --epochs 1 --quiet --no-progress --optim sgd --lr 1e12
check "skip non-finite steps" fail "step 4 .*after 2 skipped steps in a row" \
    "$mpirun" -np 2 --oversubscribe "$dptrain" train --data sample --model lenet5 --batch 64 \
    --epochs 1 --quiet --no-progress --optim sgd --lr 1e12 --skip-nonfinite 2

# A full disk: the write fails on every rank with one line naming the file and the reason, and
# no file stands under a real checkpoint name.
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=300k tmpfs "$mnt" 2>"$tmp/mount.err"; then
    echo "FAIL full disk: cannot mount a 300k tmpfs (this test needs root and CAP_SYS_ADMIN): $(cat "$tmp/mount.err")"
    failures=$((failures + 1))
else
    check "full disk" fail "^dptrain: error: .*$mnt/run/checkpoints/step-000005.h5: cannot write the checkpoint: No space left on device" \
        "$mpirun" -np 2 --oversubscribe "$dptrain" train "${base[@]}" "${lenet[@]}" --out "$mnt/run"
    [ "$(grep -c "dptrain: error:" "$tmp/out")" = 1 ] && ! ls "$mnt"/run/checkpoints/*.h5 >/dev/null 2>&1
    pass_if $? "full disk: one error line, and no file under a checkpoint's name ($(ls "$mnt"/run/checkpoints))"
    umount "$mnt"
fi
echo "test_resume: $(($(date +%s) - start)) s"
echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
