#!/usr/bin/env bash
# README command 1: install what is missing, build if needed, then the main job: train the
# reference CNN (fmnist-cnn) on Fashion-MNIST, data-parallel over one rank per core.
#   scripts/run.sh [extra dptrain train options, e.g. --epochs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
dpt_install_deps

build=build
if [ ! -x "$build/dptrain" ] ||
   [ -n "$(find src include CMakeLists.txt -newer "$build/dptrain" 2>/dev/null | head -n 1)" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j "$(nproc)" --target dptrain
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OPENBLAS_NUM_THREADS=1

ranks=$(nproc)
out="runs/fmnist-cnn-$(date +%Y%m%d-%H%M%S)"
"$build/dptrain" --version
mpirun -np "$ranks" --oversubscribe "$build/dptrain" train --model fmnist-cnn \
    --data fashion-mnist --epochs 15 --batch 128 --optim adam --lr 1e-3 --out "$out" --profile "$@"
echo "run directory: $out (plot with: python3 scripts/plot.py $out)"
