#!/usr/bin/env bash
# A dead or stuck rank must never hang a launch (DESIGN §7): for each way a rank can go away
# while the others wait in dpt_group_agree, mpirun must exit non-zero within 10 s.
#   abort  the rank calls dpt_group_abort (MPI_Abort)
#   exit   the rank returns 3 from main without MPI_Finalize
#   exit0  the same with status 0
#   hang   the rank sleeps forever; the others' 2 s agreement timeout must abort the job
# Usage: dead_rank.sh HELPER [NP...]   (HELPER: the test_failure executable; NP default "2 4")
# Environment: MPIEXEC (default mpirun).
set -u
helper=${1:?usage: dead_rank.sh TEST_FAILURE_EXECUTABLE [NP...]}
shift
nps=${*:-2 4}
mpiexec=${MPIEXEC:-mpirun}
limit=10
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for np in $nps; do
    for mode in abort exit exit0 hang; do
        start=$(date +%s%N)
        # The outer timeout only keeps a broken build from hanging ctest; passing needs < $limit s.
        timeout $((limit * 3)) "$mpiexec" -np "$np" --oversubscribe --allow-run-as-root \
            --mca mpi_yield_when_idle 1 "$helper" --die "$mode" >"$log" 2>&1
        rc=$?
        ms=$((($(date +%s%N) - start) / 1000000))
        verdict=ok
        if [ "$rc" -eq 0 ]; then
            verdict="FAIL: exit status 0"
        elif [ "$rc" -eq 124 ]; then
            verdict="FAIL: still running after $((limit * 3)) s"
        elif [ "$ms" -ge $((limit * 1000)) ]; then
            verdict="FAIL: took more than $limit s"
        fi
        printf 'dead_rank: np %s, %-5s -> exit %3d after %5d ms: %s\n' "$np" "$mode" "$rc" "$ms" \
            "$verdict"
        if [ "$verdict" != ok ]; then
            failed=1
            sed 's/^/    /' "$log" | head -n 20
        fi
    done
done
exit $failed
