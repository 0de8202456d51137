#!/usr/bin/env bash
# README command 1: install what is missing, build if needed, then run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
dpt_install_deps

build=build
if [ ! -x "$build/dptrain" ] || [ -n "$(find src include CMakeLists.txt -newer "$build/dptrain" 2>/dev/null | head -n 1)" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j "$(nproc)" --target dptrain
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1

"$build/dptrain" --version
mpirun -np 1 "$build/dptrain" selfcheck
