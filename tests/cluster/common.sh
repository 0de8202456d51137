# shellcheck shell=bash
# Sourced by tests/cluster/test_*.sh (ctest label `cluster`, docs/cluster.md): the dptrain path
# from ctest, a scratch folder, an emulated cluster (scripts/cluster.sh) that is always brought
# down on exit, launch helpers that record where every rank ran, and the pass/fail counters of
# tests/cli whose last line ctest shows. A cluster that cannot be brought up is a failure with
# the reason, never a skip.
set -u
dptrain=${1:?usage: test_*.sh PATH/TO/dptrain}
src=${DPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
mpirun=${MPIEXEC:-mpirun}
cluster=$src/scripts/cluster.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export DPT_DATA_PATH=$src
export OPENBLAS_NUM_THREADS=1 # one rank per core, as scripts/run.sh (forwarded to every host)
# Under AddressSanitizer (scripts/test.sh --sanitize): LeakSanitizer's exit-time scan crashed
# ("Tracer caught signal 11", "DTLS 12 at 0x000000003b32-...", exit 134) in the second rank of
# each host of 2 x 2 launches, always or never depending on the length of the host names: it
# takes the dynamic TLS block of a dlopen'ed Open MPI component for glibc 2.19's layout
# (google/sanitizers#1322). Not tracking __tls_get_addr avoids that; LeakSanitizer stays on.
if [ -n "${ASAN_OPTIONS:-}" ]; then
    export ASAN_OPTIONS=$ASAN_OPTIONS:intercept_tls_get_addr=0
fi
tmp=$(mktemp -d)
# A state folder and namespace names of this test's own, so that a run in another build folder
# at the same time (build/ and build-asan/) never meets this one.
export DPT_CLUSTER_DIR=$tmp/cluster DPT_CLUSTER_PREFIX=dpt-t$$
failures=0 passed=0
cluster_is_up=0

cleanup() {
    if [ $cluster_is_up = 1 ] && ! "$cluster" down >"$tmp/down.log" 2>&1; then
        echo "FAIL: scripts/cluster.sh down: $(tail -n 3 "$tmp/down.log")"
    fi
    if [ -n "${DPT_CLUSTER_KEEP_TMP:-}" ]; then
        echo "scratch folder kept: $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Clusters of earlier test runs that were killed before their trap ran (a ctest timeout sends
# SIGKILL): their namespaces are named after a process that no longer exists.
for stale in $(ip netns list 2>/dev/null | sed -n 's/^dpt-t\([0-9]*\)-sw\b.*/\1/p'); do
    if [ ! -d "/proc/$stale" ]; then
        echo "removing the emulated cluster of an earlier test run (dpt-t$stale-*)"
        DPT_CLUSTER_PREFIX=dpt-t$stale DPT_CLUSTER_DIR=$tmp/stale "$cluster" down >/dev/null 2>&1
    fi
done

ms_now() { echo $(($(date +%s%N) / 1000000)); }

# cluster_up N OPTIONS...: brings the cluster up or ends the test as failed, with the reason.
cluster_up() {
    cluster_is_up=1 # `down` also cleans up after a half-made cluster
    if ! "$cluster" up "$@" >"$tmp/up.log" 2>&1; then
        echo "FAIL: the emulated cluster cannot be brought up (scripts/cluster.sh up $*):"
        sed 's/^/    /' "$tmp/up.log"
        echo "$passed passed, $((failures + 1)) failed"
        exit 1
    fi
    cat "$tmp/up.log"
}

cluster_down() {
    "$cluster" down >"$tmp/down.log" 2>&1
    pass_if $? "scripts/cluster.sh down: $(tail -n 3 "$tmp/down.log")"
    cluster_is_up=0
}

pass_if() { # status, message (words joined) printed on failure
    local rc=$1
    shift
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
    else
        failures=$((failures + 1))
        echo "FAIL $*"
    fi
}

# The application every cluster launch runs: prints the rank, the network namespace and the
# hostname the process really runs in, then becomes dptrain.
placed=(sh -c 'echo "placement: rank $OMPI_COMM_WORLD_RANK netns $(ip netns identify $$)" \
    "host $(hostname)"; exec "$0" "$@"' "$dptrain")

# on_cluster NAME MPIRUN-OPTIONS... -- DPTRAIN-ARGS...: one launch across the emulated hosts;
# output in $tmp/NAME.log, wall time in $tmp/NAME.ms; a non-zero status of mpirun is a failure.
on_cluster() {
    local name=$1 opts=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    local t0 rc
    t0=$(ms_now)
    timeout 300 "$cluster" mpirun "${opts[@]}" "${placed[@]}" "$@" >"$tmp/$name.log" 2>&1
    rc=$?
    echo $(($(ms_now) - t0)) >"$tmp/$name.ms"
    printf '  %-28s %6d ms  exit %d\n' "$name" "$(cat "$tmp/$name.ms")" $rc
    launched "$name" $rc
}

launched() { # name, status: every launch of these tests must succeed
    pass_if "$2" "$1: exit status $2; last lines:"
    [ "$2" = 0 ] || tail -n 12 "$tmp/$1.log" | sed 's/^/    /'
    return "$2"
}

# on_one_host NAME NP DPTRAIN-ARGS...: the same job the usual way, mpirun in this namespace.
on_one_host() {
    local name=$1 np=$2 t0 rc
    shift 2
    t0=$(ms_now)
    timeout 300 "$mpirun" -np "$np" --oversubscribe "$dptrain" "$@" >"$tmp/$name.log" 2>&1
    rc=$?
    echo $(($(ms_now) - t0)) >"$tmp/$name.ms"
    printf '  %-28s %6d ms  exit %d\n' "$name" "$(cat "$tmp/$name.ms")" $rc
    launched "$name" $rc
}

# placement NAME: "rank netns" lines of a cluster launch, sorted by rank.
placement() {
    sed -n 's/^placement: rank \([0-9]*\) netns \([^ ]*\) host \([^ ]*\)$/\1 \2 \3/p' \
        "$tmp/$1.log" | sort -n
}

# expect_placement NAME "H0 H0 H1 H1": host index of ranks 0, 1, ... (namespace and hostname).
expect_placement() {
    local want="" k got
    for k in $2; do want="$want $DPT_CLUSTER_PREFIX-h$k"; done
    got=$(placement "$1" | awk '$2 == $3 { printf " %s", $2; next } { printf " %s/%s", $2, $3 }')
    [ "$got" = "$want" ]
    pass_if $? "$1: ranks ran on [$got ], wanted [$want ]"
}

# same_params A B: /params of two checkpoints are equal bit for bit.
same_params() {
    if h5diff -d 0 "$1" "$2" /params >"$tmp/diff" 2>&1; then
        passed=$((passed + 1))
    else
        failures=$((failures + 1))
        echo "FAIL /params differ: $1 vs $2:"
        head -n 8 "$tmp/diff" | sed 's/^/    /'
    fi
}

finish() {
    echo "$passed passed, $failures failed"
    [ $failures -eq 0 ]
}
