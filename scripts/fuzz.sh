#!/usr/bin/env bash
# Fuzzing (tests/fuzz/README.md): installs clang-14 and its sanitizer runtimes when missing,
# builds the libFuzzer targets in build-fuzz/ (ASan + UBSan + LeakSanitizer), and runs each on a
# scratch copy of its committed corpus (tests/fuzz/corpus/<target>, never written to), two
# targets at a time. One line per target: executions, seconds, exec/s, result.
#   scripts/fuzz.sh                      every target for 60 s
#   scripts/fuzz.sh --time 300           every target for 300 s
#   scripts/fuzz.sh --runs 1000000       every target for 10^6 executions
#   scripts/fuzz.sh --target idx         one target (repeat --target for more)
#   scripts/fuzz.sh --jobs 1             one target at a time (default 2)
# Exit status 1 when any target crashed, leaked, timed out or ran out of memory; the line names
# the input that did it (a file under build-fuzz/fuzz-out/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS="fuzz_idx fuzz_hdf5_dataset fuzz_checkpoint fuzz_model_spec fuzz_options"
# Longest input per target: room above the largest seed for the mutations that insert bytes.
max_len() {
    case "$1" in
    fuzz_idx) echo 8192 ;;           # seeds: three 28 x 28 images and their labels, 2.4 KiB
    fuzz_hdf5_dataset) echo 1024 ;;  # edit scripts (fuzz_h5.h): up to 32 operations
    fuzz_checkpoint) echo 1024 ;;    # the same
    fuzz_model_spec) echo 1024 ;;    # a spec of many layers; a token holds at most 127 characters
    fuzz_options) echo 2048 ;;       # a command line
    esac
}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

seconds=60
runs=""
jobs=2
targets=""
while [ $# -gt 0 ]; do
    case "$1" in
    --time) seconds="${2:?--time needs seconds}"; shift 2 ;;
    --runs) runs="${2:?--runs needs a count}"; seconds=0; shift 2 ;;
    --target) t="${2:?--target needs a name}"; shift 2
        t="fuzz_${t#fuzz_}"
        case " $ALL_TARGETS " in
        *" $t "*) targets="$targets $t" ;;
        *) echo "fuzz.sh: error: unknown target '$t' (one of: $ALL_TARGETS)" >&2; exit 2 ;;
        esac ;;
    --jobs) jobs="${2:?--jobs needs a count}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "fuzz.sh: error: unknown argument '$1'" >&2; usage 2 ;;
    esac
done
targets="${targets:-$ALL_TARGETS}"
case "$seconds$runs$jobs" in
*[!0-9]*) echo "fuzz.sh: error: --time, --runs and --jobs take whole numbers" >&2; exit 2 ;;
esac
if [ "$seconds" -eq 0 ] && [ -z "$runs" ]; then
    echo "fuzz.sh: error: --time 0 without --runs" >&2
    exit 2
fi

. scripts/deps.sh
dpt_install_deps clang-14 libclang-rt-14-dev llvm-14 # llvm-14: llvm-symbolizer, for stack traces

start=$(date +%s)
build="build-fuzz"
CC=clang-14 cmake -S . -B "$build" -DDPT_FUZZ=ON -DDPT_BUILD_TESTS=OFF -DDPT_BUILD_BENCH=OFF \
    >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $targets
echo "fuzz.sh: built in $(($(date +%s) - start)) s"

# Sanitizers stop at the first report. LeakSanitizer runs without tests/lsan.supp: the targets
# never start MPI and HDF5 frees its own memory at exit, while suppressing libhdf5 would hide
# leaks of what HDF5 allocates for the caller (variable-length strings). The targets add their
# allocation cap and quarantine size (tests/fuzz/fuzz_common.h).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer

out="$PWD/$build/fuzz-out"
run_one() {
    local t=$1 dir="$out/$1"
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    cp -r "tests/fuzz/corpus/$t/." "$dir/corpus/"
    local args=(-max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$dir/")
    [ -n "$runs" ] && args+=(-runs="$runs")
    [ "$seconds" -gt 0 ] && args+=(-max_total_time="$seconds")
    local t0 rc=0
    t0=$(date +%s)
    # new inputs go to the scratch corpus only; the committed one is read from its copy
    "$build/tests/fuzz/$t" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
    echo "$rc $(($(date +%s) - t0))" >"$dir/status"
}

# At most $jobs targets at a time.
running=0
for t in $targets; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    echo "fuzz.sh: $t ..."
    run_one "$t" &
    running=$((running + 1))
done
wait || true

failed=0
printf '%-18s %12s %8s %9s  %s\n' target executions seconds exec/s result
for t in $targets; do
    dir="$out/$t"
    read -r rc secs <"$dir/status"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$dir/log" | tail -n 1)
    execs=${execs:-0}
    rate=$((execs / (secs > 0 ? secs : 1)))
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$dir/log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        failed=1
        if grep -q 'ERROR: LeakSanitizer' "$dir/log"; then result=leak
        elif grep -q 'ERROR: libFuzzer: timeout' "$dir/log"; then result=timeout
        elif grep -q 'ERROR: libFuzzer: out-of-memory' "$dir/log"; then result="out-of-memory"
        elif grep -qE 'ERROR: (AddressSanitizer|libFuzzer)|runtime error:' "$dir/log"; then
            result=crash
        else result="failed (exit status $rc)"
        fi
        result="$result: ${input:-no input saved}; log $dir/log"
    fi
    printf '%-18s %12s %8s %9s  %s\n' "$t" "$execs" "$secs" "$rate" "$result"
done
echo "fuzz.sh: $(($(date +%s) - start)) s in all"
exit "$failed"
