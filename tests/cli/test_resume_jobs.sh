#!/usr/bin/env bash
# Resuming ensembles and cross-validation (issue 12, docs/resume.md): a bagging, boosting or cv
# launch killed with kill -9 at a seeded moment after its first checkpoint continues with
# `--resume RUN_DIR`; every member continues from its own newest readable checkpoint (or starts,
# when it has none) and the result equals an uninterrupted launch bit for bit: h5diff -d 0 on
# every member's final.h5 (/params, /optimizer) and on results.h5 / ensemble.h5.
. "$(dirname "$0")/common.sh"
err='^dptrain: error: '
common=(--data sample --model lenet5 --epochs 2 --batch 64 --test-samples 200
        --checkpoint-every 4steps --keep 2 --no-progress)
# seeded kill delays (s) after the first periodic checkpoint appears
delays=($(awk 'BEGIN { srand(21); for (i = 0; i < 8; i++) printf "%.2f ", 0.1 + rand() * 1.2 }'))
kills=0

cleanup() {
    pkill -9 -f "$tmp/" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

run() { # np dir command options...: an uninterrupted launch
    local np=$1 dir=$2
    shift 2
    "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@" --out "$dir" >"$dir.log" 2>&1
}

# killed np dir command options...: the same launch, killed (-9, every rank) a seeded delay after
# its first periodic checkpoint, with slow checkpoint writes so that kills land inside them too.
killed() {
    local np=$1 dir=$2
    shift 2
    DPT_TEST_SLOW_SAVE_MS=80 "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@" --out "$dir" \
        >"$dir.log" 2>&1 &
    local job=$! i
    for i in $(seq 300); do
        ls "$dir"/members/*/checkpoints/step-*.h5 >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep "${delays[$kills]}"
    pkill -9 -f -- "--out $dir( |$)"
    wait $job 2>/dev/null
    kills=$((kills + 1))
}

# same NAME REF DIR: every member's final.h5 and the launch's results equal the reference's
same() {
    local name=$1 ref=$2 dir=$3 bad="" f
    for f in "$ref"/members/*/checkpoints/final.h5; do
        local g=$dir/${f#"$ref"/}
        h5diff -d 0 "$f" "$g" /params >/dev/null 2>&1 || bad="$bad ${g#"$dir"/}(params)"
        h5diff -d 0 "$f" "$g" /optimizer >/dev/null 2>&1 || bad="$bad ${g#"$dir"/}(optimizer)"
    done
    for f in results.h5 ensemble.h5; do
        [ -e "$ref/$f" ] || continue
        h5diff -d 0 "$ref/$f" "$dir/$f" >/dev/null 2>&1 || bad="$bad $f"
    done
    [ -z "$bad" ]
    pass_if $? "$name: differs from the uninterrupted launch:$bad"
}

# resume NAME NP DIR REF COMMAND: continues DIR, which must then equal REF
resume() {
    local name=$1 np=$2 dir=$3 ref=$4 cmd=$5
    check "$name: resume" 0 "dptrain: (member|round|fold) 0: (resuming from|starting)" \
        "$mpirun" -np "$np" --oversubscribe "$dptrain" "$cmd" --resume "$dir"
    ! grep -q "warning: --resume: skipping" "$tmp/out"
    pass_if $? "$name: a resume skipped a checkpoint (atomic writes leave none half-written)"
    same "$name" "$ref" "$dir"
}

# 1. bagging: 3 members on 2 ranks (groups of one rank), killed twice, resumed each time
bag=(train "${common[@]}" --ensemble bagging --members 3)
run 2 "$tmp/bag-ref" "${bag[@]}"
killed 2 "$tmp/bag" "${bag[@]}"
ls "$tmp"/bag/members/*/checkpoints/step-*.h5 >/dev/null 2>&1
pass_if $? "bagging: no checkpoint before the kill"
DPT_TEST_SLOW_SAVE_MS=80 "$mpirun" -np 2 --oversubscribe "$dptrain" train --resume "$tmp/bag" \
    >"$tmp/bag.resume1.log" 2>&1 &
job=$!
sleep "${delays[$kills]}"
kills=$((kills + 1))
pkill -9 -f -- "--resume $tmp/bag( |$)"
wait $job 2>/dev/null
resume bagging 2 "$tmp/bag" "$tmp/bag-ref" train
# ... the same folder at another rank count whose groups have the same size: one rank
killed 2 "$tmp/bag1" "${bag[@]}"
resume "bagging, resumed on 1 rank" 1 "$tmp/bag1" "$tmp/bag-ref" train

# 2. boosting: rounds in sequence on every rank; a resumed round's sample weights follow
boost=(train "${common[@]}" --ensemble boosting --rounds 3)
run 2 "$tmp/boost-ref" "${boost[@]}"
killed 2 "$tmp/boost" "${boost[@]}"
resume boosting 2 "$tmp/boost" "$tmp/boost-ref" train

# 3. cross-validation: folds in groups of 2 ranks on 4 ranks
cv=(cv "${common[@]}" --folds 2)
run 4 "$tmp/cv-ref" "${cv[@]}"
killed 4 "$tmp/cv" "${cv[@]}"
resume cv 4 "$tmp/cv" "$tmp/cv-ref" cv

# 4. --deterministic: members trained by groups of 2 ranks continue on groups of 1
det=(train "${common[@]}" --ensemble bagging --members 2 --deterministic
     --micro-batch 16)
run 4 "$tmp/det-ref" "${det[@]}"
killed 4 "$tmp/det" "${det[@]}"
resume "deterministic, 4 ranks resumed on 2" 2 "$tmp/det" "$tmp/det-ref" train
echo "resume-jobs: $kills kills, delays ${delays[*]}"

# 5. refusals, each naming what to do
check "cv folder resumed by train" fail "$err.*a dptrain cv run; continue it with dptrain cv --resume" \
    "$dptrain" train --resume "$tmp/cv"
check "ensemble folder resumed by cv" fail "$err.*an ensemble run; continue it with dptrain train --resume" \
    "$dptrain" cv --resume "$tmp/bag"
run 1 "$tmp/plain" train "${common[@]}"
check "plain folder resumed as an ensemble" fail "$err.*not the folder of an ensemble run" \
    "$dptrain" train --resume "$tmp/plain" --ensemble bagging
check "changed member count" fail "$err.*--members" \
    "$dptrain" train --resume "$tmp/bag" --members 4
check "a sweep does not resume" fail "$err.*--resume: a sweep does not resume" \
    "$dptrain" sweep --data sample --model lenet5 --epochs 1 --batch-sizes 32,64 \
    --out "$tmp/sweep" --resume "$tmp/plain"
mkdir -p "$tmp/empty/members/00/checkpoints"
check "no member checkpoint" fail "$err.*no member holds a readable checkpoint yet" \
    "$dptrain" train --resume "$tmp/empty"

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
