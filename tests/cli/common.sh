# Sourced by the end-to-end scripts (tests/cli/test_*.sh): arguments, MPI environment, a scratch
# folder removed on exit, and the pass/fail counters whose last line ctest reads.
set -u
dptrain=$1
src=${DPT_SOURCE_DIR:?}
mpirun=${MPIEXEC:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export DPT_DATA_PATH=$src
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0
