/* HDF5 dataset reader. Oracle: small files written here with the HDF5 C API with known contents
 * (uint8 pixels load as b / 255, floats exactly, labels exactly); every contract violation must
 * fail with a message that names the file and the dataset. */
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/data.h"

typedef struct {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dpt_test_h5_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/data.h5", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A dataset `name` of `type` with extents dims[0..rank), optional string attribute layout. */
static void put(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims,
                const void *data, const char *layout) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(file, name, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (layout) {
        /* "NCL" as h5py writes strings (variable length, UTF-8), the others fixed-size ASCII */
        int vlen = strcmp(layout, "NCL") == 0;
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, vlen ? H5T_VARIABLE : strlen(layout) + 1);
        if (vlen)
            H5Tset_cset(st, H5T_CSET_UTF8);
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(d, "layout", st, as, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(H5Awrite(a, st, vlen ? (const void *)&layout : (const void *)layout) >= 0);
        H5Aclose(a);
        H5Sclose(as);
        H5Tclose(st);
    }
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
}

static void put_n_classes(hid_t file, long long k) {
    hid_t as = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, "n_classes", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &k);
    H5Aclose(a);
    H5Sclose(as);
}

static hid_t create(const fixture *f) {
    hid_t file = H5Fcreate(f->path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    return file;
}

/* uint8 (N, H, W) train and test, int64 and uint8 labels. */
static void test_uint8_nhw(void **state) {
    fixture *f = *state;
    unsigned char xtr[3 * 2 * 3], xte[1 * 2 * 3];
    for (int i = 0; i < 18; i++)
        xtr[i] = (unsigned char)(i * 14);
    for (int i = 0; i < 6; i++)
        xte[i] = (unsigned char)(255 - i);
    long long ytr[3] = {4, 0, 2};
    unsigned char yte[1] = {1};
    hid_t file = create(f);
    put(file, "/train/x", H5T_NATIVE_UCHAR, 3, (hsize_t[]){3, 2, 3}, xtr, NULL);
    put(file, "/train/y", H5T_NATIVE_LLONG, 1, (hsize_t[]){3}, ytr, NULL);
    put(file, "/test/x", H5T_NATIVE_UCHAR, 3, (hsize_t[]){1, 2, 3}, xte, NULL);
    put(file, "/test/y", H5T_NATIVE_UCHAR, 1, (hsize_t[]){1}, yte, NULL);
    H5Fclose(file);

    dpt_data d;
    assert_int_equal(dpt_data_load(&d, f->path, NULL), DPT_OK);
    assert_int_equal(d.train.N, 3);
    assert_int_equal(d.train.C, 1);
    assert_int_equal(d.train.H, 2);
    assert_int_equal(d.train.W, 3);
    assert_int_equal(d.train.sdims, 2);
    assert_int_equal(d.train.K, 5); /* max label 4 + 1, no attribute */
    assert_int_equal(d.test.K, 5);
    /* stored as the file holds them; gathered as b / 255 */
    assert_int_equal(d.train.type, DPT_SAMPLES_U8);
    assert_memory_equal(d.train.x_u8, xtr, 18);
    assert_memory_equal(d.test.x_u8, xte, 6);
    double ref[18];
    float got[18];
    for (int i = 0; i < 18; i++)
        ref[i] = xtr[i] / 255.0;
    dpt_dataset_gather(&d.train, got, NULL, 0, 3);
    dpt_assert_close_f32_f64("train x", got, ref, 18, FLT_MIN, FLT_EPSILON / 2);
    for (int i = 0; i < 6; i++)
        ref[i] = xte[i] / 255.0;
    dpt_dataset_gather(&d.test, got, NULL, 0, 1);
    dpt_assert_close_f32_f64("test x", got, ref, 6, FLT_MIN, FLT_EPSILON / 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(d.train.y[i], ytr[i]);
    assert_int_equal(d.test.y[0], 1);
    dpt_shape s = dpt_dataset_batch_shape(&d.train, 8);
    assert_int_equal(s.ndim, 4);
    assert_true(s.d[0] == 8 && s.d[1] == 1 && s.d[2] == 2 && s.d[3] == 3);
    dpt_data_free(&d);
}

/* float (N, C, H, W), (N, C, L) via layout="NCL", double (N, C, D, H, W); exact values. */
static void test_float_layouts(void **state) {
    fixture *f = *state;
    float x[2 * 3 * 2 * 2];
    dpt_fill_uniform(x, 24, -3.0f, 3.0f, 7, 0);
    int yv[2] = {1, 0};
    static const struct {
        int rank;
        hsize_t dims[5];
        const char *layout;
        int64_t C, D, H, W;
        int sdims;
    } cases[] = {
        {4, {2, 3, 2, 2}, NULL, 3, 1, 2, 2, 2},
        {4, {2, 3, 2, 2}, "NCHW", 3, 1, 2, 2, 2},
        {3, {2, 3, 4}, "NCL", 3, 1, 1, 4, 1},
        {5, {2, 3, 2, 1, 2}, NULL, 3, 2, 1, 2, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hid_t file = create(f);
        put(file, "/train/x", H5T_NATIVE_FLOAT, cases[c].rank, cases[c].dims, x, cases[c].layout);
        put(file, "/train/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, yv, NULL);
        put(file, "/test/x", H5T_NATIVE_FLOAT, cases[c].rank, cases[c].dims, x, cases[c].layout);
        put(file, "/test/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, yv, NULL);
        put_n_classes(file, 3);
        H5Fclose(file);
        dpt_data d;
        assert_int_equal(dpt_data_load(&d, f->path, NULL), DPT_OK);
        assert_int_equal(d.train.C, cases[c].C);
        assert_int_equal(d.train.D, cases[c].D);
        assert_int_equal(d.train.H, cases[c].H);
        assert_int_equal(d.train.W, cases[c].W);
        assert_int_equal(d.train.sdims, cases[c].sdims);
        assert_int_equal(d.train.K, 3); /* from the attribute */
        assert_int_equal(d.train.type, DPT_SAMPLES_F32);
        assert_memory_equal(d.train.x_f32, x, sizeof x);
        assert_memory_equal(d.test.x_f32, x, sizeof x);
        assert_int_equal(d.train.y[0], 1);
        dpt_data_free(&d);
    }
    /* float64 input is converted to float32 */
    double xd[24];
    for (int i = 0; i < 24; i++)
        xd[i] = x[i];
    hid_t file = create(f);
    put(file, "/train/x", H5T_NATIVE_DOUBLE, 4, (hsize_t[]){2, 3, 2, 2}, xd, NULL);
    put(file, "/train/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, yv, NULL);
    put(file, "/test/x", H5T_NATIVE_DOUBLE, 4, (hsize_t[]){2, 3, 2, 2}, xd, NULL);
    put(file, "/test/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, yv, NULL);
    H5Fclose(file);
    dpt_data d;
    assert_int_equal(dpt_data_load(&d, f->path, NULL), DPT_OK);
    assert_memory_equal(d.train.x_f32, x, sizeof x);
    dpt_data_free(&d);
}

/* Writes a file from the good one with `mutate` applied, loads it, and expects `code` and a
 * message naming the file and `what`. */
typedef enum {
    NO_TEST_Y,
    NO_TEST_GROUP,
    X_RANK_2,
    Y_RANK_2,
    NEGATIVE_LABEL,
    LABEL_GE_N_CLASSES,
    Y_COUNT,
    SHAPE_MISMATCH,
    NONFINITE,
    INT16_X,
    BAD_LAYOUT,
    HUGE_LABEL,
} mutation;

static void write_mutated(const fixture *f, mutation m) {
    float x[4 * 2 * 2];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    if (m == NONFINITE)
        x[9] = NAN;
    int y[4] = {0, 1, 2, 1};
    if (m == NEGATIVE_LABEL)
        y[2] = -1;
    if (m == LABEL_GE_N_CLASSES)
        y[3] = 3;
    if (m == HUGE_LABEL)
        y[0] = 2000000000;
    hid_t file = create(f);
    if (m == X_RANK_2)
        put(file, "/train/x", H5T_NATIVE_FLOAT, 2, (hsize_t[]){4, 4}, x, NULL);
    else if (m == INT16_X)
        put(file, "/train/x", H5T_NATIVE_SHORT, 3, (hsize_t[]){4, 2, 2}, (short[16]){0}, NULL);
    else
        put(file, "/train/x", H5T_NATIVE_FLOAT, 3, (hsize_t[]){4, 2, 2}, x,
            m == BAD_LAYOUT ? "NCHW" : NULL);
    if (m == Y_RANK_2)
        put(file, "/train/y", H5T_NATIVE_INT, 2, (hsize_t[]){2, 2}, y, NULL);
    else
        put(file, "/train/y", H5T_NATIVE_INT, 1, (hsize_t[]){m == Y_COUNT ? 3 : 4}, y, NULL);
    if (m != NO_TEST_GROUP) {
        put(file, "/test/x", H5T_NATIVE_FLOAT, 3,
            (hsize_t[]){2, m == SHAPE_MISMATCH ? 1 : 2, m == SHAPE_MISMATCH ? 4 : 2}, x, NULL);
        if (m != NO_TEST_Y)
            put(file, "/test/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, y, NULL);
    }
    if (m == LABEL_GE_N_CLASSES)
        put_n_classes(file, 3);
    H5Fclose(file);
}

static void expect_failure(const fixture *f, mutation m, dpt_status code, const char *what) {
    write_mutated(f, m);
    dpt_data d;
    dpt_error_clear();
    dpt_status st = dpt_data_load(&d, f->path, NULL);
    const char *msg = dpt_last_error();
    if (st != code || !strstr(msg, f->path) || !strstr(msg, what))
        fail_msg("mutation %d: got %s \"%s\", want %s naming %s and \"%s\"", (int)m,
                 dpt_status_name(st), msg, dpt_status_name(code), f->path, what);
    assert_null(d.train.x_u8);
    assert_null(d.test.x_u8);
}

static void test_missing_dataset(void **state) {
    expect_failure(*state, NO_TEST_Y, DPT_EFORMAT, "missing dataset /test/y");
    expect_failure(*state, NO_TEST_GROUP, DPT_EFORMAT, "missing dataset /test/x");
}

static void test_wrong_rank(void **state) {
    expect_failure(*state, X_RANK_2, DPT_ESHAPE, "/train/x has rank 2");
    expect_failure(*state, Y_RANK_2, DPT_ESHAPE, "/train/y has rank 2");
    expect_failure(*state, BAD_LAYOUT, DPT_EFORMAT, "layout");
}

static void test_labels_out_of_range(void **state) {
    expect_failure(*state, NEGATIVE_LABEL, DPT_ERANGE,
                   "/train/y: label -1 at sample 2 is negative");
    expect_failure(*state, LABEL_GE_N_CLASSES, DPT_ERANGE,
                   "/train/y: label 3 at sample 3 is outside [0, 3)");
    /* the inference refuses labels >= DPT_MAX_CLASSES instead of making a huge class count */
    expect_failure(*state, HUGE_LABEL, DPT_ERANGE,
                   "/train/y: label 2000000000 at sample 0 is outside [0, 1048576)");
}

/* The model's class count K overrides the inference and must agree with n_classes. */
static void test_given_classes(void **state) {
    fixture *f = *state;
    unsigned char x[2 * 2 * 2] = {0};
    hid_t file = create(f);
    put(file, "/train/x", H5T_NATIVE_UCHAR, 3, (hsize_t[]){2, 2, 2}, x, NULL);
    put(file, "/train/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, (int[]){0, 4}, NULL);
    put(file, "/test/x", H5T_NATIVE_UCHAR, 3, (hsize_t[]){2, 2, 2}, x, NULL);
    put(file, "/test/y", H5T_NATIVE_INT, 1, (hsize_t[]){2}, (int[]){1, 2}, NULL);
    H5Fclose(file);
    dpt_data d;
    assert_int_equal(dpt_data_load(&d, f->path, &(dpt_data_opts){.classes = 10}), DPT_OK);
    assert_int_equal(d.train.K, 10);
    assert_int_equal(d.test.K, 10);
    dpt_data_free(&d);
    dpt_error_clear();
    assert_int_equal(dpt_hdf5_dataset_load(&d, f->path, 4), DPT_ERANGE);
    assert_non_null(strstr(dpt_last_error(), "/train/y: label 4 at sample 1 is outside [0, 4)"));
    file = H5Fopen(f->path, H5F_ACC_RDWR, H5P_DEFAULT);
    put_n_classes(file, 5);
    H5Fclose(file);
    dpt_error_clear();
    assert_int_equal(dpt_hdf5_dataset_load(&d, f->path, 10), DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), "n_classes is 5 but the model has 10 classes"));
}

/* A file with the HDF5 signature that HDF5 cannot open is truncated or corrupt; HDF5's own
 * error stack stays quiet (checked end to end by tests/cli/test_bad_data.sh). */
static void test_truncated(void **state) {
    fixture *f = *state;
    write_mutated(f, NONFINITE);
    FILE *fp = fopen(f->path, "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 1000);
    fp = fopen(f->path, "wb");
    fwrite(buf, 1, 600, fp);
    fclose(fp);
    dpt_data d;
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, f->path, NULL), DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), "truncated or corrupt HDF5 file"));
    assert_null(d.train.x_u8);
}

/* A dataset declaring terabytes (chunked, nothing stored) fails before allocating. */
static void test_huge_declared(void **state) {
    fixture *f = *state;
    hid_t file = create(f);
    hsize_t dims[3] = {(hsize_t)1 << 30, 1 << 12, 1 << 12}, chunk[3] = {1, 64, 64};
    hid_t space = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d5 = H5Dcreate2(file, "/train/x", H5T_NATIVE_UCHAR, space, lcpl, dcpl, H5P_DEFAULT);
    assert_true(d5 >= 0);
    H5Dclose(d5);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    dpt_data d;
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, f->path, NULL), DPT_ENOMEM);
    /* 2^54 bytes as stored (uint8), not 2^56 as floats */
    assert_non_null(strstr(dpt_last_error(), "/train/x needs 16.0 PiB in memory, more than"));
}

static void test_other_violations(void **state) {
    expect_failure(*state, Y_COUNT, DPT_ESHAPE, "3 labels for 4 samples");
    expect_failure(*state, SHAPE_MISMATCH, DPT_ESHAPE, "different samples");
    expect_failure(*state, NONFINITE, DPT_ENONFINITE, "/train/x: sample 2");
    expect_failure(*state, INT16_X, DPT_EFORMAT, "uint8 or floating point");
}

static void test_not_hdf5(void **state) {
    fixture *f = *state;
    FILE *fp = fopen(f->path, "wb");
    fputs("definitely not HDF5\n", fp);
    fclose(fp);
    dpt_data d;
    dpt_error_clear();
    assert_int_equal(dpt_data_load(&d, f->path, NULL), DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), f->path));
    assert_non_null(strstr(dpt_last_error(), "not an HDF5 file"));
    /* a missing file is an I/O error naming it */
    unlink(f->path);
    assert_int_equal(dpt_hdf5_dataset_load(&d, f->path, 0), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), f->path));
    assert_null(d.train.x_u8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_uint8_nhw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_float_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dataset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_rank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_violations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_hdf5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_given_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_declared, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
