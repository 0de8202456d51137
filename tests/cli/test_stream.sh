#!/usr/bin/env bash
# --stream (issue 13 item 3) under a real mpirun at 1 and 2 ranks, on small synthetic .h5 files
# written by tests/tools/make_stream_h5 (no Python).
#  weights:  --stream gives final weights, buffers, optimizer state, normalization and metrics
#            bit-identical (h5diff -d 0) to the in-memory path on the same file: 1 and 2 ranks,
#            with augmentation and mixup (whose partners may lie in another rank's slice), by
#            direct reads and by H5Dread (DPT_STREAM_NO_DIRECT=1), a deflated file (H5Dread
#            through the chunk cache), --data-copy rank, and an in-memory run resumed streaming.
#  window:   --stream-window W trains (a different, chunk-aware order) and needs --stream.
#  errors:   --stream with --data that is not an .h5 file, or with --val-fraction, is one
#            "dptrain: error:" line naming the option; a file truncated while streaming stops
#            every rank with one error line and a non-zero exit, within the time limit.
. "$(dirname "$0")/common.sh"
make_h5=${DPT_MAKE_STREAM_H5:-$(dirname "$dptrain")/tests/make_stream_h5}

"$make_h5" "$tmp/d.h5" 3000 400 64 && "$make_h5" "$tmp/z.h5" 3000 400 50 28 4
pass_if $? "make_stream_h5 could not write the test files"

run() { # name np options...: a train run into $tmp/NAME
    local name=$1 np=$2
    shift 2
    if ! timeout 300 "$mpirun" -np "$np" --oversubscribe "$dptrain" train --model lenet5 \
        --epochs 2 --batch 64 --out "$tmp/$name" --quiet --no-progress "$@" \
        >"$tmp/$name.log" 2>&1; then
        echo "FAIL $name at $np ranks:"
        tail -n 5 "$tmp/$name.log"
        failures=$((failures + 1))
        return 1
    fi
}

same() { # label a.h5 b.h5: the trained state is bit-identical
    local label=$1 a=$2 b=$3 obj ok=0
    for obj in /params /buffers /optimizer /data /metrics/train_loss /metrics/test_acc \
        /metrics/test_loss; do
        h5diff -d 0 "$a" "$b" "$obj" >"$tmp/diff" 2>&1 || ok=1
    done
    pass_if $ok "$label: stream and in-memory differ ($(head -n 3 "$tmp/diff" | tr '\n' ' '))"
}

# ---- bit-identical weights ----
for np in 1 2; do
    run mem-$np $np --data "$tmp/d.h5" --flip 0.5 --shift 2 --mixup 0.2
    run str-$np $np --data "$tmp/d.h5" --flip 0.5 --shift 2 --mixup 0.2 --stream
    same "np $np" "$tmp/mem-$np/checkpoints/final.h5" "$tmp/str-$np/checkpoints/final.h5"
done
# the H5Dread path (hyperslab runs, chunk cache) on the file the direct path read above
DPT_STREAM_NO_DIRECT=1 run str-h5-2 2 --data "$tmp/d.h5" --flip 0.5 --shift 2 --mixup 0.2 --stream
same "H5Dread path" "$tmp/mem-2/checkpoints/final.h5" "$tmp/str-h5-2/checkpoints/final.h5"
run zmem 2 --data "$tmp/z.h5" --data-copy rank
run zstr 2 --data "$tmp/z.h5" --data-copy rank --stream
same "deflated, --data-copy rank" "$tmp/zmem/checkpoints/final.h5" "$tmp/zstr/checkpoints/final.h5"
# --stream may change on resume: an in-memory run resumed streaming from its step-30 checkpoint
# (inside epoch 1) ends with the weights of the in-memory run above
run r-part 2 --data "$tmp/d.h5" --flip 0.5 --shift 2 --mixup 0.2 --checkpoint-every 30steps
rm -f "$tmp/r-part/checkpoints/final.h5" "$tmp/r-part"/checkpoints/step-0000{60,90}.h5
check resume-streamed 0 "" timeout 300 "$mpirun" -np 2 --oversubscribe "$dptrain" train \
    --resume "$tmp/r-part" --stream --quiet --no-progress
same "resumed with --stream" "$tmp/r-part/checkpoints/final.h5" "$tmp/mem-2/checkpoints/final.h5"

# ---- chunk-aware order ----
run win 2 --data "$tmp/d.h5" --stream --stream-window 4
h5diff -d 0 "$tmp/win/checkpoints/final.h5" "$tmp/str-2/checkpoints/final.h5" /params \
    >/dev/null 2>&1
[ $? = 1 ]
pass_if $? "--stream-window 4 gave the exact permutation's weights"
check help 0 "--stream-window W" "$dptrain" train --help

# ---- errors: one line naming the option ----
one_line() { # name pattern options...
    local name=$1 pattern=$2
    shift 2
    check "$name" fail "^dptrain: error: .*$pattern" timeout 60 "$mpirun" -np 2 --oversubscribe \
        "$dptrain" train --model lenet5 --epochs 1 --quiet --no-progress "$@"
    [ "$(grep -c "dptrain: error" "$tmp/out")" = 1 ]
    pass_if $? "$name: not one error line: $(head -n 5 "$tmp/out")"
}
printf 'plain text\n' >"$tmp/text.h5"
one_line not-h5-sample "--stream: --data sample is not an HDF5 file" --data sample --stream
one_line not-h5-text "--stream: .*text.h5: not an HDF5 file" --data "$tmp/text.h5" --stream
one_line window-alone "--stream-window needs --stream" --data "$tmp/d.h5" --stream-window 2
one_line val-fraction "--stream: not with --val-fraction" --data "$tmp/d.h5" --stream \
    --val-fraction 0.1

# a file cut to half while two ranks stream it: the reader notices (HDF5 itself would read
# zeros past the end), every rank stops at the same step with the reading rank's message
"$make_h5" "$tmp/cut.h5" 20000 200 64
timeout 120 "$mpirun" -np 2 --oversubscribe "$dptrain" train --data "$tmp/cut.h5" --model lenet5 \
    --epochs 100 --batch 64 --stream --out "$tmp/cut" --checkpoint-every 5steps --quiet \
    --no-progress >"$tmp/cut.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
    ls "$tmp"/cut/checkpoints/step-* >/dev/null 2>&1 && break
    sleep 0.2
done
truncate -s $(($(stat -c %s "$tmp/cut.h5") / 2)) "$tmp/cut.h5"
wait $pid
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] && [ "$(grep -c "dptrain: error" "$tmp/cut.log")" = 1 ] &&
    grep -q "dptrain: error: .*cut.h5: truncated while streaming" "$tmp/cut.log"
pass_if $? "truncated while streaming: status $rc, $(grep -m 3 -E 'error|rank' "$tmp/cut.log")"

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
