/* Gradient noise scale estimators (McCandlish et al. 2018, appendix A.1). Oracles: a synthetic
 * per-sample gradient distribution g ~ N(G, diag(sigma^2)) with known |G|^2 and tr(Sigma) (Philox
 * normals, fixed seed), where the estimators' means over many trials must fall within 4 standard
 * errors (measured from the trials themselves) of the truth; the exact algebra of the estimators;
 * the moving averages computed by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "dpt/noise_scale.h"
#include "dpt/rng.h"

#define D 16        /* gradient dimension */
#define TRIALS 10000
#define SEED 20181214u

typedef struct {
    double G[D], var[D]; /* true mean gradient and per-coordinate variance */
    double grad_sq, trace;
} dist;

static dist make_dist(void) {
    dist d = {.grad_sq = 0, .trace = 0};
    for (int i = 0; i < D; i++) {
        d.G[i] = 0.25 * (i % 2 ? 1 : -1); /* |G|^2 = 1 */
        d.var[i] = 1.0 + (double)i / D;   /* tr(Sigma) = 16 + 7.5 = 23.5 */
        d.grad_sq += d.G[i] * d.G[i];
        d.trace += d.var[i];
    }
    return d;
}

/* sum[0..D) += the per-sample gradients of `count` samples drawn from the stream. */
static void add_samples(double *sum, const dist *d, dpt_rng *r, int64_t count) {
    for (int64_t s = 0; s < count; s++)
        for (int i = 0; i < D; i++)
            sum[i] += d->G[i] + sqrt(d->var[i]) * dpt_rng_normal(r);
}

/* |sum / count|^2 */
static double mean_sq(const double *sum, int64_t count) {
    double q = 0;
    for (int i = 0; i < D; i++)
        q += (sum[i] / (double)count) * (sum[i] / (double)count);
    return q;
}

/* One trial: a small batch of b_small samples nested in a big batch of b_big, and the two-size
 * estimate from their mean gradients. */
static dpt_noise_estimate draw_estimate(const dist *d, dpt_rng *r, int64_t b_small, int64_t b_big) {
    double small[D] = {0}, big[D];
    add_samples(small, d, r, b_small);
    for (int i = 0; i < D; i++)
        big[i] = small[i];
    add_samples(big, d, r, b_big - b_small);
    return dpt_noise_estimate_make(mean_sq(small, b_small), b_small, mean_sq(big, b_big), b_big);
}

/* Welford's running mean and variance. */
typedef struct {
    int64_t n;
    double mean, m2;
} running;

static void running_add(running *s, double x) {
    s->n++;
    double delta = x - s->mean;
    s->mean += delta / (double)s->n;
    s->m2 += delta * (x - s->mean);
}

static double running_se(const running *s) { /* standard error of the mean */
    return sqrt(s->m2 / (double)(s->n - 1) / (double)s->n);
}

/* Mean within 4 standard errors of the truth (a false alarm has probability 6e-5, and the seed is
 * fixed), and a standard error below 2 % of the truth, so the check has power. */
static void check_unbiased(const running *s, double truth, const char *what) {
    double se = running_se(s);
    printf("  %-8s mean %.5f  truth %.5f  (%.2f standard errors, se %.2g)\n", what, s->mean,
           truth, (s->mean - truth) / se, se);
    assert_true(fabs(s->mean - truth) <= 4 * se);
    assert_true(se <= 0.02 * truth);
}

/* The paper's setting: a small batch inside a big batch (the trainer's small batch is one
 * rank's slice of the global batch; the two means are correlated, which does not bias either). */
static void test_two_sizes_unbiased(void **state) {
    (void)state;
    dist d = make_dist();
    const int64_t b_small = 8, b_big = 32;
    running g = {0}, s = {0};
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(SEED, DPT_RNG_TEST, 0), 0, 0);
    printf("seed %u, %d trials, b_small %lld, b_big %lld\n", SEED, TRIALS, (long long)b_small,
           (long long)b_big);
    for (int t = 0; t < TRIALS; t++) {
        dpt_noise_estimate e = draw_estimate(&d, &r, b_small, b_big);
        running_add(&g, e.grad_sq);
        running_add(&s, e.trace);
    }
    check_unbiased(&g, d.grad_sq, "|G|^2");
    check_unbiased(&s, d.trace, "tr(S)");
}

/* The trainer with R ranks that do not divide the global batch (b = 10 on 3 ranks: slices of 4,
 * 3, 3): each rank's pair with its own b_r, averaged over the ranks, is unbiased too. The slices
 * hold sum / b, as the loss scales them; the trainer rescales by (b / b_r)^2. */
static void test_uneven_slices_unbiased(void **state) {
    (void)state;
    dist d = make_dist();
    enum { R = 3 };
    const int64_t b = 10, slice[R] = {4, 3, 3};
    running g = {0}, s = {0};
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(SEED, DPT_RNG_TEST, 1), 0, 0);
    for (int t = 0; t < TRIALS; t++) {
        double local[R][D] = {{0}}, global[D] = {0};
        for (int k = 0; k < R; k++) {
            add_samples(local[k], &d, &r, slice[k]);
            for (int i = 0; i < D; i++) {
                local[k][i] /= (double)b; /* g_local = (sum over the slice) / b */
                global[i] += local[k][i];
            }
        }
        double big_sq = mean_sq(global, 1), sum_g = 0, sum_s = 0;
        for (int k = 0; k < R; k++) {
            double up = (double)b / (double)slice[k];
            dpt_noise_estimate e =
                dpt_noise_estimate_make(mean_sq(local[k], 1) * up * up, slice[k], big_sq, b);
            sum_g += e.grad_sq;
            sum_s += e.trace;
        }
        running_add(&g, sum_g / R);
        running_add(&s, sum_s / R);
    }
    check_unbiased(&g, d.grad_sq, "|G|^2");
    check_unbiased(&s, d.trace, "tr(S)");
}

/* Exact algebra: with the expectations themselves as input, the estimators return |G|^2 and S. */
static void test_estimator_inverts_expectation(void **state) {
    (void)state;
    const double G2 = 0.37, S = 912.5;
    const int64_t sizes[][2] = {{1, 2}, {32, 64}, {3, 10}, {16, 128}, {1000, 1001}};
    const double eps = 0x1p-52;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        double bs = (double)sizes[k][0], bb = (double)sizes[k][1];
        double small = G2 + S / bs, big = G2 + S / bb;
        dpt_noise_estimate e = dpt_noise_estimate_make(small, sizes[k][0], big, sizes[k][1]);
        /* Both are differences that cancel: a few roundings of the terms' sizes, divided by the
         * denominators (bb - bs, 1/bs - 1/bb), bound the error. */
        assert_true(fabs(e.grad_sq - G2) <= 4 * eps * (bb * big + bs * small) / (bb - bs));
        assert_true(fabs(e.trace - S) <= 4 * eps * (small + big) / (1 / bs - 1 / bb));
    }
}

/* The moving averages by hand, with decay 1/2 (exact in binary). */
static void test_ema_by_hand(void **state) {
    (void)state;
    dpt_noise_ema e;
    dpt_noise_ema_init(&e, 0.5);
    assert_true(isnan(dpt_noise_ema_value(&e).grad_sq) && isnan(dpt_noise_ema_value(&e).trace));
    assert_true(isnan(dpt_noise_ema_b_simple(&e)));
    /* 1: m = 0.5 * 4 = 2, corrected by 1 - 0.5 = 0.5: the first estimate itself */
    dpt_noise_ema_update(&e, (dpt_noise_estimate){.grad_sq = 4, .trace = 40});
    assert_true(dpt_noise_ema_value(&e).grad_sq == 4 && dpt_noise_ema_value(&e).trace == 40);
    assert_true(dpt_noise_ema_b_simple(&e) == 10);
    /* 2: m = 0.5 * 2 + 0.5 * 1 = 1.5 and 0.5 * 20 + 0.5 * 70 = 45, corrected by 0.75 */
    dpt_noise_ema_update(&e, (dpt_noise_estimate){.grad_sq = 1, .trace = 70});
    assert_true(dpt_noise_ema_value(&e).grad_sq == 2 && dpt_noise_ema_value(&e).trace == 60);
    assert_true(dpt_noise_ema_b_simple(&e) == 30);
    /* 3: a negative |G|^2 estimate (noise) is averaged, not dropped: m = 0.75 - 0.5 * 3.25 =
     * -0.875 and 22.5 + 0.5 * 5 = 25, corrected by 0.875 */
    dpt_noise_ema_update(&e, (dpt_noise_estimate){.grad_sq = -3.25, .trace = 5});
    assert_true(dpt_noise_ema_value(&e).grad_sq == -1);
    assert_true(fabs(dpt_noise_ema_value(&e).trace - 25 / 0.875) <= 1e-15 * 25 / 0.875);
    assert_true(dpt_noise_ema_b_simple(&e) < 0); /* reported as is */

    /* decay 0: no smoothing, the last estimate; the default: a constant input stays constant */
    dpt_noise_ema_init(&e, 0);
    dpt_noise_ema_update(&e, (dpt_noise_estimate){.grad_sq = 4, .trace = 40});
    dpt_noise_ema_update(&e, (dpt_noise_estimate){.grad_sq = 2, .trace = 30});
    assert_true(dpt_noise_ema_b_simple(&e) == 15);
    dpt_noise_ema_init(&e, DPT_NOISE_EMA_DECAY_DEFAULT);
    for (int k = 0; k < 100; k++)
        dpt_noise_ema_update(&e, (dpt_noise_estimate){.grad_sq = 0.5, .trace = 64});
    assert_true(fabs(dpt_noise_ema_value(&e).grad_sq - 0.5) <= 1e-14);
    assert_true(fabs(dpt_noise_ema_b_simple(&e) - 128) <= 1e-12);
}

/* The averages of the estimates converge on B_simple = tr(Sigma) / |G|^2 (23.5). Bound: each
 * average has a relative standard deviation of about (sd / mean of the single estimates) *
 * sqrt((1 - d) / (1 + d)); the ratio's is at most the sum of the two (whatever their correlation);
 * 4 of those. */
static void test_ema_b_simple_converges(void **state) {
    (void)state;
    dist d = make_dist();
    const int64_t b_small = 8, b_big = 32;
    const double decay = 0.999;
    dpt_noise_ema e;
    dpt_noise_ema_init(&e, decay);
    running g = {0}, s = {0};
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(SEED, DPT_RNG_TEST, 2), 0, 0);
    for (int t = 0; t < TRIALS; t++) {
        dpt_noise_estimate x = draw_estimate(&d, &r, b_small, b_big);
        dpt_noise_ema_update(&e, x);
        running_add(&g, x.grad_sq);
        running_add(&s, x.trace);
    }
    double rel_g = sqrt(g.m2 / (double)(g.n - 1)) / d.grad_sq;
    double rel_s = sqrt(s.m2 / (double)(s.n - 1)) / d.trace;
    double rel = (rel_g + rel_s) * sqrt((1 - decay) / (1 + decay));
    double want = d.trace / d.grad_sq, got = dpt_noise_ema_b_simple(&e);
    printf("  B_simple %.4f, truth %.4f, bound %.1f %%\n", got, want, 400 * rel);
    assert_true(fabs(got - want) <= 4 * rel * want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_sizes_unbiased),
        cmocka_unit_test(test_uneven_slices_unbiased),
        cmocka_unit_test(test_estimator_inverts_expectation),
        cmocka_unit_test(test_ema_by_hand),
        cmocka_unit_test(test_ema_b_simple_converges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
