/* IDX reader. Oracle: small files written here byte by byte (plain and gzip) with known contents;
 * a uint8 pixel b must load as b / 255 (closed form, one float rounding). Every malformed file
 * must fail with a message that names it. */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/data.h"

typedef struct {
    char dir[64];
    char paths[16][128];
    int n;
} tmpdir;

static int setup(void **state) {
    tmpdir *t = calloc(1, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/dpt_test_idx_XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    *state = t;
    return 0;
}

static int teardown(void **state) {
    tmpdir *t = *state;
    for (int i = 0; i < t->n; i++)
        remove(t->paths[i]); /* files, FIFOs, links and empty directories */
    rmdir(t->dir);
    free(t);
    return 0;
}

static const char *tmp_path(tmpdir *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(strrchr(t->paths[i], '/') + 1, name) == 0)
            return t->paths[i];
    assert_true(t->n < 16);
    char buf[sizeof t->paths[0]];
    snprintf(buf, sizeof buf, "%s/%s", t->dir, name);
    memcpy(t->paths[t->n], buf, sizeof buf);
    return t->paths[t->n++];
}

static void put_be32(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8), b[3] = (unsigned char)v;
}

/* Writes magic, dims and body; gz selects gzip. body_len may disagree with the dims on purpose. */
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int ndim,
                      const void *body, size_t body_len, int gz) {
    unsigned char head[4 + 4 * 4];
    put_be32(head, magic);
    for (int i = 0; i < ndim; i++)
        put_be32(head + 4 + 4 * i, dims[i]);
    size_t hl = 4 + 4 * (size_t)ndim;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, head, (unsigned)hl), (int)hl);
        if (body_len)
            assert_int_equal(gzwrite(f, body, (unsigned)body_len), (int)body_len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(head, 1, hl, f), hl);
        if (body_len)
            assert_int_equal(fwrite(body, 1, body_len, f), body_len);
        assert_int_equal(fclose(f), 0);
    }
}

enum { N = 3, H = 2, W = 4 };
static unsigned char pixels[N * H * W];
static const unsigned char labels[N] = {2, 0, 9};

static void make_pixels(void) {
    for (int i = 0; i < N * H * W; i++)
        pixels[i] = (unsigned char)((i * 37 + 11) % 256);
    pixels[0] = 0, pixels[1] = 255;
}

static void write_good(tmpdir *t, const char *img, const char *lab, int gz) {
    make_pixels();
    write_idx(tmp_path(t, img), 0x803, (uint32_t[]){N, H, W}, 3, pixels, sizeof pixels, gz);
    write_idx(tmp_path(t, lab), 0x801, (uint32_t[]){N}, 1, labels, sizeof labels, gz);
}

static void check_good(const dpt_dataset *ds, int64_t K) {
    assert_int_equal(ds->N, N);
    assert_int_equal(ds->C, 1);
    assert_int_equal(ds->D, 1);
    assert_int_equal(ds->H, H);
    assert_int_equal(ds->W, W);
    assert_int_equal(ds->sdims, 2);
    assert_int_equal(ds->K, K);
    /* stored as the file holds them */
    assert_int_equal(ds->type, DPT_SAMPLES_U8);
    assert_memory_equal(ds->x_u8, pixels, sizeof pixels);
    double ref[N * H * W];
    float x[N * H * W];
    for (int i = 0; i < N * H * W; i++)
        ref[i] = pixels[i] / 255.0;
    dpt_dataset_gather(ds, x, NULL, 0, N);
    /* one rounding of b / 255 to float: relative error <= FLT_EPSILON / 2 (atol only keeps the
     * helper's ratio defined at the exact zero) */
    dpt_assert_close_f32_f64("pixels", x, ref, N * H * W, FLT_MIN, FLT_EPSILON / 2);
    assert_true(x[0] == 0.0f && x[1] == 1.0f);
    for (int i = 0; i < N; i++)
        assert_int_equal(ds->y[i], labels[i]);
}

static void test_plain_file_loads(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    dpt_dataset ds;
    assert_int_equal(dpt_idx_load(&ds, tmp_path(t, "im"), tmp_path(t, "lb"), 10), DPT_OK);
    check_good(&ds, 10);
    dpt_dataset_free(&ds);
}

static void test_gzip_file_loads_and_infers_classes(void **state) {
    tmpdir *t = *state;
    write_good(t, "im.gz", "lb.gz", 1);
    dpt_dataset ds;
    assert_int_equal(dpt_idx_load(&ds, tmp_path(t, "im.gz"), tmp_path(t, "lb.gz"), 0), DPT_OK);
    check_good(&ds, 10); /* max label 9 + 1 */
    dpt_dataset_free(&ds);
}

static void test_float_images_load_exactly(void **state) {
    tmpdir *t = *state;
    const float vals[2 * 1 * 3] = {-1.5f, 0.0f, 3.25e-3f, 1e6f, -0.0f, 7.0f};
    unsigned char body[sizeof vals];
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &vals[i], 4);
        put_be32(body + 4 * i, u);
    }
    write_idx(tmp_path(t, "f"), 0xd03, (uint32_t[]){2, 1, 3}, 3, body, sizeof body, 0);
    write_idx(tmp_path(t, "fl"), 0x801, (uint32_t[]){2}, 1, (unsigned char[]){1, 0}, 2, 0);
    dpt_dataset ds;
    assert_int_equal(dpt_idx_load(&ds, tmp_path(t, "f"), tmp_path(t, "fl"), 0), DPT_OK);
    assert_int_equal(ds.K, 2);
    assert_int_equal(ds.type, DPT_SAMPLES_F32);
    assert_memory_equal(ds.x_f32, vals, sizeof vals);
    float x[6];
    dpt_dataset_gather(&ds, x, NULL, 0, 2);
    assert_memory_equal(x, vals, sizeof vals);
    dpt_dataset_free(&ds);
}

/* The load must fail with `code`, leave *ds empty, and name `path` and `what` in the message. */
static void expect_failure(const char *img, const char *lab, int64_t K, dpt_status code,
                           const char *path, const char *what) {
    dpt_dataset ds;
    dpt_error_clear();
    dpt_status st = dpt_idx_load(&ds, img, lab, K);
    const char *msg = dpt_last_error();
    if (st != code || !strstr(msg, path) || !strstr(msg, what))
        fail_msg("got %s \"%s\", want %s naming %s and \"%s\"", dpt_status_name(st), msg,
                 dpt_status_name(code), path, what);
    assert_null(ds.x_u8);
    assert_null(ds.x_f32);
    assert_null(ds.y);
}

static void test_bad_magic(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    write_idx(tmp_path(t, "bad"), 0x804, (uint32_t[]){N, H, W, 1}, 4, pixels, sizeof pixels, 0);
    expect_failure(tmp_path(t, "bad"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "bad"),
                   "IDX rank 4, expected 3");
    /* images where labels are expected */
    expect_failure(tmp_path(t, "im"), tmp_path(t, "im"), 10, DPT_EFORMAT, tmp_path(t, "im"),
                   "IDX rank 3, expected 1 for labels");
    /* a rank-2 image file */
    write_idx(tmp_path(t, "rank2"), 0x802, (uint32_t[]){N, H * W}, 2, pixels, sizeof pixels, 1);
    expect_failure(tmp_path(t, "rank2"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "rank2"),
                   "IDX rank 2, expected 3");
    /* not IDX at all */
    write_idx(tmp_path(t, "png"), 0x89504e47, (uint32_t[]){N, H, W}, 3, pixels, sizeof pixels, 0);
    expect_failure(tmp_path(t, "png"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "png"),
                   "not an IDX file (magic 0x89504e47");
}

/* Type codes other than unsigned byte (and float32 for images) are named, with what is read. */
static void test_unsupported_types(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    write_idx(tmp_path(t, "i16"), 0xB03, (uint32_t[]){N, H, W}, 3, pixels, sizeof pixels, 0);
    expect_failure(tmp_path(t, "i16"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "i16"),
                   "IDX type 0x0B (int16) is not supported; dptrain reads unsigned byte (0x08) "
                   "or float32 (0x0D)");
    write_idx(tmp_path(t, "f64"), 0xE03, (uint32_t[]){N, H, W}, 3, pixels, sizeof pixels, 0);
    expect_failure(tmp_path(t, "f64"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "f64"),
                   "IDX type 0x0E (float64)");
    /* float labels: images accept float32, labels do not */
    write_idx(tmp_path(t, "lbf"), 0xD01, (uint32_t[]){N}, 1, pixels, 4 * N, 0);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "lbf"), 10, DPT_EFORMAT, tmp_path(t, "lbf"),
                   "IDX type 0x0D (float32) is not supported; dptrain reads unsigned byte (0x08)");
    write_idx(tmp_path(t, "lbs"), 0x901, (uint32_t[]){N}, 1, labels, N, 1);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "lbs"), 10, DPT_EFORMAT, tmp_path(t, "lbs"),
                   "IDX type 0x09 (signed byte)");
}

/* A directory, a FIFO (opening it would block), a symbolic link loop and a dangling link are
 * named as such, not as "not found" or a read error. */
static void test_not_regular_files(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    assert_int_equal(mkdir(tmp_path(t, "adir"), 0700), 0);
    expect_failure(tmp_path(t, "adir"), tmp_path(t, "lb"), 10, DPT_EIO, tmp_path(t, "adir"),
                   ": is a directory");
    assert_int_equal(mkfifo(tmp_path(t, "fifo"), 0600), 0);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "fifo"), 10, DPT_EIO, tmp_path(t, "fifo"),
                   ": is a FIFO, not a regular file");
    assert_int_equal(symlink(tmp_path(t, "loop"), tmp_path(t, "loop")), 0);
    expect_failure(tmp_path(t, "loop"), tmp_path(t, "lb"), 10, DPT_EIO, tmp_path(t, "loop"),
                   ": symbolic link loop");
    assert_int_equal(symlink(tmp_path(t, "nowhere"), tmp_path(t, "dangling")), 0);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "dangling"), 10, DPT_EIO, tmp_path(t, "dangling"),
                   ": dangling symbolic link");
    /* the same through the --data resolver: a directory whose label "file" is a directory */
    dpt_data d;
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, tmp_path(t, "fifo"), NULL), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "is a FIFO, not a regular file"));
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, tmp_path(t, "loop"), NULL), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "symbolic link loop"));
}

/* Declared sizes beyond available memory fail before allocating; sizes beyond 2^64 saturate. */
static void test_memory_bound(void **state) {
    (void)state;
    assert_true(dpt__data_mem_available() > 0);
    assert_int_equal(dpt__data_check_memory("f", "x", 100, 100), DPT_OK);
    dpt_error_clear();
    assert_int_equal(
        dpt__data_check_memory("f", "the image set", (uint64_t)1 << 42, (uint64_t)1 << 30),
        DPT_ENOMEM);
    assert_string_equal(
        dpt_last_error(),
        "f: the image set needs 4.0 TiB in memory, more than the 1.0 GiB available");
    assert_int_equal(dpt__data_mul(UINT64_MAX / 2, 3), UINT64_MAX);
    assert_int_equal(dpt__data_mul(1u << 31, 1u << 31), (uint64_t)1 << 62);
    dpt_error_clear();
    assert_int_equal(dpt__data_check_memory("f", "x", UINT64_MAX, 1), DPT_ENOMEM);
    assert_non_null(strstr(dpt_last_error(), "more than 2^64 bytes"));
}

/* Long paths keep their start and their end around a middle ellipsis. */
static void test_short_names(void **state) {
    (void)state;
    char buf[20], longp[300];
    assert_string_equal(dpt__data_short(buf, sizeof buf, "/a/b.gz"), "/a/b.gz");
    assert_string_equal(dpt__data_short(buf, sizeof buf, "/0123456789/abcdefghijkl.gz"),
                        "/01234...fghijkl.gz");
    assert_int_equal(strlen(buf), sizeof buf - 1);
    memset(longp, 'd', sizeof longp);
    memcpy(longp, "/data/", 6);
    snprintf(longp + 250, 50, "/train-images-idx3-ubyte.gz");
    dpt_data d;
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, longp, NULL), DPT_EIO);
    const char *msg = dpt_last_error();
    assert_non_null(strstr(msg, "..."));
    assert_non_null(strstr(msg, "train-images-idx3-ubyte.gz: not found"));
    assert_true(strlen(msg) < 200);
}

static void test_zero_dimension(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    write_idx(tmp_path(t, "zero"), 0x803, (uint32_t[]){N, 0, W}, 3, pixels, 0, 0);
    expect_failure(tmp_path(t, "zero"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "zero"),
                   "dimension 1 is 0");
}

static void test_short_and_long_bodies(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    write_idx(tmp_path(t, "short"), 0x803, (uint32_t[]){N, H, W}, 3, pixels, sizeof pixels - 5, 0);
    expect_failure(tmp_path(t, "short"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "short"),
                   "truncated");
    write_idx(tmp_path(t, "short.gz"), 0x803, (uint32_t[]){N, H, W}, 3, pixels, H * W, 1);
    expect_failure(tmp_path(t, "short.gz"), tmp_path(t, "lb"), 10, DPT_EFORMAT,
                   tmp_path(t, "short.gz"), "truncated");
    /* the header says 2 images, the body holds 3 */
    write_idx(tmp_path(t, "long"), 0x803, (uint32_t[]){2, H, W}, 3, pixels, sizeof pixels, 0);
    write_idx(tmp_path(t, "lb2"), 0x801, (uint32_t[]){2}, 1, labels, 2, 0);
    expect_failure(tmp_path(t, "long"), tmp_path(t, "lb2"), 10, DPT_EFORMAT, tmp_path(t, "long"),
                   "trailing bytes");
    /* a header cut short */
    write_idx(tmp_path(t, "head"), 0x803, (uint32_t[]){N}, 1, NULL, 0, 0);
    expect_failure(tmp_path(t, "head"), tmp_path(t, "lb"), 10, DPT_EFORMAT, tmp_path(t, "head"),
                   "truncated");
}

/* A header declaring far more than the file holds is rejected before anything is allocated. */
static void test_huge_header(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    const uint32_t dims[3] = {2000000000u, 60000u, 60000u};
    write_idx(tmp_path(t, "huge"), 0x803, dims, 3, pixels, sizeof pixels, 0);
    write_idx(tmp_path(t, "huge.gz"), 0x803, dims, 3, pixels, sizeof pixels, 1);
    write_idx(tmp_path(t, "lbhuge"), 0x801, dims, 1, labels, sizeof labels, 0);
    expect_failure(tmp_path(t, "huge"), tmp_path(t, "lbhuge"), 10, DPT_EFORMAT, tmp_path(t, "huge"),
                   "truncated: the header declares");
    expect_failure(tmp_path(t, "huge.gz"), tmp_path(t, "lbhuge"), 10, DPT_EFORMAT,
                   tmp_path(t, "huge.gz"), "more than");
}

/* Training and test images of different sizes in one directory. */
static void test_directory_shape_mismatch(void **state) {
    tmpdir *t = *state;
    make_pixels();
    write_idx(tmp_path(t, "train-images-idx3-ubyte"), 0x803, (uint32_t[]){N, H, W}, 3, pixels,
              sizeof pixels, 0);
    write_idx(tmp_path(t, "train-labels-idx1-ubyte"), 0x801, (uint32_t[]){N}, 1, labels, N, 0);
    write_idx(tmp_path(t, "t10k-images-idx3-ubyte"), 0x803, (uint32_t[]){N, W, H}, 3, pixels,
              sizeof pixels, 0);
    write_idx(tmp_path(t, "t10k-labels-idx1-ubyte"), 0x801, (uint32_t[]){N}, 1, labels, N, 0);
    dpt_data d;
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, t->dir, NULL), DPT_ESHAPE);
    assert_non_null(strstr(dpt_last_error(), tmp_path(t, "t10k-images-idx3-ubyte")));
    assert_non_null(strstr(dpt_last_error(), "test images are 4x2, training images 2x4"));
    assert_null(d.train.x_u8);
}

static void test_count_mismatch(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    write_idx(tmp_path(t, "lb2"), 0x801, (uint32_t[]){2}, 1, labels, 2, 0);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "lb2"), 10, DPT_EFORMAT, tmp_path(t, "lb2"),
                   "2 labels for 3 images");
}

static void test_label_out_of_range(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    write_idx(tmp_path(t, "lb12"), 0x801, (uint32_t[]){N}, 1, (unsigned char[]){1, 12, 0}, N, 0);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "lb12"), 10, DPT_ERANGE, tmp_path(t, "lb12"),
                   "label 12 at sample 1 is outside [0, 10)");
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void test_bad_gzip(void **state) {
    tmpdir *t = *state;
    write_good(t, "im.gz", "lb.gz", 1);
    const char *p = tmp_path(t, "im.gz");
    long n = file_size(p);
    unsigned char *buf = malloc((size_t)n);
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    /* Corrupt the CRC-32 in the trailer: only zlib's integrity check can notice. */
    buf[n - 8] ^= 0x5a;
    f = fopen(tmp_path(t, "crc.gz"), "wb");
    fwrite(buf, 1, (size_t)n, f);
    fclose(f);
    expect_failure(tmp_path(t, "crc.gz"), tmp_path(t, "lb.gz"), 10, DPT_EFORMAT,
                   tmp_path(t, "crc.gz"), "corrupt gzip stream");
    /* Garbage inside the deflate stream. */
    buf[n - 8] ^= 0x5a;
    for (long i = 10; i < n - 8; i++)
        buf[i] = (unsigned char)(0xff - i);
    f = fopen(tmp_path(t, "garbage.gz"), "wb");
    fwrite(buf, 1, (size_t)n, f);
    fclose(f);
    expect_failure(tmp_path(t, "garbage.gz"), tmp_path(t, "lb.gz"), 10, DPT_EFORMAT,
                   tmp_path(t, "garbage.gz"), "gzip");
    /* A gzip file cut in the middle. */
    f = fopen(tmp_path(t, "cut.gz"), "wb");
    FILE *g = fopen(p, "rb");
    assert_int_equal(fread(buf, 1, (size_t)n, g), (size_t)n);
    fclose(g);
    fwrite(buf, 1, (size_t)n / 2, f);
    fclose(f);
    dpt_dataset ds;
    dpt_error_clear();
    assert_int_equal(dpt_idx_load(&ds, tmp_path(t, "cut.gz"), tmp_path(t, "lb.gz"), 10),
                     DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), tmp_path(t, "cut.gz")));
    free(buf);
}

static void test_missing_file(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    expect_failure(tmp_path(t, "im"), tmp_path(t, "nonexistent"), 10, DPT_EIO,
                   tmp_path(t, "nonexistent"), ": not found");
}

/* A directory of IDX files through the --data resolver: both splits, K over both. */
static void test_directory_via_data_load(void **state) {
    tmpdir *t = *state;
    make_pixels();
    write_idx(tmp_path(t, "train-images-idx3-ubyte.gz"), 0x803, (uint32_t[]){N, H, W}, 3, pixels,
              sizeof pixels, 1);
    write_idx(tmp_path(t, "train-labels-idx1-ubyte"), 0x801, (uint32_t[]){N}, 1,
              (unsigned char[]){0, 1, 2}, N, 0);
    write_idx(tmp_path(t, "t10k-images-idx3-ubyte"), 0x803, (uint32_t[]){1, H, W}, 3, pixels, H * W,
              0);
    write_idx(tmp_path(t, "t10k-labels-idx1-ubyte.gz"), 0x801, (uint32_t[]){1}, 1,
              (unsigned char[]){6}, 1, 1);
    dpt_data d;
    assert_int_equal(dpt_data_load(&d, t->dir, NULL), DPT_OK);
    assert_int_equal(d.train.N, N);
    assert_int_equal(d.test.N, 1);
    assert_int_equal(d.train.K, 7);
    assert_int_equal(d.test.K, 7);
    assert_int_equal(d.test.y[0], 6);
    assert_memory_equal(d.test.x_u8, d.train.x_u8, H * W);
    dpt_data_free(&d);
    /* remove one file: the message names what is missing */
    unlink(tmp_path(t, "t10k-labels-idx1-ubyte.gz"));
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, t->dir, NULL), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "t10k-labels-idx1-ubyte"));
    assert_null(d.train.x_u8);
    /* the model's class count: labels 0..6 fit 7 classes, not 6; the message names the file,
     * the sample, the value and the range */
    write_idx(tmp_path(t, "t10k-labels-idx1-ubyte.gz"), 0x801, (uint32_t[]){1}, 1,
              (unsigned char[]){6}, 1, 1);
    assert_int_equal(dpt_data_load(&d, t->dir, &(dpt_data_opts){.classes = 10}), DPT_OK);
    assert_int_equal(d.train.K, 10);
    assert_int_equal(d.test.K, 10);
    dpt_data_free(&d);
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, t->dir, &(dpt_data_opts){.classes = 6}), DPT_ERANGE);
    assert_non_null(strstr(dpt_last_error(), "t10k-labels-idx1-ubyte.gz: label 6 at sample 0 is "
                                             "outside [0, 6)"));
    /* a label "file" that is a directory is named as one, not as missing */
    unlink(tmp_path(t, "t10k-labels-idx1-ubyte.gz"));
    assert_int_equal(mkdir(tmp_path(t, "t10k-labels-idx1-ubyte.gz"), 0700), 0);
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, t->dir, NULL), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "t10k-labels-idx1-ubyte.gz: is a directory"));
}

/* dims whose product overflows 64 bits are refused, not wrapped into a small allocation. */
static void test_overflowing_header(void **state) {
    tmpdir *t = *state;
    write_good(t, "im", "lb", 0);
    const uint32_t dims[3] = {0x7fffffffu, 0x7fffffffu, 0x7fffffffu};
    write_idx(tmp_path(t, "ovf"), 0x803, dims, 3, pixels, sizeof pixels, 0);
    write_idx(tmp_path(t, "lbovf"), 0x801, dims, 1, labels, sizeof labels, 0);
    expect_failure(tmp_path(t, "ovf"), tmp_path(t, "lbovf"), 10, DPT_EFORMAT, tmp_path(t, "ovf"),
                   "more than 2^64");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_file_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_file_loads_and_infers_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_float_images_load_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_regular_files, setup, teardown),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_short_names),
        cmocka_unit_test_setup_teardown(test_overflowing_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_dimension, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_and_long_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_shape_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_via_data_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
