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
        g2(2, 1, 16, 12, 13, 5, 1, 2, 1, 1, 1),  /* 25 taps in uneven blocks, rows copied */
        g2(2, 1, 16, 28, 28, 5, 1, 2, 1, 1, 0),  /* ... with dy's rows read in place */
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

/* F(4x4, 3x3) wherever it fits (dpt_conv_set_winograd(4)), where its tiling of 4x4 outputs has
 * edges: outputs of every remainder modulo 4 (13, 14, 15 and a lone tile of 2x2 or 3x5), pad 0
 * and 2, one to several blocks of tiles per image and blocks across images, odd N, channel counts
 * off the vector widths and the register tiles; and layers Winograd does not take (one input
 * channel, too few channels), which must keep their direct paths. */
static void test_winograd4_edges(void **state) {
    (void)state;
    const dpt_conv_geom cases[] = {
        g2(3, 32, 64, 14, 14, 3, 1, 1, 1, 1, 1),  /* fmnist-cnn conv3, odd N */
        g2(5, 64, 64, 14, 14, 3, 1, 1, 1, 1, 1),  /* blocks across images */
        g2(1, 32, 32, 28, 28, 3, 1, 1, 1, 1, 0),  /* conv2: 7 tiles per row */
        g2(1, 64, 48, 40, 40, 3, 1, 1, 1, 1, 1),  /* 100 tiles, rows split by blocks */
        g2(2, 16, 16, 13, 13, 3, 1, 1, 1, 1, 0),  /* 13x13: a last tile of one row/column */
        g2(3, 17, 100, 11, 9, 3, 1, 0, 1, 1, 1),  /* pad 0, 9x7 output, O = 100 */
        g2(1, 33, 20, 9, 30, 3, 1, 2, 1, 1, 1),   /* pad 2, 11x32 output */
        g2(2, 24, 18, 6, 70, 3, 1, 1, 1, 1, 1),   /* 18 tiles per row, two row remainders */
        g2(4, 16, 48, 4, 4, 3, 1, 0, 1, 1, 1),    /* 2x2 output: one partial tile per image */
        g2(1, 50, 16, 3, 5, 3, 1, 1, 1, 1, 0),    /* 3x5 output */
        g2(3, 19, 37, 17, 15, 3, 1, 1, 1, 1, 1),  /* 17x15: remainders 1 and 3 */
        g2(2, 1, 32, 14, 14, 3, 1, 1, 1, 1, 1),   /* one input channel: direct forward */
        g2(1, 8, 24, 10, 10, 3, 1, 1, 1, 1, 1),   /* too few channels: direct */
    };
    dpt_conv_set_winograd(4);
    run_cases(cases, sizeof cases / sizeof cases[0], 700);
    dpt_conv_set_winograd(1);
}

/* y: (N, O, S, S) = the 3x3 convolution of x: (N, C, S, S) with w: (O, C, 3, 3), pad p (output
 * S + 2p - 2 square), in double; w_flip: the weights of the same layer's backward-data as a
 * forward, (C, O, 3, 3) flipped. */
static void conv3x3_f64(double *y, const float *x, const float *w, int64_t N, int64_t C,
                        int64_t O, int64_t S, int64_t p) {
    const int64_t oS = S + 2 * p - 2;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < oS; i++)
                for (int64_t j = 0; j < oS; j++) {
                    double s = 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t a = 0; a < 3; a++)
                            for (int64_t bb = 0; bb < 3; bb++) {
                                const int64_t h = i + a - p, v = j + bb - p;
                                if (h >= 0 && h < S && v >= 0 && v < S)
                                    s += (double)x[((n * C + c) * S + h) * S + v] *
                                         (double)w[((o * C + c) * 3 + a) * 3 + bb];
                            }
                    y[((n * O + o) * oS + i) * oS + j] = s;
                }
}

/* The rounding of F(4x4, 3x3), F(2x2, 3x3) and direct convolution on the layers of fmnist-cnn
 * (forward, and backward-data: the transposed layer), against a double reference: the worst
 * |error| as a fraction of the tolerance of these tests (8 eps sqrt(K), atol scaled by the
 * largest |output| and rtol), printed for docs/kernels.md. F(4x4) runs by default only where it
 * keeps a margin of at least 2x: here 17-39 % of the tolerance over four seeds (F(2x2) 1-1.6 %,
 * direct 2-3 %), so at most half of it. */
static void test_winograd_accuracy(void **state) {
    (void)state;
    const dpt_conv_impl *impls[2];
    const int ni = n_simd(impls);
    const struct {
        const char *name;
        int64_t C, O, S;
    } layers[] = {{"conv2", 32, 32, 28}, {"conv3", 32, 64, 14}, {"conv4", 64, 64, 14}};
    const int modes[] = {0, 2, 4};
    const char *mode_names[] = {"direct", "F(2x2)", "F(4x4)"};
    const int64_t N = 4;
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const int64_t C = layers[li].C, O = layers[li].O, S = layers[li].S;
        dpt_conv_geom g = g2(N, C, O, S, S, 3, 1, 1, 1, 1, 0);
        assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
        const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
        float *x = falloc(nx), *w = falloc(nw), *dy = falloc(ny), *wf = falloc(nw);
        float *y = falloc(ny), *dx = falloc(nx);
        double *yr = malloc((size_t)ny * sizeof(double)), *dxr = malloc((size_t)nx * sizeof(double));
        assert_non_null(yr);
        assert_non_null(dxr);
        dpt_fill_uniform(x, nx, -1.0f, 1.0f, 800 + (uint32_t)li, 1);
        dpt_fill_uniform(w, nw, -1.0f, 1.0f, 800 + (uint32_t)li, 2);
        dpt_fill_uniform(dy, ny, -1.0f, 1.0f, 800 + (uint32_t)li, 4);
        for (int64_t o = 0; o < O; o++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t k = 0; k < 9; k++)
                    wf[(c * O + o) * 9 + k] = w[(o * C + c) * 9 + 8 - k];
        conv3x3_f64(yr, x, w, N, C, O, S, 1);
        conv3x3_f64(dxr, dy, wf, N, O, C, S, 1);
        const double tf = sum_tol((double)(C * 9 + 1)), tb = sum_tol((double)(O * 9));
        for (int k = 0; k < ni; k++) {
            const dpt_conv_impl *impl = impls[k];
            float *work = falloc((int64_t)impl->workspace(&g));
            double used[3][2];
            for (int mi = 0; mi < 3; mi++) {
                dpt_conv_set_winograd(modes[mi]);
                dpt_cmp r;
                impl->forward(y, x, w, NULL, &g, work);
                assert_true(dpt_cmp_f32_f64(&r, y, yr, ny, tf, tf));
                used[mi][0] = r.max_ratio;
                impl->backward_data(dx, dy, w, &g, work);
                assert_true(dpt_cmp_f32_f64(&r, dx, dxr, nx, tb, tb));
                used[mi][1] = r.max_ratio;
            }
            dpt_conv_set_winograd(1);
            for (int mi = 0; mi < 3; mi++)
                printf("  %s %s %-6s: worst error %5.2f %% of the tolerance forward, %5.2f %% "
                       "backward-data\n",
                       impl->name, layers[li].name, mode_names[mi], 100.0 * used[mi][0],
                       100.0 * used[mi][1]);
            assert_true(used[2][0] <= 0.5 && used[2][1] <= 0.5);
            dpt_free_aligned(work);
        }
        float *bufs[] = {x, w, dy, wf, y, dx};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            dpt_free_aligned(bufs[i]);
        free(yr);
        free(dxr);
    }
}

/* dpt_conv_set_winograd: 0 switches F(4x4) off as well as F(2x2), 2 and 4 force one variant, 1
 * lets the shape choose (F(4x4) on fmnist-cnn's conv3); the workspace is the same for all. */
static void check_winograd_modes(const dpt_conv_impl *impl, dpt_conv_geom g) {
    const int modes[] = {0, 2, 4, 1};
    assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    const size_t ws = impl->workspace(&g);
    float *x = falloc(nx), *w = falloc(nw), *b = falloc(g.O), *work = falloc((int64_t)ws);
    float *dy = falloc(ny), *y[4], *dx[4];
    dpt_fill_uniform(x, nx, -1.0f, 1.0f, 9, 1);
    dpt_fill_uniform(dy, ny, -1.0f, 1.0f, 9, 4);
    dpt_fill_uniform(w, nw, -1.0f, 1.0f, 9, 2);
    dpt_fill_uniform(b, g.O, -1.0f, 1.0f, 9, 3);
    for (int mi = 0; mi < 4; mi++) {
        dpt_conv_set_winograd(modes[mi]);
        assert_int_equal(dpt_conv_winograd(), modes[mi]);
        assert_int_equal(impl->workspace(&g), ws);
        y[mi] = falloc(ny);
        dx[mi] = falloc(nx);
        impl->forward(y[mi], x, w, b, &g, work);
        impl->backward_data(dx[mi], dy, w, &g, work);
    }
    dpt_conv_set_winograd(1);
    int64_t differ[3] = {0, 0, 0}, auto_f4 = 0;
    for (int64_t i = 0; i < ny; i++) {
        differ[0] += y[0][i] != y[2][i]; /* off vs F(4x4) */
        differ[1] += y[1][i] != y[2][i]; /* F(2x2) vs F(4x4) */
        differ[2] += y[0][i] != y[1][i]; /* off vs F(2x2) */
        auto_f4 += y[3][i] != y[2][i];   /* the default vs F(4x4) */
    }
    for (int64_t i = 0; i < nx; i++) {
        differ[0] += dx[0][i] != dx[2][i];
        differ[1] += dx[1][i] != dx[2][i];
        auto_f4 += dx[3][i] != dx[2][i];
    }
    printf("  %s: off/F(4x4) %lld, F(2x2)/F(4x4) %lld, off/F(2x2) %lld outputs differ; the "
           "default differs from F(4x4) in %lld\n",
           impl->name, (long long)differ[0], (long long)differ[1], (long long)differ[2],
           (long long)auto_f4);
    assert_true(differ[0] > 0 && differ[1] > 0 && differ[2] > 0);
    assert_int_equal(auto_f4, 0);
    for (int mi = 0; mi < 4; mi++) {
        dpt_free_aligned(y[mi]);
        dpt_free_aligned(dx[mi]);
    }
    float *bufs[] = {x, w, b, work, dy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dpt_free_aligned(bufs[i]);
}

static void test_winograd4_switch(void **state) {
    (void)state;
    const dpt_conv_impl *impls[2];
    for (int k = n_simd(impls) - 1; k >= 0; k--)
        check_winograd_modes(impls[k], g2(3, 32, 64, 14, 14, 3, 1, 1, 1, 1, 1));
}

/* Prepared weights: made in parts, out of order, and read by calls over uneven runs of images,
 * forward and backward-data give the bits of one call with w. Returns how many of the two passes
 * had weights to prepare. */
static int check_prepared(const dpt_conv_impl *impl, dpt_conv_geom g) {
    enum { PARTS = 5 };
    char desc[160];
    assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
    dpt_conv_geom_format(&g, desc, sizeof desc);
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    const int64_t xs = nx / g.N, ys = ny / g.N;
    const size_t ws = impl->workspace(&g);
    float *x = falloc(nx), *w = falloc(nw), *b = falloc(g.O), *dy = falloc(ny);
    float *whole = falloc(nx > ny ? nx : ny), *cut = falloc(nx > ny ? nx : ny);
    float *work = falloc((int64_t)ws);
    dpt_fill_uniform(x, nx, -1.0f, 1.0f, 13, 1);
    dpt_fill_uniform(w, nw, -1.0f, 1.0f, 13, 2);
    dpt_fill_uniform(b, g.O, -1.0f, 1.0f, 13, 3);
    dpt_fill_uniform(dy, ny, -1.0f, 1.0f, 13, 4);
    const float *bias = g.has_bias ? b : NULL;
    const int64_t runs[] = {0, 1, g.N - 1, g.N}; /* images [runs[i], runs[i+1]) */
    int prepared = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int fwd = pass == DPT_CONV_PASS_FORWARD;
        const size_t pf = impl->prepared_floats(&g, (dpt_conv_pass)pass);
        if (pf == 0)
            continue;
        prepared++;
        float *p = falloc((int64_t)pf);
        for (int k = PARTS - 1; k >= 0; k--)
            impl->prepare(p, w, &g, (dpt_conv_pass)pass, k, PARTS);
        for (size_t i = 0; i < pf; i++)
            assert_false(isnan(p[i])); /* every part written */
        const int64_t in = fwd ? xs : ys, out = fwd ? ys : xs, n_out = g.N * out;
        poison(work, (int64_t)ws);
        if (fwd)
            impl->forward(whole, x, w, bias, &g, work);
        else
            impl->backward_data(whole, dy, w, &g, work);
        poison(cut, n_out);
        for (int r = 0; r < 3; r++) {
            dpt_conv_geom gr = g;
            gr.N = runs[r + 1] - runs[r];
            if (gr.N == 0)
                continue;
            const float *src = (fwd ? x : dy) + runs[r] * in;
            poison(work, (int64_t)ws);
            if (fwd)
                impl->forward_prepared(cut + runs[r] * out, src, p, bias, &gr, work);
            else
                impl->backward_data_prepared(cut + runs[r] * out, src, p, &gr, work);
        }
        printf("  %s %s %s: %zu prepared floats\n", impl->name, fwd ? "forward" : "backward-data",
               desc, pf);
        assert_memory_equal(cut, whole, (size_t)n_out * sizeof(float));
        dpt_free_aligned(p);
    }
    float *bufs[] = {x, w, b, dy, whole, cut, work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dpt_free_aligned(bufs[i]);
    return prepared;
}

/* The Winograd passes prepare (F(4x4) at 28x28 and 14x14 by default, F(2x2) or F(4x4) forced,
 * unpadded backward-data as a padded forward); direct convolution and a 5x5 layer do not. */
static void test_prepared_weights(void **state) {
    (void)state;
    const dpt_conv_impl *impls[2];
    const dpt_conv_geom wino[] = {g2(5, 32, 32, 28, 28, 3, 1, 1, 1, 1, 0),
                                  g2(4, 32, 64, 14, 14, 3, 1, 1, 1, 1, 1),
                                  g2(3, 24, 40, 16, 16, 3, 1, 0, 1, 1, 1)};
    const dpt_conv_geom direct = g2(3, 6, 16, 14, 14, 5, 1, 0, 1, 1, 1);
    const int modes[] = {1, 2, 4, 0};
    for (int k = n_simd(impls) - 1; k >= 0; k--) {
        for (int mi = 0; mi < 4; mi++) {
            dpt_conv_set_winograd(modes[mi]);
            for (size_t i = 0; i < sizeof wino / sizeof wino[0]; i++)
                assert_int_equal(check_prepared(impls[k], wino[i]), modes[mi] ? 2 : 0);
            assert_int_equal(check_prepared(impls[k], direct), 0);
        }
        dpt_conv_set_winograd(1);
    }
    for (int id = DPT_CONV_REF; id <= DPT_CONV_IM2COL; id++) /* they read w as it is */
        assert_null(dpt_conv_impl_get((dpt_conv_impl_id)id)->prepare);
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

/* Forward tiles of two whole output rows (one channel vector, rows of at most 14 with AVX-512):
 * even and odd output heights (the last row alone), partial channel vectors, a vertical stride,
 * dilation, groups, depth, and a row one position too long for it. */
static void test_two_row_tiles(void **state) {
    (void)state;
    dpt_conv_geom vstride = g2(1, 5, 12, 13, 11, 3, 1, 1, 1, 1, 1);
    vstride.stride[1] = 2;
    dpt_conv_geom depth = {.dims = 3, .N = 1, .C = 4, .O = 16, .in = {3, 6, 9}, .k = {2, 3, 3},
                           .pad = {0, 1, 1}, .has_bias = 1};
    const dpt_conv_geom cases[] = {
        g2(2, 6, 16, 14, 14, 5, 1, 0, 1, 1, 1),  /* lenet5 conv2: 10 rows of 10 */
        g2(1, 6, 16, 15, 12, 5, 1, 0, 1, 1, 0),  /* 11 rows of 8 */
        g2(2, 4, 10, 9, 16, 3, 1, 0, 1, 1, 1),   /* 10 channels, 7 rows of 14 */
        vstride,                                 /* 7 rows of 11, every other input row */
        g2(1, 8, 16, 12, 12, 3, 1, 2, 2, 1, 0),  /* dilation 2 */
        g2(2, 12, 24, 10, 10, 3, 1, 1, 1, 2, 1), /* 2 groups of 6 -> 12 */
        depth,                                   /* 2 x 6 rows of 9 */
        g2(1, 4, 40, 9, 9, 3, 1, 0, 1, 1, 1),    /* 40 channels: a pair of vectors, then 8 */
        g2(1, 6, 16, 8, 19, 5, 1, 0, 1, 1, 1),   /* rows of 15: one row per tile */
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 450);
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
        cmocka_unit_test(test_winograd4_edges),
        cmocka_unit_test(test_winograd_accuracy),
        cmocka_unit_test(test_winograd4_switch),
        cmocka_unit_test(test_prepared_weights),
        cmocka_unit_test(test_1x1_depthwise_groups),
        cmocka_unit_test(test_stride_dilation_padding),
        cmocka_unit_test(test_two_row_tiles),
        cmocka_unit_test(test_1d_3d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
