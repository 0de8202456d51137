#!/bin/sh
# Per-layer convolution table in one run: PyTorch (oneDNN, one thread) first, then every dptrain
# path with the measured FMA peak, joined by layer name with the ratio of the path dptrain runs on
# this CPU to PyTorch; the last line is the minimum ratio over every pass.
# usage: scripts/bench-conv.sh [BUILD_DIR] [bench_conv_simd options, e.g. --batches 64]
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
torch=$(mktemp)
trap 'rm -f "$torch"' EXIT
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    /usr/bin/python3 "$here/scripts/bench-vs-pytorch.py" --batches "$batches" > "$torch"
    head -1 "$torch"
else
    echo "# python3-torch not importable: PyTorch columns left empty"
fi
"$bench" --torch "$torch" "$@"
