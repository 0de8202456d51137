/* Oracle: the values written. Round trip of datasets and attributes; a failed or abandoned write
 * leaves nothing under the real name; truncated and non-HDF5 files give an error naming them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "dpt/h5file.h"


static void test_round_trip(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/a.h5", dpt_scratch_dir);
    float w[6] = {1, -2, 3.5f, 4, 5e-8f, -6};
    double d[2] = {0.1, 1e300};
    int64_t ws[2] = {2, 3}, ds[1] = {2};
    dpt_h5w wr;
    assert_int_equal(dpt_h5w_open(&wr, path), DPT_OK);
    dpt_h5w_f32(&wr, "params/00_conv2d/weight", w, 2, ws);
    dpt_h5w_f64(&wr, "metrics/loss", d, 1, ds);
    dpt_h5w_attr_str(&wr, "/", "format", "dptrain-checkpoint");
    dpt_h5w_attr_i64(&wr, "/", "step", 1234567890123LL);
    dpt_h5w_attr_f64(&wr, "params/00_conv2d/weight", "scale", 0.25);
    assert_int_equal(access(path, F_OK), -1); /* nothing under the real name before commit */
    assert_int_equal(dpt_h5w_close(&wr, 1), DPT_OK);
    assert_int_equal(access(path, F_OK), 0);
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);

    dpt_h5r r;
    assert_int_equal(dpt_h5r_open(&r, path), DPT_OK);
    float w2[6];
    double d2[2];
    assert_int_equal(dpt_h5r_f32(&r, "params/00_conv2d/weight", w2, 6), DPT_OK);
    assert_memory_equal(w, w2, sizeof w);
    assert_int_equal(dpt_h5r_f64(&r, "metrics/loss", d2, 2), DPT_OK);
    assert_memory_equal(d, d2, sizeof d);
    char fmt[64];
    int64_t step;
    double scale;
    assert_int_equal(dpt_h5r_attr_str(&r, "/", "format", fmt, sizeof fmt), DPT_OK);
    assert_string_equal(fmt, "dptrain-checkpoint");
    assert_int_equal(dpt_h5r_attr_i64(&r, "/", "step", &step), DPT_OK);
    assert_int_equal(step, 1234567890123LL);
    assert_int_equal(dpt_h5r_attr_f64(&r, "params/00_conv2d/weight", "scale", &scale), DPT_OK);
    assert_true(scale == 0.25);
    /* wrong element count and missing objects are errors naming the file and the object */
    assert_int_equal(dpt_h5r_f32(&r, "params/00_conv2d/weight", w2, 5), DPT_ESHAPE);
    assert_non_null(strstr(dpt_last_error(), "params/00_conv2d/weight"));
    assert_int_equal(dpt_h5r_f32(&r, "params/01_dense/weight", w2, 6), DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), path));
    assert_int_equal(dpt_h5r_attr_i64(&r, "/", "epoch", &step), DPT_EFORMAT);
    dpt_h5r_close(&r);
}

static void test_failed_write_leaves_old_file(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/b.h5", dpt_scratch_dir);
    float v[3] = {1, 2, 3};
    int64_t n = 3;
    dpt_h5w wr;
    assert_int_equal(dpt_h5w_open(&wr, path), DPT_OK);
    dpt_h5w_f32(&wr, "x", v, 1, &n);
    assert_int_equal(dpt_h5w_close(&wr, 1), DPT_OK);
    /* second write fails half way (attribute on a missing object): the old file stays intact */
    assert_int_equal(dpt_h5w_open(&wr, path), DPT_OK);
    float v2[3] = {7, 8, 9};
    dpt_h5w_f32(&wr, "x", v2, 1, &n);
    assert_int_not_equal(dpt_h5w_attr_i64(&wr, "missing/object", "a", 1), DPT_OK);
    dpt_h5w_f32(&wr, "y", v2, 1, &n); /* ignored after the first error */
    assert_int_not_equal(dpt_h5w_close(&wr, 1), DPT_OK);
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
    dpt_h5r r;
    float got[3];
    assert_int_equal(dpt_h5r_open(&r, path), DPT_OK);
    assert_int_equal(dpt_h5r_f32(&r, "x", got, 3), DPT_OK);
    assert_memory_equal(got, v, sizeof v);
    assert_int_equal(dpt_h5r_exists(&r, "y"), 0);
    dpt_h5r_close(&r);
    /* an abandoned write (keep = 0) also leaves nothing */
    snprintf(path, sizeof path, "%s/c.h5", dpt_scratch_dir);
    assert_int_equal(dpt_h5w_open(&wr, path), DPT_OK);
    assert_int_equal(dpt_h5w_close(&wr, 0), DPT_OK);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_corrupt_files(void **state) {
    (void)state;
    char path[300], bad[300];
    snprintf(path, sizeof path, "%s/d.h5", dpt_scratch_dir);
    float v[1000] = {0};
    int64_t n = 1000;
    dpt_h5w wr;
    assert_int_equal(dpt_h5w_open(&wr, path), DPT_OK);
    dpt_h5w_f32(&wr, "x", v, 1, &n);
    assert_int_equal(dpt_h5w_close(&wr, 1), DPT_OK);
    assert_int_equal(truncate(path, 1500), 0);
    dpt_h5r r;
    dpt_status st = dpt_h5r_open(&r, path);
    if (st == DPT_OK) { /* the superblock may survive: the data read must then fail */
        float got[1000];
        st = dpt_h5r_f32(&r, "x", got, 1000);
        dpt_h5r_close(&r);
    }
    assert_int_not_equal(st, DPT_OK);
    assert_non_null(strstr(dpt_last_error(), path));
    snprintf(bad, sizeof bad, "%s/not.h5", dpt_scratch_dir);
    FILE *f = fopen(bad, "w");
    fputs("this is not hdf5\n", f);
    fclose(f);
    assert_int_equal(dpt_h5r_open(&r, bad), DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), bad));
    snprintf(bad, sizeof bad, "%s/absent.h5", dpt_scratch_dir);
    assert_int_equal(dpt_h5r_open(&r, bad), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), bad));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_failed_write_leaves_old_file),
        cmocka_unit_test(test_corrupt_files),
    };
    return cmocka_run_group_tests(tests, dpt_scratch_setup, dpt_scratch_teardown);
}
