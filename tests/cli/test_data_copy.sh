#!/usr/bin/env bash
# --data-copy node|rank (issue 13 item 2) under a real mpirun at 2 and 4 ranks.
#  weights:    node and rank give bit-identical final weights, optimizer state and metrics
#              (h5diff -d 0), with a validation split and augmentation; also for a bagging
#              ensemble and a sweep (rank groups) and for a run resumed with the other mode.
#  one copy:   during training, every rank of the node maps one shared mapping (same device and
#              inode, at least the data's bytes), and the ranks' summed proportional set size
#              (/proc/PID/smaps_rollup) is lower than with --data-copy rank by at least 80 % of
#              (np - 1) copies of the data; a rank that did not touch a shared page leaves it to
#              the leader, so the sum is the quantity that does not depend on access order. The
#              same for a bagging ensemble and a sweep, whose groups share the world's copy.
#  errors:     a file the reading rank cannot parse gives one "dptrain: error:" line naming it
#              and a non-zero exit; only the node leader reads (a rank without the files trains
#              anyway, a leader without them stops every rank with its message); a /dev/shm too
#              small for the copy is named (a private mount namespace, root) and rank mode works.
. "$(dirname "$0")/common.sh"
sample=$src/datasets/fashion-mnist-sample

run() { # name np options...: a train run into $tmp/NAME
    local name=$1 np=$2
    shift 2
    if ! "$mpirun" -np "$np" --oversubscribe "$dptrain" train --data sample --epochs 1 \
        --test-samples 200 --out "$tmp/$name" --quiet --no-progress "$@" >"$tmp/$name.log" 2>&1
    then
        echo "FAIL $name at $np ranks:"
        tail -n 5 "$tmp/$name.log"
        failures=$((failures + 1))
        return 1
    fi
}

same() { # label a.h5 b.h5 [objects...]: the trained state is bit-identical
    local label=$1 a=$2 b=$3 obj ok=0
    shift 3
    local objs=("$@")
    [ ${#objs[@]} -gt 0 ] || objs=(/params /buffers /optimizer /data /metrics/train_loss
        /metrics/test_acc /metrics/test_loss)
    for obj in "${objs[@]}"; do
        h5diff -d 0 "$a" "$b" "$obj" >"$tmp/diff" 2>&1 || ok=1
    done
    pass_if $ok "$label: node and rank differ ($(head -n 3 "$tmp/diff" | tr '\n' ' '))"
}

# ---- bit-identical weights ----
for np in 2 4; do
    for mode in node rank; do
        run w-$mode-np$np $np --model lenet5 --batch 32 --max-steps 12 --val-fraction 0.1 \
            --flip 0.5 --shift 2 --mixup 0.2 --data-copy $mode
    done
    same "np $np" "$tmp/w-node-np$np/checkpoints/final.h5" "$tmp/w-rank-np$np/checkpoints/final.h5"
done
# rank groups: a bagging ensemble (2 groups) and a sweep (2 points) at 4 ranks
for mode in node rank; do
    run bag-$mode 4 --model lenet5 --max-steps 6 --ensemble bagging --members 2 --data-copy $mode
    "$mpirun" -np 4 --oversubscribe "$dptrain" sweep --data sample --model lenet5 --epochs 1 \
        --batch-sizes 32,64 --max-steps 6 --test-samples 200 --quiet --no-progress \
        --data-copy $mode --out "$tmp/sweep-$mode" >"$tmp/sweep-$mode.log" 2>&1
    pass_if $? "sweep --data-copy $mode failed: $(tail -n 3 "$tmp/sweep-$mode.log")"
done
for m in 00 01; do
    same "bagging member $m" "$tmp/bag-node/members/$m/checkpoints/final.h5" \
        "$tmp/bag-rank/members/$m/checkpoints/final.h5"
    same "sweep point $m" "$tmp/sweep-node/points/$m/checkpoints/final.h5" \
        "$tmp/sweep-rank/points/$m/checkpoints/final.h5"
done
# --data-copy may change on resume: 12 steps with rank in one go, against the same run resumed
# from its step-6 checkpoint with node
run r-whole 2 --model lenet5 --batch 32 --max-steps 12 --checkpoint-every 6steps --data-copy rank
cp -r "$tmp/r-whole" "$tmp/r-part"
rm -f "$tmp/r-part/checkpoints/final.h5" "$tmp/r-part/checkpoints/step-000012.h5"
check resume-other-copy 0 "" "$mpirun" -np 2 "$dptrain" train --resume "$tmp/r-part" \
    --data-copy node --quiet --no-progress
same "resumed with the other copy" "$tmp/r-part/checkpoints/final.h5" \
    "$tmp/r-whole/checkpoints/final.h5"
check help 0 "--data-copy node.rank" "$dptrain" train --help

# ---- one copy per node ----
# 80000 random 28x28 images (63 MB as bytes) with the sample's test split: a copy shows in PSS
# well above the few MB by which the rest of a rank's PSS varies between runs and machines (the
# threads' malloc arenas, shared libraries).
syn=$tmp/syn
mkdir -p "$syn"
cp "$sample"/t10k-* "$syn"/
n=80000 # 0x13880: the count in the headers below
{ printf '\0\0\10\3\0\1\70\200\0\0\0\34\0\0\0\34'; head -c $((n * 784)) /dev/urandom; } \
    >"$syn/train-images-idx3-ubyte"
{ printf '\0\0\10\1\0\1\70\200'; head -c $n /dev/urandom | tr '\000-\377' '\000-\011'; } \
    >"$syn/train-labels-idx1-ubyte"
test_n=$(gzip -dc "$sample/t10k-labels-idx1-ubyte.gz" | tail -c +9 | wc -c)
data_kb=$(((n * (784 + 4) + test_n * (784 + 4)) / 1024)) # samples as bytes + int32 labels

# DPT_TEST_PSS=0 (scripts/test.sh --sanitize) leaves the memory measurement to the normal build:
# under ASan every rank's PSS is mostly shadow memory, and the node-copy code paths run above.
if [ "${DPT_TEST_PSS:-1}" = 1 ]; then

# measure NAME np command...: starts the command (an mpirun) in the background, waits for
# training (the header line), then records every rank's PSS (kB) and its shared mappings of at
# least the data's size ("dev:inode" per rank), and stops the job.
measure() {
    local name=$1 np=$2
    shift 2
    "$@" >"$tmp/$name.log" 2>&1 &
    local launcher=$! t=0 pids pid
    while ! grep -q "steps/epoch\|point 0:\|members on" "$tmp/$name.log" 2>/dev/null; do
        sleep 0.5
        t=$((t + 1))
        if [ $t -gt 240 ] || ! kill -0 $launcher 2>/dev/null; then break; fi
    done
    sleep 5 # the data loaded, the models built, training under way
    pids=$(pgrep -P $launcher -x dptrain)
    : >"$tmp/$name.pss"
    : >"$tmp/$name.maps"
    for pid in $pids; do
        awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" >>"$tmp/$name.pss"
        local range perms off dev inode rest
        while read -r range perms off dev inode rest; do
            [ "${perms:3:1}" = s ] || continue
            [ $((0x${range#*-} - 0x${range%-*})) -ge $((data_kb * 1024)) ] &&
                printf '%s:%s ' "$dev" "$inode" >>"$tmp/$name.maps"
        done <"/proc/$pid/maps"
        echo >>"$tmp/$name.maps"
    done
    kill -TERM $launcher 2>/dev/null
    wait $launcher 2>/dev/null
    [ "$(wc -l <"$tmp/$name.pss")" = "$np" ]
    pass_if $? "$name: found $(wc -l <"$tmp/$name.pss") of $np ranks: $(tail -n 3 "$tmp/$name.log")"
}

# one_copy NAME-node NAME-rank np: the node run maps one shared copy on every rank, the rank run
# none, and the summed PSS shrinks by >= 80 % of (np - 1) copies.
one_copy() {
    local node=$1 rank=$2 np=$3
    local shared distinct
    shared=$(awk 'NF >= 1' "$tmp/$node.maps" | wc -l)
    distinct=$(tr ' ' '\n' <"$tmp/$node.maps" | awk 'NF' | sort -u | wc -l)
    [ "$shared" = "$np" ] && [ "$distinct" = 1 ]
    pass_if $? "$node: not one shared mapping on every rank: $(tr '\n' '|' <"$tmp/$node.maps")"
    [ "$(awk 'NF' "$tmp/$rank.maps" | wc -l)" = 0 ]
    pass_if $? "$rank: a rank maps a shared copy: $(tr '\n' '|' <"$tmp/$rank.maps")"
    local sn sr
    sn=$(awk '{s += $1} END {print s}' "$tmp/$node.pss")
    sr=$(awk '{s += $1} END {print s}' "$tmp/$rank.pss")
    echo "$node: PSS per rank $((sn / np)) kB, with --data-copy rank $((sr / np)) kB (data $data_kb kB)"
    [ $((sr - sn)) -ge $((8 * (np - 1) * data_kb / 10)) ]
    pass_if $? "$node: summed PSS $sn kB, rank mode $sr kB: saves less than 0.8 x $((np - 1)) x $data_kb kB"
}

for np in 2 4; do
    for mode in node rank; do
        measure pss-$mode-np$np $np "$mpirun" -np $np --oversubscribe "$dptrain" train \
            --data "$syn" --classes 10 --model lenet5 --batch 64 --epochs 50 --test-samples 100 \
            --no-progress --data-copy $mode
    done
    one_copy pss-node-np$np pss-rank-np$np $np
done
for mode in node rank; do
    measure ens-$mode 2 "$mpirun" -np 2 "$dptrain" train --data "$syn" --classes 10 \
        --model lenet5 --ensemble bagging --members 2 --epochs 50 --test-samples 100 \
        --no-progress --data-copy $mode --out "$tmp/ens-$mode"
    measure swp-$mode 2 "$mpirun" -np 2 "$dptrain" sweep --data "$syn" --classes 10 \
        --model lenet5 --batch-sizes 32,64 --epochs 50 --test-samples 100 --no-progress \
        --data-copy $mode --out "$tmp/swp-$mode"
done
one_copy ens-node ens-rank 2
one_copy swp-node swp-rank 2
fi

# ---- errors on the reading rank reach every rank ----
mkdir -p "$tmp/bad" && cp "$sample"/*.gz "$tmp/bad"/ &&
    printf 'not idx' | gzip >"$tmp/bad/t10k-images-idx3-ubyte.gz"
for np in 2 4; do
    check bad-np$np fail "^dptrain: error: .*t10k-images-idx3-ubyte.gz: not an IDX file" \
        "$mpirun" -np $np --oversubscribe "$dptrain" train --data "$tmp/bad" --classes 10 \
        --model lenet5 --epochs 1
    [ "$(grep -c "dptrain: error" "$tmp/out")" = 1 ]
    pass_if $? "bad-np$np: not one error line: $(cat "$tmp/out")"
done

# Only the node leader reads: a rank that cannot find the data trains anyway in node mode, and
# when the leader cannot, every rank stops with its message.
for r in 0 1; do
    cat >"$tmp/rank${r}_no_data.sh" <<EOS
#!/bin/sh
[ "\$OMPI_COMM_WORLD_RANK" = $r ] && export DPT_DATA_PATH=/nonexistent
exec "$dptrain" "\$@"
EOS
    chmod +x "$tmp/rank${r}_no_data.sh"
done
check follower-reads-nothing 0 "final test accuracy" "$mpirun" -np 2 "$tmp/rank1_no_data.sh" \
    train --data sample --model lenet5 --epochs 1 --max-steps 3 --no-progress
check leader-cannot-read fail "^dptrain: error: rank 0: --data sample: no datasets/fashion-mnist" \
    "$mpirun" -np 2 "$tmp/rank0_no_data.sh" train --data sample --model lenet5 --epochs 1
[ "$(grep -c "dptrain: error" "$tmp/out")" = 1 ]
pass_if $? "leader-cannot-read: not one error line: $(cat "$tmp/out")"

# A /dev/shm too small for the copy (a container's 64 MiB default with a larger data set): Open
# MPI's MPI_Win_allocate_shared would fail on the leader and leave the others waiting forever;
# the leader checks first, and every rank stops with one line that names the way out. Needs a
# private mount namespace (root, as in CI); said so when it cannot be made.
if unshare -m true 2>/dev/null; then
    check small-shm fail "^dptrain: error: rank 0: --data-copy node: .*/dev/shm has .* MiB free, the \
buffer needs .* MiB \(--data-copy rank" timeout 120 unshare -m sh -c \
        'mount -t tmpfs -o size=20m tmpfs /dev/shm && exec "$0" -np 2 "$1" train --data "$2" \
        --classes 10 --model lenet5 --epochs 1 --max-steps 2' "$mpirun" "$dptrain" "$syn"
    [ "$(grep -c "dptrain: error" "$tmp/out")" = 1 ]
    pass_if $? "small-shm: not one error line: $(cat "$tmp/out")"
    check small-shm-rank 0 "final test accuracy" timeout 120 unshare -m sh -c \
        'mount -t tmpfs -o size=20m tmpfs /dev/shm && exec "$0" -np 2 "$1" train --data "$2" \
        --classes 10 --model lenet5 --epochs 1 --max-steps 2 --data-copy rank --test-samples 100' \
        "$mpirun" "$dptrain" "$syn"
else
    echo "FAIL small-shm: cannot make a mount namespace for a small /dev/shm (needs root)"
    failures=$((failures + 1))
fi

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
