/* Writes the binary seed corpora of tests/fuzz (run by hand; the files are committed):
 *   make_seeds OUT_DIR [FASHION_MNIST_DIR]
 * OUT_DIR/fuzz_hdf5_dataset and OUT_DIR/fuzz_checkpoint: edit scripts (fuzz_h5.h), each base file
 * unchanged and edits that reach each check of the readers: labels out of range, a two-element
 * n_classes, variable-length and long layout strings, a group or a dangling soft link where a
 * dataset belongs, NaN values, extents no reader can hold, a corrupt deflate stream or Fletcher32
 * chunk, a truncated file, another model spec, input shape, version type, rank count, extents
 * whose product wraps around, a two-element /config argv, a variable-length string dataset.
 * OUT_DIR/fuzz_idx: the first images and labels of Fashion-MNIST (real headers, N rewritten) in
 * the target's input format (flag byte, image length, image file, label file), plain, gzipped by
 * the target, gzipped in the file, with K given, and a float32 image file. Every seed is a few
 * bytes (scripts) or KiB (IDX). */
#include "fuzz_h5.h" /* first: fuzz_common.h defines _GNU_SOURCE */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dpt/data.h"

static char out_dir[1024];

static void subdir(char *buf, size_t n, const char *target, const char *name) {
    snprintf(buf, n, "%s/%s", out_dir, target);
    mkdir(buf, 0777);
    snprintf(buf, n, "%s/%s/%s", out_dir, target, name);
}

static void write_seed(const char *target, const char *name, const void *bytes, size_t n) {
    char path[2048];
    subdir(path, sizeof path, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        exit(1);
    }
}

/* A script from a byte list; strings of bytes go in with S(...). */
#define SEED(target, name, ...)                                                                    \
    do {                                                                                           \
        static const unsigned char b_[] = {__VA_ARGS__};                                           \
        write_seed(target, name, b_, sizeof b_);                                                   \
    } while (0)
/* little-endian int64 and float32/float64 bit patterns */
#define I64(v)                                                                                     \
    (unsigned char)((uint64_t)(v)), (unsigned char)((uint64_t)(v) >> 8),                           \
        (unsigned char)((uint64_t)(v) >> 16), (unsigned char)((uint64_t)(v) >> 24),                \
        (unsigned char)((uint64_t)(v) >> 32), (unsigned char)((uint64_t)(v) >> 40),                \
        (unsigned char)((uint64_t)(v) >> 48), (unsigned char)((uint64_t)(v) >> 56)
#define F32_NAN 0x00, 0x00, 0xc0, 0x7f
#define F64_ONE 0, 0, 0, 0, 0, 0, 0xf0, 0x3f
/* fin_extent's codes for its large extents */
#define EXT_2P31_1 0xf7
#define EXT_2P62 0xfd

/* ---- HDF5 data sets (names: fuzz_hdf5_dataset.c) ---- */

enum { TRAIN_X, TRAIN_Y, TEST_X, TEST_Y, TRAIN_GROUP };
enum { A_N_CLASSES, A_TRAIN_LAYOUT };

static void hdf5_datasets(void) {
    const char *t = "fuzz_hdf5_dataset";
    SEED(t, "base0_u8_nhw", 0);
    SEED(t, "base1_f32_nchw", 1);
    SEED(t, "base2_f32_ncl", 2);
    SEED(t, "base3_u8_ncdhw", 3);
    SEED(t, "base4_f64_gzip_vlen", 4);
    SEED(t, "label_out_of_range", 0, FUZZ_OP_WRITE, TRAIN_Y, I64(0), I64(5), I64(-1));
    SEED(t, "labels_u16be", 1, FUZZ_OP_DATASET, TRAIN_Y, FUZZ_T_U16BE, 0, FUZZ_SPACE_RANK(1), 3, 0,
         1, 0, 2, 0, 0);
    SEED(t, "n_classes_pair", 0, FUZZ_OP_ATTR, A_N_CLASSES, FUZZ_T_I64, FUZZ_SPACE_RANK(1), 2,
         I64(3), I64(3));
    SEED(t, "layout_vlen_three", 4, FUZZ_OP_ATTR, A_TRAIN_LAYOUT, FUZZ_T_VLEN_STRING, 0, 0,
         FUZZ_SPACE_RANK(1), 3, 4, 'N', 'C', 'H', 'W', 3, 'N', 'C', 'L', 0xff);
    SEED(t, "layout_long", 1, FUZZ_OP_ATTR, A_TRAIN_LAYOUT, FUZZ_T_STRING, 39, 1, FUZZ_SPACE_SCALAR,
         'N', 'C', 'H', 'W', 'N', 'C', 'H', 'W', 'N', 'C', 'H', 'W', 'N', 'C', 'H', 'W', 'N', 'C',
         'H', 'W', 'N', 'C', 'H', 'W');
    SEED(t, "x_is_group", 2, FUZZ_OP_GROUP, TRAIN_X);
    SEED(t, "y_links_to_group", 1, FUZZ_OP_SOFT_LINK, TEST_Y, TRAIN_GROUP);
    SEED(t, "x_nan", 1, FUZZ_OP_WRITE, TRAIN_X, F32_NAN);
    SEED(t, "x_huge", 1, FUZZ_OP_DATASET, TRAIN_X, FUZZ_T_F32, FUZZ_L_CHUNKED, FUZZ_SPACE_RANK(4),
         3, EXT_2P31_1, 2, 2);
    SEED(t, "x_gzip_corrupt", 4, FUZZ_OP_CORRUPT, TRAIN_X, 0, 10, 0x40);
    SEED(t, "truncated", 0, FUZZ_OP_TRUNCATE, 200);
}

/* ---- checkpoints (names: fuzz_checkpoint.c) ---- */

/* clang-format off */
enum { INPUT_SHAPE, CONV_WEIGHT, BN_RUNNING_VAR, NORM_MEAN, NORM_STD, EXP_AVG, TRAIN_LOSS,
       TEST_ACCURACY, TRAIN_INDICES, BEST_PARAMS, BEST_BUFFERS, RANK_BUFFERS, RANK_SUMS };
enum { A_FORMAT, A_VERSION, A_MODEL_SPEC, A_DATA_SOURCE, A_MEMBER_KIND, A_MEMBER_ALPHA,
       A_OPTIM_KIND, A_OPTIM_STEP, A_GLOBAL_STEP, A_RANKS, A_ARGV, A_SETTINGS };
/* clang-format on */

static void checkpoints(void) {
    const char *t = "fuzz_checkpoint";
    SEED(t, "base0_dense", 0);
    SEED(t, "base1_cnn_weights", 1);
    SEED(t, "base2_cnn_full_state", 2);
    SEED(t, "model_spec", 0, FUZZ_OP_ATTR, A_MODEL_SPEC, FUZZ_T_STRING, 36, 0, FUZZ_SPACE_SCALAR,
         'f', 'l', 'a', 't', 't', 'e', 'n', ' ', 'd', 'e', 'n', 's', 'e', '(', '5', ')', ' ', 'r',
         'e', 'l', 'u', ' ', 'd', 'e', 'n', 's', 'e', '(', 'c', 'l', 'a', 's', 's', 'e', 's', ')');
    SEED(t, "input_shape", 1, FUZZ_OP_WRITE, INPUT_SHAPE, I64(1), I64(0x7fffffff), I64(-6));
    SEED(t, "weight_nan", 1, FUZZ_OP_WRITE, CONV_WEIGHT, F32_NAN);
    SEED(t, "weight_is_group", 1, FUZZ_OP_GROUP, CONV_WEIGHT);
    SEED(t, "weight_dangling_link", 1, FUZZ_OP_SOFT_LINK, CONV_WEIGHT, BEST_PARAMS);
    SEED(t, "version_float", 0, FUZZ_OP_ATTR, A_VERSION, FUZZ_T_F64, FUZZ_SPACE_SCALAR, F64_ONE);
    SEED(t, "norm_std_short", 2, FUZZ_OP_DATASET, NORM_STD, FUZZ_T_F64, 0, FUZZ_SPACE_RANK(1), 0);
    SEED(t, "norm_std_wraps", 2, FUZZ_OP_DATASET, NORM_STD, FUZZ_T_F64, FUZZ_L_CHUNKED,
         FUZZ_SPACE_RANK(2), EXT_2P62, 4);
    SEED(t, "metrics_huge", 2, FUZZ_OP_DATASET, TRAIN_LOSS, FUZZ_T_F64, FUZZ_L_CHUNKED,
         FUZZ_SPACE_RANK(1), EXT_2P62);
    SEED(t, "metrics_2d", 2, FUZZ_OP_DATASET, TEST_ACCURACY, FUZZ_T_F64, 0, FUZZ_SPACE_RANK(2), 2,
         1);
    SEED(t, "ranks_many", 2, FUZZ_OP_ATTR_WRITE, A_RANKS, I64(1 << 24));
    SEED(t, "rank_sums_checksum", 2, FUZZ_OP_CORRUPT, RANK_SUMS, 0, 3, 0x10);
    SEED(t, "optimizer_kind", 2, FUZZ_OP_ATTR, A_OPTIM_KIND, FUZZ_T_STRING, 3, 0, FUZZ_SPACE_SCALAR,
         'l', 'a', 'm', 'b');
    SEED(t, "argv_pair", 2, FUZZ_OP_ATTR, A_ARGV, FUZZ_T_STRING, 7, 0, FUZZ_SPACE_RANK(1), 2, '-',
         '-', 'e', 'p', 'o', 'c', 'h', 's', '2', 0, 0, 0, 0, 0, 0, 0);
    SEED(t, "vlen_dataset", 2, FUZZ_OP_DATASET, BEST_PARAMS, FUZZ_T_VLEN_STRING, 0, 0, 0,
         FUZZ_SPACE_RANK(1), 2, 3, 'a', 'b', 'c', 2, 'd', 'e');
    SEED(t, "truncated", 2, FUZZ_OP_TRUNCATE, 128);
}

/* ---- IDX ---- */

static size_t gunzip_head(const char *path, unsigned char *buf, size_t n) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "make_seeds: cannot open %s\n", path);
        exit(1);
    }
    int got = gzread(f, buf, (unsigned)n);
    gzclose(f);
    return got > 0 ? (size_t)got : 0;
}

static size_t gzip_bytes(unsigned char *out, size_t cap, const unsigned char *in, size_t n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)in, z.avail_in = (uInt)n;
    z.next_out = out, z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t len = z.total_out;
    deflateEnd(&z);
    return len;
}

static void idx_seed(const char *name, unsigned flags, const unsigned char *im, size_t nim,
                     const unsigned char *lb, size_t nlb) {
    char path[2048];
    subdir(path, sizeof path, "fuzz_idx", name);
    FILE *f = fopen(path, "wb");
    unsigned char head[5] = {(unsigned char)flags, (unsigned char)(nim >> 24),
                             (unsigned char)(nim >> 16), (unsigned char)(nim >> 8),
                             (unsigned char)nim};
    if (!f || fwrite(head, 1, 5, f) != 5 || fwrite(im, 1, nim, f) != nim ||
        fwrite(lb, 1, nlb, f) != nlb || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        exit(1);
    }
}

static void idx(const char *dir) {
    enum { N = 3, PIX = 28 * 28 };
    static unsigned char im[16 + N * PIX], lb[8 + N], zim[2 * sizeof im], zlb[256];
    char path[2048];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    size_t nim = gunzip_head(path, im, sizeof im);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    size_t nlb = gunzip_head(path, lb, sizeof lb);
    if (nim != sizeof im || nlb != sizeof lb) {
        fprintf(stderr, "make_seeds: short Fashion-MNIST files in %s\n", dir);
        exit(1);
    }
    im[4] = lb[4] = im[5] = lb[5] = im[6] = lb[6] = 0, im[7] = lb[7] = N; /* N = 3 */
    idx_seed("plain", 0, im, nim, lb, nlb);
    idx_seed("gzip_by_target", 3, im, nim, lb, nlb);
    idx_seed("classes10", 10 << 2, im, nim, lb, nlb);
    size_t nzim = gzip_bytes(zim, sizeof zim, im, nim), nzlb = gzip_bytes(zlb, sizeof zlb, lb, nlb);
    idx_seed("gzip_in_file", 0, zim, nzim, zlb, nzlb);
    /* float32 images (magic 0x00000d03), 2 of 2 x 3, big-endian */
    unsigned char fim[16 + 2 * 6 * 4] = {0, 0, 0x0d, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3};
    for (int i = 0; i < 12; i++) {
        float v = (float)i / 8.0f - 0.5f;
        uint32_t u;
        memcpy(&u, &v, 4);
        for (int b = 0; b < 4; b++)
            fim[16 + 4 * i + b] = (unsigned char)(u >> (24 - 8 * b));
    }
    unsigned char flb[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    idx_seed("float32", 0, fim, sizeof fim, flb, sizeof flb);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: make_seeds OUT_DIR [FASHION_MNIST_DIR]\n");
        return 2;
    }
    snprintf(out_dir, sizeof out_dir, "%s", argv[1]);
    mkdir(out_dir, 0777);
    hdf5_datasets();
    checkpoints();
    idx(argc == 3 ? argv[2] : DPT_FASHION_MNIST_DIR);
    return 0;
}
