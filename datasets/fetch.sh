#!/bin/sh
# Installs Fashion-MNIST for `dptrain --data fashion-mnist`: the Debian package
# dataset-fashion-mnist puts the four IDX .gz files under /usr/share/datasets/fashion-mnist/.
# As root it installs the package with apt-get; otherwise it says what to run. Nothing is
# downloaded from anywhere else. Exit status 0 when the files are in place afterwards.
set -eu

DIR=/usr/share/datasets/fashion-mnist
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

have_all() {
    for f in $FILES; do
        [ -f "$DIR/$f" ] || return 1
    done
}

if have_all; then
    echo "fetch.sh: Fashion-MNIST is installed in $DIR"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "fetch.sh: no apt-get here. Put $FILES into a directory and pass it with" >&2
    echo "          --data DIR (or use the bundled sample: --data sample)." >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "fetch.sh: Fashion-MNIST is not installed. Run as root:" >&2
    echo "          sudo apt-get install dataset-fashion-mnist" >&2
    echo "          (or try the bundled sample meanwhile: --data sample)" >&2
    exit 1
fi

echo "fetch.sh: apt-get install dataset-fashion-mnist"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dataset-fashion-mnist
if have_all; then
    echo "fetch.sh: Fashion-MNIST is installed in $DIR"
else
    echo "fetch.sh: the package is installed but $DIR lacks some of: $FILES" >&2
    exit 1
fi
