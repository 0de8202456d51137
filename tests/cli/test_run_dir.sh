#!/usr/bin/env bash
# Run directories (issue 12): one run per --out at a time (a second run is refused, naming the
# holder's pid, host and command), a new run never lands on an earlier one (refused, or replaced
# with --overwrite), so a failed run cannot leave its metrics next to an older run's checkpoint;
# the lock dies with its process (kill -9 leaves no stale lock); resume continues in place.
. "$(dirname "$0")/common.sh"
err='^dptrain: error: '
quick=(--data sample --model lenet5 --epochs 1 --max-steps 4 --test-samples 50 --no-progress
       --quiet)

# 1. a finished run is not overwritten by a new one: refused on every rank, files untouched
"$dptrain" train "${quick[@]}" --out "$tmp/a" >/dev/null 2>&1
before=$(cat "$tmp/a/metrics.csv" "$tmp/a/checkpoints/final.h5" | md5sum)
check "earlier run refused" fail \
    "$err.*--out .*/a: holds an earlier run \(args.txt\); continue it with --resume .*/a, replace it with --overwrite" \
    "$dptrain" train "${quick[@]}" --out "$tmp/a" --seed 2
check "earlier run refused, 2 ranks" fail "$err.*holds an earlier run" \
    "$mpirun" -np 2 --oversubscribe "$dptrain" train "${quick[@]}" --out "$tmp/a" --seed 2
[ "$(cat "$tmp/a/metrics.csv" "$tmp/a/checkpoints/final.h5" | md5sum)" = "$before" ]
pass_if $? "the refused runs changed the earlier run's files"

# ... while a folder of the user's own, an empty checkpoints/ or a stray members/ is no run
mkdir -p "$tmp/own/checkpoints" "$tmp/own/members"
echo "notes" >"$tmp/own/README"
check "empty folders are not a run" 0 "" "$dptrain" train "${quick[@]}" --out "$tmp/own"
[ "$(cat "$tmp/own/README")" = notes ]
pass_if $? "the run changed a file that is not its own"

# 2. --overwrite replaces it: the earlier run's periodic checkpoints are gone with it
"$dptrain" train "${quick[@]}" --out "$tmp/b" --checkpoint-every 1steps --keep 10 >/dev/null 2>&1
[ -f "$tmp/b/checkpoints/step-000004.h5" ]
pass_if $? "setup: step-000004.h5 written"
check "overwrite" 0 "^final test accuracy" \
    "$dptrain" train "${quick[@]}" --max-steps 2 --out "$tmp/b" --overwrite
[ ! -e "$tmp/b/checkpoints/step-000004.h5" ] && [ "$(wc -l <"$tmp/b/metrics.csv")" = 2 ]
pass_if $? "overwrite left the earlier run's step-000004.h5 or metrics rows"
check "overwrite and resume exclude each other" fail "$err.*--overwrite: not with --resume" \
    "$dptrain" train --resume "$tmp/b" --overwrite

# 3. a failed run with --overwrite leaves no older checkpoint next to its own metrics
"$dptrain" train "${quick[@]}" --out "$tmp/c" >/dev/null 2>&1
check "diverging overwrite fails" fail "$err.*(non-finite|NaN|nan)" \
    "$dptrain" train "${quick[@]}" --out "$tmp/c" --overwrite --optim sgd --lr 1e38 --max-steps 20
[ ! -e "$tmp/c/checkpoints/final.h5" ]
pass_if $? "a failed run sits next to the earlier run's final.h5"

# 4. resume continues in its own folder; a resume into another folder must find it fresh
check "resume in place" 0 "^final test accuracy" \
    "$dptrain" train --resume "$tmp/a" --epochs 2 --max-steps 8
check "resume into an occupied folder" fail "$err.*--out .*/b: holds an earlier run" \
    "$dptrain" train --resume "$tmp/a" --out "$tmp/b"

# 5. a live run holds the folder: the second is refused, naming pid, host and command; the
# first finishes untouched. A slowed checkpoint write keeps it alive long enough.
DPT_TEST_SLOW_SAVE_MS=4000 "$dptrain" train "${quick[@]}" --out "$tmp/busy" \
    --checkpoint-every 2steps >"$tmp/first.log" 2>&1 &
first=$!
for _ in $(seq 100); do [ -s "$tmp/busy/.lock" ] && break; sleep 0.1; done
check "busy folder refused" fail \
    "$err.*--out .*/busy: in use by another run \(pid $first on host $(hostname) since .*: dptrain train .*--out .*/busy" \
    "$dptrain" train "${quick[@]}" --out "$tmp/busy"
check "busy folder refused, also with --overwrite" fail "$err.*in use by another run \(pid $first" \
    "$dptrain" train "${quick[@]}" --out "$tmp/busy" --overwrite
wait $first
pass_if $? "the first run failed: $(tail -n 3 "$tmp/first.log")"

# 6. kill -9 of the holder leaves no stale lock: resume takes the folder at once
DPT_TEST_SLOW_SAVE_MS=60000 "$dptrain" train "${quick[@]}" --out "$tmp/killed" \
    --checkpoint-every 2steps >/dev/null 2>&1 &
victim=$!
for _ in $(seq 100); do [ -s "$tmp/killed/.lock" ] && break; sleep 0.1; done
sleep 0.5
kill -9 $victim
wait $victim 2>/dev/null
check "no stale lock after kill -9" 0 "^final test accuracy" \
    "$dptrain" train "${quick[@]}" --out "$tmp/killed" --overwrite

# 7. sweeps and ensembles: the same rules for their folders
check "sweep" 0 "" "$dptrain" sweep "${quick[@]}" --batch-sizes 32 --out "$tmp/s"
check "sweep over an earlier sweep" fail "$err.*--out .*/s: holds an earlier run" \
    "$dptrain" sweep "${quick[@]}" --batch-sizes 32 --out "$tmp/s"
check "sweep --overwrite" 0 "" \
    "$dptrain" sweep "${quick[@]}" --batch-sizes 32 --out "$tmp/s" --overwrite
check "ensemble over a train run" fail "$err.*--out .*/a: holds an earlier run" \
    "$dptrain" train "${quick[@]}" --ensemble bagging --members 2 --out "$tmp/a"

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
