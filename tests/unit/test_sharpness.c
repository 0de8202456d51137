/* The sharpness maximizer (dpt/sharpness.h) on separable quadratics f(x) = 1/2 sum_i h_i x_i^2.
 * Oracles: the closed-form box maximum (derived below), a brute-force maximum over the z box of
 * a random subspace built independently here from the documented Philox stream and normal
 * equations, and the formula of Keskar et al. Seeds are fixed (stream SEED of DPT_RNG_TEST).
 *
 * Closed form. f is separable and the box |y_i| <= c_i = eps (|x_i| + 1) is a product of
 * intervals, so the maximum is the sum of the coordinate maxima of 1/2 h_i (x_i + y_i)^2:
 *   h_i > 0: a convex parabola, largest at the end of the interval farthest from -x_i, i.e.
 *            y_i = sign(x_i) c_i (either end for x_i = 0): 1/2 h_i (|x_i| + c_i)^2;
 *   h_i < 0: largest where |x_i + y_i| is smallest, y_i = clip(-x_i, -c_i, c_i):
 *            1/2 h_i max(|x_i| - c_i, 0)^2.
 * Rounding. The maximizer evaluates f at fl(x_i + y_i) = (x_i + y_i)(1 + d), |d| <= u = 2^-24,
 * so each term is off by a factor (1 + d)^2, |(1 + d)^2 - 1| <= 2u + u^2; f is summed in double.
 * Hence the tolerance tol = (2u + u^2) sum_i |term_i| + n DBL_EPSILON sum_i |term_i|. */
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
#include "dpt/rng.h"
#include "dpt/sharpness.h"

#define SEED 20170609u
#define N 64
#define U_F32 (FLT_EPSILON / 2) /* unit roundoff of float */

typedef struct {
    const double *h;
    int calls;
    int last_had_grad, grad_calls;
    int fail_at; /* 1-based call that returns an error; 0: none */
    int nan_at;  /* 1-based call whose value is NaN; 0: none */
} quad;

static dpt_status quad_eval(void *ctx, const float *x, int64_t n, double *f, float *grad) {
    quad *q = ctx;
    q->calls++;
    q->last_had_grad = grad != NULL;
    q->grad_calls += grad != NULL;
    if (q->calls == q->fail_at)
        return dpt_errorf(DPT_EIO, "quad: injected failure");
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += 0.5 * q->h[i] * (double)x[i] * x[i];
        if (grad)
            grad[i] = (float)(q->h[i] * x[i]);
    }
    *f = q->calls == q->nan_at ? NAN : s;
    return DPT_OK;
}

static double box(float x, double eps) { return (float)(eps * (fabs((double)x) + 1.0)); }

/* Closed-form maximum and the sum of |terms| for the tolerance. */
static double closed_form(const float *x, const double *h, int64_t n, double eps, double *abs_sum) {
    double F = 0, a = 0;
    for (int64_t i = 0; i < n; i++) {
        const double c = box(x[i], eps);
        const double d = h[i] > 0 ? fabs((double)x[i]) + c : fmax(fabs((double)x[i]) - c, 0.0);
        F += 0.5 * h[i] * d * d;
        a += 0.5 * fabs(h[i]) * (fabs((double)x[i]) + c) * (fabs((double)x[i]) + c);
    }
    *abs_sum = a;
    return F;
}

static double rounding_tol(double abs_sum, int64_t n) {
    return (2 * U_F32 + U_F32 * U_F32) * abs_sum + (double)n * DBL_EPSILON * abs_sum;
}

/* x mixed-sign in [-2, 2] with x[0] = 0 (the sign(0) rule), x[1] tiny (|x| < c: the box reaches
 * past 0) and x[2] = -x[1]. */
static void fill_x(float *x, int64_t n, uint32_t stream) {
    dpt_fill_uniform(x, n, -2.0f, 2.0f, SEED, stream);
    x[0] = 0.0f, x[1] = 1e-5f, x[2] = -1e-5f;
}

/* h_i > 0: sign ascent walks every coordinate to the face sign(x_i) c_i within 4 steps of 1/4
 * (5 when 3c/4 rounds down) and stays, so after 10 steps the maximum is exact to rounding and y
 * is exactly the vertex. */
static void check_convex(double eps) {
    float x[N], y[N];
    double h[N];
    fill_x(x, N, 1);
    dpt_fill_uniform_f64(h, N, 0.5, 2.0, SEED, 2);
    quad q = {.h = h};
    dpt_sharpness_cfg cfg = {.epsilon = eps};
    dpt_sharpness_result r;
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &cfg, &r, y), DPT_OK);
    double abs_sum, F = closed_form(x, h, N, eps, &abs_sum), f0 = 0;
    for (int i = 0; i < N; i++)
        f0 += 0.5 * h[i] * (double)x[i] * x[i];
    const double tol = rounding_tol(abs_sum, N);
    printf("eps %g: fmax %.17g, closed form %.17g, |diff| %.3g (tol %.3g)\n", eps, r.fmax, F,
           fabs(r.fmax - F), tol);
    assert_true(fabs(r.fmax - F) <= tol);
    assert_true(r.f0 == f0); /* the first point is x itself, y = 0 exactly */
    for (int i = 0; i < N; i++) {
        const float c = (float)box(x[i], eps);
        assert_true(y[i] == (x[i] < 0 ? -c : c));
    }
    assert_true(r.sharpness == dpt_sharpness_value(r.f0, r.fmax));
    assert_int_equal(r.iterations, 10);
    assert_int_equal(r.evaluations, 11); /* 10 with a gradient, then the last point's value */
    assert_int_equal(q.grad_calls, 10);
    assert_int_equal(q.last_had_grad, 0);
    assert_int_equal(r.n_params, N);
}

static void test_convex_box_max_is_exact(void **state) {
    (void)state;
    check_convex(1e-3);
    check_convex(0.2);
}

/* Indefinite h: for h_i < 0 the coordinate maximizer -x_i may lie inside the box, where steps of
 * s_i = c_i / 4 overshoot it and oscillate within s_i of it (and x_i = 0 moves off it by the
 * sign(0) rule). After step 5 every h_i > 0 coordinate sits on its face and every h_i < 0 one is
 * within s_i of its maximizer, so the best f seen is at least F - sum_{h_i<0} 1/2 |h_i| s_i^2;
 * no point of the box exceeds F. */
static void test_indefinite_within_stated_tolerance(void **state) {
    (void)state;
    const double eps = 0.5; /* a wide box, so many h_i < 0 maximizers are interior */
    float x[N], y[N];
    double h[N];
    fill_x(x, N, 3);
    dpt_fill_uniform_f64(h, N, -2.0, 2.0, SEED, 4);
    h[0] = -1.0, h[1] = -1.5, h[2] = 1.5; /* x = 0 with h < 0: the maximum is at y = 0 */
    quad q = {.h = h};
    dpt_sharpness_cfg cfg = {.epsilon = eps};
    dpt_sharpness_result r;
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &cfg, &r, y), DPT_OK);
    double abs_sum, F = closed_form(x, h, N, eps, &abs_sum), gap = 0;
    int interior = 0;
    for (int i = 0; i < N; i++) {
        const double s = 0.25 * box(x[i], eps);
        if (h[i] < 0) {
            gap += 0.5 * -h[i] * s * s;
            interior += fabs((double)x[i]) < box(x[i], eps);
        }
    }
    const double tol = rounding_tol(abs_sum, N);
    printf("indefinite: F %.17g, fmax %.17g, F - fmax %.3g (allowed %.3g + %.3g), %d interior "
           "maximizers\n",
           F, r.fmax, F - r.fmax, gap, tol, interior);
    assert_true(interior >= 3);
    assert_true(r.fmax <= F + tol);
    assert_true(r.fmax >= F - gap - tol);
    /* The reported y is in the box and gives the reported f. */
    double fy = 0;
    for (int i = 0; i < N; i++) {
        assert_true(fabsf(y[i]) <= (float)box(x[i], eps));
        const float p = x[i] + y[i];
        fy += 0.5 * h[i] * (double)p * p;
    }
    assert_true(fy == r.fmax);
}

/* The subspace oracle: A's columns regenerated from the stream the header documents, A^+ x from
 * the normal equations solved in closed form (P <= 2), f(x + A z) in double. */
typedef struct {
    int64_t P;
    double a[2][N]; /* columns */
    double c[2];    /* z box */
} subspace_oracle;

static void oracle_make(subspace_oracle *o, const float *x, int64_t P, double eps, uint32_t seed) {
    o->P = P;
    for (int64_t j = 0; j < P; j++) {
        dpt_rng r;
        dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_SUBSPACE, 0), (uint32_t)j, 0);
        for (int i = 0; i < N; i++)
            o->a[j][i] = (float)dpt_rng_normal(&r);
    }
    double G[2][2] = {{0}}, b[2] = {0}, z[2];
    for (int64_t j = 0; j < P; j++) {
        for (int i = 0; i < N; i++)
            b[j] += o->a[j][i] * x[i];
        for (int64_t k = 0; k < P; k++)
            for (int i = 0; i < N; i++)
                G[j][k] += o->a[j][i] * o->a[k][i];
    }
    if (P == 1) {
        z[0] = b[0] / G[0][0];
    } else {
        const double det = G[0][0] * G[1][1] - G[0][1] * G[1][0];
        z[0] = (G[1][1] * b[0] - G[0][1] * b[1]) / det;
        z[1] = (G[0][0] * b[1] - G[1][0] * b[0]) / det;
    }
    for (int64_t j = 0; j < P; j++)
        o->c[j] = (float)(eps * (fabs(z[j]) + 1.0));
}

/* f(x + A z) and 1/2 sum |h| (|x| + |Az|)^2 for its tolerance. */
static double oracle_f(const subspace_oracle *o, const float *x, const double *h, const double *z,
                       double *abs_sum) {
    double f = 0, a = 0;
    for (int i = 0; i < N; i++) {
        double y = 0;
        for (int64_t j = 0; j < o->P; j++)
            y += o->a[j][i] * z[j];
        f += 0.5 * h[i] * (x[i] + y) * (x[i] + y);
        a += 0.5 * fabs(h[i]) * (fabs((double)x[i]) + fabs(y)) * (fabs((double)x[i]) + fabs(y));
    }
    *abs_sum = a;
    return f;
}

/* Rounding in the subspace: y_i = fl(sum_j a_ij z_j) (double sum, one float rounding) and
 * fl(x_i + y_i) give |error of x_i + y_i| <= 2u (|x_i| + |y_i|) (1 + u), so each term moves by
 * at most about 4u of 1/2 |h_i| (|x_i| + |y_i|)^2. */
static double subspace_tol(double abs_sum) { return 4 * U_F32 * (1 + U_F32) * abs_sum * 1.001; }

/* P = 1: f(x + a z) is a convex parabola in z on [-c, c]; its derivative at 0 points to the end
 * farther from the vertex, which is the larger end, and sign ascent walks there monotonically:
 * the maximizer must equal the larger end exactly (to rounding). */
static void test_subspace_p1_matches_interval_ends(void **state) {
    (void)state;
    const double eps = 0.05;
    float x[N], y[N];
    double h[N];
    fill_x(x, N, 5);
    dpt_fill_uniform_f64(h, N, 0.5, 2.0, SEED, 6);
    subspace_oracle o;
    oracle_make(&o, x, 1, eps, 7);
    double a1, a2, lo = oracle_f(&o, x, h, (double[]){-o.c[0]}, &a1),
                   hi = oracle_f(&o, x, h, (double[]){o.c[0]}, &a2);
    const double F = fmax(lo, hi), tol = subspace_tol(fmax(a1, a2));
    quad q = {.h = h};
    dpt_sharpness_cfg cfg = {.epsilon = eps, .subspace = 1, .seed = 7};
    dpt_sharpness_result r;
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &cfg, &r, y), DPT_OK);
    printf("P = 1: ends %.17g %.17g, fmax %.17g, |diff| %.3g (tol %.3g)\n", lo, hi, r.fmax,
           fabs(r.fmax - F), tol);
    assert_true(fabs(r.fmax - F) <= tol);
    assert_true(r.fmax > r.f0);
}

/* P = 2: brute force over a 41 x 41 grid of the z rectangle (vertices included: a convex f
 * peaks at one of them). The maximizer can never beat the box's maximum, its y must be A z at a
 * vertex of the oracle's rectangle (so the box bounds c_j are right), and on this instance sign
 * ascent reaches the best vertex. */
static void test_subspace_p2_matches_grid_search(void **state) {
    (void)state;
    const double eps = 0.05;
    float x[N], y[N];
    double h[N];
    fill_x(x, N, 8);
    dpt_fill_uniform_f64(h, N, 0.5, 2.0, SEED, 9);
    subspace_oracle o;
    oracle_make(&o, x, 2, eps, 11);
    double best = -INFINITY, best_abs = 0;
    for (int u = 0; u <= 40; u++)
        for (int v = 0; v <= 40; v++) {
            double z[2] = {o.c[0] * (u / 20.0 - 1), o.c[1] * (v / 20.0 - 1)}, a;
            double f = oracle_f(&o, x, h, z, &a);
            if (f > best)
                best = f, best_abs = a;
        }
    quad q = {.h = h};
    dpt_sharpness_cfg cfg = {.epsilon = eps, .subspace = 2, .seed = 11};
    dpt_sharpness_result r;
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &cfg, &r, y), DPT_OK);
    const double tol = subspace_tol(best_abs);
    printf("P = 2: grid max %.17g, fmax %.17g, |diff| %.3g (tol %.3g)\n", best, r.fmax,
           fabs(r.fmax - best), tol);
    assert_true(r.fmax <= best + tol);
    assert_true(r.fmax >= best - tol);
    int vertices = 0;
    for (int s = 0; s < 4; s++) {
        const double z[2] = {s & 1 ? o.c[0] : -o.c[0], s & 2 ? o.c[1] : -o.c[1]};
        int match = 1;
        for (int i = 0; i < N && match; i++) {
            const double yi = o.a[0][i] * z[0] + o.a[1][i] * z[1];
            match = fabs(y[i] - yi) <= 2 * U_F32 * (fabs(o.a[0][i] * z[0]) +
                                                    fabs(o.a[1][i] * z[1]));
        }
        vertices += match;
    }
    assert_int_equal(vertices, 1);
}

static void test_sharpness_formula(void **state) {
    (void)state;
    /* 100 (0.8 - 0.5) / 1.5 = 20; a flat f gives 0. */
    assert_true(fabs(dpt_sharpness_value(0.5, 0.8) - 20.0) <= 20.0 * 4 * DBL_EPSILON);
    assert_true(dpt_sharpness_value(0.25, 0.25) == 0.0);
    assert_true(dpt_sharpness_value(0.0, 1.0) == 100.0);
}

static void test_rejects_bad_input_and_passes_errors_on(void **state) {
    (void)state;
    float x[N];
    double h[N];
    fill_x(x, N, 12);
    dpt_fill_uniform_f64(h, N, 0.5, 2.0, SEED, 13);
    dpt_sharpness_result r;
    quad q = {.h = h};
    dpt_sharpness_cfg bad[] = {
        {.epsilon = 0}, {.epsilon = -1e-3}, {.epsilon = NAN}, {.epsilon = 1e-3, .step = 1.5},
        {.epsilon = 1e-3, .iterations = -1},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &bad[k], &r, NULL),
                         DPT_EINVAL);
    dpt_sharpness_cfg big = {.epsilon = 1e-3, .subspace = N + 1};
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &big, &r, NULL), DPT_ERANGE);
    assert_int_equal(q.calls, 0); /* nothing was evaluated */

    q = (quad){.h = h, .fail_at = 3};
    dpt_sharpness_cfg cfg = {.epsilon = 1e-3};
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &cfg, &r, NULL), DPT_EIO);
    assert_int_equal(q.calls, 3);
    assert_string_equal(dpt_last_error(), "quad: injected failure");

    q = (quad){.h = h, .nan_at = 4};
    assert_int_equal(dpt_sharpness_maximize(quad_eval, &q, x, N, &cfg, &r, NULL),
                     DPT_ENONFINITE);
    assert_int_equal(q.calls, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convex_box_max_is_exact),
        cmocka_unit_test(test_indefinite_within_stated_tolerance),
        cmocka_unit_test(test_subspace_p1_matches_interval_ends),
        cmocka_unit_test(test_subspace_p2_matches_grid_search),
        cmocka_unit_test(test_sharpness_formula),
        cmocka_unit_test(test_rejects_bad_input_and_passes_errors_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
