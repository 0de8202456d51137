/* The gather and the statistics of samples kept as their files hold them. Oracle: a naive
 * reimplementation of the pipeline they replaced, which widened uint8 to float at load
 * ((float)b / 255.0f), computed per-channel statistics over those floats in double, and then
 * normalized the float copy in place ((float)(((double)v - mean) / std), std 0 taken as 1).
 * The new path must give the same bits, for every byte value in every channel, for float32
 * samples, for index lists with repeats and offsets, and for a constant channel. Fixed seeds. */
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

enum { N = 300, C = 3, H = 2, W = 128, PLANE = H * W, PER = C * PLANE };

/* ---- the old float pipeline, written out plainly ---- */

/* (N, C, H, W) floats as the old loader held them. */
static void old_widen(float *x, const dpt_dataset *ds) {
    for (int64_t i = 0; i < ds->N * PER; i++)
        x[i] = ds->type == DPT_SAMPLES_U8 ? (float)ds->x_u8[i] / 255.0f : ds->x_f32[i];
}

/* The old dpt_dataset_channel_stats over a float copy. */
static void old_stats(const float *x, const int64_t *idx, int64_t n, double *mean, double *std) {
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (idx ? idx[i] : i) * PER + c * PLANE;
            for (int j = 0; j < PLANE; j++)
                s += p[j];
        }
        double m = s / ((double)n * (double)PLANE);
        double v = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (idx ? idx[i] : i) * PER + c * PLANE;
            for (int j = 0; j < PLANE; j++)
                v += ((double)p[j] - m) * ((double)p[j] - m);
        }
        mean[c] = m;
        std[c] = sqrt(v / ((double)n * (double)PLANE));
    }
}

/* The old dpt_dataset_normalize, in place. */
static void old_normalize(float *x, int64_t n, const double *mean, const double *std) {
    for (int c = 0; c < C; c++) {
        double sd = std[c] > 0 ? std[c] : 1.0;
        for (int64_t i = 0; i < n; i++) {
            float *p = x + i * PER + c * PLANE;
            for (int j = 0; j < PLANE; j++)
                p[j] = (float)(((double)p[j] - mean[c]) / sd);
        }
    }
}

/* ---- fixtures ---- */

/* Every channel of every sample holds a rotation of all 256 byte values; channel 2 is constant
 * when `constant` is set (its std is 0). */
static void make_u8(dpt_dataset *ds, int constant) {
    assert_int_equal(dpt_dataset_init(ds, N, C, 1, H, W, 2, 4, DPT_SAMPLES_U8), DPT_OK);
    for (int64_t i = 0; i < N; i++) {
        for (int c = 0; c < C; c++)
            for (int j = 0; j < PLANE; j++)
                ds->x_u8[i * PER + c * PLANE + j] =
                    constant && c == 2 ? 77 : (uint8_t)((j + 31 * i + 101 * c) % 256);
        ds->y[i] = (int32_t)(i % 4);
    }
}

static void make_f32(dpt_dataset *ds) {
    assert_int_equal(dpt_dataset_init(ds, N, C, 1, H, W, 2, 4, DPT_SAMPLES_F32), DPT_OK);
    for (int c = 0; c < C; c++) {
        float *tmp = malloc(sizeof(float) * N * PLANE);
        assert_non_null(tmp);
        dpt_fill_uniform(tmp, N * PLANE, -2.0f + c, 5.0f * (c + 1), 41, (uint32_t)c);
        for (int64_t i = 0; i < N; i++)
            memcpy(ds->x_f32 + i * PER + c * PLANE, tmp + i * PLANE, sizeof(float) * PLANE);
        free(tmp);
    }
    for (int64_t i = 0; i < N; i++)
        ds->y[i] = (int32_t)(i % 4);
}

/* A training list with repeats (a bootstrap draws them) and gaps. */
static int64_t make_idx(int64_t *idx) {
    int64_t n = 0;
    for (int64_t i = 0; i < N; i += 3)
        idx[n++] = (i * 7) % N;
    idx[n++] = 5, idx[n++] = 5, idx[n++] = N - 1;
    return n;
}

/* Statistics from the list, normalization, then the gather of every sample (all at once, and
 * through the list at an offset) against the old pipeline, bit for bit. */
static void check_against_old(dpt_dataset *ds) {
    float *old = malloc(sizeof(float) * N * PER), *got = malloc(sizeof(float) * N * PER);
    int64_t idx[N];
    assert_true(old && got);
    int64_t n = make_idx(idx);
    old_widen(old, ds);

    /* before normalization: b / 255 (or the float itself) */
    dpt_dataset_gather(ds, got, NULL, 0, N);
    assert_memory_equal(got, old, sizeof(float) * N * PER);

    double m_old[C], s_old[C], m_new[C], s_new[C];
    old_stats(old, idx, n, m_old, s_old);
    assert_int_equal(dpt_dataset_channel_stats(ds, idx, n, m_new, s_new), DPT_OK);
    assert_memory_equal(m_new, m_old, sizeof m_old); /* the same double additions, in order */
    assert_memory_equal(s_new, s_old, sizeof s_old);

    assert_int_equal(dpt_dataset_normalize(ds, m_new, s_new), DPT_OK);
    old_normalize(old, N, m_old, s_old);
    dpt_dataset_gather(ds, got, NULL, 0, N);
    assert_memory_equal(got, old, sizeof(float) * N * PER);
    /* through an index list at an offset */
    dpt_dataset_gather(ds, got, idx, 4, n - 4);
    for (int64_t i = 0; i < n - 4; i++)
        assert_memory_equal(got + i * PER, old + idx[4 + i] * PER, sizeof(float) * PER);
    /* statistics of normalized samples are those of the old normalized copy */
    old_stats(old, idx, n, m_old, s_old);
    assert_int_equal(dpt_dataset_channel_stats(ds, idx, n, m_new, s_new), DPT_OK);
    assert_memory_equal(m_new, m_old, sizeof m_old);
    assert_memory_equal(s_new, s_old, sizeof s_old);
    free(old), free(got);
}

/* Every byte value of every channel: the lookup table against the old two-step arithmetic, for
 * the statistics of the data and for a set of hand-picked ones (Fashion-MNIST's, a mean outside
 * [0, 1], a tiny and a huge std). */
static void test_every_byte_every_channel(void **state) {
    (void)state;
    static const double means[][C] = {{0.2860, 0.5, -3.0}, {0.0, 1.0, 1e-7}};
    static const double stds[][C] = {{0.3530, 1e-6, 1e4}, {1.0, 0.25, 3.0}};
    for (int k = 0; k < 2; k++) {
        dpt_dataset ds;
        make_u8(&ds, 0);
        assert_int_equal(dpt_dataset_normalize(&ds, means[k], stds[k]), DPT_OK);
        for (int c = 0; c < C; c++)
            for (int b = 0; b < 256; b++) {
                float old = (float)b / 255.0f;
                old = (float)(((double)old - means[k][c]) / stds[k][c]);
                float lut = ds.lut[256 * c + b];
                if (memcmp(&lut, &old, sizeof old) != 0)
                    fail_msg("channel %d byte %d: lut %.9g, old pipeline %.9g", c, b,
                             (double)lut, (double)old);
            }
        /* and through the gather: every (channel, byte) pair occurs in sample 0's rotation */
        float got[PER];
        dpt_dataset_gather(&ds, got, NULL, 0, 1);
        for (int c = 0; c < C; c++)
            for (int j = 0; j < PLANE; j++) {
                float old = (float)ds.x_u8[c * PLANE + j] / 255.0f;
                old = (float)(((double)old - means[k][c]) / stds[k][c]);
                assert_memory_equal(&got[c * PLANE + j], &old, sizeof old);
            }
        dpt_dataset_free(&ds);
    }
}

static void test_u8_matches_old_pipeline(void **state) {
    (void)state;
    dpt_dataset ds;
    make_u8(&ds, 0);
    check_against_old(&ds);
    dpt_dataset_free(&ds);
}

/* A constant channel has std 0 and is divided by 1, as before. */
static void test_u8_constant_channel(void **state) {
    (void)state;
    dpt_dataset ds;
    make_u8(&ds, 1);
    check_against_old(&ds);
    assert_true(ds.norm_std[2] == 1.0);
    dpt_dataset_free(&ds);
}

static void test_f32_matches_old_pipeline(void **state) {
    (void)state;
    dpt_dataset ds;
    make_f32(&ds);
    check_against_old(&ds);
    dpt_dataset_free(&ds);
}

/* The samples themselves are never written: normalization lives in the dataset's own state, so
 * a second view of the same bytes (another rank's) is unaffected. */
static void test_normalization_leaves_samples_alone(void **state) {
    (void)state;
    dpt_dataset ds;
    make_u8(&ds, 0);
    uint8_t *copy = malloc(N * PER);
    assert_non_null(copy);
    memcpy(copy, ds.x_u8, N * PER);
    double mean[C] = {0.1, 0.2, 0.3}, sd[C] = {2, 3, 4};
    assert_int_equal(dpt_dataset_normalize(&ds, mean, sd), DPT_OK);
    assert_memory_equal(ds.x_u8, copy, N * PER);
    assert_int_equal(dpt_dataset_normalize(&ds, mean, sd), DPT_EINVAL); /* only once */
    free(copy);
    dpt_dataset_free(&ds);
}

/* A block loaded once and attached twice gives two independent views of the same bytes: each
 * normalizes on its own, both gather what the loading one gathers. */
static void test_attach_views_share_the_bytes(void **state) {
    (void)state;
    dpt_data d, v;
    const dpt_data_opts opts = {.search_path = DPT_SOURCE_DIR};
    assert_int_equal(dpt_data_load(&d, "sample", &opts), DPT_OK);
    assert_int_equal(dpt_data_attach(&v, d.block, d.block_bytes), DPT_OK);
    assert_true(v.train.x_u8 == d.train.x_u8 && v.test.y == d.test.y);
    assert_true(v.train.N == d.train.N && v.test.N == d.test.N && v.train.K == d.train.K);
    assert_string_equal(v.source, d.source);
    assert_int_equal(v.classes_declared, d.classes_declared);
    assert_int_equal(dpt_data_normalize(&d, NULL, 0), DPT_OK);
    assert_false(v.train.normalized);
    assert_int_equal(dpt_data_normalize(&v, NULL, 0), DPT_OK);
    float a[784], b[784];
    dpt_dataset_gather(&d.test, a, NULL, 17, 1);
    dpt_dataset_gather(&v.test, b, NULL, 17, 1);
    assert_memory_equal(a, b, sizeof a);
    /* a block of another size, or no block, is refused */
    dpt_data bad;
    assert_int_equal(dpt_data_attach(&bad, d.block, d.block_bytes - 1), DPT_EFORMAT);
    assert_int_equal(dpt_data_attach(&bad, d.block, 16), DPT_EFORMAT);
    dpt_data_free(&v);
    dpt_data_free(&d);
}

/* The allocator gets one call for the whole block and keeps it; the loaded data equal a load with
 * the default allocator. */
typedef struct {
    int calls;
    size_t bytes;
    void *mem;
} counting_alloc;

static dpt_status alloc_fn(void *ctx, size_t bytes, void **out) {
    counting_alloc *a = ctx;
    a->calls++;
    a->bytes = bytes;
    a->mem = aligned_alloc(DPT_ALIGN, (bytes + DPT_ALIGN - 1) / DPT_ALIGN * DPT_ALIGN);
    *out = a->mem;
    return a->mem ? DPT_OK : dpt_errorf(DPT_ENOMEM, "test allocator");
}

static void released(void *ctx) { *(int *)ctx += 1; }

static void test_allocator_is_called_once(void **state) {
    (void)state;
    counting_alloc ca = {0};
    dpt_data d, ref;
    const dpt_data_opts opts = {.search_path = DPT_SOURCE_DIR};
    dpt_data_opts with = opts;
    with.alloc = alloc_fn, with.alloc_ctx = &ca;
    assert_int_equal(dpt_data_load(&d, "sample", &with), DPT_OK);
    assert_int_equal(ca.calls, 1);
    assert_true(d.block == ca.mem && d.block_bytes == ca.bytes && !d.owns_block);
    /* 4000 samples of 784 bytes and their labels, not 4 bytes per pixel */
    assert_true(ca.bytes >= 4000 * (784 + 4) && ca.bytes < 4000 * (784 + 4) + 4096);
    assert_int_equal(dpt_data_load(&ref, "sample", &opts), DPT_OK);
    assert_memory_equal(d.train.x_u8, ref.train.x_u8, 3000 * 784);
    assert_memory_equal(d.test.y, ref.test.y, 1000 * sizeof(int32_t));
    int count = 0;
    d.release = released, d.release_ctx = &count;
    dpt_data_free(&d);
    assert_int_equal(count, 1);
    free(ca.mem); /* the allocator's, not the dpt_data's */
    /* a failing load does not call the allocator once its headers are bad */
    ca.calls = 0;
    assert_int_equal(dpt_data_load(&d, "/nonexistent", &with), DPT_EIO);
    assert_int_equal(ca.calls, 0);
    dpt_data_free(&ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_every_channel),
        cmocka_unit_test(test_u8_matches_old_pipeline),
        cmocka_unit_test(test_u8_constant_channel),
        cmocka_unit_test(test_f32_matches_old_pipeline),
        cmocka_unit_test(test_normalization_leaves_samples_alone),
        cmocka_unit_test(test_attach_views_share_the_bytes),
        cmocka_unit_test(test_allocator_is_called_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
