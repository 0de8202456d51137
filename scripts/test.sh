#!/usr/bin/env bash
# README command 2: install dependencies, build with warnings as errors, run every test.
#   scripts/test.sh              normal build in build/
#   scripts/test.sh --sanitize   AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
dpt_install_deps

build=build
flags=(-DDPT_WERROR=ON)
ctest_args=()
if [ "${1:-}" = "--sanitize" ]; then
    build=build-asan
    flags+=(-DDPT_SANITIZE=ON -DDPT_BUILD_BENCH=OFF)  # -O2 -g: fast enough to train under ASan
    # Open MPI's and HDF5's own allocations are reported as leaks: suppressed by library,
    # LeakSanitizer stays on for our code. Open MPI is built without frame pointers, so only the
    # slow (DWARF) unwinder attributes its allocations to its libraries. (This build's dptrain
    # keeps Open MPI's components loaded until exit, which makes that check 4 times cheaper:
    # tests/support/keep_modules.c.)
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_odr_violation=0:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    # Keeps CI within its time: 4 of test_resume's 12 kill points (one of each kind), and the
    # emulated-cluster label runs in the normal build only (it tests placement over a network,
    # the same code paths as the rest).
    export DPT_TEST_KILLS=4
    # and its signal runs train 4 epochs instead of 20 (an epoch takes 1.3 s instead of 65 ms)
    export DPT_TEST_SIG_EPOCHS=4
    # test_data_copy's PSS measurement (memory layout, not memory safety) runs in the normal build
    export DPT_TEST_PSS=0
    # The end-to-end tests (tests/cli) train with the im2col convolution: under ASan the SIMD
    # kernels' 64-byte accesses each cost a call into the runtime, which makes training 2 (lenet5)
    # to 5 (fmnist-cnn) times slower than im2col + OpenBLAS. The SIMD kernels stay under ASan in
    # their own tests (test_conv_simd, test_conv_impls, test_batchnorm, golden: every ISA, odd
    # shapes); what the end-to-end tests add under ASan is the trainer, comm and file code.
    export DPT_TEST_CLI_KERNEL=im2col
    ctest_args=(-LE cluster)
fi
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cmake -S . -B "$build" "${flags[@]}"
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "${ctest_args[@]}"
