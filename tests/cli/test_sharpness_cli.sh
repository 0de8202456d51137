#!/usr/bin/env bash
# End-to-end checks of `dptrain sharpness` under a real mpirun. Oracle: the 1-rank value. The loss
# f is summed per fixed chunk and then in chunk order (the same bits for any rank count); only
# the gradient's fp32 allreduce differs, and sign steps hide that unless a component's sign
# flips. Measured on lenet5 / sample, 1024 samples: f(x), max f and the sharpness identical to
# 17 digits at 1, 2 and 4 ranks (full space and --subspace 8); the limit is 1e-4 relative.
# Bad inputs fail with one "dptrain: error:" line.
. "$(dirname "$0")/common.sh"

np_run() { # np, then dptrain arguments
    local np=$1
    shift
    "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@"
}

check train 0 "model saved" "$dptrain" train --data sample --model lenet5 --epochs 1 --batch 64 \
    --out "$tmp/r" --quiet --no-progress
ckpt=$tmp/r/checkpoints/final.h5
common=(--data sample --samples 1024)

for space in 0 8; do
    extra=()
    [ $space -gt 0 ] && extra=(--subspace $space)
    for np in 1 2 4; do
        check "sharpness-p$space-np$np" 0 "^sharpness [0-9.e+-]+ \(epsilon 0.001, .*1024 training" \
            np_run $np sharpness "$ckpt" "${common[@]}" "${extra[@]}" --out "$tmp/s$space.csv"
    done
    # rows 2-4 of the CSV (after the header): f, fmax, sharpness at np 1, 2, 4
    awk -F, 'NR == 2 { for (i = 5; i <= 7; i++) ref[i] = $i }
             NR > 2 { for (i = 5; i <= 7; i++) { d = $i - ref[i]; if (d < 0) d = -d;
                      r = ref[i] < 0 ? -ref[i] : ref[i]; if (!(d <= 1e-4 * r)) exit 1 } }
             END { if (NR != 4) exit 1 }' "$tmp/s$space.csv"
    pass_if $? "subspace $space: values differ between rank counts: $(cat "$tmp/s$space.csv")"
done
# the box raises f: max f > f(x), sharpness > 0
awk -F, 'NR == 2 { exit !($7 > 0 && $6 > $5) }' "$tmp/s0.csv"
pass_if $? "full space: max f is not above f(x): $(cat "$tmp/s0.csv")"

one_line() { # name, pattern, dptrain arguments: fails with exactly one error line
    local name=$1 pattern=$2
    shift 2
    check "$name" fail "^dptrain: error: .*$pattern" np_run 2 "$@"
    [ "$(grep -c "dptrain: error" "$tmp/out")" = 1 ]
    pass_if $? "$name: not one error line: $(cat "$tmp/out")"
}
one_line missing-file "$tmp/none.h5" sharpness "$tmp/none.h5" --data sample
one_line epsilon-zero "--epsilon: 0 is not in" sharpness "$ckpt" --data sample --epsilon 0
one_line epsilon-negative "--epsilon: -1e-3 is not in" sharpness "$ckpt" --data sample \
    --epsilon -1e-3
one_line subspace-zero "--subspace" sharpness "$ckpt" --data sample --subspace 0
one_line no-checkpoint "sharpness: give one checkpoint" sharpness --data sample

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
