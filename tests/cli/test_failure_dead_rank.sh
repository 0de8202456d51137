#!/usr/bin/env bash
# ctest entry for tests/mpi/dead_rank.sh (a dead or stuck rank ends the launch, non-zero, < 10 s),
# registered through the tests/cli glob so that no CMake file changes. ctest passes the dptrain
# executable; the helper is the test_failure executable that tests/CMakeLists.txt builds next to
# it in BUILD/tests. A missing helper is a failure, never a skip.
set -u
dptrain=${1:?usage: test_failure_dead_rank.sh PATH/TO/dptrain}
helper=$(dirname "$dptrain")/tests/test_failure
src=${DPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ ! -x "$helper" ]; then
    echo "test_failure_dead_rank: helper $helper not found (build the test_failure target)" >&2
    exit 1
fi
exec bash "$src/tests/mpi/dead_rank.sh" "$helper" 2 4
