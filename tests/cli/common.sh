# Sourced by the end-to-end scripts (tests/cli/test_*.sh): arguments, MPI environment, a scratch
# folder removed on exit, and the pass/fail counters whose last line ctest reads.
set -u
dptrain=$1
src=${DPT_SOURCE_DIR:?}
mpirun=${MPIEXEC:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export DPT_DATA_PATH=$src
# scripts/test.sh --sanitize sets DPT_TEST_CLI_KERNEL=im2col (why: there)
[ -n "${DPT_TEST_CLI_KERNEL:-}" ] && export DPT_KERNEL=$DPT_TEST_CLI_KERNEL
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0

# check NAME WANT PATTERN COMMAND...: WANT is 0 or "fail"; PATTERN (ERE) must occur in the output.
check() { # name, expected status (0 or "fail"), grep pattern for the output, command...
    local name=$1 want=$2 pattern=$3
    shift 3
    "$@" >"$tmp/out" 2>&1
    local rc=$?
    local ok=1
    if [ "$want" = 0 ] && [ $rc -ne 0 ]; then ok=0; fi
    if [ "$want" = fail ] && [ $rc -eq 0 ]; then ok=0; fi
    if [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$tmp/out"; then ok=0; fi
    if [ $ok = 1 ]; then
        passed=$((passed + 1))
    else
        failures=$((failures + 1))
        echo "FAIL $name (status $rc; wanted $want, pattern '$pattern'):"
        sed 's/^/    /' "$tmp/out" | tail -n 15
    fi
}

# pass_if NAME CONDITION-MESSAGE: counts the result of the last command ($? == 0 passes).
pass_if() {
    if [ "$1" = 0 ]; then
        passed=$((passed + 1))
    else
        failures=$((failures + 1))
        echo "FAIL $2"
    fi
}
