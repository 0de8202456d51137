#!/bin/sh
# Per-layer convolution table in one run: PyTorch (oneDNN, one thread), then every dptrain path
# with the measured FMA peak, joined by layer name with the ratio of the path dptrain runs on this
# CPU to PyTorch; the last line is the minimum ratio over every pass. The two sides take turns,
# ROUNDS times (default 3), and every figure is the median over the rounds: a slow spell of the
# shared machine then lands on one round of one side, not on the whole of one side.
# usage: [ROUNDS=3] scripts/bench-conv.sh [BUILD_DIR] [bench_conv_simd options, e.g. --batches 64]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$here/build"}
[ $# -gt 0 ] && shift
bench="$build/tests/bench/bench_conv_simd"
if [ ! -x "$bench" ]; then
    echo "bench-conv.sh: $bench not found; build first (cmake --build $build)" >&2
    exit 1
fi
batches=64,256
prev=""
for a in "$@"; do
    [ "$prev" = "--batches" ] && batches=$a
    prev=$a
done
rounds=${ROUNDS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_torch=0
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    have_torch=1
else
    echo "# python3-torch not importable: PyTorch columns left empty"
fi
for r in $(seq "$rounds"); do
    : > "$tmp/torch.$r"
    if [ "$have_torch" = 1 ]; then
        /usr/bin/python3 "$here/scripts/bench-vs-pytorch.py" --batches "$batches" > "$tmp/torch.$r"
        [ "$r" = 1 ] && head -1 "$tmp/torch.$r"
    fi
    "$bench" --torch "$tmp/torch.$r" "$@" > "$tmp/ours.$r"
done

# The rounds' tables, one file each, into one: per (layer, N, pass) the median of each GFLOP/s
# column, %pk against the median peak, the ratio of the medians, and the minimum ratio.
i=1
files=""
while [ "$i" -le "$rounds" ]; do files="$files $tmp/ours.$i"; i=$((i + 1)); done
# shellcheck disable=SC2086
awk -v rounds="$rounds" '
function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n == 0 ? "" : (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
}
/^# one thread/ { if (FNR == NR) { sub(/runs;/, "runs, medians of " rounds " rounds in turn with PyTorch;"); print }; next }
/^# measured FMA peak/ { p512 = p512 " " $6; p2 = p2 " " $9; next }
/^layer/ { if (!header) { header = $0; for (k = 4; k <= NF; k += 2) name[k] = $k; ncol = NF - 1 }; next }
/^minimum/ { split($2, cw, "/"); chosen = cw[1]; next }
/^#/ { next }
NF >= 4 {
    key = $1 SUBSEP $2 SUBSEP $3
    if (!(key in seen)) { seen[key] = 1; order[++rows] = key }
    for (k = 4; k <= NF - 1; k += 2)
        if ($k != "-") vals[key, k] = vals[key, k] " " $k
}
END {
    pk = median(p512)
    printf "# measured FMA peak: avx512 %.1f GFLOP/s, avx2 %.1f GFLOP/s (medians); %%pk = %% of the avx512 peak\n", pk, median(p2)
    print header
    for (k in name) if (name[k] == chosen) mine = k
    for (k in name) if (name[k] == "torch") pt = k
    min_ratio = 0
    for (r = 1; r <= rows; r++) {
        split(order[r], f, SUBSEP)
        printf "%-13s %4s %-10s", f[1], f[2], f[3]
        for (k = 4; k <= ncol; k += 2) {
            m = median(vals[order[r], k])
            if (m == "") printf " %8s %5s", "-", "-"
            else printf " %8.1f %4.0f%%", m, (pk > 0 ? 100 * m / pk : 0)
        }
        a = median(vals[order[r], mine]); b = median(vals[order[r], pt])
        if (a != "" && b != "" && b > 0) {
            printf " %8.2fx\n", a / b
            if (min_ratio == 0 || a / b < min_ratio) { min_ratio = a / b; min_row = f[1] " N=" f[2] " " f[3] }
        } else printf " %9s\n", "-"
    }
    if (min_ratio > 0) printf "minimum %s/PyTorch ratio: %.2fx (%s)\n", chosen, min_ratio, min_row
    else printf "minimum %s/PyTorch ratio: - (no PyTorch figures)\n", chosen
}' $files
