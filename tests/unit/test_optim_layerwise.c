/* LARS and LAMB, which torch.optim does not have. Oracle: the papers' update equations written
 * out below in double (LARS: You, Gitman, Ginsburg 2017, Algorithm 1; LAMB: You et al. 2019,
 * Algorithm 2 with phi(z) = z), per layer, with biases and norm parameters excluded from the
 * trust ratio and the decay as the papers do; tolerance that of torch trajectories (golden
 * README §2: 1e-5 absolute and relative). Plus the defining property of LARS: a layer's update
 * scales with its weight norm. */
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

#define SEED 777u
#define TRAJ_TOL 1e-5

enum { N = 40, T = 6, NSEG = 4 };

/* Two "layers": conv weight + bias, dense weight + batch-norm gamma. */
static const dpt_optim_segment segs[NSEG] = {
    {.offset = 0, .length = 24, .role = DPT_ROLE_WEIGHT, .name = "00_conv2d/weight"},
    {.offset = 24, .length = 4, .role = DPT_ROLE_BIAS, .name = "00_conv2d/bias"},
    {.offset = 28, .length = 10, .role = DPT_ROLE_WEIGHT, .name = "02_dense/weight"},
    {.offset = 38, .length = 2, .role = DPT_ROLE_NORM, .name = "01_batchnorm2d/gamma"},
};

static double norm_d(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

static int excluded(int s) {
    return segs[s].role != DPT_ROLE_WEIGHT;
}

/* Algorithm 1 (LARS): for each layer l,
 *   g = grad;  lambda = eta * |w| / (|g| + beta * |w|);
 *   v = m * v + gamma_t * lambda * (g + beta * w);  w = w - v
 * excluded layers: lambda = 1 and beta = 0. */
static void lars_paper(double *w, double *v, const double *g, double gamma_t, double m, double beta,
                       double eta) {
    for (int s = 0; s < NSEG; s++) {
        int o = (int)segs[s].offset, n = (int)segs[s].length;
        double b = excluded(s) ? 0 : beta;
        double lambda = 1;
        if (!excluded(s))
            lambda = eta * norm_d(w + o, n) / (norm_d(g + o, n) + b * norm_d(w + o, n));
        for (int i = o; i < o + n; i++) {
            v[i] = m * v[i] + gamma_t * lambda * (g[i] + b * w[i]);
            w[i] -= v[i];
        }
    }
}

/* Algorithm 2 (LAMB): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; m^ = m/(1-b1^t);
 * v^ = v/(1-b2^t); r = m^/(sqrt(v^) + eps); per layer
 *   w = w - eta_t * |w| / |r + lambda w| * (r + lambda w)
 * excluded layers: ratio 1 and lambda = 0. */
static void lamb_paper(double *w, double *m, double *v, const double *g, int t, double eta_t,
                       double b1, double b2, double eps, double lambda) {
    double u[N];
    for (int i = 0; i < N; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    }
    for (int s = 0; s < NSEG; s++) {
        int o = (int)segs[s].offset, n = (int)segs[s].length;
        double lam = excluded(s) ? 0 : lambda;
        for (int i = o; i < o + n; i++) {
            double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            u[i] = mh / (sqrt(vh) + eps) + lam * w[i];
        }
        double ratio = excluded(s) ? 1 : norm_d(w + o, n) / norm_d(u + o, n);
        for (int i = o; i < o + n; i++)
            w[i] -= eta_t * ratio * u[i];
    }
}

static void run_against_paper(const dpt_optim_cfg *cfg, int lamb) {
    dpt_optim *o = NULL;
    if (dpt_optim_create(&o, cfg, N, segs, NSEG) != DPT_OK)
        fail_msg("create: %s", dpt_last_error());
    const dpt_optim_cfg *c = dpt_optim_config(o);
    float p[N], g[N];
    double w[N], g_d[N], s1[N] = {0}, s2[N] = {0};
    dpt_fill_uniform(p, N, -0.5f, 0.5f, SEED, 1);
    for (int i = 0; i < N; i++)
        w[i] = p[i];
    for (int t = 1; t <= T; t++) {
        double lr = c->lr * (1.0 - 0.1 * (t - 1)); /* a decaying global LR */
        dpt_fill_uniform(g, N, -1, 1, SEED, 10 + (uint32_t)t);
        for (int i = 0; i < N; i++)
            g_d[i] = g[i];
        assert_int_equal(dpt_optim_step(o, p, g, lr), DPT_OK);
        if (lamb)
            lamb_paper(w, s1, s2, g_d, t, lr, c->betas[0], c->betas[1], c->eps, c->weight_decay);
        else
            lars_paper(w, s1, g_d, lr, c->momentum, c->weight_decay, c->trust_coefficient);
        char what[64];
        snprintf(what, sizeof what, "%s step %d", lamb ? "lamb" : "lars", t);
        dpt_assert_close_f32_f64(what, p, w, N, TRAJ_TOL, TRAJ_TOL);
    }
    dpt_optim_destroy(o);
}

static void test_lars_matches_paper(void **state) {
    (void)state;
    run_against_paper(&(dpt_optim_cfg){.kind = DPT_OPTIM_LARS, .lr = 2.0, .weight_decay = 5e-4}, 0);
    /* without momentum: v is the step itself */
    run_against_paper(&(dpt_optim_cfg){.kind = DPT_OPTIM_LARS,
                                       .lr = 1.0,
                                       .weight_decay = 1e-2,
                                       .trust_coefficient = 0.02,
                                       .literal_zero = DPT_OPTIM_F_MOMENTUM},
                      0);
}

static void test_lamb_matches_paper(void **state) {
    (void)state;
    run_against_paper(&(dpt_optim_cfg){.kind = DPT_OPTIM_LAMB, .lr = 0.01, .weight_decay = 0.01},
                      1);
    run_against_paper(&(dpt_optim_cfg){.kind = DPT_OPTIM_LAMB,
                                       .lr = 0.05,
                                       .betas = {0.8, 0.95},
                                       .eps = 1e-4,
                                       .weight_decay = 0.1},
                      1);
}

/* Property: with the same gradient, a layer whose weights are c times larger gets a c times
 * larger LARS update (lambda is proportional to |w|). For c = 4 the scaling is exact in binary,
 * so the momentum buffers (the first step's updates) agree bit for bit; for c = 3 to rounding.
 * The update's norm is lr * eta * |w| (closed form without weight decay). */
static void test_lars_update_scales_with_weight_norm(void **state) {
    (void)state;
    enum { n = 50 };
    const float factors[] = {4.0f, 3.0f};
    for (int f = 0; f < 2; f++) {
        dpt_optim_segment two[] = {{.offset = 0, .length = n, .name = "a/weight"},
                                   {.offset = n, .length = n, .name = "b/weight"}};
        dpt_optim *o = NULL;
        assert_int_equal(dpt_optim_create(&o, &(dpt_optim_cfg){.kind = DPT_OPTIM_LARS, .lr = 0.5},
                                          2 * n, two, 2),
                         DPT_OK);
        float p[2 * n], g[2 * n];
        dpt_fill_uniform(p, n, -1, 1, SEED, 40);
        dpt_fill_uniform(g, n, -1, 1, SEED, 41);
        for (int i = 0; i < n; i++) {
            p[n + i] = factors[f] * p[i];
            g[n + i] = g[i];
        }
        double wnorm = dpt_norm2(p, n);
        assert_int_equal(dpt_optim_step(o, p, g, 0.5), DPT_OK);
        dpt_optim_state st;
        dpt_optim_state_export(o, &st);
        assert_int_equal(st.n_slots, 1);
        const float *v = st.slots[0];
        if (f == 0) {
            for (int i = 0; i < n; i++)
                assert_true(v[n + i] == 4.0f * v[i]);
        } else {
            double scaled[n];
            for (int i = 0; i < n; i++)
                scaled[i] = 3.0 * v[i];
            dpt_assert_close_f32_f64("3x layer update", v + n, scaled, n, 0, 4e-7);
        }
        double want = 0.5 * 1e-3 * wnorm; /* lr * eta * |w| */
        assert_true(fabs(dpt_norm2(v, n) - want) <= 1e-6 * want);
        dpt_optim_destroy(o);
    }
}

/* A layer whose weights are all zero (or whose gradient is zero) gets trust ratio 1 instead of
 * a 0/0, so it still moves: the plain momentum-SGD step lr * g. */
static void test_zero_norm_layer_moves(void **state) {
    (void)state;
    enum { n = 8 };
    const dpt_optim_kind kinds[] = {DPT_OPTIM_LARS, DPT_OPTIM_LAMB};
    for (int k = 0; k < 2; k++) {
        dpt_optim *o = NULL;
        assert_int_equal(
            dpt_optim_create(&o, &(dpt_optim_cfg){.kind = kinds[k], .lr = 0.1}, n, NULL, 0),
            DPT_OK);
        float p[n] = {0}, g[n];
        dpt_fill_uniform(g, n, 0.5f, 1.0f, SEED, 50);
        assert_int_equal(dpt_optim_step(o, p, g, 0.1), DPT_OK);
        for (int i = 0; i < n; i++) {
            double want = kinds[k] == DPT_OPTIM_LARS ? -0.1 * g[i] : -0.1 * g[i] / (g[i] + 1e-6);
            assert_true(isfinite(p[i]) && fabs(p[i] - want) <= 1e-6 * fabs(want));
        }
        dpt_optim_destroy(o);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lars_matches_paper),
        cmocka_unit_test(test_lamb_matches_paper),
        cmocka_unit_test(test_lars_update_scales_with_weight_norm),
        cmocka_unit_test(test_zero_norm_layer_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
