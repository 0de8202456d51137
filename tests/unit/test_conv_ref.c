/* Oracle: hand computation, closed forms, and an independent tiny loop (explicitly zero-padded
 * input, written here) for the reference convolution, the oracle every other conv test relies on.
 * Integer-valued data keep every sum exact in float and double, so most checks are equalities. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/conv.h"
#include "dpt/rng.h"

static const dpt_conv_impl *ref(void) {
    const dpt_conv_impl *r = dpt_conv_impl_get(DPT_CONV_REF);
    assert_non_null(r);
    assert_string_equal(r->name, "ref");
    return r;
}

static void check_geom(dpt_conv_geom *g) {
    if (dpt_conv_geom_check(g) != DPT_OK)
        fail_msg("geometry rejected: %s", dpt_last_error());
}

/* Small integers in [lo, hi] from the test stream (seed, stream): sums stay exact in float. */
static void fill_int(float *x, int64_t n, int lo, int hi, uint32_t seed, uint32_t stream) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_TEST, stream), 0, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (int)dpt_rng_below(&r, (uint32_t)(hi - lo + 1)));
}

static void assert_equal_f32(const char *what, const float *got, const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s[%lld]: got %.9g, want %.9g", what, (long long)i, got[i], want[i]);
}

static void assert_equal_f32_f64(const char *what, const float *got, const double *want,
                                 int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if ((double)got[i] != want[i])
            fail_msg("%s[%lld]: got %.9g, want %.17g", what, (long long)i, got[i], want[i]);
}

/* The 1-D example written with 1-based indices: o_i = sum_j w_j x_{i+j-1}, and its weight
 * gradient dL/dw_i = sum_j delta_j x_{i+j-1}; the data gradient dL/dx_m = sum_j delta_j w_{m-j+1}.
 * Every expected number below was computed by hand. */
static void test_1d_hand_example(void **state) {
    (void)state;
    const dpt_conv_impl *r = ref();
    dpt_conv_geom g = {.dims = 1, .N = 1, .C = 1, .O = 1, .in = {1, 1, 6}, .k = {1, 1, 3}};
    check_geom(&g);
    assert_int_equal(g.out[2], 4); /* 6 - 3 + 1 */
    const float x[6] = {3, 1, 4, 1, 5, 9}, w[3] = {2, -1, 3};
    /* o_1 = 2*3 - 1*1 + 3*4 = 17     o_2 = 2*1 - 1*4 + 3*1 = 1
     * o_3 = 2*4 - 1*1 + 3*5 = 22     o_4 = 2*1 - 1*5 + 3*9 = 24 */
    const float y_want[4] = {17, 1, 22, 24};
    float y[4];
    r->forward(y, x, w, NULL, &g, NULL);
    assert_equal_f32("y", y, y_want, 4);

    const float delta[4] = {1, -2, 0, 3};
    /* dw_1 = 1*3 - 2*1 + 0*4 + 3*1 = 4     dw_2 = 1*1 - 2*4 + 0*1 + 3*5 = 8
     * dw_3 = 1*4 - 2*1 + 0*5 + 3*9 = 29 */
    const float dw_want[3] = {4, 8, 29};
    float dw[3] = {0, 0, 0}, db = 0;
    r->backward_weight(dw, &db, delta, x, &g, NULL);
    assert_equal_f32("dw", dw, dw_want, 3);
    assert_true(db == 2.0f); /* 1 - 2 + 0 + 3 */

    /* dx_1 = 1*2 = 2                      dx_2 = 1*(-1) + (-2)*2 = -5
     * dx_3 = 1*3 + (-2)*(-1) + 0*2 = 5    dx_4 = (-2)*3 + 0*(-1) + 3*2 = 0
     * dx_5 = 0*3 + 3*(-1) = -3            dx_6 = 3*3 = 9 */
    const float dx_want[6] = {2, -5, 5, 0, -3, 9};
    float dx[6];
    r->backward_data(dx, delta, w, &g, NULL);
    assert_equal_f32("dx", dx, dx_want, 6);

    /* With bias 0.5 every output moves by 0.5. */
    g.has_bias = 1;
    const float b = 0.5f, yb_want[4] = {17.5f, 1.5f, 22.5f, 24.5f};
    r->forward(y, x, w, &b, &g, NULL);
    assert_equal_f32("y with bias", y, yb_want, 4);
}

/* O = floor((H + 2P - D(K-1) - 1)/S) + 1, each case worked out by hand in its comment. */
static void test_output_size_formula(void **state) {
    (void)state;
    static const struct {
        int dims;
        int64_t in[3], k[3], s[3], p[3], d[3], out[3];
    } cases[] = {
        /* 28x28, 3x3: (28 - 2 - 1)/1 + 1 = 26 */
        {2, {1, 28, 28}, {1, 3, 3}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, {1, 26, 26}},
        /* pad 1 keeps 28: (28 + 2 - 2 - 1)/1 + 1 = 28 */
        {2, {1, 28, 28}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 1, 1}, {1, 28, 28}},
        /* stride 2: floor(25/2) + 1 = 13 */
        {2, {1, 28, 28}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, {1, 1, 1}, {1, 13, 13}},
        /* stride 2, pad 1: floor(27/2) + 1 = 14 */
        {2, {1, 28, 28}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, {1, 14, 14}},
        /* dilation 2: the window spans 5, (28 - 4 - 1)/1 + 1 = 24 */
        {2, {1, 28, 28}, {1, 3, 3}, {1, 1, 1}, {0, 0, 0}, {1, 2, 2}, {1, 24, 24}},
        /* non-square, mixed: H (9 + 0 - 4 - 1)/2 + 1 = 3, W (14 + 4 - 4 - 1)/3 + 1 = 5 */
        {2, {1, 9, 14}, {1, 5, 3}, {1, 2, 3}, {0, 0, 2}, {1, 1, 2}, {1, 3, 5}},
        /* window equals the input: one output */
        {2, {1, 5, 5}, {1, 5, 5}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, {1, 1, 1}},
        /* 1-D: (100 + 4 - 8 - 1)/3 + 1 = 31 + 1 = 32 */
        {1, {1, 1, 100}, {1, 1, 5}, {1, 1, 3}, {0, 0, 2}, {1, 1, 2}, {1, 1, 32}},
        /* 3-D: D (8 + 2 - 4 - 1)/1 + 1 = 6, H (10 - 2 - 1)/2 + 1 = 4, W (12 + 4 - 2 - 1)/3 + 1 = 5
         */
        {3, {8, 10, 12}, {3, 3, 3}, {1, 2, 3}, {1, 0, 2}, {2, 1, 1}, {6, 4, 5}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_conv_geom g = {.dims = cases[i].dims, .N = 1, .C = 1, .O = 1};
        for (int a = 0; a < 3; a++) {
            g.in[a] = cases[i].in[a];
            g.k[a] = cases[i].k[a];
            g.stride[a] = cases[i].s[a];
            g.pad[a] = cases[i].p[a];
            g.dil[a] = cases[i].d[a];
        }
        check_geom(&g);
        for (int a = 0; a < 3; a++)
            if (g.out[a] != cases[i].out[a])
                fail_msg("case %zu axis %d: out %lld, want %lld", i, a, (long long)g.out[a],
                         (long long)cases[i].out[a]);
    }
}

/* Defaults (0 -> 1), counts, FLOPs and the description line. */
static void test_geometry_bookkeeping(void **state) {
    (void)state;
    dpt_conv_geom g = {
        .dims = 2, .N = 2, .C = 3, .O = 8, .in = {0, 8, 8}, .k = {0, 3, 3}, .pad = {0, 1, 1}};
    check_geom(&g);
    assert_int_equal(g.in[0], 1);
    assert_int_equal(g.k[0], 1);
    assert_int_equal(g.stride[1], 1);
    assert_int_equal(g.dil[2], 1);
    assert_int_equal(g.groups, 1);
    assert_int_equal(dpt_conv_x_count(&g), 2 * 3 * 8 * 8);
    assert_int_equal(dpt_conv_w_count(&g), 8 * 3 * 3 * 3);
    assert_int_equal(dpt_conv_y_count(&g), 2 * 8 * 8 * 8);
    assert_true(dpt_conv_flops(&g) == 2.0 * 2 * 8 * 64 * 3 * 9);
    char buf[128];
    int n = dpt_conv_geom_format(&g, buf, sizeof buf);
    assert_string_equal(buf, "conv2d N=2 C=3->8 in=8x8 k=3x3 s=1x1 p=1x1 d=1x1 g=1");
    assert_int_equal(n, (int)strlen(buf));
    char small[10];
    assert_int_equal(dpt_conv_geom_format(&g, small, sizeof small), n); /* truncates safely */
    assert_string_equal(small, "conv2d N=");
    /* checking again changes nothing */
    dpt_conv_geom again = g;
    check_geom(&again);
    assert_memory_equal(&again, &g, sizeof g);
    /* groups: FLOPs count C/groups inputs per output */
    dpt_conv_geom dw = {
        .dims = 1, .N = 3, .C = 4, .O = 8, .in = {1, 1, 10}, .k = {1, 1, 3}, .groups = 4};
    check_geom(&dw);
    assert_true(dpt_conv_flops(&dw) == 2.0 * 3 * 8 * 8 * 1 * 3);
    assert_int_equal(dpt_conv_w_count(&dw), 8 * 1 * 3);
}

/* ---- an independent 2-D convolution with an explicitly zero-padded copy of x ----------------- */
typedef struct {
    int64_t N, C, O, H, W, kH, kW, sh, sw, ph, pw, dh, dw, G;
} tiny2d;

static int64_t tiny_oh(const tiny2d *t) {
    return (t->H + 2 * t->ph - t->dh * (t->kH - 1) - 1) / t->sh + 1;
}
static int64_t tiny_ow(const tiny2d *t) {
    return (t->W + 2 * t->pw - t->dw * (t->kW - 1) - 1) / t->sw + 1;
}

/* xp[n][c][(H+2ph)][(W+2pw)] */
static double *tiny_pad(const tiny2d *t, const float *x) {
    const int64_t Hp = t->H + 2 * t->ph, Wp = t->W + 2 * t->pw;
    double *xp = calloc((size_t)(t->N * t->C * Hp * Wp), sizeof(double));
    assert_non_null(xp);
    for (int64_t nc = 0; nc < t->N * t->C; nc++)
        for (int64_t i = 0; i < t->H; i++)
            for (int64_t j = 0; j < t->W; j++)
                xp[(nc * Hp + i + t->ph) * Wp + j + t->pw] = x[(nc * t->H + i) * t->W + j];
    return xp;
}

/* y, dx and dw (+ db) in double by the definitions of golden README §4.1. */
static void tiny_conv(const tiny2d *t, const float *x, const float *w, const float *b,
                      const float *dy, double *y, double *dx, double *dw, double *db) {
    const int64_t OH = tiny_oh(t), OW = tiny_ow(t), Hp = t->H + 2 * t->ph, Wp = t->W + 2 * t->pw;
    const int64_t Cg = t->C / t->G, Og = t->O / t->G;
    double *xp = tiny_pad(t, x);
    double *dxp = calloc((size_t)(t->N * t->C * Hp * Wp), sizeof(double));
    assert_non_null(dxp);
    memset(dw, 0, (size_t)(t->O * Cg * t->kH * t->kW) * sizeof(double));
    memset(db, 0, (size_t)t->O * sizeof(double));
    for (int64_t n = 0; n < t->N; n++)
        for (int64_t o = 0; o < t->O; o++)
            for (int64_t i = 0; i < OH; i++)
                for (int64_t j = 0; j < OW; j++) {
                    const int64_t yi = ((n * t->O + o) * OH + i) * OW + j;
                    double acc = b ? b[o] : 0.0;
                    db[o] += dy[yi];
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t u = 0; u < t->kH; u++)
                            for (int64_t v = 0; v < t->kW; v++) {
                                const int64_t ci = (o / Og) * Cg + c;
                                const int64_t xi =
                                    ((n * t->C + ci) * Hp + i * t->sh + u * t->dh) * Wp +
                                    j * t->sw + v * t->dw;
                                const int64_t wi = ((o * Cg + c) * t->kH + u) * t->kW + v;
                                acc += w[wi] * xp[xi];
                                dxp[xi] += w[wi] * dy[yi];
                                dw[wi] += dy[yi] * xp[xi];
                            }
                    y[yi] = acc;
                }
    for (int64_t nc = 0; nc < t->N * t->C; nc++)
        for (int64_t i = 0; i < t->H; i++)
            for (int64_t j = 0; j < t->W; j++)
                dx[(nc * t->H + i) * t->W + j] = dxp[(nc * Hp + i + t->ph) * Wp + j + t->pw];
    free(xp);
    free(dxp);
}

/* Runs ref and the tiny loop on integer data; every result must be equal. */
static void check_against_tiny(const tiny2d *t, int with_bias, uint32_t seed) {
    dpt_conv_geom g = {.dims = 2,
                       .N = t->N,
                       .C = t->C,
                       .O = t->O,
                       .in = {1, t->H, t->W},
                       .k = {1, t->kH, t->kW},
                       .stride = {1, t->sh, t->sw},
                       .pad = {0, t->ph, t->pw},
                       .dil = {1, t->dh, t->dw},
                       .groups = t->G,
                       .has_bias = with_bias};
    check_geom(&g);
    assert_int_equal(g.out[1], tiny_oh(t));
    assert_int_equal(g.out[2], tiny_ow(t));
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    float *x = malloc((size_t)nx * sizeof(float)), *w = malloc((size_t)nw * sizeof(float));
    float *b = malloc((size_t)t->O * sizeof(float)), *dy = malloc((size_t)ny * sizeof(float));
    float *y = malloc((size_t)ny * sizeof(float)), *dx = malloc((size_t)nx * sizeof(float));
    float *dw = calloc((size_t)nw, sizeof(float)), *db = calloc((size_t)t->O, sizeof(float));
    double *yr = malloc((size_t)ny * sizeof(double)), *dxr = malloc((size_t)nx * sizeof(double));
    double *dwr = malloc((size_t)nw * sizeof(double)), *dbr = malloc((size_t)t->O * sizeof(double));
    assert_true(x && w && b && dy && y && dx && dw && db && yr && dxr && dwr && dbr);
    fill_int(x, nx, -3, 3, seed, 1);
    fill_int(w, nw, -3, 3, seed, 2);
    fill_int(b, t->O, -5, 5, seed, 3);
    fill_int(dy, ny, -3, 3, seed, 4);
    tiny_conv(t, x, w, with_bias ? b : NULL, dy, yr, dxr, dwr, dbr);
    const dpt_conv_impl *r = ref();
    r->forward(y, x, w, with_bias ? b : NULL, &g, NULL);
    r->backward_data(dx, dy, w, &g, NULL);
    r->backward_weight(dw, with_bias ? db : NULL, dy, x, &g, NULL);
    /* exact: integer data, sums far below 2^24 */
    assert_equal_f32_f64("y", y, yr, ny);
    assert_equal_f32_f64("dx", dx, dxr, nx);
    assert_equal_f32_f64("dw", dw, dwr, nw);
    if (with_bias)
        assert_equal_f32_f64("db", db, dbr, t->O);
    else
        for (int64_t o = 0; o < t->O; o++)
            assert_true(db[o] == 0.0f);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    free(yr), free(dxr), free(dwr), free(dbr);
}

/* Stride, padding and dilation against the tiny loop, with and without bias. */
static void test_2d_stride_pad_matches_tiny_loop(void **state) {
    (void)state;
    static const tiny2d cases[] = {
        /* N C  O  H  W kH kW sh sw ph pw dh dw G */
        {2, 3, 2, 7, 6, 3, 2, 2, 1, 1, 2, 1, 1, 1},
        {1, 2, 3, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1},
        {2, 2, 2, 8, 9, 3, 2, 1, 3, 2, 0, 2, 3, 1},
        {1, 1, 1, 5, 5, 5, 5, 1, 1, 0, 0, 1, 1, 1},
        {3, 4, 5, 6, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1},
        {1, 3, 4, 4, 5, 3, 3, 1, 1, 2, 2, 1, 1, 1}, /* padding wider than half the window */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_against_tiny(&cases[i], 0, 100 + (uint32_t)i);
        check_against_tiny(&cases[i], 1, 200 + (uint32_t)i);
    }
}

/* Groups: channel blocks only see their own block; depthwise is groups = C. */
static void test_groups_and_depthwise_match_tiny_loop(void **state) {
    (void)state;
    static const tiny2d cases[] = {
        /* N C  O  H  W kH kW sh sw ph pw dh dw G */
        {2, 4, 6, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 2},
        {1, 6, 9, 7, 7, 3, 2, 2, 1, 0, 1, 1, 2, 3},
        {2, 5, 5, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 5}, /* depthwise */
        {1, 3, 6, 5, 7, 3, 3, 2, 2, 1, 1, 2, 1, 3}, /* depthwise, channel multiplier 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_against_tiny(&cases[i], 1, 300 + (uint32_t)i);
}

/* Closed form: a depthwise 1x1 convolution is y[n,c,p] = w[c]*x[n,c,p] + b[c]. */
static void test_depthwise_1x1_closed_form(void **state) {
    (void)state;
    enum { N = 2, C = 3, P = 10 };
    dpt_conv_geom g = {
        .dims = 2, .N = N, .C = C, .O = C, .in = {1, 2, 5}, .groups = C, .has_bias = 1};
    check_geom(&g);
    float x[N * C * P], y[N * C * P], w[C] = {2, -1, 0.5f}, b[C] = {1, 0, -3};
    dpt_fill_uniform(x, N * C * P, -1, 1, 7, 0);
    ref()->forward(y, x, w, b, &g, NULL);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) {
                const int i = (n * C + c) * P + p;
                assert_true(y[i] == (float)((double)w[c] * x[i] + b[c]));
            }
}

/* Closed form in 3-D: with a 2x2x2 kernel of ones and x[z][y][x] = 100z + 10y + x, each output
 * is the sum of a 2x2x2 block: 8*(100z + 10y + x) + 4*(100 + 10 + 1) = 8*v + 444. */
static void test_3d_box_sum_closed_form(void **state) {
    (void)state;
    enum { D = 3, H = 4, W = 5 };
    dpt_conv_geom g = {.dims = 3, .N = 1, .C = 1, .O = 1, .in = {D, H, W}, .k = {2, 2, 2}};
    check_geom(&g);
    assert_int_equal(g.out[0], 2);
    assert_int_equal(g.out[1], 3);
    assert_int_equal(g.out[2], 4);
    float x[D * H * W], w[8], y[2 * 3 * 4];
    for (int z = 0; z < D; z++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                x[(z * H + i) * W + j] = (float)(100 * z + 10 * i + j);
    for (int i = 0; i < 8; i++)
        w[i] = 1;
    ref()->forward(y, x, w, NULL, &g, NULL);
    for (int z = 0; z < 2; z++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
                assert_true(y[(z * 3 + i) * 4 + j] == (float)(8 * (100 * z + 10 * i + j) + 444));
    /* With stride 2 along W, outputs 0 and 2 of each row remain: W' = (5 - 1 - 1)/2 + 1 = 2. */
    g.stride[2] = 2;
    check_geom(&g);
    assert_int_equal(g.out[2], 2);
    ref()->forward(y, x, w, NULL, &g, NULL);
    for (int z = 0; z < 2; z++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++)
                assert_true(y[(z * 3 + i) * 2 + j] ==
                            (float)(8 * (100 * z + 10 * i + 2 * j) + 444));
}

/* backward_weight accumulates into dw and db (and leaves db alone when it is NULL);
 * backward_data and forward overwrite whatever was in their output. */
static void test_write_and_accumulate_semantics(void **state) {
    (void)state;
    dpt_conv_geom g = {
        .dims = 1, .N = 1, .C = 1, .O = 1, .in = {1, 1, 6}, .k = {1, 1, 3}, .has_bias = 1};
    check_geom(&g);
    const float x[6] = {3, 1, 4, 1, 5, 9}, w[3] = {2, -1, 3}, b = 0, delta[4] = {1, -2, 0, 3};
    float dw[3] = {10, 20, 30}, db = 100;
    ref()->backward_weight(dw, &db, delta, x, &g, NULL);
    const float dw_want[3] = {14, 28, 59}; /* 10 + 4, 20 + 8, 30 + 29 (see the hand example) */
    assert_equal_f32("dw", dw, dw_want, 3);
    assert_true(db == 102.0f);
    ref()->backward_weight(dw, NULL, delta, x, &g, NULL);
    const float dw_twice[3] = {18, 36, 88};
    assert_equal_f32("dw (second call, db NULL)", dw, dw_twice, 3);
    float dx[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, y[4] = {NAN, NAN, NAN, NAN};
    ref()->backward_data(dx, delta, w, &g, NULL);
    const float dx_want[6] = {2, -5, 5, 0, -3, 9};
    assert_equal_f32("dx", dx, dx_want, 6);
    ref()->forward(y, x, w, &b, &g, NULL);
    const float y_want[4] = {17, 1, 22, 24};
    assert_equal_f32("y", y, y_want, 4);
    assert_int_equal(ref()->workspace(&g), 0);
}

/* ref accumulates in double: a sum whose float partial sums would lose the small terms is exact.
 * 1 + 2^-24 * 4 rounds to 1 + 2^-22 only if the tiny terms are added before rounding. */
static void test_accumulates_in_double(void **state) {
    (void)state;
    dpt_conv_geom g = {.dims = 1, .N = 1, .C = 1, .O = 1, .in = {1, 1, 5}, .k = {1, 1, 5}};
    check_geom(&g);
    const float e = ldexpf(1.0f, -24);
    const float x[5] = {1, e, e, e, e}, w[5] = {1, 1, 1, 1, 1};
    float y;
    ref()->forward(&y, x, w, NULL, &g, NULL);
    assert_true(y == 1.0f + 4 * e); /* float left-to-right summation would give 1 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1d_hand_example),
        cmocka_unit_test(test_output_size_formula),
        cmocka_unit_test(test_geometry_bookkeeping),
        cmocka_unit_test(test_2d_stride_pad_matches_tiny_loop),
        cmocka_unit_test(test_groups_and_depthwise_match_tiny_loop),
        cmocka_unit_test(test_depthwise_1x1_closed_form),
        cmocka_unit_test(test_3d_box_sum_closed_form),
        cmocka_unit_test(test_write_and_accumulate_semantics),
        cmocka_unit_test(test_accumulates_in_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
