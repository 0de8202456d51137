#!/usr/bin/env bash
# --collective-timeout: a rank that stops answering inside training (SIGSTOP, as a hung node or a
# debugger would) ends the whole job within the timeout plus the roll call's grace, with one line
# naming the silent rank and its host; a pause shorter than the timeout costs nothing.
# Usage: test_collective_timeout.sh PATH/TO/dptrain
. "$(dirname "$0")/common.sh"

timeout_s=3
# The job must end within the timeout, the roll call's grace (2 s at 3 s) and mpirun's teardown.
limit_s=15
stopped=""
cleanup() {
    [ -n "$stopped" ] && kill -CONT $stopped 2>/dev/null
    pkill -9 -f "$tmp/run" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# pid of launch rank R of the dptrain job whose --out is $1 (Open MPI sets OMPI_COMM_WORLD_RANK).
rank_pid() {
    local out=$1 rank=$2 p
    for p in $(pgrep -f -- "--out $out( |$)"); do
        [ "$(cat /proc/$p/comm 2>/dev/null)" = dptrain ] || continue
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank" &&
            echo "$p" && return 0
    done
    return 1
}

# launch NP OUT EXTRA...: a long lenet5 run in the background; sets $job (mpirun's pid).
launch() {
    local np=$1 out=$2
    shift 2
    "$mpirun" -np "$np" --oversubscribe "$dptrain" train --model lenet5 --data sample \
        --batch 16 --test-samples 64 --epochs 1000 --out "$out" --no-progress \
        --collective-timeout "$timeout_s" "$@" \
        >"$out.log" 2>&1 &
    job=$!
}

# wait_training OUT: until the job is inside its training steps: its first epoch is in
# metrics.csv (start-up under ASan on a loaded machine takes many seconds, and a rank stopped
# there stops the others in the error agreement instead, tested by test_cli.sh).
wait_training() {
    local out=$1 i
    for i in $(seq 1 1200); do
        [ "$(cat "$out/metrics.csv" 2>/dev/null | wc -l)" -ge 2 ] && return 0
        sleep 0.1
    done
    return 1
}

# stop_rank NAME NP RANK: SIGSTOP launch rank RANK mid-training; the job must end non-zero within
# limit_s with one line naming that rank (and its host) and the step it did not reach.
stop_rank() {
    local name=$1 np=$2 rank=$3 out="$tmp/run-$1"
    launch "$np" "$out"
    if ! wait_training "$out"; then
        pass_if 1 "$name: the job did not start"
        return
    fi
    local pid
    pid=$(rank_pid "$out" "$rank")
    stopped=$pid
    local t0=$SECONDS
    kill -STOP "$pid"
    local waited=0
    while kill -0 "$job" 2>/dev/null && [ $((SECONDS - t0)) -le $((limit_s + 30)) ]; do
        sleep 0.2
    done
    waited=$((SECONDS - t0))
    if kill -0 "$job" 2>/dev/null; then
        pass_if 1 "$name: the job still runs $waited s after rank $rank stopped"
        kill -CONT "$pid"
        kill -9 "$job"
    fi
    wait "$job"
    local rc=$?
    stopped=""
    [ "$rc" -ne 0 ]
    pass_if $? "$name: exit status $rc, wanted non-zero"
    local host limit=$limit_s
    host=$(hostname)
    # Almost always the stop lands in a step's collectives; rarely at an error agreement (in a
    # step, or at the epoch's end), whose timeout is 10 s: the same roll call, later.
    grep -qE "^dptrain: error: rank $rank \(host $host\) did not reach (step [0-9]+'s [a-z -]+ within $timeout_s s|(step [0-9]+'s|the) error agreement within 10 s); stopping every rank$" \
        "$out.log"
    pass_if $? "$name: no line naming rank $rank: $(grep -m3 'error' "$out.log")"
    grep -q "error agreement within 10 s" "$out.log" && limit=$((limit_s + 10))
    [ "$waited" -le "$limit" ]
    pass_if $? "$name: the job ended $waited s after the stop, wanted <= $limit s"
    [ "$(grep -c '^dptrain: error:' "$out.log")" = 1 ]
    pass_if $? "$name: wanted exactly one error line, got: $(grep '^dptrain: error:' "$out.log")"
}

stop_rank np2-rank1 2 1
stop_rank np2-rank0 2 0
stop_rank np4-rank2 4 2

# A pause shorter than the timeout is only a slow step: the run finishes normally.
out="$tmp/run-pause"
launch 2 "$out" --max-steps 2000
if wait_training "$out"; then
    pid=$(rank_pid "$out" 1)
    stopped=$pid
    kill -STOP "$pid"
    sleep 1
    kill -CONT "$pid"
    stopped=""
fi
wait "$job"
rc=$?
[ $rc = 0 ] && ! grep -q "did not reach" "$out.log"
pass_if $? "short-pause: status $rc: $(tail -n 3 "$out.log")"

# The option's values.
check timeout-zero-accepted 0 "" "$dptrain" train --model lenet5 --data sample --max-steps 1 \
    --collective-timeout 0 --no-progress
check timeout-negative fail "--collective-timeout" "$dptrain" train --model lenet5 --data sample \
    --max-steps 1 --collective-timeout -1
check timeout-nan fail "--collective-timeout" "$dptrain" train --model lenet5 --data sample \
    --max-steps 1 --collective-timeout nan
check timeout-help 0 "--collective-timeout S" "$dptrain" train --help

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
