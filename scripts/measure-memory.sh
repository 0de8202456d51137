#!/usr/bin/env bash
# Memory of data-parallel training, per rank (docs/memory.md): starts
#   mpirun -np NP dptrain train --model fmnist-cnn --data fashion-mnist --batch 128 --epochs 1 ...
# waits until training is under way, and prints each rank's proportional set size (PSS: every
# page divided by the number of processes mapping it) from /proc/PID/smaps_rollup, then where it
# goes, mapping by mapping from /proc/PID/smaps: the node-shared data window, the malloc heap and
# large anonymous blocks (the model arena: activations and workspaces; the data with
# --data-copy rank), Open MPI's shared-memory segments, libraries, the binary. It also prints the
# model arena as dptrain sizes it (--print-model), so the anonymous memory can be accounted for.
#
#   scripts/measure-memory.sh                          2 ranks, --data-copy node (the default)
#   scripts/measure-memory.sh -- --data-copy rank      any extra train options after --
#   scripts/measure-memory.sh --np 4 --settle 20 --build build-asan
# Options: --build DIR (default build), --np N (2), --settle S seconds after the run header
# before measuring (10), --samples K measurements 2 s apart, the largest PSS kept (3).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build np=2 settle=10 samples=3
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--build DIR] [--np N] [--settle S] [--samples K] [-- TRAIN OPTIONS]" >&2
       exit 2 ;;
    esac
done
dptrain=$build/dptrain
[ -x "$dptrain" ] || { echo "$dptrain: not built (cmake --build $build)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
tmp=$(mktemp -d)
launcher=
cleanup() {
    [ -n "$launcher" ] && kill -TERM "$launcher" 2>/dev/null && wait "$launcher" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

args=(--model fmnist-cnn --data fashion-mnist --batch 128 --epochs 1 --no-progress "$@")
mpirun -np "$np" --oversubscribe "$dptrain" train "${args[@]}" >"$tmp/log" 2>&1 &
launcher=$!
for _ in $(seq 600); do
    grep -q "steps/epoch" "$tmp/log" && break
    kill -0 "$launcher" 2>/dev/null || { echo "training ended early:" >&2; cat "$tmp/log" >&2; exit 1; }
    sleep 0.2
done
grep -q "steps/epoch" "$tmp/log" || { echo "no run header after 120 s" >&2; exit 1; }
sleep "$settle"
pids=$(pgrep -P "$launcher" -x dptrain | sort -n)
[ "$(echo "$pids" | wc -w)" = "$np" ] || { echo "found ranks: $pids" >&2; exit 1; }

# One measurement of a rank: "category kB" lines (mapping categories of smaps, then the anonymous
# blocks of at least 1 MiB one by one, then the rollup totals).
measure() {
    local pid=$1
    awk '
    function category(name) {
        if (name ~ /osc_sm/) return "data window (MPI_Win_allocate_shared, shared)"
        if (name ~ /vader/) return "Open MPI vader (shared-memory transport)"
        if (name ~ /^\/dev\/shm\// || name ~ /ompi\./) return "Open MPI other shared memory"
        if (name == "[heap]") return "malloc heap ([heap])"
        if (name == "") return "anonymous blocks (malloc >= 128 KiB, mmap)"
        if (name ~ /^\[stack/) return "stacks"
        if (name ~ /^\[/) return "kernel ([vdso], [vvar], ...)"
        if (name ~ /dptrain$/) return "dptrain binary"
        if (name ~ /openblas|gfortran|quadmath/) return "libraries: OpenBLAS"
        if (name ~ /libmpi|open-pal|open-rte|pmix|hwloc|libevent|ucx|ucp|ucs|uct|fabric|mca_/)
            return "libraries: Open MPI and its runtime"
        if (name ~ /hdf5|libsz|libaec|libcurl|crypto|ssl/) return "libraries: HDF5 and its deps"
        if (name ~ /\.so/) return "libraries: libc and the rest"
        return "other files"
    }
    /^[0-9a-f]+-[0-9a-f]+ / { name = $6; big = 0; next }
    /^Size:/ { size = $2 }
    /^Pss:/ {
        c = category(name); pss[c] += $2
        if (name == "" && size >= 1024) { n++; blocks[n] = size; bpss[n] = $2 }
    }
    END {
        for (c in pss) printf "%s\t%d\n", c, pss[c]
        for (i = 1; i <= n; i++) printf "  anonymous block of %.1f MiB\t%d\n", blocks[i] / 1024, bpss[i]
    }' "/proc/$pid/smaps"
    awk '/^(Rss|Pss|Pss_Anon|Pss_File|Pss_Shmem):/ { sub(":", "", $1); printf "total %s\t%d\n", $1, $2 }' \
        "/proc/$pid/smaps_rollup"
}

# K samples; each rank keeps the one with the largest total PSS.
best=()
for k in $(seq "$samples"); do
    r=0
    for pid in $pids; do
        measure "$pid" >"$tmp/m$r.$k"
        pss=$(awk -F'\t' '$1 == "total Pss" {print $2}' "$tmp/m$r.$k")
        if [ -z "${best[$r]:-}" ] || [ "$pss" -gt "$(awk -F'\t' '$1 == "total Pss" {print $2}' \
            "$tmp/m$r.${best[$r]}")" ]; then
            best[$r]=$k
        fi
        r=$((r + 1))
    done
    [ "$k" -lt "$samples" ] && sleep 2
done
steps=$(grep -o "[0-9]* steps/epoch" "$tmp/log" | head -n 1)
kill -TERM "$launcher" 2>/dev/null || true
wait "$launcher" 2>/dev/null || true
launcher=

echo "dptrain train ${args[*]}"
echo "$np ranks ($steps), measured ${settle}+ s after the run header; PSS in MiB (1 MiB = 1024 kB)"
files=()
for r in $(seq 0 $((np - 1))); do files+=("$tmp/m$r.${best[$r]}"); done
# rows: every category any rank has, in a fixed order, then the anonymous blocks, then totals
awk -F'\t' -v np="$np" '
    { v[FILENAME, $1] = $2; if (!($1 in seen)) { seen[$1] = ++n; key[n] = $1 } }
    FNR == 1 { f[++nf] = FILENAME }
    function row(k,   i, line) {
        line = sprintf("| %-52s |", k)
        for (i = 1; i <= nf; i++) line = line sprintf(" %7.1f |", v[f[i], k] / 1024)
        print line
    }
    END {
        head = sprintf("| %-52s |", "mapping")
        sep = "|------------------------------------------------------|"
        for (i = 1; i <= nf; i++) { head = head sprintf(" rank %-2d |", i - 1); sep = sep "---------|" }
        print head; print sep
        order = "data window (MPI_Win_allocate_shared, shared)|anonymous blocks (malloc >= 128 KiB, mmap)|malloc heap ([heap])|Open MPI vader (shared-memory transport)|Open MPI other shared memory|libraries: OpenBLAS|libraries: Open MPI and its runtime|libraries: HDF5 and its deps|libraries: libc and the rest|dptrain binary|stacks|kernel ([vdso], [vvar], ...)|other files"
        m = split(order, o, "|")
        for (j = 1; j <= m; j++) if (o[j] in seen) { row(o[j]); done[o[j]] = 1 }
        for (j = 1; j <= n; j++) if (!(key[j] in done) && key[j] !~ /^total / && key[j] !~ /^  anonymous block/) row(key[j])
        for (j = 1; j <= n; j++) if (key[j] ~ /^total /) row(key[j])
    }' "${files[@]}"
echo
echo "anonymous blocks of at least 1 MiB (adjacent mmaps merge into one block), PSS in MiB:"
for r in $(seq 0 $((np - 1))); do
    printf '  rank %d:' "$r"
    awk -F'\t' '/^  anonymous block/ { sub("  anonymous block of ", "", $1); printf " %s (PSS %.1f);", $1, $2 / 1024 }' \
        "${files[$r]}"
    echo
done

# The model's arena (src/nn/model.c) as dptrain sizes it for this run: --print-model with the same
# options and rank count ends with a "memory for R rows" line.
echo
mpirun -np "$np" --oversubscribe "$dptrain" train "${args[@]}" --print-model 2>/dev/null |
    grep "^memory for" | sed 's/^/model arena: /'
