/* Losses. Oracles: closed forms (uniform logits give log K with or without label smoothing; the
 * smoothed loss of a two-level row; mixup = the lambda-mix of two hard losses; a constant MSE
 * residual), the golden README §4.6 formulas in double (log_softmax by a two-pass reference), and
 * central differences in double of those formulas for every gradient. Seeds are fixed. */
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
#include "dpt/loss.h"

enum { SEED = 9001 };
#define FD_STEP 1e-5
/* The kernels compute in double from float inputs; the references do too, by other formulas, so
 * losses agree to a few DBL_EPSILON per term summed (N*K terms). */
#define LOSS_TOL(N, K) (8 * DBL_EPSILON * (double)((N) * (K)))
/* Gradients are double values rounded once to float: half an ulp, plus the finite-difference
 * error of the oracle (h^2 |L'''| ~ 1e-10, 1e-16 |L| / h ~ 1e-11). */
#define GRAD_TOL FLT_EPSILON



/* log_softmax of one row of K, in double: max, then log of the sum. */
static void ref_log_softmax(double *lp, const double *x, int64_t K) {
    double m = x[0], s = 0;
    for (int64_t k = 1; k < K; k++)
        m = fmax(m, x[k]);
    for (int64_t k = 0; k < K; k++)
        s += exp(x[k] - m);
    for (int64_t k = 0; k < K; k++)
        lp[k] = x[k] - m - log(s);
}

struct xent_ctx {
    const double *x;   /* (N, K) logits */
    const int32_t *y;  /* labels, or NULL for soft targets */
    const double *t;   /* (N, K) soft targets when y is NULL */
    int64_t N, K;
    double eps, denom;
};

/* README §4.6: -(1/denom) sum_n sum_k q[n,k] logp[n,k] */
static double ref_xent(void *vctx) {
    const struct xent_ctx *c = vctx;
    double lp[64], L = 0;
    assert_true(c->K <= 64);
    for (int64_t n = 0; n < c->N; n++) {
        ref_log_softmax(lp, c->x + n * c->K, c->K);
        for (int64_t k = 0; k < c->K; k++) {
            double q = c->y ? (1 - c->eps) * (k == c->y[n]) + c->eps / (double)c->K
                            : c->t[n * c->K + k];
            L -= q * lp[k];
        }
    }
    return L / c->denom;
}

/* Hard labels, with and without smoothing and with a global denominator: loss vs the double
 * formula, dlogits vs central differences of it, the accuracy count vs a direct argmax. */
static void test_xent_matches_formula_and_fd(void **state) {
    (void)state;
    static const struct {
        int64_t N, K;
        double eps, denom_factor;
        float scale;
    } cases[] = {{4, 10, 0.0, 1, 3}, {8, 5, 0.1, 1, 3}, {1, 3, 0.0, 1, 1}, {6, 10, 0.1, 4, 10},
                 {3, 7, 0.0, 2.5, 50}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int64_t N = cases[t].N, K = cases[t].K, n = N * K;
        const double denom = cases[t].denom_factor * (double)N;
        print_message("xent N=%lld K=%lld eps=%g denom=%g, seed %d\n", (long long)N, (long long)K,
                      cases[t].eps, denom, SEED);
        float *x = malloc(n * sizeof *x), *d = malloc(n * sizeof *d), lab[8];
        double *xd = malloc(n * sizeof *xd), *g = malloc(n * sizeof *g);
        int32_t y[8];
        dpt_fill_uniform(x, n, -cases[t].scale, cases[t].scale, SEED, 10 * (uint32_t)t);
        dpt_fill_uniform(lab, N, 0.0f, (float)K, SEED, 10 * (uint32_t)t + 1);
        int64_t hits = 0;
        for (int64_t i = 0; i < N; i++) {
            y[i] = (int32_t)lab[i] % (int32_t)K; /* lab < K, but never trust a rounding */
            if (i == 0) /* make sure at least one row is right */
                x[i * K + y[i]] = 2 * cases[t].scale;
            int64_t at = 0;
            for (int64_t k = 1; k < K; k++)
                at = x[i * K + k] > x[i * K + at] ? k : at;
            hits += at == y[i];
        }
        for (int64_t i = 0; i < n; i++)
            xd[i] = x[i];
        int64_t correct = -1;
        double L = dpt_xent_forward_backward(d, &correct, x, y, N, K, cases[t].eps, denom);
        struct xent_ctx c = {.x = xd, .y = y, .N = N, .K = K, .eps = cases[t].eps, .denom = denom};
        double Lref = ref_xent(&c);
        dpt_assert_close_f64("loss", &L, &Lref, 1, LOSS_TOL(N, K), LOSS_TOL(N, K));
        assert_int_equal(correct, hits);
        dpt_fd_central(g, xd, n, FD_STEP, ref_xent, &c);
        dpt_assert_close_f32_f64("dlogits vs finite differences", d, g, n, GRAD_TOL, GRAD_TOL);
        /* NULL outputs are optional and do not change the loss; dlogits may alias logits */
        assert_true(dpt_xent_forward_backward(NULL, NULL, x, y, N, K, cases[t].eps, denom) == L);
        assert_true(dpt_xent_forward_backward(x, NULL, x, y, N, K, cases[t].eps, denom) == L);
        assert_memory_equal(x, d, n * sizeof *x);
        free(x), free(d), free(xd), free(g);
    }
}

/* Closed forms. Equal logits: loss = log K for any smoothing, dlogits = (1/K - q)/N.
 * Row (a, 0, ..., 0) with label 0: lse = log(e^a + K - 1), loss = lse - (1 - eps + eps/K) a. */
static void test_xent_closed_forms(void **state) {
    (void)state;
    enum { N = 3, K = 7 };
    float x[N * K], d[N * K];
    const int32_t y[N] = {0, 3, 5}; /* not K-1: a last-index tie rule would score 0 */
    for (int i = 0; i < N * K; i++)
        x[i] = 3.7f;
    for (int s = 0; s < 2; s++) {
        const double eps = s ? 0.1 : 0.0, want = log((double)K);
        int64_t correct;
        double L = dpt_xent_forward_backward(d, &correct, x, y, N, K, eps, N);
        dpt_assert_close_f64("uniform logits: log K", &L, &want, 1, LOSS_TOL(N, K),
                             LOSS_TOL(N, K));
        assert_int_equal(correct, 1); /* all tied: argmax is the first index, label 0 only */
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                double q = (1 - eps) * (k == y[n]) + eps / K, g = (1.0 / K - q) / N;
                dpt_assert_close_f32_f64("uniform logits: dlogits", &d[n * K + k], &g, 1,
                                         GRAD_TOL, GRAD_TOL);
            }
    }
    const float a = 2.5f;
    const double eps = 0.1;
    for (int i = 0; i < K; i++)
        x[i] = i == 0 ? a : 0.0f;
    const int32_t label0 = 0;
    double L = dpt_xent_forward_backward(d, NULL, x, &label0, 1, K, eps, 1);
    double want = log(exp(a) + K - 1) - (1 - eps + eps / K) * a;
    dpt_assert_close_f64("smoothed two-level row", &L, &want, 1, LOSS_TOL(1, K), LOSS_TOL(1, K));
}

/* Logits of order 1e4 (which overflow exp in float, and in double past 710) give a finite loss
 * equal to the max-subtracted reference, and finite gradients. */
static void test_xent_huge_logits(void **state) {
    (void)state;
    enum { N = 4, K = 6 };
    float x[N * K], d[N * K];
    double xd[N * K];
    int32_t y[N] = {0, 1, 2, 5};
    dpt_fill_uniform(x, N * K, -1e4f, 1e4f, SEED, 77);
    for (int i = 0; i < N * K; i++)
        xd[i] = x[i];
    struct xent_ctx c = {.x = xd, .y = y, .N = N, .K = K, .eps = 0.1, .denom = N};
    double L = dpt_xent_forward_backward(d, NULL, x, y, N, K, 0.1, N), Lref = ref_xent(&c);
    assert_true(isfinite(L));
    for (int i = 0; i < N * K; i++)
        assert_true(isfinite(d[i]));
    /* terms of size 1e4 err by DBL_EPSILON relative each: the scale s = |loss| covers it */
    dpt_assert_close_f64("loss of 1e4 logits", &L, &Lref, 1, LOSS_TOL(N, K), LOSS_TOL(N, K));
}

/* Soft targets: mixup targets lambda*onehot(a) + (1-lambda)*onehot(b) give
 * lambda*CE(a) + (1-lambda)*CE(b); dense probability rows and rows that do not sum to 1 match
 * the formula, and dlogits = softmax*sum(t) - t matches central differences. */
static void test_soft_xent(void **state) {
    (void)state;
    enum { N = 4, K = 9 };
    float x[N * K], t[N * K], d[N * K];
    double xd[N * K], td[N * K], g[N * K];
    dpt_fill_uniform(x, N * K, -3.0f, 3.0f, SEED, 90);
    for (int i = 0; i < N * K; i++)
        xd[i] = x[i];

    const int32_t ya[N] = {1, 4, 8, 0}, yb[N] = {2, 4, 3, 7};
    const float lambda = 0.3f;
    memset(t, 0, sizeof t);
    for (int n = 0; n < N; n++) {
        t[n * K + ya[n]] += lambda;
        t[n * K + yb[n]] += 1 - lambda;
    }
    double L = dpt_soft_xent_forward_backward(d, x, t, N, K, N);
    double La = dpt_xent_forward_backward(NULL, NULL, x, ya, N, K, 0, N);
    double Lb = dpt_xent_forward_backward(NULL, NULL, x, yb, N, K, 0, N);
    double want = (double)lambda * La + (1 - (double)lambda) * Lb;
    dpt_assert_close_f64("mixup loss", &L, &want, 1, LOSS_TOL(N, K), LOSS_TOL(N, K));

    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: probability rows; pass 1: unnormalised rows (sum in [0.5, 1.5]) */
        dpt_fill_uniform(t, N * K, 0.0f, 1.0f, SEED, 91 + pass);
        for (int n = 0; n < N; n++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += t[n * K + k];
            for (int k = 0; k < K; k++)
                t[n * K + k] *= (pass ? 0.5f + (float)n / (N - 1) : 1.0f) / s;
        }
        for (int i = 0; i < N * K; i++)
            td[i] = t[i];
        L = dpt_soft_xent_forward_backward(d, x, t, N, K, 2.0 * N);
        struct xent_ctx c = {.x = xd, .t = td, .N = N, .K = K, .denom = 2.0 * N};
        double Lref = ref_xent(&c);
        dpt_assert_close_f64("soft loss", &L, &Lref, 1, LOSS_TOL(N, K), LOSS_TOL(N, K));
        dpt_fd_central(g, xd, N * K, FD_STEP, ref_xent, &c);
        dpt_assert_close_f32_f64("soft dlogits vs finite differences", d, g, N * K, GRAD_TOL,
                                 GRAD_TOL);
    }
}

struct mse_ctx {
    const double *p, *t;
    int64_t n;
};

static double ref_mse(void *vctx) {
    const struct mse_ctx *c = vctx;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++)
        s += (c->p[i] - c->t[i]) * (c->p[i] - c->t[i]);
    return s / (double)c->n;
}

/* MSE: a constant residual r gives loss r^2 and gradient 2r/n; random data match the mean of
 * squares and central differences. */
static void test_mse(void **state) {
    (void)state;
    enum { n = 30 };
    float p[n], t[n], d[n];
    double pd[n], td[n], g[n];
    for (int i = 0; i < n; i++)
        t[i] = 0.25f * (float)i, p[i] = t[i] + 0.5f;
    double L = dpt_mse_forward_backward(d, p, t, n);
    assert_true(L == 0.25);
    for (int i = 0; i < n; i++)
        assert_true(d[i] == (float)(2 * 0.5 / n));

    dpt_fill_uniform(p, n, -2.0f, 2.0f, SEED, 120);
    dpt_fill_uniform(t, n, -2.0f, 2.0f, SEED, 121);
    for (int i = 0; i < n; i++)
        pd[i] = p[i], td[i] = t[i];
    struct mse_ctx c = {.p = pd, .t = td, .n = n};
    L = dpt_mse_forward_backward(d, p, t, n);
    double Lref = ref_mse(&c);
    dpt_assert_close_f64("mse", &L, &Lref, 1, LOSS_TOL(n, 1), LOSS_TOL(n, 1));
    dpt_fd_central(g, pd, n, FD_STEP, ref_mse, &c);
    dpt_assert_close_f32_f64("dpred vs finite differences", d, g, n, GRAD_TOL, GRAD_TOL);
    assert_true(dpt_mse_forward_backward(NULL, p, t, n) == L);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xent_matches_formula_and_fd),
        cmocka_unit_test(test_xent_closed_forms),
        cmocka_unit_test(test_xent_huge_logits),
        cmocka_unit_test(test_soft_xent),
        cmocka_unit_test(test_mse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
