#!/usr/bin/env bash
# A rank that dies on one emulated host stops the whole job on every host (docs/cluster.md).
# 2 hosts x 2 ranks train; once training runs (the checkpoint of step 10 is there), one launch
# each:
#  - kill -9 of one dptrain process inside host 1's namespace (a dead rank);
#  - kill -9 of host 1's orted (its Open MPI daemon: as far as mpirun can tell, host 1 is gone);
#  - SIGSTOP of one dptrain process on host 1 (a hung rank) with --collective-timeout 3: the
#    watchdog's line must name that rank and host dpt-...-h1 (MPI_Get_processor_name per host).
# Each time every dptrain process on both hosts must be gone within 10 s of the kill (3 s + 10 s
# for the stop), mpirun must exit non-zero, and no dptrain or orted process may be left in any
# namespace of the cluster.
# shellcheck source=tests/cluster/common.sh
. "$(dirname "$0")/common.sh"

cluster_up 2 --slots 2
p=$DPT_CLUSTER_PREFIX
limit_ms=10000
# a checkpoint every 10 steps: the first one shows that training runs
long=(train --data sample --model lenet5 --batch 32 --test-samples 128 --epochs 1000 --no-progress
    --checkpoint-every 10steps --keep 1)

# procs NAME...: pids of processes called NAME in the cluster's host namespaces.
procs() {
    local ns pid
    for ns in "$p-h0" "$p-h1"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            case " $* " in *" $(cat "/proc/$pid/comm" 2>/dev/null) "*) echo "$pid" ;; esac
        done
    done
}

alive() { # pids...: those still running (a zombie has ended)
    local pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
            echo "$pid"
    done
}

kill_case() { # name, process name of the victim on host 1, signal, limit in ms, dptrain options...
    local name=$1 victim_comm=$2 sig=$3 limit_ms=$4
    shift 4
    "$cluster" mpirun -np 4 --map-by ppr:2:node "${placed[@]}" "${long[@]}" --out "$tmp/$name" \
        "$@" >"$tmp/$name.log" 2>&1 &
    local job=$! t0
    # training runs once the first step checkpoint is there
    t0=$(ms_now)
    until compgen -G "$tmp/$name/checkpoints/step-*.h5" >/dev/null; do
        if ! kill -0 $job 2>/dev/null || [ $(($(ms_now) - t0)) -gt 120000 ]; then
            echo "FAIL $name: training did not start:"
            tail -n 10 "$tmp/$name.log" | sed 's/^/    /'
            failures=$((failures + 1))
            kill -9 $job 2>/dev/null
            wait $job 2>/dev/null
            return
        fi
        sleep 0.1
    done
    local ranks victim
    ranks=$(procs dptrain | tr '\n' ' ')
    victim=$(for pid in $(ip netns pids "$p-h1"); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$victim_comm" ] && echo "$pid"; done | head -n 1)
    set -- $ranks
    [ $# = 4 ] && [ -n "$victim" ]
    pass_if $? "$name: wanted 4 dptrain processes and a $victim_comm on host 1, found ranks" \
        "[$ranks] victim [$victim]"
    expect_placement "$name" "0 0 1 1"

    t0=$(ms_now)
    kill -"$sig" "$victim"
    local ranks_gone=-1 job_gone=-1 now
    while :; do
        now=$(($(ms_now) - t0))
        [ $ranks_gone -lt 0 ] && [ -z "$(alive $ranks)" ] && ranks_gone=$now
        [ $job_gone -lt 0 ] && ! kill -0 $job 2>/dev/null && job_gone=$now
        [ $ranks_gone -ge 0 ] && [ $job_gone -ge 0 ] && break
        [ $now -gt $((limit_ms * 3)) ] && break
        sleep 0.05
    done
    if [ $job_gone -lt 0 ]; then
        kill -9 $job 2>/dev/null
    fi
    wait $job
    local rc=$?
    printf '  %-28s ranks gone after %5d ms, mpirun exit %d after %5d ms\n' \
        "kill -$sig $victim_comm on h1" "$ranks_gone" "$rc" "$job_gone"
    [ $ranks_gone -ge 0 ] && [ $ranks_gone -le $limit_ms ]
    pass_if $? "$name: ranks still running $((limit_ms / 1000)) s after the kill (left: $(alive $ranks))"
    [ $job_gone -ge 0 ] && [ $job_gone -le $limit_ms ]
    pass_if $? "$name: mpirun still running $((limit_ms / 1000)) s after the kill"
    [ $rc -ne 0 ]
    pass_if $? "$name: mpirun exited 0 after a rank died"
    sleep 0.2
    local left
    left=$(procs dptrain orted | tr '\n' ' ')
    [ -z "$left" ]
    pass_if $? "$name: processes left in the cluster after the job: $left"
    if grep -q "Segmentation fault" "$tmp/$name.log"; then
        echo "  note: mpirun crashed while tearing the job down (Open MPI 4.1, see docs/cluster.md)"
    fi
}

kill_case dead-rank dptrain 9 $limit_ms
kill_case dead-daemon orted 9 $limit_ms
kill_case stopped-rank dptrain STOP $((limit_ms + 3000)) --collective-timeout 3
grep -qE "dptrain: error: rank [23] \(host $p-h1\) did not reach .* within 3 s" "$tmp/stopped-rank.log"
pass_if $? "stopped-rank: no watchdog line naming a rank of host $p-h1:" \
    "$(grep 'error' "$tmp/stopped-rank.log" | head -n 2)"
finish
