/* Oracle: conv_ref (plain loops in double). The special cases the SIMD kernels take separate paths
 * for (first layer with C_in = 1 or 3, 3x3 stride 1, 1x1, depthwise, strided and over-padded
 * backward-data, dilation, wide rows, 1-D and 3-D) must agree with the reference in all three
 * passes, on every SIMD path this CPU runs. Outputs and scratch are poisoned with NaN first, so a
 * kernel that reads unwritten scratch or skips part of its output fails; backward_weight must add
 * to what dw and db already hold. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/conv.h"
#include "dpt/tensor.h"
#include "kernels/conv_impl.h"

/* 8*eps*sqrt(K) for a float sum of K terms (STYLE.md), used as both atol and rtol. */
static double sum_tol(double K) { return 8.0 * FLT_EPSILON * sqrt(K); }

static void poison(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p[i] = NAN;
}

/* 64-byte aligned like the trainer's arena, NaN until written. */
static float *falloc(int64_t n) {
    const int64_t m = n > 0 ? n : 1;
    float *p = dpt_alloc_aligned((size_t)m * sizeof(float));
    assert_non_null(p);
    poison(p, m);
    return p;
}

/* Runs the three passes of `impl` and of ref on geometry g (checked here) and compares. */
static void check_case(const dpt_conv_impl *impl, dpt_conv_geom g, uint32_t seed) {
    char desc[160];
    assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
    dpt_conv_geom_format(&g, desc, sizeof desc);
    const dpt_conv_impl *ref = dpt_conv_impl_get(DPT_CONV_REF);
    assert_non_null(ref);
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    const int64_t G = g.groups, kvol = g.k[0] * g.k[1] * g.k[2];
    const int64_t P = g.out[0] * g.out[1] * g.out[2];
    size_t ws = impl->workspace(&g), wr = ref->workspace(&g);
    float *x = falloc(nx), *w = falloc(nw), *b = falloc(g.O), *dy = falloc(ny);
    float *y = falloc(ny), *yr = falloc(ny), *dx = falloc(nx), *dxr = falloc(nx);
    float *dw = falloc(nw), *dwr = falloc(nw), *db = falloc(g.O), *dbr = falloc(g.O);
    float *work = falloc((int64_t)ws), *wref = falloc((int64_t)wr);
    dpt_fill_uniform(x, nx, -1.0f, 1.0f, seed, 1);
    dpt_fill_uniform(w, nw, -1.0f, 1.0f, seed, 2);
    dpt_fill_uniform(b, g.O, -1.0f, 1.0f, seed, 3);
    dpt_fill_uniform(dy, ny, -1.0f, 1.0f, seed, 4);
    char what[256];
    printf("  %s %s seed=%u\n", impl->name, desc, seed);

    poison(y, ny);
    poison(work, (int64_t)ws);
    ref->forward(yr, x, w, g.has_bias ? b : NULL, &g, wref);
    impl->forward(y, x, w, g.has_bias ? b : NULL, &g, work);
    snprintf(what, sizeof what, "%s forward %s", impl->name, desc);
    double t = sum_tol((double)(g.C / G * kvol + 1));
    dpt_assert_close_f32(what, y, yr, ny, t, t);

    poison(dx, nx);
    poison(work, (int64_t)ws);
    ref->backward_data(dxr, dy, w, &g, wref);
    impl->backward_data(dx, dy, w, &g, work);
    snprintf(what, sizeof what, "%s backward_data %s", impl->name, desc);
    t = sum_tol((double)(g.O / G * kvol));
    dpt_assert_close_f32(what, dx, dxr, nx, t, t);

    /* Accumulation: both start from the same non-zero values. */
    dpt_fill_uniform(dw, nw, -1.0f, 1.0f, seed, 5);
    dpt_fill_uniform(db, g.O, -1.0f, 1.0f, seed, 6);
    memcpy(dwr, dw, (size_t)nw * sizeof(float));
    memcpy(dbr, db, (size_t)g.O * sizeof(float));
    poison(work, (int64_t)ws);
    ref->backward_weight(dwr, g.has_bias ? dbr : NULL, dy, x, &g, wref);
    impl->backward_weight(dw, g.has_bias ? db : NULL, dy, x, &g, work);
    snprintf(what, sizeof what, "%s backward_weight dw %s", impl->name, desc);
    t = sum_tol((double)(g.N * P + 1));
    dpt_assert_close_f32(what, dw, dwr, nw, t, t);
    snprintf(what, sizeof what, "%s backward_weight db %s", impl->name, desc);
    dpt_assert_close_f32(what, db, dbr, g.O, t, t);

    float *bufs[] = {x, w, b, dy, y, yr, dx, dxr, dw, dwr, db, dbr, work, wref};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dpt_free_aligned(bufs[i]);
}

/* 2-D geometry helper: N, C->O, HxW input, kxk kernel, stride, pad, dilation, groups, bias. */
static dpt_conv_geom g2(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int64_t k, int64_t s,
                        int64_t p, int64_t d, int64_t groups, int bias) {
    dpt_conv_geom g = {.dims = 2, .N = N, .C = C, .O = O, .in = {1, H, W}, .k = {1, k, k},
                       .stride = {1, s, s}, .pad = {0, p, p}, .dil = {1, d, d}, .groups = groups,
                       .has_bias = bias};
    return g;
}

static int n_simd(const dpt_conv_impl **out) {
    int n = 0;
    const dpt_conv_impl *a = dpt_conv_impl_get(DPT_CONV_AVX512), *b = dpt_conv_impl_get(DPT_CONV_AVX2);
    if (a)
        out[n++] = a;
    if (b)
        out[n++] = b;
    if (!n)
        printf("  no SIMD path on this CPU/build: nothing to compare\n");
    return n;
}

static void run_cases(const dpt_conv_geom *cases, size_t n, uint32_t seed) {
    const dpt_conv_impl *impls[2];
    int ni = n_simd(impls);
    for (int k = 0; k < ni; k++)
        for (size_t i = 0; i < n; i++)
            check_case(impls[k], cases[i], seed + (uint32_t)i);
}

/* The table is offered exactly when the CPU can run it, and names itself. */
static void test_dispatch_matches_cpu(void **state) {
    (void)state;
#if defined(__x86_64__)
    __builtin_cpu_init();
    const dpt_conv_impl *a = dpt__conv_avx512_impl(), *b = dpt__conv_avx2_impl();
    assert_int_equal(a != NULL, !!__builtin_cpu_supports("avx512f"));
    assert_int_equal(b != NULL, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    if (a)
        assert_string_equal(a->name, "avx512");
    if (b)
        assert_string_equal(b->name, "avx2");
#else
    assert_null(dpt__conv_avx512_impl());
    assert_null(dpt__conv_avx2_impl());
#endif
}

/* First layers: C_in = 1 and 3 (position-vectorized forward and weight gradient). */
static void test_first_layer(void **state) {
    (void)state;
    const dpt_conv_geom cases[] = {
        g2(3, 1, 32, 28, 28, 3, 1, 1, 1, 1, 1),  /* fmnist-cnn conv1 */
        g2(2, 1, 6, 28, 28, 5, 1, 2, 1, 1, 1),   /* lenet5 conv1 */
        g2(2, 3, 16, 17, 19, 3, 1, 1, 1, 1, 1),  /* RGB, odd extents */
        g2(1, 3, 37, 33, 35, 3, 1, 0, 1, 1, 0),  /* odd O, rows past two vectors */
        g2(2, 1, 5, 9, 40, 7, 1, 3, 1, 1, 1),    /* few outputs, wide row */
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 100);
}

/* 3x3 stride 1: the channel-vectorized kernel with full and partial channel vectors and row tiles. */
static void test_3x3_stride1(void **state) {
    (void)state;
    const dpt_conv_geom cases[] = {
        g2(2, 32, 32, 28, 28, 3, 1, 1, 1, 1, 1), /* fmnist-cnn conv2 */
        g2(2, 32, 64, 14, 14, 3, 1, 1, 1, 1, 1), /* conv3 */
        g2(1, 64, 64, 14, 14, 3, 1, 1, 1, 1, 1), /* conv4 */
        g2(2, 19, 37, 13, 31, 3, 1, 1, 1, 1, 1), /* channels off every vector width */
        g2(1, 17, 9, 7, 45, 3, 1, 0, 1, 1, 0),   /* rows longer than one register tile */
        g2(1, 40, 33, 5, 5, 3, 1, 2, 1, 1, 1),   /* pad = k-1: output larger than input */
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 200);
}

/* The same layers with Winograd switched off: the direct kernels keep their coverage. */
static void test_3x3_stride1_direct(void **state) {
    (void)state;
    dpt_conv_set_winograd(0);
    test_3x3_stride1(state);
    dpt_conv_set_winograd(1);
}

/* Winograd F(2x2, 3x3) where its tiling has edges: odd outputs (a half tile at the bottom and
 * right), pad 0 and 2, tile rows longer than a vector, images larger than a block of tiles and
 * blocks that end inside a tile row or an image, the smallest eligible channel counts, output
 * channels off the register tiles, a 2x2 output; and the one-input-channel weight gradient. */
static void test_winograd_edges(void **state) {
    (void)state;
    const dpt_conv_geom cases[] = {
        g2(5, 64, 64, 14, 14, 3, 1, 1, 1, 1, 1),  /* blocks across images */
        g2(1, 64, 64, 40, 40, 3, 1, 1, 1, 1, 1),  /* image of 400 tiles, rows split by blocks */
        g2(2, 16, 16, 15, 15, 3, 1, 1, 1, 1, 0),  /* odd output */
        g2(3, 17, 100, 11, 9, 3, 1, 0, 1, 1, 1),  /* pad 0, odd 9x7 output, O = 100 */
        g2(1, 33, 20, 9, 30, 3, 1, 2, 1, 1, 1),   /* pad 2 */
        g2(2, 24, 18, 6, 70, 3, 1, 1, 1, 1, 1),   /* 35 tiles per row */
        g2(4, 16, 48, 4, 4, 3, 1, 0, 1, 1, 1),    /* 2x2 output: one tile per image */
        g2(1, 50, 16, 3, 5, 3, 1, 1, 1, 1, 0),    /* 3x5 output */
        /* one input channel (the first-layer weight gradient): */
        g2(2, 1, 8, 15, 15, 3, 1, 1, 1, 1, 1),    /* odd output: a last tile row of one row */
        g2(1, 1, 32, 9, 40, 3, 1, 0, 1, 1, 1),    /* 7x38: 19 tiles per row, two vectors */
        g2(3, 1, 4, 4, 4, 3, 1, 0, 1, 1, 0),      /* 2x2 output, the fewest channels */
        g2(2, 1, 5, 6, 7, 3, 1, 2, 1, 1, 1),      /* pad 2, odd width */
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 600);
}

/* The switch really changes the algorithm: on an eligible layer the two round differently
 * (both pass against the reference above), and the workspace does not depend on it. */
static void test_winograd_switch(void **state) {
    (void)state;
    const dpt_conv_impl *impls[2];
    const int ni = n_simd(impls);
    dpt_conv_geom g = g2(2, 32, 32, 12, 12, 3, 1, 1, 1, 1, 1);
    assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    for (int k = 0; k < ni; k++) {
        const dpt_conv_impl *impl = impls[k];
        dpt_conv_set_winograd(0);
        const size_t ws_direct = impl->workspace(&g);
        dpt_conv_set_winograd(1);
        assert_int_equal(impl->workspace(&g), ws_direct);
        float *x = falloc(nx), *w = falloc(nw), *b = falloc(g.O), *work = falloc((int64_t)ws_direct);
        float *y_wino = falloc(ny), *y_direct = falloc(ny);
        dpt_fill_uniform(x, nx, -1.0f, 1.0f, 7, 1);
        dpt_fill_uniform(w, nw, -1.0f, 1.0f, 7, 2);
        dpt_fill_uniform(b, g.O, -1.0f, 1.0f, 7, 3);
        impl->forward(y_wino, x, w, b, &g, work);
        dpt_conv_set_winograd(0);
        impl->forward(y_direct, x, w, b, &g, work);
        dpt_conv_set_winograd(1);
        assert_true(dpt_conv_winograd());
        int64_t differ = 0;
        for (int64_t i = 0; i < ny; i++)
            differ += y_wino[i] != y_direct[i];
        printf("  %s: %lld of %lld outputs round differently with Winograd\n", impl->name,
               (long long)differ, (long long)ny);
        assert_true(differ > 0);
        float *bufs[] = {x, w, b, work, y_wino, y_direct};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            dpt_free_aligned(bufs[i]);
    }
}

/* 1x1 (pure GEMM), depthwise (groups = C, multiplier 1 and 2), grouped. */
static void test_1x1_depthwise_groups(void **state) {
    (void)state;
    const dpt_conv_geom cases[] = {
        g2(2, 40, 24, 9, 11, 1, 1, 0, 1, 1, 1),
        g2(1, 70, 130, 4, 5, 1, 1, 0, 1, 1, 0),
        g2(2, 24, 24, 12, 12, 3, 1, 1, 1, 24, 1), /* depthwise */
        g2(2, 8, 16, 10, 10, 3, 1, 1, 1, 8, 1),   /* depthwise, multiplier 2 */
        g2(2, 8, 16, 10, 10, 3, 2, 1, 1, 8, 0),   /* depthwise, stride 2 */
        g2(2, 36, 48, 8, 9, 3, 1, 1, 1, 3, 1),    /* 3 groups of 12 -> 16 */
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 300);
}

/* Strides, dilation and padding beyond dil*(k-1): the scattered backward-data and the
 * non-unit-stride forward/weight paths. */
static void test_stride_dilation_padding(void **state) {
    (void)state;
    const dpt_conv_geom cases[] = {
        g2(2, 16, 32, 15, 16, 3, 2, 1, 1, 1, 1),
        g2(1, 5, 20, 17, 18, 5, 3, 2, 1, 1, 1),
        g2(2, 20, 18, 16, 16, 3, 1, 2, 2, 1, 1), /* dilation 2 */
        g2(1, 3, 7, 12, 13, 3, 2, 0, 2, 1, 0),   /* few channels, stride and dilation */
        g2(2, 2, 9, 11, 13, 3, 1, 2, 2, 1, 1),   /* few channels, dilation, stride 1 */
        g2(2, 33, 17, 6, 7, 1, 1, 1, 1, 1, 1),   /* 1x1 with padding: pad > dil*(k-1) */
        g2(1, 12, 40, 9, 9, 2, 1, 2, 1, 1, 1),   /* even kernel, pad > k-1 */
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 400);
}

/* 1-D and 3-D, batch 1 and odd. */
static void test_1d_3d(void **state) {
    (void)state;
    dpt_conv_geom c1 = {.dims = 1, .N = 3, .C = 4, .O = 24, .in = {1, 1, 50}, .k = {1, 1, 5},
                        .stride = {1, 1, 1}, .pad = {0, 0, 2}, .dil = {1, 1, 2}, .has_bias = 1};
    dpt_conv_geom c2 = {.dims = 1, .N = 1, .C = 20, .O = 3, .in = {1, 1, 37}, .k = {1, 1, 3},
                        .stride = {1, 1, 2}, .pad = {0, 0, 1}, .has_bias = 1};
    dpt_conv_geom c3 = {.dims = 3, .N = 2, .C = 4, .O = 20, .in = {6, 7, 8}, .k = {3, 3, 3},
                        .pad = {1, 1, 1}, .has_bias = 1};
    dpt_conv_geom c4 = {.dims = 3, .N = 1, .C = 18, .O = 6, .in = {5, 6, 5}, .k = {3, 2, 3},
                        .stride = {2, 1, 1}, .pad = {1, 0, 1}, .dil = {1, 2, 1}, .groups = 2};
    const dpt_conv_geom cases[] = {c1, c2, c3, c4};
    run_cases(cases, sizeof cases / sizeof cases[0], 500);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_matches_cpu),
        cmocka_unit_test(test_first_layer),
        cmocka_unit_test(test_3x3_stride1),
        cmocka_unit_test(test_3x3_stride1_direct),
        cmocka_unit_test(test_winograd_edges),
        cmocka_unit_test(test_winograd_switch),
        cmocka_unit_test(test_1x1_depthwise_groups),
        cmocka_unit_test(test_stride_dilation_padding),
        cmocka_unit_test(test_1d_3d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
