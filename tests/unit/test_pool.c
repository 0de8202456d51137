/* Max and average pooling, 1-D to 3-D. Oracles: a naive double-precision pool written from the
 * golden README §4.2 formulas (it walks every window tap and tests bounds, where the kernel clips
 * ranges), central differences in double of that reference for every backward pass, and a few
 * hand-computed cases. Max-pool inputs are pairwise distinct with gaps of 0.01 >> the step, so no
 * tie sits inside a difference. Seeds are fixed (SEED, stream per case). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "fdgrad.h"
#include "dpt/ops.h"
#include "dpt/rng.h"
#include "kernels/kernel_table.h"

enum { SEED = 777 };
#define FD_STEP 1e-5



enum { MAXPOOL, AVG_EXCL_PAD, AVG_INCL_PAD };
static const char *const kind_name[] = {"maxpool", "avgpool count_include_pad=0",
                                        "avgpool count_include_pad=1"};

static int64_t x_count(const dpt_pool_geom *g) {
    return g->N * g->C * g->in[0] * g->in[1] * g->in[2];
}
static int64_t y_count(const dpt_pool_geom *g) {
    return g->N * g->C * g->out[0] * g->out[1] * g->out[2];
}

/* README §4.2 literally: window of output p is p*stride - pad + [0, k); padded taps are skipped
 * (-inf for max, 0 for avg). arg (may be NULL) gets the first index of the maximum. */
static void ref_pool(double *y, int64_t *arg, const double *x, const dpt_pool_geom *g, int kind) {
    const int64_t *in = g->in, *k = g->k, *s = g->stride, *p = g->pad, *out = g->out;
    const int64_t plane = in[0] * in[1] * in[2];
    int64_t o = 0;
    for (int64_t nc = 0; nc < g->N * g->C; nc++)
        for (int64_t od = 0; od < out[0]; od++)
            for (int64_t oh = 0; oh < out[1]; oh++)
                for (int64_t ow = 0; ow < out[2]; ow++, o++) {
                    double best = -INFINITY, sum = 0;
                    int64_t at = -1, count = 0;
                    for (int64_t a = 0; a < k[0]; a++)
                        for (int64_t b = 0; b < k[1]; b++)
                            for (int64_t c = 0; c < k[2]; c++) {
                                int64_t d = od * s[0] - p[0] + a, h = oh * s[1] - p[1] + b;
                                int64_t w = ow * s[2] - p[2] + c;
                                if (d < 0 || d >= in[0] || h < 0 || h >= in[1] || w < 0 ||
                                    w >= in[2])
                                    continue;
                                int64_t i = (d * in[1] + h) * in[2] + w;
                                double v = x[nc * plane + i];
                                if (at < 0 || v > best)
                                    best = v, at = i;
                                sum += v, count++;
                            }
                    assert_true(count >= 1); /* 2*pad <= k: every window touches the input */
                    if (kind == MAXPOOL)
                        y[o] = best;
                    else
                        y[o] = sum / (double)(kind == AVG_INCL_PAD ? k[0] * k[1] * k[2] : count);
                    if (arg)
                        arg[o] = at;
                }
}

struct pool_ctx {
    const dpt_pool_geom *g;
    int kind;
    const double *x, *dy;
    double *y;
};

/* L(x) = sum dy * pool(x) */
static double pool_objective(void *vctx) {
    const struct pool_ctx *c = vctx;
    ref_pool(c->y, NULL, c->x, c->g, c->kind);
    double L = 0;
    for (int64_t i = 0; i < y_count(c->g); i++)
        L += c->dy[i] * c->y[i];
    return L;
}

/* Pairwise distinct values 0.01 apart, both signs: a permutation of the grid. */
static void fill_distinct(float *x, int64_t n, uint32_t stream) {
    int64_t *perm = malloc(n * sizeof *perm);
    dpt_rng_permutation(perm, n, dpt_rng_key_make(SEED, DPT_RNG_TEST, stream), 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.01f * (float)(perm[i] - n / 2);
    free(perm);
}

#define G1(N_, C_, W, kw, sw, pw) \
    {.dims = 1, .N = N_, .C = C_, .in = {0, 0, W}, .k = {0, 0, kw}, .stride = {0, 0, sw}, \
     .pad = {0, 0, pw}}
#define G2(N_, C_, H, W, kh, kw, sh, sw, ph, pw) \
    {.dims = 2, .N = N_, .C = C_, .in = {0, H, W}, .k = {0, kh, kw}, .stride = {0, sh, sw}, \
     .pad = {0, ph, pw}}
#define G3(N_, C_, D, H, W, kd, kh, kw, sd, sh, sw, pd, ph, pw) \
    {.dims = 3, .N = N_, .C = C_, .in = {D, H, W}, .k = {kd, kh, kw}, .stride = {sd, sh, sw}, \
     .pad = {pd, ph, pw}}

/* Overlapping windows (stride < k), padding up to k/2, non-square, default stride. */
static const dpt_pool_geom cases[] = {
    G1(2, 3, 11, 3, 2, 1),
    G1(1, 2, 7, 2, 1, 1), /* 2*pad = k, stride 1: more outputs than inputs */
    G2(2, 2, 7, 6, 3, 3, 2, 2, 1, 1),
    G2(1, 3, 5, 6, 3, 2, 1, 2, 1, 1),
    G2(2, 2, 8, 8, 2, 2, 0, 0, 0, 0), /* stride 0: torch's default, the window */
    G3(2, 2, 3, 5, 4, 2, 3, 2, 1, 2, 2, 1, 1, 0),
    G3(1, 2, 4, 5, 5, 3, 3, 3, 2, 2, 2, 1, 1, 1),
};

static void describe(char *buf, size_t n, const dpt_pool_geom *g, int kind) {
    snprintf(buf, n,
             "%s %dd N=%lld C=%lld in=%lldx%lldx%lld k=%lldx%lldx%lld s=%lldx%lldx%lld "
             "p=%lldx%lldx%lld",
             kind_name[kind], g->dims, (long long)g->N, (long long)g->C, (long long)g->in[0],
             (long long)g->in[1], (long long)g->in[2], (long long)g->k[0], (long long)g->k[1],
             (long long)g->k[2], (long long)g->stride[0], (long long)g->stride[1],
             (long long)g->stride[2], (long long)g->pad[0], (long long)g->pad[1],
             (long long)g->pad[2]);
}

/* Forward vs ref_pool (max: bit-exact values and argmax), backward vs central differences. */
static void test_pool_matches_ref_and_fd(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        dpt_pool_geom g = cases[t];
        assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
        const int64_t nx = x_count(&g), ny = y_count(&g);
        /* A sum of at most prod(k) terms in float, then one division: prod(k) ulp covers it; the
         * backward sums at most prod(k) overlapping contributions (stride >= 1). */
        const double tol = FLT_EPSILON * (double)(g.k[0] * g.k[1] * g.k[2] + 1);
        float *x = malloc(nx * sizeof *x), *dx = malloc(nx * sizeof *dx);
        float *y = malloc(ny * sizeof *y), *dy = malloc(ny * sizeof *dy);
        int32_t *arg = malloc(ny * sizeof *arg);
        double *xd = malloc(nx * sizeof *xd), *gfd = malloc(nx * sizeof *gfd);
        double *yref = malloc(ny * sizeof *yref), *dyd = malloc(ny * sizeof *dyd);
        int64_t *argref = malloc(ny * sizeof *argref);
        dpt_fill_uniform(dy, ny, -1.0f, 1.0f, SEED, 100 + (uint32_t)t);
        for (int64_t i = 0; i < ny; i++)
            dyd[i] = dy[i];
        for (int kind = MAXPOOL; kind <= AVG_INCL_PAD; kind++) {
            char what[256];
            describe(what, sizeof what, &g, kind);
            print_message("%s, seed %d\n", what, SEED);
            g.count_include_pad = kind == AVG_INCL_PAD;
            if (kind == MAXPOOL)
                fill_distinct(x, nx, 200 + (uint32_t)t);
            else
                dpt_fill_uniform(x, nx, -1.0f, 1.0f, SEED, 300 + (uint32_t)t);
            for (int64_t i = 0; i < nx; i++)
                xd[i] = x[i];
            ref_pool(yref, argref, xd, &g, kind);
            if (kind == MAXPOOL) {
                dpt_maxpool_forward(y, arg, x, &g);
                for (int64_t i = 0; i < ny; i++) {
                    assert_true(y[i] == (float)yref[i]);
                    assert_int_equal(arg[i], argref[i]);
                }
                dpt_maxpool_backward(dx, dy, arg, &g);
            } else {
                dpt_avgpool_forward(y, x, &g);
                dpt_assert_close_f32_f64(what, y, yref, ny, tol, tol);
                dpt_avgpool_backward(dx, dy, &g);
            }
            struct pool_ctx c = {.g = &g, .kind = kind, .x = xd, .dy = dyd, .y = yref};
            dpt_fd_central(gfd, xd, nx, FD_STEP, pool_objective, &c);
            dpt_assert_close_f32_f64("dx vs finite differences", dx, gfd, nx, tol, tol);
        }
        free(x), free(dx), free(y), free(dy), free(arg), free(xd), free(gfd), free(yref);
        free(dyd), free(argref);
    }
}

/* Hand-computed: 1-D x = [1, 3, 2], k = 2, stride 1 (overlap), dy = 1.
 * max: y = [3, 3], dx = [0, 2, 0];  avg: y = [2, 2.5], dx = [0.5, 1, 0.5]. */
static void test_pool_overlap_by_hand(void **state) {
    (void)state;
    dpt_pool_geom g = G1(1, 1, 3, 2, 1, 0);
    assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
    assert_int_equal(g.out[2], 2);
    const float x[3] = {1, 3, 2}, dy[2] = {1, 1};
    float y[2], dx[3];
    int32_t arg[2];
    dpt_maxpool_forward(y, arg, x, &g);
    dpt_maxpool_backward(dx, dy, arg, &g);
    assert_true(y[0] == 3 && y[1] == 3 && arg[0] == 1 && arg[1] == 1);
    assert_true(dx[0] == 0 && dx[1] == 2 && dx[2] == 0);
    dpt_avgpool_forward(y, x, &g);
    dpt_avgpool_backward(dx, dy, &g);
    assert_true(y[0] == 2 && y[1] == 2.5f);
    assert_true(dx[0] == 0.5f && dx[1] == 1 && dx[2] == 0.5f);
}

/* Padding is -inf for max: with an all-negative input no output may be the padded 0. For avg, the
 * two divisors differ exactly at the border windows: in = 4, k = 3, pad = 1, x = 1. */
static void test_pool_padding(void **state) {
    (void)state;
    dpt_pool_geom g = G2(1, 2, 5, 4, 3, 3, 1, 1, 1, 1);
    assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
    const int64_t nx = x_count(&g), ny = y_count(&g);
    float x[40], y[40];
    double xd[40], yref[40];
    int32_t arg[40];
    int64_t argref[40];
    assert_true(nx <= 40 && ny <= 40);
    dpt_fill_uniform(x, nx, -2.0f, -1.0f, SEED, 400);
    for (int64_t i = 0; i < nx; i++)
        xd[i] = x[i];
    dpt_maxpool_forward(y, arg, x, &g);
    ref_pool(yref, argref, xd, &g, MAXPOOL);
    for (int64_t i = 0; i < ny; i++) {
        assert_true(y[i] < -0.5f);
        assert_true(y[i] == (float)yref[i]);
    }

    dpt_pool_geom a = G1(1, 1, 4, 3, 1, 1);
    const float ones[4] = {1, 1, 1, 1};
    float ya[4];
    a.count_include_pad = 0;
    assert_int_equal(dpt_pool_geom_check(&a), DPT_OK);
    dpt_avgpool_forward(ya, ones, &a);
    for (int i = 0; i < 4; i++)
        assert_true(ya[i] == 1.0f); /* in-bounds count */
    a.count_include_pad = 1;
    dpt_avgpool_forward(ya, ones, &a);
    assert_true(ya[0] == 2.0f / 3 && ya[1] == 1 && ya[2] == 1 && ya[3] == 2.0f / 3);
}

/* Ties keep the first index in (d, h, w) scan order: a constant input puts every argmax on the
 * first in-bounds tap of its window, and the backward routes the gradient there only. */
static void test_maxpool_ties_keep_first(void **state) {
    (void)state;
    dpt_pool_geom g = G3(1, 1, 3, 4, 4, 2, 3, 3, 1, 2, 2, 1, 1, 1);
    assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
    const int64_t nx = x_count(&g), ny = y_count(&g);
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    double *xd = malloc(nx * sizeof *xd), *yref = malloc(ny * sizeof *yref);
    int32_t *arg = malloc(ny * sizeof *arg);
    int64_t *argref = malloc(ny * sizeof *argref);
    for (int64_t i = 0; i < nx; i++)
        x[i] = 0.5f, xd[i] = 0.5;
    dpt_maxpool_forward(y, arg, x, &g);
    ref_pool(yref, argref, xd, &g, MAXPOOL);
    for (int64_t i = 0; i < ny; i++)
        assert_int_equal(arg[i], argref[i]);
    free(x), free(y), free(xd), free(yref), free(arg), free(argref);
}

/* A NaN in a max window is the window's maximum (torch's rule), so it reaches the loss. */
static void test_maxpool_propagates_nan(void **state) {
    (void)state;
    dpt_pool_geom g = G1(1, 1, 6, 2, 2, 0);
    assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
    const float x[6] = {1, 2, NAN, 0.5f, 3, 4};
    float y[3];
    int32_t arg[3];
    dpt_maxpool_forward(y, arg, x, &g);
    assert_true(y[0] == 2 && isnan(y[1]) && y[2] == 4);
    assert_int_equal(arg[1], 2);
}

/* The 2x2 stride-2 fast path keeps the general rule. Oracles: ref_pool on data with ties (values
 * from a 3-level grid), and for NaNs the general loop itself, reached through the same memory
 * seen as a 3-D pooling with a unit depth window over D = 2 (which equals 2-D pooling of 2C
 * channels). Odd extents: the last row and column are dropped. */
static void test_maxpool_2x2_fast_path_matches_ref(void **state) {
    (void)state;
    dpt_pool_geom g = G2(2, 4, 7, 19, 2, 2, 2, 2, 0, 0); /* 9 outputs a row: vector + tail */
    dpt_pool_geom g3 = G3(2, 2, 2, 7, 19, 1, 2, 2, 1, 2, 2, 0, 0, 0);
    assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
    assert_int_equal(dpt_pool_geom_check(&g3), DPT_OK);
    const int64_t nx = x_count(&g), ny = y_count(&g);
    assert_int_equal(ny, y_count(&g3));
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), *y3 = malloc(ny * sizeof *y);
    double *xd = calloc((size_t)nx, sizeof *xd), *yref = malloc(ny * sizeof *yref);
    int32_t *arg = malloc(ny * sizeof *arg), *arg3 = malloc(ny * sizeof *arg3);
    int64_t *argref = malloc(ny * sizeof *argref);
    dpt_fill_uniform(x, nx, 0, 3, SEED, 77);
    for (int64_t i = 0; i < nx; i++) {
        x[i] = floorf(x[i]); /* many ties */
        xd[i] = x[i];
    }
    dpt_maxpool_forward(y, arg, x, &g);
    ref_pool(yref, argref, xd, &g, MAXPOOL);
    for (int64_t i = 0; i < ny; i++) {
        assert_int_equal(arg[i], argref[i]);
        assert_true(y[i] == (float)yref[i]);
    }
    for (int64_t i = 0; i < nx; i++)
        if (i % 29 == 5 || i % 29 == 6 || i % 31 == 0)
            x[i] = NAN; /* sometimes two NaNs in one window */
    dpt_maxpool_forward(y, arg, x, &g);
    dpt_maxpool_forward(y3, arg3, x, &g3);
    const int64_t plane2 = 7 * 19, oplane = 3 * 9;
    for (int64_t i = 0; i < ny; i++) {
        /* 2-D argmax is within an (H, W) plane; 3-D within the (D, H, W) block of two planes */
        int64_t nc2 = i / oplane;
        assert_int_equal(arg[i] + (nc2 % 2) * plane2, arg3[i]);
        assert_true(isnan(y3[i]) ? isnan(y[i]) : y[i] == y3[i]);
    }
    free(x), free(y), free(y3), free(xd), free(yref), free(arg), free(arg3), free(argref);
}

/* The 2x2 fast path on every vector path this CPU runs (scalar/SSE2, AVX2, AVX-512F), forward and
 * backward, bit for bit against the general loops, reached as in the test above through a 3-D
 * view with a unit depth window over D = 2. Extents cover one output, a vector tail, exactly one
 * and two vectors and one more, and odd heights and widths (the dropped last row and column get
 * dx = 0). Data have ties, NaNs and signed zeros; dy has -0 (0 + -0 = +0 in the general loop) and
 * dx starts as garbage, so every element must be written. */
static void test_maxpool_2x2_every_path(void **state) {
    (void)state;
    static const int64_t hw[][2] = {{2, 2},   {3, 3},  {2, 3},  {5, 2},  {4, 14}, {14, 14},
                                    {28, 28}, {3, 33}, {6, 34}, {5, 65}, {7, 19}, {2, 64}};
    const dpt__isa best = dpt__isa_best();
    for (size_t t = 0; t < sizeof hw / sizeof hw[0]; t++) {
        const int64_t H = hw[t][0], W = hw[t][1];
        dpt_pool_geom g = G2(2, 4, H, W, 2, 2, 2, 2, 0, 0);
        dpt_pool_geom g3 = G3(2, 2, 2, H, W, 1, 2, 2, 1, 2, 2, 0, 0, 0);
        assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
        assert_int_equal(dpt_pool_geom_check(&g3), DPT_OK);
        const int64_t nx = x_count(&g), ny = y_count(&g), plane = H * W;
        const int64_t oplane = g.out[1] * g.out[2];
        float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
        float *y = malloc(ny * sizeof *y), *y3 = malloc(ny * sizeof *y3);
        float *dx = malloc(nx * sizeof *dx), *dx3 = malloc(nx * sizeof *dx3);
        int32_t *arg = malloc(ny * sizeof *arg), *arg3 = malloc(ny * sizeof *arg3);
        dpt_fill_uniform(x, nx, 0, 3, SEED, 900 + (uint32_t)t);
        dpt_fill_uniform(dy, ny, -1, 1, SEED, 950 + (uint32_t)t);
        for (int64_t i = 0; i < nx; i++) {
            x[i] = floorf(x[i]) - 1.0f; /* ties among -1, 0, 1 */
            if (x[i] == 0.0f && i % 2)
                x[i] = -0.0f;
            if (i % 37 == 3 || i % 41 == 4)
                x[i] = NAN;
        }
        for (int64_t i = 0; i < ny; i += 5)
            dy[i] = -0.0f;
        dpt_maxpool_forward(y3, arg3, x, &g3);
        for (int64_t i = 0; i < nx; i++)
            dx3[i] = 123.0f;
        dpt_maxpool_backward(dx3, dy, arg3, &g3);
        for (int isa = DPT__ISA_SCALAR; isa <= (int)best; isa++) {
            print_message("maxpool 2x2 H=%lld W=%lld path %d\n", (long long)H, (long long)W, isa);
            const dpt__isa old = dpt__isa_pin((dpt__isa)isa);
            for (int64_t i = 0; i < nx; i++)
                dx[i] = 123.0f;
            dpt_maxpool_forward(y, arg, x, &g);
            dpt_maxpool_backward(dx, dy, arg, &g);
            dpt__isa_pin(old);
            for (int64_t i = 0; i < ny; i++)
                assert_int_equal(arg[i] + (i / oplane % 2) * plane, arg3[i]);
            assert_memory_equal(y, y3, ny * sizeof *y);
            assert_memory_equal(dx, dx3, nx * sizeof *dx);
        }
        free(x), free(dy), free(y), free(y3), free(dx), free(dx3), free(arg), free(arg3);
    }
}

static void expect_error(dpt_pool_geom g, dpt_status want, const char *field) {
    dpt_error_clear();
    dpt_status st = dpt_pool_geom_check(&g);
    if (st != want || !strstr(dpt_last_error(), field))
        fail_msg("expected %s naming '%s', got %s: %s", dpt_status_name(want), field,
                 dpt_status_name(st), dpt_last_error());
}

/* Defaults (0 -> 1, stride 0 -> window), the output formula; every rejection names its field. */
static void test_pool_geom_check(void **state) {
    (void)state;
    dpt_pool_geom g = {.dims = 2, .N = 1, .C = 1, .in = {0, 9, 8}, .k = {0, 2, 3}};
    assert_int_equal(dpt_pool_geom_check(&g), DPT_OK);
    assert_true(g.in[0] == 1 && g.k[0] == 1 && g.stride[0] == 1);
    assert_true(g.stride[1] == 2 && g.stride[2] == 3);
    assert_true(g.out[0] == 1 && g.out[1] == 4 && g.out[2] == 2); /* floor((9-2)/2)+1, (8-3)/3+1 */

    const dpt_pool_geom ok = G2(1, 1, 6, 6, 3, 3, 1, 1, 1, 1);
    dpt_pool_geom b;
    b = ok, b.dims = 4;
    expect_error(b, DPT_EINVAL, "dims");
    b = ok, b.N = 0;
    expect_error(b, DPT_EINVAL, "N =");
    b = ok, b.C = -1;
    expect_error(b, DPT_EINVAL, "C =");
    b = ok, b.count_include_pad = 2;
    expect_error(b, DPT_EINVAL, "count_include_pad");
    b = ok, b.in[2] = -3;
    expect_error(b, DPT_EINVAL, "in[2]");
    b = ok, b.k[1] = -1;
    expect_error(b, DPT_EINVAL, "k[1]");
    b = ok, b.stride[2] = -1;
    expect_error(b, DPT_EINVAL, "stride[2]");
    b = ok, b.pad[1] = -1;
    expect_error(b, DPT_EINVAL, "pad[1]");
    b = ok, b.pad[2] = 2; /* 2*pad > k = 3 */
    expect_error(b, DPT_EINVAL, "pad[2]");
    b = ok, b.k[1] = 9, b.pad[1] = 1; /* 9 > 6 + 2 */
    expect_error(b, DPT_EINVAL, "k[1]");
    b = ok, b.in[0] = 3; /* a 2-D pool has no D */
    expect_error(b, DPT_EINVAL, "in[0]");
    b = ok, b.k[0] = 2;
    expect_error(b, DPT_EINVAL, "k[0]");
    b = (dpt_pool_geom)G3(1, 1, 1 << 12, 1 << 12, 1 << 8, 1, 1, 1, 1, 1, 1, 0, 0, 0);
    expect_error(b, DPT_ERANGE, "argmax is int32");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_matches_ref_and_fd),
        cmocka_unit_test(test_pool_overlap_by_hand),
        cmocka_unit_test(test_pool_padding),
        cmocka_unit_test(test_maxpool_ties_keep_first),
        cmocka_unit_test(test_maxpool_propagates_nan),
        cmocka_unit_test(test_maxpool_2x2_fast_path_matches_ref),
        cmocka_unit_test(test_maxpool_2x2_every_path),
        cmocka_unit_test(test_pool_geom_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
