/* The --data resolver, the bundled sample and normalization. Oracles: the sample's known contents
 * (the published first Fashion-MNIST labels, per-class counts taken from the files by Python's
 * gzip module), the resolver's documented messages, and closed forms for normalization (per
 * channel mean 0 and std 1 over the training samples, statistics equal to a naive double sum). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/data.h"
#include "dpt/sampler.h"

static const dpt_data_opts sample_opts = {.search_path = "/nonexistent:" DPT_SOURCE_DIR};

static void test_sample_loads(void **state) {
    (void)state;
    dpt_data d;
    assert_int_equal(dpt_data_load(&d, "sample", &sample_opts), DPT_OK);
    assert_non_null(strstr(d.source, DPT_SAMPLE_SUBDIR));
    const dpt_dataset *tr = &d.train, *te = &d.test;
    assert_int_equal(tr->N, 3000);
    assert_int_equal(te->N, 1000);
    assert_true(tr->C == 1 && tr->D == 1 && tr->H == 28 && tr->W == 28 && tr->sdims == 2);
    assert_true(te->C == 1 && te->H == 28 && te->W == 28);
    assert_int_equal(tr->K, 10);
    assert_int_equal(te->K, 10);
    /* Fashion-MNIST's first labels (train: ankle boot, T-shirt, T-shirt, dress, ...). */
    static const int32_t first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    static const int32_t first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    assert_memory_equal(tr->y, first_train, sizeof first_train);
    assert_memory_equal(te->y, first_test, sizeof first_test);
    static const int64_t train_counts[10] = {282, 321, 290, 312, 303, 300, 298, 312, 287, 295};
    static const int64_t test_counts[10] = {107, 105, 111, 93, 115, 87, 97, 95, 95, 95};
    int64_t ct[10] = {0}, cv[10] = {0};
    for (int64_t i = 0; i < tr->N; i++)
        ct[tr->y[i]]++;
    for (int64_t i = 0; i < te->N; i++)
        cv[te->y[i]]++;
    assert_memory_equal(ct, train_counts, sizeof ct);
    assert_memory_equal(cv, test_counts, sizeof cv);
    /* stored as bytes; gathered pixels are in [0, 1] with both ends reached; pixel (14, 14) of
     * image 0 is 217 / 255 */
    assert_int_equal(tr->type, DPT_SAMPLES_U8);
    assert_int_equal(tr->x_u8[14 * 28 + 14], 217);
    float *x = malloc((size_t)tr->N * 784 * sizeof *x);
    assert_non_null(x);
    dpt_dataset_gather(tr, x, NULL, 0, tr->N);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < tr->N * 784; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    assert_true(x[14 * 28 + 14] == 217.0f / 255.0f);
    free(x);
    dpt_data_free(&d);
}

static void test_resolver_messages(void **state) {
    (void)state;
    dpt_data d;
    /* the package missing: the message says how to install it */
    dpt_error_clear();
    dpt_data_opts none = {.fashion_mnist_dir = "/nonexistent/fashion-mnist"};
    assert_int_equal(dpt_data_load(&d, "fashion-mnist", &none), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "apt-get install dataset-fashion-mnist"));
    assert_non_null(strstr(dpt_last_error(), "/nonexistent/fashion-mnist/train-images-idx3"));
    assert_null(d.train.x_u8);
    /* the package's file names: the sample directory has the same layout */
    dpt_data_opts here = {.fashion_mnist_dir = DPT_SOURCE_DIR "/" DPT_SAMPLE_SUBDIR};
    assert_int_equal(dpt_data_load(&d, "fashion-mnist", &here), DPT_OK);
    assert_int_equal(d.train.N, 3000);
    assert_int_equal(d.train.K, 10);
    dpt_data_free(&d);
    /* sample without a search path, or with one that does not hold it */
    assert_int_equal(dpt_data_load(&d, "sample", NULL), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "--data sample"));
    assert_int_equal(dpt_data_load(&d, "sample", &(dpt_data_opts){.search_path = "/nonexistent"}),
                     DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "/nonexistent"));
    /* neither a name, a directory nor a file */
    assert_int_equal(dpt_data_load(&d, "/nonexistent/data.h5", NULL), DPT_EIO);
    assert_non_null(strstr(dpt_last_error(), "--data /nonexistent/data.h5"));
    assert_int_equal(dpt_data_load(&d, "", NULL), DPT_EINVAL);
}

/* Statistics from the training indices only (a stratified 10% validation split is held out):
 * they equal a naive double sum over exactly those samples, and after normalization the training
 * samples have mean 0 and std 1. Each normalized value carries one float rounding (relative
 * 2^-24), so both moments are within FLT_EPSILON * max|z| of their targets. */
static void test_normalization_on_training_split(void **state) {
    (void)state;
    dpt_data d;
    assert_int_equal(dpt_data_load(&d, "sample", &sample_opts), DPT_OK);
    int64_t n = d.train.N, per = 784;
    int64_t *train = malloc((size_t)n * sizeof *train), *val = malloc((size_t)n * sizeof *val);
    int64_t nt = 0, nv = 0;
    assert_int_equal(dpt_resample_split(train, &nt, val, &nv, NULL, n, d.train.y, 10, 0.1, 1, 0),
                     DPT_OK);
    float *x = malloc((size_t)n * per * sizeof *x), px[784];
    assert_non_null(x);
    dpt_dataset_gather(&d.train, x, NULL, 0, n);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < nt; i++)
        for (int64_t j = 0; j < per; j++)
            s += x[train[i] * per + j];
    double mean = s / ((double)nt * per);
    for (int64_t i = 0; i < nt; i++)
        for (int64_t j = 0; j < per; j++) {
            double v = x[train[i] * per + j] - mean;
            s2 += v * v;
        }
    double sd = sqrt(s2 / ((double)nt * per));
    dpt_dataset_gather(&d.test, px, NULL, 0, 1);
    float test_px = px[14 * 28 + 14];
    assert_int_equal(dpt_data_normalize(&d, train, nt), DPT_OK);
    assert_true(fabs(d.train.norm_mean[0] - mean) <= 1e-12 * mean);
    assert_true(fabs(d.train.norm_std[0] - sd) <= 1e-12 * sd);
    assert_true(d.test.norm_mean[0] == d.train.norm_mean[0]); /* test uses train statistics */
    dpt_dataset_gather(&d.test, px, NULL, 0, 1);
    assert_true(fabsf(px[14 * 28 + 14] - (float)((test_px - mean) / sd)) == 0.0f);
    free(x);
    double m2, sd2;
    assert_int_equal(dpt_dataset_channel_stats(&d.train, train, nt, &m2, &sd2), DPT_OK);
    double zmax = (1.0 - mean) / sd;
    assert_true(fabs(m2) <= FLT_EPSILON * zmax);
    assert_true(fabs(sd2 - 1.0) <= FLT_EPSILON * zmax);
    /* the held-out samples were not used: their own statistics differ from the training ones */
    double mv, sv;
    assert_int_equal(dpt_dataset_channel_stats(&d.train, val, nv, &mv, &sv), DPT_OK);
    assert_true(fabs(mv) > FLT_EPSILON * zmax);
    /* a second normalization is refused */
    assert_int_equal(dpt_data_normalize(&d, train, nt), DPT_EINVAL);
    free(train), free(val);
    dpt_data_free(&d);
}

/* Several channels with different scales, one constant: each channel gets mean 0 / std 1, the
 * constant one mean 0 (divided by 1). */
static void test_per_channel_normalization(void **state) {
    (void)state;
    dpt_dataset ds;
    enum { N = 40, C = 3, L = 50 };
    assert_int_equal(dpt_dataset_init(&ds, N, C, 1, 1, L, 1, 2, DPT_SAMPLES_F32), DPT_OK);
    float *tmp = malloc(sizeof(float) * N * L);
    for (int c = 0; c < C; c++) {
        dpt_fill_uniform(tmp, N * L, -1.0f + 5 * c, 3.0f * (c + 1), 77, (uint32_t)c);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < L; j++)
                ds.x_f32[(i * C + c) * L + j] = c == 2 ? 4.5f : tmp[i * L + j];
    }
    double mean[C], sd[C], m2[C], s2[C];
    assert_int_equal(dpt_dataset_channel_stats(&ds, NULL, 0, mean, sd), DPT_OK);
    assert_true(sd[2] == 0.0 && mean[2] == 4.5);
    assert_int_equal(dpt_dataset_normalize(&ds, mean, sd), DPT_OK);
    assert_int_equal(dpt_dataset_channel_stats(&ds, NULL, 0, m2, s2), DPT_OK);
    for (int c = 0; c < 2; c++) {
        double zmax =
            fmax(fabs((-1.0 + 5 * c - mean[c]) / sd[c]), fabs((3.0 * (c + 1) - mean[c]) / sd[c]));
        assert_true(fabs(m2[c]) <= FLT_EPSILON * zmax);
        assert_true(fabs(s2[c] - 1.0) <= FLT_EPSILON * zmax);
    }
    assert_true(m2[2] == 0.0 && s2[2] == 0.0 && ds.norm_std[2] == 1.0);
    free(tmp);
    dpt_dataset_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_loads),
        cmocka_unit_test(test_resolver_messages),
        cmocka_unit_test(test_normalization_on_training_split),
        cmocka_unit_test(test_per_channel_normalization),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
