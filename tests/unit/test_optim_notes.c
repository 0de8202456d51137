/* The course notes' update rules (seed note, "경사 하강 최적화") against the implemented torch
 * forms, as docs/optimizers.md tabulates them. Oracle: the notes' equations written out in double
 * below. Where the two forms coincide, the trajectories agree within the trajectory tolerance of
 * the golden README §2 (1e-5); where they differ (eta inside the momentum buffer with a changing
 * eta, eps inside or outside the square root), the test shows by how much. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/optim.h"

#define SEED 4242u
#define TRAJ_TOL 1e-5

enum { N = 16, T = 40 };

typedef struct {
    float a[N]; /* f(theta) = 1/2 sum a_i theta_i^2 */
    float theta0[N];
} quadratic;

static void quadratic_init(quadratic *q) {
    dpt_fill_uniform(q->a, N, 0.2f, 2.0f, SEED, 1);
    dpt_fill_uniform(q->theta0, N, -1.0f, 1.0f, SEED, 2);
}

static dpt_optim *make(const dpt_optim_cfg *cfg) {
    dpt_optim *o = NULL;
    if (dpt_optim_create(&o, cfg, N, NULL, 0) != DPT_OK)
        fail_msg("create: %s", dpt_last_error());
    return o;
}

/* One step of ours on the quadratic: g = a*theta from our own float parameters. */
static void ours_step(dpt_optim *o, const quadratic *q, float *p, double lr) {
    float g[N];
    for (int i = 0; i < N; i++)
        g[i] = q->a[i] * p[i];
    assert_int_equal(dpt_optim_step(o, p, g, lr), DPT_OK);
}

/* The notes' Momentum: v = gamma*v + eta*grad(theta); theta = theta - v. The LR schedule
 * eta(t) is constant, or drops 10x at step T/2 when `drop`. Returns the largest tolerance ratio
 * |ours - notes| / (atol*s + rtol*|notes|) over the trajectory. */
static double momentum_vs_notes(const quadratic *q, int drop) {
    const double gamma = 0.9, eta0 = 0.05;
    dpt_optim *o =
        make(&(dpt_optim_cfg){.kind = DPT_OPTIM_MOMENTUM, .lr = eta0, .momentum = gamma});
    float p[N];
    double th[N], v[N] = {0}, worst = 0;
    memcpy(p, q->theta0, sizeof p);
    for (int i = 0; i < N; i++)
        th[i] = q->theta0[i];
    for (int t = 0; t < T; t++) {
        double eta = drop && t >= T / 2 ? eta0 / 10 : eta0;
        ours_step(o, q, p, eta);
        for (int i = 0; i < N; i++) {
            v[i] = gamma * v[i] + eta * q->a[i] * th[i];
            th[i] -= v[i];
        }
        dpt_cmp r;
        dpt_cmp_f32_f64(&r, p, th, N, TRAJ_TOL, TRAJ_TOL);
        worst = fmax(worst, r.max_ratio);
    }
    dpt_optim_destroy(o);
    return worst;
}

/* With a constant eta, eta*buf of torch's form is exactly the notes' v (induction from v = 0),
 * so the theta trajectories are equal. */
static void test_momentum_constant_eta_trajectories_equal(void **state) {
    (void)state;
    quadratic q;
    quadratic_init(&q);
    double ratio = momentum_vs_notes(&q, 0);
    print_message("momentum, constant eta: max |ours - notes| = %.3g of the tolerance\n", ratio);
    if (ratio > 1)
        fail_msg("momentum: notes' form and torch's form differ, %.3g x tolerance", ratio);
}

/* With a changing eta they part: the notes' v carries the old eta for 1/(1-gamma) steps, torch's
 * buffer does not. After the 10x drop the difference is far outside rounding. */
static void test_momentum_changing_eta_differs(void **state) {
    (void)state;
    quadratic q;
    quadratic_init(&q);
    double ratio = momentum_vs_notes(&q, 1);
    print_message("momentum, eta drops 10x: max |ours - notes| = %.3g x the tolerance\n", ratio);
    if (ratio < 100)
        fail_msg("momentum with an LR drop: forms agree to %.3g x tolerance; expected a clear "
                 "difference",
                 ratio);
}

/* The notes' NAG: v = gamma*v + eta*grad(theta - gamma*v); theta = theta - v. torch's
 * nesterov=True tracks the look-ahead point phi = theta - gamma*v with buf = v/eta; for constant
 * eta our parameters equal the notes' theta - gamma*v at every step. */
static void test_nesterov_is_notes_nag_at_the_lookahead_point(void **state) {
    (void)state;
    const double gamma = 0.9, eta = 0.05;
    quadratic q;
    quadratic_init(&q);
    dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_NESTEROV, .lr = eta, .momentum = gamma});
    float p[N];
    double th[N], v[N] = {0}, phi[N];
    memcpy(p, q.theta0, sizeof p);
    for (int i = 0; i < N; i++)
        th[i] = q.theta0[i];
    for (int t = 0; t < T; t++) {
        ours_step(o, &q, p, eta);
        for (int i = 0; i < N; i++) {
            v[i] = gamma * v[i] + eta * q.a[i] * (th[i] - gamma * v[i]);
            th[i] -= v[i];
            phi[i] = th[i] - gamma * v[i];
        }
        char what[48];
        snprintf(what, sizeof what, "nesterov step %d", t + 1);
        dpt_assert_close_f32_f64(what, p, phi, N, TRAJ_TOL, TRAJ_TOL);
    }
    dpt_optim_destroy(o);
}

/* The notes' Adadelta is torch's with lr = 1 (eps inside both square roots in both):
 * G = g*G + (1-g)grad^2; d = sqrt(H + eps)/sqrt(G + eps) * grad; theta -= d;
 * H = g*H + (1-g) d^2. */
static void test_adadelta_is_notes_form(void **state) {
    (void)state;
    const double rho = 0.9, eps = 1e-6;
    quadratic q;
    quadratic_init(&q);
    dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADADELTA, .rho = rho, .eps = eps});
    float p[N];
    double th[N], G[N] = {0}, H[N] = {0};
    memcpy(p, q.theta0, sizeof p);
    for (int i = 0; i < N; i++)
        th[i] = q.theta0[i];
    for (int t = 0; t < T; t++) {
        ours_step(o, &q, p, 1.0);
        for (int i = 0; i < N; i++) {
            double g = q.a[i] * th[i];
            G[i] = rho * G[i] + (1 - rho) * g * g;
            double d = sqrt(H[i] + eps) / sqrt(G[i] + eps) * g;
            th[i] -= d;
            H[i] = rho * H[i] + (1 - rho) * d * d;
        }
        dpt_assert_close_f32_f64("adadelta vs notes", p, th, N, TRAJ_TOL, TRAJ_TOL);
    }
    dpt_optim_destroy(o);
}

/* Where eps sits matters only when |g| is near sqrt(eps): the notes' Adagrad/RMSprop/Adam put
 * eps under the root, torch adds it to the root. First Adagrad step, eps = 1e-8:
 *   |g| = 1e-4 (= sqrt(eps)): notes lr*g/sqrt(g^2 + eps) = lr/sqrt(2), torch lr*g/(|g| + eps) ~ lr
 *   |g| = 1:                  both lr to 1e-8. */
static void test_eps_placement_matters_only_near_sqrt_eps(void **state) {
    (void)state;
    const double lr = 0.1, eps = 1e-8;
    float p[2] = {0, 0}, g[2] = {1e-4f, 1.0f};
    dpt_optim *o = NULL;
    assert_int_equal(
        dpt_optim_create(&o, &(dpt_optim_cfg){.kind = DPT_OPTIM_ADAGRAD, .eps = eps}, 2, NULL, 0),
        DPT_OK);
    assert_int_equal(dpt_optim_step(o, p, g, lr), DPT_OK);
    double notes0 = lr * g[0] / sqrt((double)g[0] * g[0] + eps);
    double notes1 = lr * g[1] / sqrt((double)g[1] * g[1] + eps);
    assert_true(fabs(-p[0] - lr * g[0] / (g[0] + eps)) <= 1e-6 * lr); /* torch's form */
    assert_true(fabs(notes0 - lr / sqrt(2.0)) <= 1e-3 * lr);          /* the notes' form */
    assert_true(-p[0] - notes0 > 0.25 * lr);                          /* 29% apart */
    assert_true(fabs(-p[1] - notes1) <= 1e-6 * lr);                   /* indistinguishable */
    dpt_optim_destroy(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_momentum_constant_eta_trajectories_equal),
        cmocka_unit_test(test_momentum_changing_eta_differs),
        cmocka_unit_test(test_nesterov_is_notes_nag_at_the_lookahead_point),
        cmocka_unit_test(test_adadelta_is_notes_form),
        cmocka_unit_test(test_eps_placement_matters_only_near_sqrt_eps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
