#!/usr/bin/env bash
# One --stream epoch under a data-size limit, with the ranks' resident set sampled as it runs
# (docs/streaming.md). The limit is RLIMIT_DATA (`ulimit -d`: heap and private anonymous
# mappings, what the trainer allocates; the page cache is the kernel's), because this machine has
# neither systemd nor a delegated cgroup. The in-memory path is tried first under the same limit.
# Usage: scripts/measure-stream.sh FILE.h5 LIMIT_MIB [NP [TRAIN OPTIONS...]]
#   e.g. scripts/measure-stream.sh big.h5 256 2 --model lenet5 --batch 128
set -u
file=$1 limit=$2 np=${3:-2}
shift $(($# < 3 ? $# : 3))
dptrain=${DPTRAIN:-$(dirname "$0")/../build/dptrain}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
echo "file: $file, $(stat -c %s "$file") bytes; limit: ulimit -d $((limit * 1024)) KiB ($limit MiB)"
echo "--- in memory, same limit:"
(ulimit -d $((limit * 1024)) && mpirun --oversubscribe -np "$np" "$dptrain" train --data "$file" \
    --epochs 1 --quiet --no-progress "$@" 2>&1 | grep -m 1 "dptrain")
echo "--- streamed:"
descends_from() { # PID ANCESTOR
    local p=$1
    while [ "$p" -gt 1 ]; do
        [ "$p" = "$2" ] && return 0
        p=$(awk '{print $4}' /proc/$p/stat 2>/dev/null || echo 1)
    done
    return 1
}
log=$(mktemp)
(ulimit -d $((limit * 1024)) && exec mpirun --oversubscribe -np "$np" "$dptrain" train \
    --data "$file" --stream --epochs 1 --no-progress "$@") >"$log" 2>&1 &
pid=$!
t0=$(date +%s)
echo "seconds  VmRSS of each rank (MiB)"
while kill -0 $pid 2>/dev/null; do
    line=""
    for p in $(pgrep -x dptrain); do
        descends_from $p $pid || continue # not another job's dptrain
        rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' /proc/$p/status 2>/dev/null)
        line="$line ${rss:-?}"
    done
    echo "$(($(date +%s) - t0))$line"
    sleep 5
done
wait $pid
echo "exit status $?"
cat "$log"
rm -f "$log"
