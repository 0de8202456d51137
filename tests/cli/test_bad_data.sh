#!/bin/bash
# Hostile --data inputs (issue 12 item 5): each fails at once, with bounded memory, on one
# "dptrain: error:" line that names the file and what is wrong with it, and never prints HDF5's
# error stack.
. "$(dirname "$0")/common.sh"
sample=$src/datasets/fashion-mnist-sample

# AddressSanitizer reserves terabytes of address space for its shadow memory, so a sanitized
# build runs without the address-space limit (the memory check still sees MemAvailable).
limit="ulimit -v 1048576;"
ldd "$dptrain" 2>/dev/null | grep -q libasan && limit=""
one_line() { # name, pattern, --data value: fails within 10 s under a 1 GiB address space
    local name=$1 pattern=$2 data=$3
    check "$name" fail "^dptrain: error: .*$pattern" \
        bash -c "$limit"' exec timeout 10 "$0" train --data "$1" --epochs 1' \
        "$dptrain" "$data"
    [ "$(grep -c "dptrain: error" "$tmp/out")" = 1 ] && ! grep -q "HDF5-DIAG" "$tmp/out"
    pass_if $? "$name: not one error line: $(cat "$tmp/out")"
}

# a directory $1 holding the sample's IDX files, changed by the command $2 run inside it
idx_dir() { # name, setup command run in the directory
    rm -rf "${tmp:?}/$1" && mkdir "$tmp/$1" && cp "$sample"/*.gz "$tmp/$1"/ &&
        (cd "$tmp/$1" && eval "$2")
}

# A 16-byte header declaring 2^31 x 2^16 x 2^16 images.
idx_dir huge "rm train-images-idx3-ubyte.gz; printf '\0\0\10\3\200\0\0\0\0\1\0\0\0\1\0\0' \
    >train-images-idx3-ubyte"
one_line huge-header "train-images-idx3-ubyte: dimension 0 is 2147483648" "$tmp/huge"
# A sparse file that holds the 1 TiB it declares: refused by the memory check, not allocated
# (the samples are kept as the bytes they are, so 1 TiB of pixels needs 1 TiB).
idx_dir sparse "rm train-*.gz; printf '\0\0\10\3\1\0\0\0\0\0\1\0\0\0\1\0' \
    >train-images-idx3-ubyte && truncate -s \$((16 + (1 << 40))) train-images-idx3-ubyte &&
    printf '\0\0\10\1\1\0\0\0' >train-labels-idx1-ubyte &&
    truncate -s \$((8 + (1 << 24))) train-labels-idx1-ubyte"
one_line sparse-tib "train-images-idx3-ubyte: the image set needs 1.0 TiB in memory, more than" \
    "$tmp/sparse"
# An IDX type code other than unsigned byte.
idx_dir int16 "rm t10k-images-idx3-ubyte.gz; printf '\0\0\13\3\0\0\0\1\0\0\0\1\0\0\0\1\0\0' \
    >t10k-images-idx3-ubyte"
one_line idx-type "t10k-images-idx3-ubyte: IDX type 0x0B \(int16\) is not supported; dptrain \
reads unsigned byte \(0x08\)" "$tmp/int16"
# A stray label in --data sample (10 classes) names the file, the sample, the value and the range.
mkdir -p "$tmp/base/datasets" && idx_dir base/datasets/fashion-mnist-sample \
    "gzip -dc train-labels-idx1-ubyte.gz >lb && { head -c 25 lb; printf '\377'; tail -c +27 lb; } |
    gzip >train-labels-idx1-ubyte.gz && rm lb"
DPT_DATA_PATH=$tmp/base one_line label-range \
    "train-labels-idx1-ubyte.gz: label 255 at sample 17 is outside \[0, 10\)" sample
# Not regular files: a directory, a FIFO (opening it would block), a symbolic link loop.
idx_dir isdir "rm train-labels-idx1-ubyte.gz; mkdir train-labels-idx1-ubyte.gz"
one_line is-dir "train-labels-idx1-ubyte.gz: is a directory" "$tmp/isdir"
idx_dir fifo "rm train-labels-idx1-ubyte.gz; mkfifo train-labels-idx1-ubyte.gz"
one_line fifo "train-labels-idx1-ubyte.gz: is a FIFO, not a regular file" "$tmp/fifo"
mkfifo "$tmp/data.fifo"
one_line fifo-data "data.fifo: is a FIFO, not a regular file" "$tmp/data.fifo"
ln -s "$tmp/loop.h5" "$tmp/loop.h5"
one_line link-loop "loop.h5: symbolic link loop" "$tmp/loop.h5"
# HDF5: no signature, and a real file cut short.
printf 'plain text\n' >"$tmp/text.h5"
one_line not-hdf5 "text.h5: not an HDF5 file" "$tmp/text.h5"
head -c 1500 "$src/tests/reference/model_step.h5" >"$tmp/cut.h5"
one_line truncated-hdf5 "cut.h5: truncated or corrupt HDF5 file" "$tmp/cut.h5"
# A long path is shortened in the middle, so the reason stays on the line.
long=$tmp/$(printf 'd%.0s' {1..200})/$(printf 'e%.0s' {1..100})
mkdir -p "$long" && mkfifo "$long/data.h5"
one_line long-path "\.\.\..*data\.h5: is a FIFO, not a regular file" "$long/data.h5"

echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
