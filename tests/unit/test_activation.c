/* Activations and softmax. Oracles: the closed forms of golden README §4.5 evaluated in double
 * (forward), and central differences in double of those closed forms (backward), so each
 * backward kernel is checked against the derivative of the function its forward computes.
 * Inputs are kept at least 0.05 away from the kinks at 0. Seeds are fixed (see fill calls). */
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

enum { SEED = 20240611 };

/* Elementwise kernels: a handful of correctly rounded operations and libm calls of <= 2 ulp per
 * element, so a few units of FLT_EPSILON, relative (rtol) or against the scale s (atol). */
#define ELEM_TOL (8 * FLT_EPSILON)
/* Softmax: exp(x - max) carries the rounding of x - max, |x - max| <= 6 for |x| <= 3, plus the
 * reciprocal and the product: (6 + 3) ulp, rounded up. */
#define SOFTMAX_TOL (16 * FLT_EPSILON)
#define FD_STEP 1e-5 /* truncation ~h^2 = 1e-10, rounding ~1e-16/h = 1e-11: far below float */

/* ---- finite differences ------------------------------------------------------------------ */


/* x[i] uniform in +-[lo, hi): away from 0 by at least lo. */
static void fill_off_zero(float *x, int64_t n, float lo, float hi, uint32_t stream) {
    dpt_fill_uniform(x, n, -(hi - lo), hi - lo, SEED, stream);
    for (int64_t i = 0; i < n; i++)
        x[i] += x[i] < 0 ? -lo : lo;
}

/* ---- elementwise --------------------------------------------------------------------------- */
static double ref_act(dpt_act a, double p, double x) {
    switch (a) {
    case DPT_ACT_RELU:
        return x > 0 ? x : 0;
    case DPT_ACT_LEAKY_RELU:
        return x > 0 ? x : p * x;
    case DPT_ACT_SIGMOID:
        return 1 / (1 + exp(-x));
    case DPT_ACT_TANH:
        return tanh(x);
    case DPT_ACT_ELU:
        return x > 0 ? x : p * (exp(x) - 1);
    case DPT_ACT_GELU:
        return x * 0.5 * (1 + erf(x / sqrt(2.0)));
    case DPT_ACT_COUNT:
        break;
    }
    fail_msg("unknown activation %d", (int)a);
    return 0;
}

struct act_ctx {
    dpt_act a;
    double p;
    const double *x, *dy;
    int64_t n;
};

/* L(x) = sum_i dy_i f(x_i) */
static double act_objective(void *vctx) {
    const struct act_ctx *c = vctx;
    double L = 0;
    for (int64_t i = 0; i < c->n; i++)
        L += c->dy[i] * ref_act(c->a, c->p, c->x[i]);
    return L;
}

static const float act_param[DPT_ACT_COUNT] = {
    [DPT_ACT_LEAKY_RELU] = 0.2f,
    [DPT_ACT_ELU] = 1.3f,
};

/* Forward vs the closed form in double; backward vs central differences of it. Each op runs
 * once with dx/dy and y/x in separate buffers and once in place, with identical results. */
static void test_act_matches_closed_form_and_fd(void **state) {
    (void)state;
    enum { n = 61 };
    float x[n], y[n], dy[n], dx[n], buf[n];
    double xd[n], dyd[n], yref[n], gfd[n];
    fill_off_zero(x, n, 0.05f, 4.0f, 1);
    dpt_fill_uniform(dy, n, -1.0f, 1.0f, SEED, 2);
    for (int i = 0; i < n; i++)
        xd[i] = x[i], dyd[i] = dy[i];
    for (int a = 0; a < DPT_ACT_COUNT; a++) {
        const float p = act_param[a];
        char what[64];
        print_message("activation %s (param %g), seed %d\n", dpt_act_name(a), p, SEED);
        dpt_act_forward(a, p, y, x, n);
        for (int i = 0; i < n; i++)
            yref[i] = ref_act(a, p, xd[i]);
        snprintf(what, sizeof what, "%s forward", dpt_act_name(a));
        dpt_assert_close_f32_f64(what, y, yref, n, ELEM_TOL, ELEM_TOL);

        dpt_act_backward(a, p, dx, dy, x, y, n);
        struct act_ctx c = {.a = a, .p = p, .x = xd, .dy = dyd, .n = n};
        dpt_fd_central(gfd, xd, n, FD_STEP, act_objective, &c);
        snprintf(what, sizeof what, "%s backward vs finite differences", dpt_act_name(a));
        dpt_assert_close_f32_f64(what, dx, gfd, n, ELEM_TOL, ELEM_TOL);

        /* in place: y over x, then dx over dy (keeping whichever of x, y the op reads) */
        memcpy(buf, x, sizeof buf);
        dpt_act_forward(a, p, buf, buf, n);
        assert_memory_equal(buf, y, sizeof buf);
        memcpy(buf, dy, sizeof buf);
        dpt_act_backward(a, p, buf, buf, x, y, n);
        assert_memory_equal(buf, dx, sizeof buf);
        /* the operand the op does not read may be NULL (ops.h) */
        const int reads_y = a == DPT_ACT_SIGMOID || a == DPT_ACT_TANH;
        dpt_act_backward(a, p, buf, dy, reads_y ? NULL : x, reads_y ? y : NULL, n);
        assert_memory_equal(buf, dx, sizeof buf);
    }
}

/* Closed form at the kinks and in the tails: f'(0) = 0 for relu (README §4.5), slope for leaky
 * relu below 0, and finite, correctly saturated values for |x| up to 1e4 and FLT_MAX. */
static void test_act_kinks_and_extremes(void **state) {
    (void)state;
    const float one = 1.0f;
    float y, dx, zero = 0.0f;
    dpt_act_forward(DPT_ACT_RELU, 0, &y, &zero, 1);
    dpt_act_backward(DPT_ACT_RELU, 0, &dx, &one, &zero, &y, 1);
    assert_true(y == 0.0f && dx == 0.0f);
    dpt_act_backward(DPT_ACT_LEAKY_RELU, 0.1f, &dx, &one, &zero, &y, 1);
    assert_true(dx == 0.1f);
    /* a NaN goes through every activation (as in torch), so the non-finite guard sees it */
    const float nan = NAN;
    for (int a = 0; a < DPT_ACT_COUNT; a++) {
        dpt_act_forward(a, 0.5f, &y, &nan, 1);
        assert_true(isnan(y));
    }

    enum { n = 8 };
    const float x[n] = {-FLT_MAX, -1e4f, -100.0f, -30.0f, 30.0f, 100.0f, 1e4f, FLT_MAX};
    float ys[n], dxs[n], ones[n];
    for (int i = 0; i < n; i++)
        ones[i] = 1.0f;
    for (int a = 0; a < DPT_ACT_COUNT; a++) {
        if (a == DPT_ACT_RELU || a == DPT_ACT_LEAKY_RELU)
            continue; /* piecewise linear: FLT_MAX * slope is the exact answer */
        dpt_act_forward(a, 1.0f, ys, x, n);
        dpt_act_backward(a, 1.0f, dxs, ones, x, ys, n);
        for (int i = 0; i < n; i++) {
            if (a == DPT_ACT_ELU || a == DPT_ACT_GELU) {
                if (x[i] > 0) /* identity on the right tail */
                    assert_true(ys[i] == x[i] && dxs[i] == 1.0f);
                else /* elu -> -alpha, gelu -> -0, slopes -> 0 */
                    assert_true(fabsf(ys[i] - (a == DPT_ACT_ELU ? -1.0f : 0.0f)) <= 1e-6f &&
                                fabsf(dxs[i]) <= 1e-6f);
                continue;
            }
            assert_true(isfinite(ys[i]) && isfinite(dxs[i]));
            const float lo = a == DPT_ACT_SIGMOID ? 0.0f : -1.0f;
            assert_true(ys[i] >= lo && ys[i] <= 1.0f);
            assert_true(fabsf(ys[i] - (x[i] > 0 ? 1.0f : lo)) <= 1e-6f);
            assert_true(dxs[i] >= 0.0f && dxs[i] <= 1e-6f);
        }
    }
    /* sigmoid(-100) = e^-100 = 3.7e-44, a float subnormal: tiny and non-negative, never NaN */
    float s;
    const float m100 = -100.0f;
    dpt_act_forward(DPT_ACT_SIGMOID, 0, &s, &m100, 1);
    assert_true(s >= 0.0f && s < 1e-40f);
}

static void test_act_names(void **state) {
    (void)state;
    /* the golden files' op names */
    assert_string_equal(dpt_act_name(DPT_ACT_RELU), "relu");
    assert_string_equal(dpt_act_name(DPT_ACT_LEAKY_RELU), "leaky_relu");
    assert_string_equal(dpt_act_name(DPT_ACT_SIGMOID), "sigmoid");
    assert_string_equal(dpt_act_name(DPT_ACT_TANH), "tanh");
    assert_string_equal(dpt_act_name(DPT_ACT_ELU), "elu");
    assert_string_equal(dpt_act_name(DPT_ACT_GELU), "gelu");
    assert_string_equal(dpt_act_name(DPT_ACT_COUNT), "unknown");
}

/* ---- softmax -------------------------------------------------------------------------------- */
static void ref_softmax(double *y, const double *x, int64_t N, int64_t C, int64_t S) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            const double *xs = x + n * C * S + s;
            double *ys = y + n * C * S + s;
            double m = xs[0], sum = 0;
            for (int64_t c = 1; c < C; c++)
                m = fmax(m, xs[c * S]);
            for (int64_t c = 0; c < C; c++)
                sum += exp(xs[c * S] - m);
            for (int64_t c = 0; c < C; c++)
                ys[c * S] = exp(xs[c * S] - m) / sum;
        }
}

struct sm_ctx {
    const double *x, *dy;
    double *y;
    int64_t N, C, S;
};

static double softmax_objective(void *vctx) {
    const struct sm_ctx *c = vctx;
    const int64_t n = c->N * c->C * c->S;
    ref_softmax(c->y, c->x, c->N, c->C, c->S);
    double L = 0;
    for (int64_t i = 0; i < n; i++)
        L += c->dy[i] * c->y[i];
    return L;
}

/* Forward vs the closed form in double; backward vs central differences of it; on rows (S = 1),
 * on channel-strided positions (S > 1), and across the position-block boundary of the kernel. */
static void test_softmax_matches_closed_form_and_fd(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {{3, 7, 1}, {2, 5, 3}, {1, 4, 9}, {2, 3, 130}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int64_t N = shapes[t][0], C = shapes[t][1], S = shapes[t][2], n = N * C * S;
        print_message("softmax N=%lld C=%lld S=%lld seed %d\n", (long long)N, (long long)C,
                      (long long)S, SEED);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        float *dy = malloc(n * sizeof *dy), *dx = malloc(n * sizeof *dx);
        double *xd = malloc(n * sizeof *xd), *dyd = malloc(n * sizeof *dyd);
        double *yref = malloc(n * sizeof *yref), *g = malloc(n * sizeof *g);
        dpt_fill_uniform(x, n, -3.0f, 3.0f, SEED, 10 + (uint32_t)t);
        dpt_fill_uniform(dy, n, -1.0f, 1.0f, SEED, 20 + (uint32_t)t);
        for (int64_t i = 0; i < n; i++)
            xd[i] = x[i], dyd[i] = dy[i];
        dpt_softmax_forward(y, x, N, C, S);
        ref_softmax(yref, xd, N, C, S);
        dpt_assert_close_f32_f64("softmax forward", y, yref, n, SOFTMAX_TOL, SOFTMAX_TOL);

        dpt_softmax_backward(dx, dy, y, N, C, S);
        if (n <= 200) { /* O(n^2) finite differences on the small shapes */
            struct sm_ctx c = {.x = xd, .dy = dyd, .y = yref, .N = N, .C = C, .S = S};
            dpt_fd_central(g, xd, n, FD_STEP, softmax_objective, &c);
        } else { /* the closed form dx = y (dy - sum_c dy y), in double */
            for (int64_t b = 0; b < N; b++)
                for (int64_t s = 0; s < S; s++) {
                    double dot = 0;
                    for (int64_t c = 0; c < C; c++)
                        dot += dyd[(b * C + c) * S + s] * yref[(b * C + c) * S + s];
                    for (int64_t c = 0; c < C; c++) {
                        int64_t i = (b * C + c) * S + s;
                        g[i] = yref[i] * (dyd[i] - dot);
                    }
                }
        }
        dpt_assert_close_f32_f64("softmax backward", dx, g, n, SOFTMAX_TOL, SOFTMAX_TOL);

        /* in place */
        dpt_softmax_forward(x, x, N, C, S);
        assert_memory_equal(x, y, n * sizeof *x);
        dpt_softmax_backward(dy, dy, y, N, C, S);
        assert_memory_equal(dy, dx, n * sizeof *dy);
        free(x), free(y), free(dy), free(dx), free(xd), free(dyd), free(yref), free(g);
    }
}

/* Closed form: logits of order 1e4 (which overflow exp in float without the max subtraction)
 * give finite probabilities that match the double reference, on rows (S = 1) and on strided
 * positions (S = 2): spread over +-1e4, and 1e4 + [-3, 3) where every probability matters (x - max
 * is then exact in float, Sterbenz). Equal logits give 1/C. */
static void test_softmax_huge_inputs(void **state) {
    (void)state;
    enum { N = 3, C = 6, nmax = N * C * 2 };
    for (int S = 1; S <= 2; S++)
        for (int spread = 0; spread < 2; spread++) {
            const int n = N * C * S;
            float x[nmax], y[nmax];
            double xd[nmax], yref[nmax];
            if (spread) {
                dpt_fill_uniform(x, n, -1e4f, 1e4f, SEED, 30 + S);
                x[0] = x[S] = 1e4f; /* two equal maxima in one column */
            } else {
                dpt_fill_uniform(x, n, -3.0f, 3.0f, SEED, 32 + S);
                for (int i = 0; i < n; i++)
                    x[i] += 1e4f;
            }
            for (int i = 0; i < n; i++)
                xd[i] = x[i];
            dpt_softmax_forward(y, x, N, C, S);
            ref_softmax(yref, xd, N, C, S);
            for (int i = 0; i < n; i++)
                assert_true(isfinite(y[i]));
            dpt_assert_close_f32_f64("softmax of 1e4-sized logits", y, yref, n, SOFTMAX_TOL,
                                     SOFTMAX_TOL);
        }

    float z[C], p[C];
    for (int c = 0; c < C; c++)
        z[c] = 88.7f; /* exp(88.7) is within 1% of FLT_MAX */
    dpt_softmax_forward(p, z, 1, C, 1);
    for (int c = 0; c < C; c++)
        assert_true(fabs(p[c] - 1.0 / C) <= SOFTMAX_TOL / C);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_matches_closed_form_and_fd),
        cmocka_unit_test(test_act_kinks_and_extremes),
        cmocka_unit_test(test_act_names),
        cmocka_unit_test(test_softmax_matches_closed_form_and_fd),
        cmocka_unit_test(test_softmax_huge_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
