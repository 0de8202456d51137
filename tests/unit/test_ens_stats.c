/* Ensemble arithmetic (dpt/ensemble.h). Oracles: hand-worked examples with the arithmetic in the
 * comments (dyadic numbers, so the expected values are exact), golden vectors computed by
 * scikit-learn 1.2.1 itself (tests/fixtures/sklearn_reference.h: AdaBoostClassifier SAMME,
 * BaggingClassifier OOB), the identity loss = bias + variance for squared error, and naive
 * loops in this file for the sub-ensembles of dpt_bias_variance_by_size. */
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
#include "dpt/ensemble.h"
#include "dpt/rng.h"

#include "../fixtures/sklearn_reference.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_argmax_ties_and_nan(void **state) {
    (void)state;
    const float a[] = {0.25f, 0.5f, 0.5f, -1.0f};
    assert_int_equal(dpt_argmax_f32(a, 4), 1); /* tie between 1 and 2: the lowest */
    const float b[] = {NAN, 0.1f, NAN, 0.3f};
    assert_int_equal(dpt_argmax_f32(b, 4), 3); /* NaN is never chosen */
    const float c[] = {NAN, NAN};
    assert_int_equal(dpt_argmax_f32(c, 2), 0); /* all NaN: 0 */
    const double d[] = {-INFINITY, -INFINITY, -1e300};
    assert_int_equal(dpt_argmax_f64(d, 3), 2);
    assert_int_equal(dpt_argmax_f64(d, 2), 0);
    const double e[] = {1.0, NAN, 1.0 + DBL_EPSILON};
    assert_int_equal(dpt_argmax_f64(e, 3), 2); /* doubles are not rounded to float */
}

/* Hand-worked: G = 2 members, n = 2 samples, K = 3 classes.
 *   p0 = [[0.5, 0.25, 0.25], [0, 0.5, 0.5]]     argmax rows: 0, 1 (tie 1/2 -> 1)
 *   p1 = [[0, 0.75, 0.25],  [0.25, 0.25, 0.5]]   argmax rows: 1, 2
 * soft, w = 1, 1: score = mean: [[0.25, 0.5, 0.25], [0.125, 0.375, 0.5]] -> pred 1, 2
 * soft, w = 1, 3: score = (p0 + 3 p1) / 4: row 0 = [0.125, 0.625, 0.25]  -> 1
 *                                         row 1 = [0.1875, 0.3125, 0.5] -> 2
 * hard, w = 1, 1: votes row 0 = {0, 1} -> [0.5, 0.5, 0] -> tie -> 0; row 1 = {1, 2} -> 1
 * hard, w = 1, 3: row 0 = [0.25, 0.75, 0] -> 1; row 1 = [0, 0.25, 0.75] -> 2 */
static void test_combine_hand_worked(void **state) {
    (void)state;
    static const float p0[] = {0.5f, 0.25f, 0.25f, 0.0f, 0.5f, 0.5f};
    static const float p1[] = {0.0f, 0.75f, 0.25f, 0.25f, 0.25f, 0.5f};
    const float *const probs[] = {p0, p1};
    static const double w13[] = {1.0, 3.0};
    float score[6];
    int32_t pred[2];
    static const struct {
        const double *w;
        dpt_vote vote;
        float score[6];
        int32_t pred[2];
    } cases[] = {
        {NULL, DPT_VOTE_SOFT, {0.25f, 0.5f, 0.25f, 0.125f, 0.375f, 0.5f}, {1, 2}},
        {w13, DPT_VOTE_SOFT, {0.125f, 0.625f, 0.25f, 0.1875f, 0.3125f, 0.5f}, {1, 2}},
        {NULL, DPT_VOTE_HARD, {0.5f, 0.5f, 0.0f, 0.0f, 0.5f, 0.5f}, {0, 1}},
        {w13, DPT_VOTE_HARD, {0.25f, 0.75f, 0.0f, 0.0f, 0.25f, 0.75f}, {1, 2}},
    };
    for (size_t c = 0; c < N_OF(cases); c++) {
        dpt_ensemble_combine(score, pred, probs, cases[c].w, 2, 2, 3, cases[c].vote);
        assert_memory_equal(score, cases[c].score, sizeof score);
        assert_memory_equal(pred, cases[c].pred, sizeof pred);
        int32_t pred2[2];
        dpt_ensemble_combine(NULL, pred2, probs, cases[c].w, 2, 2, 3, cases[c].vote);
        assert_memory_equal(pred2, pred, sizeof pred);
    }
}

/* More than the 1024 classes that fit the stack buffer: the heap path gives the same votes. */
static void test_combine_many_classes(void **state) {
    (void)state;
    enum { K = 1500, G = 3 };
    static float p[G][K];
    for (int m = 0; m < G; m++)
        dpt_fill_uniform(p[m], K, 0.0f, 1.0f, 11, (uint32_t)m);
    p[0][1400] = p[1][1400] = 2.0f; /* two of three members vote for class 1400 */
    const float *const probs[] = {p[0], p[1], p[2]};
    int32_t pred;
    float score[K];
    dpt_ensemble_combine(score, &pred, probs, NULL, G, 1, K, DPT_VOTE_HARD);
    assert_int_equal(pred, 1400);
    assert_true(fabsf(score[1400] - 2.0f / 3.0f) <= FLT_EPSILON);
    dpt_ensemble_combine(score, &pred, probs, NULL, G, 1, K, DPT_VOTE_SOFT);
    assert_int_equal(pred, 1400);
}

static void test_accuracy(void **state) {
    (void)state;
    const int32_t pred[] = {0, 1, 2, 2}, y[] = {0, 1, 1, 2};
    assert_true(dpt_accuracy(pred, y, 4) == 0.75);
    assert_true(isnan(dpt_accuracy(pred, y, 0)));
}

/* Hand-worked OOB: n = 3, K = 2, two members.
 *   member 0: probs [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75]], in bag {1, 0, 0}
 *   member 1: probs [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]],     in bag {2, 0, 1}
 * sum = [[0, 0], [0.5, 1.5], [0.25, 0.75]], count = {0, 2, 1}
 * decision = [[NaN, NaN], [0.25, 0.75], [0.25, 0.75]]; argmax rows 1, 2: 1, 1
 * y = {0, 1, 0}: scored samples 1, 2; correct 1 -> score 0.5, n_never 1 */
static void test_oob_hand_worked(void **state) {
    (void)state;
    static const float p0[] = {0.75f, 0.25f, 0.5f, 0.5f, 0.25f, 0.75f};
    static const float p1[] = {0.5f, 0.5f, 0.0f, 1.0f, 1.0f, 0.0f};
    const int32_t bag0[] = {1, 0, 0}, bag1[] = {2, 0, 1}, y[] = {0, 1, 0};
    double sum[6] = {0}, decision[6];
    int64_t count[3] = {0};
    dpt_oob_add(sum, count, p0, bag0, 3, 2);
    dpt_oob_add(sum, count, p1, bag1, 3, 2);
    const double sum_ref[] = {0, 0, 0.5, 1.5, 0.25, 0.75};
    const int64_t count_ref[] = {0, 2, 1};
    assert_memory_equal(sum, sum_ref, sizeof sum);
    assert_memory_equal(count, count_ref, sizeof count);
    dpt_oob_result r = dpt_oob_score(decision, sum, count, y, 3, 2);
    assert_true(r.score == 0.5);
    assert_int_equal(r.n_scored, 2);
    assert_int_equal(r.n_never, 1);
    assert_true(isnan(decision[0]) && isnan(decision[1]));
    const double dec_ref[] = {0.25, 0.75, 0.25, 0.75};
    assert_memory_equal(decision + 2, dec_ref, sizeof dec_ref);
    r = dpt_oob_score(NULL, sum, (const int64_t[]){0, 0, 0}, y, 3, 2);
    assert_true(isnan(r.score) && r.n_never == 3);
}

/* Golden: BaggingClassifier(oob_score=True) with scikit-learn's own bootstrap draws. The sums
 * add float32 values into doubles in member order, as scikit-learn does, so the decision is
 * within a couple of roundings of scikit-learn's: rtol 4 eps. */
static void test_oob_matches_sklearn(void **state) {
    (void)state;
    for (size_t c = 0; c < N_OF(sk_bag_cases); c++) {
        int64_t n = sk_bag_cases[c].n, K = sk_bag_cases[c].K;
        int G = sk_bag_cases[c].G;
        double *sum = calloc((size_t)(n * K), sizeof *sum);
        double *decision = calloc((size_t)(n * K), sizeof *decision);
        int64_t *count = calloc((size_t)n, sizeof *count);
        float *score = calloc((size_t)(n * K), sizeof *score);
        int32_t *pred = calloc((size_t)n, sizeof *pred);
        const float **probs = calloc((size_t)G, sizeof *probs);
        assert_true(sum && decision && count && score && pred && probs);
        for (int m = 0; m < G; m++) {
            probs[m] = sk_bag_cases[c].probs + (int64_t)m * n * K;
            dpt_oob_add(sum, count, probs[m], sk_bag_cases[c].in_bag + (int64_t)m * n, n, K);
        }
        dpt_oob_result r = dpt_oob_score(decision, sum, count, sk_bag_cases[c].y, n, K);
        assert_int_equal(r.n_never, sk_bag_cases[c].n_never);
        assert_int_equal(r.n_scored, n - sk_bag_cases[c].n_never);
        assert_true(r.score == sk_bag_cases[c].oob_score_scored); /* a ratio of counts */
        if (r.n_never == 0)
            assert_true(r.score == sk_bag_cases[c].oob_score);
        for (int64_t i = 0; i < n; i++) {
            if (count[i] == 0) {
                for (int64_t k = 0; k < K; k++)
                    assert_true(isnan(decision[i * K + k]));
                continue;
            }
            dpt_assert_close_f64("oob decision", decision + i * K,
                                 sk_bag_cases[c].oob_decision + i * K, K, 0.0, 4 * DBL_EPSILON);
        }
        /* predict_proba: the soft vote, sum over members then / G; float output: rtol 2^-24 */
        dpt_ensemble_combine(score, pred, probs, NULL, G, n, K, DPT_VOTE_SOFT);
        dpt_assert_close_f32_f64("bagging predict_proba", score, sk_bag_cases[c].proba, n * K, 0.0,
                                 FLT_EPSILON);
        for (int64_t i = 0; i < n; i++) { /* naive argmax of scikit-learn's probabilities */
            int64_t best = 0;
            for (int64_t k = 1; k < K; k++)
                if (sk_bag_cases[c].proba[i * K + k] > sk_bag_cases[c].proba[i * K + best])
                    best = k;
            assert_int_equal(pred[i], best);
        }
        free(sum);
        free(decision);
        free(count);
        free(score);
        free(pred);
        free(probs);
    }
}

/* Hand-worked SAMME, n = 4, K = 3, lr = 1, w = 1/4 each, sample 0 misclassified:
 *   err = 0.25 / 1 = 0.25; alpha = log(0.75 / 0.25) + log(2) = log 6
 *   w0 <- 0.25 * 6 = 1.5, others 0.25; sum 2.25 -> w = {2/3, 1/9, 1/9, 1/9}
 * (exp(log(0.25) + log 6) is 1.5 up to two roundings of exp/log: rtol 8 eps.)
 * The same round as the last: weights untouched. err = 0: PERFECT, alpha 1. K = 2 with
 * err = 0.5 and K = 4 with err = 0.75 (= 1 - 1/K exactly): TOO_WEAK, alpha 0. */
static void test_samme_hand_worked(void **state) {
    (void)state;
    double w[4] = {0.25, 0.25, 0.25, 0.25};
    const unsigned char inc[4] = {1, 0, 0, 0};
    dpt_samme_round r;
    assert_int_equal(dpt_samme_update(w, inc, 4, 3, 1.0, 0, &r), DPT_OK);
    assert_int_equal(r.outcome, DPT_SAMME_CONTINUE);
    assert_true(r.err == 0.25);
    assert_true(fabs(r.alpha - log(6.0)) <= 2 * DBL_EPSILON * log(6.0));
    const double w_ref[] = {2.0 / 3.0, 1.0 / 9.0, 1.0 / 9.0, 1.0 / 9.0};
    dpt_assert_close_f64("samme weights", w, w_ref, 4, 0.0, 8 * DBL_EPSILON);
    double w_last[4] = {0.25, 0.25, 0.25, 0.25};
    assert_int_equal(dpt_samme_update(w_last, inc, 4, 3, 1.0, 1, &r), DPT_OK);
    assert_int_equal(r.outcome, DPT_SAMME_CONTINUE);
    assert_true(w_last[0] == 0.25 && w_last[1] == 0.25);
    /* lr scales alpha: 0.5 * log 6 */
    double w_half[4] = {0.25, 0.25, 0.25, 0.25};
    assert_int_equal(dpt_samme_update(w_half, inc, 4, 3, 0.5, 0, &r), DPT_OK);
    assert_true(fabs(r.alpha - 0.5 * log(6.0)) <= 2 * DBL_EPSILON * log(6.0));

    const unsigned char none[4] = {0};
    assert_int_equal(dpt_samme_update(w, none, 4, 3, 1.0, 0, &r), DPT_OK);
    assert_int_equal(r.outcome, DPT_SAMME_PERFECT);
    assert_true(r.err == 0.0 && r.alpha == 1.0);
    dpt_assert_close_f64("perfect round keeps weights", w, w_ref, 4, 0.0, 8 * DBL_EPSILON);

    double w2[2] = {1.0, 1.0};
    assert_int_equal(dpt_samme_update(w2, (const unsigned char[]){0, 1}, 2, 2, 1.0, 0, &r), DPT_OK);
    assert_int_equal(r.outcome, DPT_SAMME_TOO_WEAK);
    assert_true(r.err == 0.5 && r.alpha == 0.0 && w2[0] == 1.0 && w2[1] == 1.0);
    double w4[4] = {1.0, 1.0, 1.0, 1.0};
    assert_int_equal(dpt_samme_update(w4, (const unsigned char[]){1, 1, 0, 1}, 4, 4, 1.0, 0, &r),
                     DPT_OK);
    assert_int_equal(r.outcome, DPT_SAMME_TOO_WEAK);
    assert_true(r.err == 0.75 && w4[2] == 1.0);
}

/* Zero weights stay 0; a positive weight that normalizes below DBL_EPSILON is raised to it.
 *   w = {0.5, 0.5, 1e-20, 0}, sample 0 wrong, K = 3: err = 0.5 / (1 + 1e-20) = 0.5,
 *   alpha = log(1) + log(2) = log 2; w <- {1, 0.5, 1e-20, 0} / 1.5 = {2/3, 1/3, 6.7e-21, 0}
 *   -> the third is clipped to DBL_EPSILON. */
static void test_samme_zero_and_tiny_weights(void **state) {
    (void)state;
    double w[4] = {0.5, 0.5, 1e-20, 0.0};
    dpt_samme_round r;
    assert_int_equal(dpt_samme_update(w, (const unsigned char[]){1, 0, 0, 1}, 4, 3, 1.0, 0, &r),
                     DPT_OK);
    assert_true(r.err == 0.5);
    assert_true(fabs(r.alpha - log(2.0)) <= 2 * DBL_EPSILON);
    assert_true(fabs(w[0] - 2.0 / 3.0) <= 8 * DBL_EPSILON &&
                fabs(w[1] - 1.0 / 3.0) <= 8 * DBL_EPSILON);
    assert_true(w[2] == DBL_EPSILON && w[3] == 0.0);
}

static void test_samme_rejects_bad_input(void **state) {
    (void)state;
    const unsigned char inc[2] = {1, 0};
    dpt_samme_round r;
    double w[2] = {0.5, 0.5};
    assert_int_equal(dpt_samme_update(w, inc, 2, 1, 1.0, 0, &r), DPT_EINVAL);
    assert_int_equal(dpt_samme_update(w, inc, 2, 3, 0.0, 0, &r), DPT_EINVAL);
    assert_int_equal(dpt_samme_update(w, inc, 2, 3, NAN, 0, &r), DPT_EINVAL);
    double neg[2] = {0.5, -0.1}, nan_w[2] = {NAN, 1.0}, zero[2] = {0.0, 0.0};
    assert_int_equal(dpt_samme_update(neg, inc, 2, 3, 1.0, 0, &r), DPT_EINVAL);
    assert_int_equal(dpt_samme_update(nan_w, inc, 2, 3, 1.0, 0, &r), DPT_EINVAL);
    assert_int_equal(dpt_samme_update(zero, inc, 2, 3, 1.0, 0, &r), DPT_EINVAL);
    assert_true(w[0] == 0.5 && w[1] == 0.5); /* untouched */
    /* a learning rate large enough to overflow exp: ENONFINITE, the round still described */
    assert_int_equal(dpt_samme_update(w, inc, 2, 3, 1e4, 0, &r), DPT_ENONFINITE);
    assert_int_equal(r.outcome, DPT_SAMME_CONTINUE);
}

/* Golden: AdaBoostClassifier(algorithm="SAMME") run by scikit-learn on fixed predictions.
 * Tolerance: per round a weight goes through exp(log) (libm vs numpy: an ulp each), an n-term
 * sum and a division; compounded over T rounds, rtol = (n + 4) T eps. err is a ratio of sums
 * of those weights (same bound); alpha = lr (log((1-err)/err) + log(K-1)) moves by
 * lr rtol / (1 - err) for a relative change rtol of err, plus an ulp of the logs. */
static void test_samme_matches_sklearn(void **state) {
    (void)state;
    for (size_t c = 0; c < N_OF(sk_samme_cases); c++) {
        const sk_samme_case *sc = &sk_samme_cases[c];
        int64_t n = sc->n, K = sc->K;
        double rtol = (double)(n + 4) * sc->T * DBL_EPSILON;
        double *w = malloc((size_t)n * sizeof *w), alpha_kept[8];
        unsigned char *inc = malloc((size_t)n);
        assert_true(w && inc);
        memcpy(w, sc->w_fit, (size_t)n * sizeof *w);
        int kept = 0, t = 0;
        dpt_samme_round r = {0};
        for (t = 0; t < sc->T; t++) {
            dpt_assert_close_f64("weights given to fit", w, sc->w_fit + t * n, n, DBL_MIN, rtol);
            for (int64_t i = 0; i < n; i++)
                inc[i] = sc->pred[t * n + i] != sc->y[i];
            assert_int_equal(dpt_samme_update(w, inc, n, K, sc->lr, t == sc->T - 1, &r), DPT_OK);
            if (r.outcome == DPT_SAMME_TOO_WEAK) { /* discarded: sklearn keeps err 1, alpha 0 */
                assert_true(r.err >= 1.0 - 1.0 / (double)K);
                assert_true(sc->err[t] == 1.0 && sc->alpha[t] == 0.0 && r.alpha == 0.0);
                break;
            }
            dpt_assert_close_f64("estimator_errors_", &r.err, sc->err + t, 1, DBL_MIN, rtol);
            double atol_alpha = sc->lr * rtol / (1.0 - r.err) + 4 * DBL_EPSILON;
            dpt_assert_close_f64("estimator_weights_", &r.alpha, sc->alpha + t, 1, atol_alpha, 0.0);
            alpha_kept[kept++] = r.alpha;
            if (r.outcome != DPT_SAMME_CONTINUE)
                break;
        }
        assert_int_equal(r.outcome, sc->outcome);
        assert_int_equal(t == sc->T ? t : t + 1, sc->n_fit);
        assert_int_equal(kept, sc->n_kept);
        /* The prediction: hard vote of the kept rounds weighted by alpha. */
        float *onehot = calloc((size_t)(kept * n * K), sizeof *onehot);
        float *score = malloc((size_t)(n * K) * sizeof *score);
        int32_t *pred = malloc((size_t)n * sizeof *pred);
        const float *probs[8];
        assert_true(onehot && score && pred);
        for (int m = 0; m < kept; m++) {
            for (int64_t i = 0; i < n; i++)
                onehot[(m * n + i) * K + sc->pred[m * n + i]] = 1.0f;
            probs[m] = onehot + m * n * K;
        }
        dpt_ensemble_combine(score, pred, probs, alpha_kept, kept, n, K, DPT_VOTE_HARD);
        assert_memory_equal(pred, sc->predict, (size_t)n * sizeof *pred);
        if (sc->decision) /* float output of a ratio with relative error ~ rtol */
            dpt_assert_close_f32_f64("decision_function", score, sc->decision, n * K,
                                     FLT_EPSILON + rtol, FLT_EPSILON + rtol);
        free(w);
        free(inc);
        free(onehot);
        free(score);
        free(pred);
    }
}

/* Hand-worked 0-1 decomposition: M = 3 predictors, n = 4 samples, K = 3 classes, y = {0,1,2,0}.
 *   sample  labels (h1 h2 h3)  main          wrong vs y  off main
 *   0       0 0 1              0 (= y)       1           1
 *   1       2 0 1              0 (tie: low)  2           2   (main != y = 1: biased)
 *   2       1 1 1              1             3           0   (biased)
 *   3       2 1 2              2             3           1   (biased)
 * loss = 9 / 12 = 0.75; bias = 3 / 4; variance = 4 / 12 = 1/3;
 * unbiased variance = 1 / 12 (sample 0), biased variance = 3 / 12 (samples 1..3). */
static void test_bias_variance_01_hand_worked(void **state) {
    (void)state;
    const int32_t h1[] = {0, 2, 1, 2}, h2[] = {0, 0, 1, 1}, h3[] = {1, 1, 1, 2};
    const int32_t *const pred[] = {h1, h2, h3};
    const int32_t y[] = {0, 1, 2, 0};
    dpt_bias_variance bv;
    assert_int_equal(dpt_bias_variance_01(pred, 3, y, 4, 3, &bv), DPT_OK);
    assert_true(bv.loss == 9.0 / 12.0);
    assert_true(bv.bias == 0.75);
    assert_true(bv.variance == 4.0 / 12.0);
    assert_true(bv.variance_unbiased == 1.0 / 12.0);
    assert_true(bv.variance_biased == 3.0 / 12.0);
}

/* Hand-worked squared decomposition: M = 2, n = 2, K = 2.
 *   sample 0, y = 0: p1 = (1, 0), p2 = (0.5, 0.5); pbar = (0.75, 0.25)
 *     bias  = (0.75 - 1)^2 + 0.25^2 = 0.125
 *     var   = mean(0.25^2 + 0.25^2, 0.25^2 + 0.25^2) = 0.125
 *     loss  = mean(0, 0.5^2 + 0.5^2) = 0.25
 *   sample 1, y = 1: p1 = p2 = (0.25, 0.75): bias = 0.125, var = 0, loss = 0.125
 * means: bias 0.125, variance 0.0625, loss 0.1875 (all dyadic: exact). */
static void test_bias_variance_sq_hand_worked(void **state) {
    (void)state;
    const float p1[] = {1.0f, 0.0f, 0.25f, 0.75f}, p2[] = {0.5f, 0.5f, 0.25f, 0.75f};
    const float *const probs[] = {p1, p2};
    const int32_t y[] = {0, 1};
    dpt_bias_variance bv;
    assert_int_equal(dpt_bias_variance_sq(probs, 2, y, 2, 2, &bv), DPT_OK);
    assert_true(bv.bias == 0.125 && bv.variance == 0.0625 && bv.loss == 0.1875);
    assert_true(isnan(bv.variance_unbiased) && isnan(bv.variance_biased));
}

/* Random probabilities: loss = bias + variance, the decomposition's identity, to 1e-12 (each
 * term is a mean of n K M terms below 2, rounded ~ n K M eps). One predictor: variance 0. */
static void test_bias_variance_sq_identity(void **state) {
    (void)state;
    enum { M = 7, n = 50, K = 4 };
    static float p[M][n * K];
    static int32_t y[n];
    const float *probs[M];
    for (int m = 0; m < M; m++) {
        dpt_fill_uniform(p[m], n * K, 0.0f, 1.0f, 21, (uint32_t)m);
        probs[m] = p[m];
    }
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)((i * 7) % K);
    dpt_bias_variance bv;
    assert_int_equal(dpt_bias_variance_sq(probs, M, y, n, K, &bv), DPT_OK);
    assert_true(bv.variance > 0.01);
    assert_true(fabs(bv.loss - (bv.bias + bv.variance)) <= 1e-12);
    assert_int_equal(dpt_bias_variance_sq(probs, 1, y, n, K, &bv), DPT_OK);
    assert_true(bv.variance == 0.0 && bv.loss == bv.bias);
}

/* ---- dpt_bias_variance_by_size against sub-ensembles built here ---- */

enum { BG = 6, BN = 40, BK = 3 };

typedef struct {
    float p[BG][BN * BK];
    const float *probs[BG];
    int32_t y[BN];
} bv_case;

static void bv_case_fill(bv_case *c) {
    for (int m = 0; m < BG; m++) {
        dpt_fill_uniform(c->p[m], BN * BK, 0.0f, 1.0f, 33, (uint32_t)m);
        c->probs[m] = c->p[m];
    }
    for (int i = 0; i < BN; i++)
        c->y[i] = (int32_t)(i % BK);
}

/* The oracle: each subset combined by a naive loop (sum in member order, divide by s; hard:
 * votes of each member's naive argmax), then the two public decompositions on the results. */
static void bv_oracle(const bv_case *c, const int *sets, int T, int s, dpt_vote vote,
                      dpt_bias_variance *zo, dpt_bias_variance *sq) {
    static float score[64][BN * BK];
    static int32_t lab[64][BN];
    const float *sp[64];
    const int32_t *lp[64];
    assert_true(T <= 64);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < BN; i++) {
            double acc[BK] = {0};
            for (int q = 0; q < s; q++) {
                const float *row = c->p[sets[t * s + q]] + i * BK;
                if (vote == DPT_VOTE_SOFT) {
                    for (int k = 0; k < BK; k++)
                        acc[k] += row[k];
                } else {
                    int best = 0;
                    for (int k = 1; k < BK; k++)
                        best = row[k] > row[best] ? k : best;
                    acc[best] += 1.0;
                }
            }
            int best = 0;
            for (int k = 0; k < BK; k++) {
                acc[k] /= s;
                score[t][i * BK + k] = (float)acc[k];
                best = acc[k] > acc[best] ? k : best;
            }
            lab[t][i] = best;
        }
        sp[t] = score[t];
        lp[t] = lab[t];
    }
    assert_int_equal(dpt_bias_variance_01(lp, T, c->y, BN, BK, zo), DPT_OK);
    assert_int_equal(dpt_bias_variance_sq(sp, T, c->y, BN, BK, sq), DPT_OK);
}

static void assert_bv_equal(const dpt_bias_variance *a, const dpt_bias_variance *b) {
    assert_true(a->loss == b->loss && a->bias == b->bias && a->variance == b->variance);
    assert_true(a->variance_unbiased == b->variance_unbiased ||
                (isnan(a->variance_unbiased) && isnan(b->variance_unbiased)));
    assert_true(a->variance_biased == b->variance_biased ||
                (isnan(a->variance_biased) && isnan(b->variance_biased)));
}

/* G = 4, s = 2: C(4, 2) = 6 subsets, lexicographic. s = 1: the members themselves. s = G: one
 * predictor, variance 0. Same bits as the oracle: the same sums in the same order. */
static void test_by_size_enumerates_subsets(void **state) {
    (void)state;
    static bv_case c;
    bv_case_fill(&c);
    const int pairs[] = {0, 1, 0, 2, 0, 3, 1, 2, 1, 3, 2, 3};
    const int singles[] = {0, 1, 2, 3}, all[] = {0, 1, 2, 3};
    const int sizes[] = {2, 1, 4};
    const int *sets[] = {pairs, singles, all};
    const int counts[] = {6, 4, 1};
    for (int v = 0; v < 2; v++) {
        dpt_vote vote = v ? DPT_VOTE_HARD : DPT_VOTE_SOFT;
        dpt_bias_variance zo[3], sq[3], zo_ref, sq_ref;
        assert_int_equal(
            dpt_bias_variance_by_size(c.probs, 4, c.y, BN, BK, vote, sizes, 3, 6, 1, zo, sq),
            DPT_OK);
        for (int j = 0; j < 3; j++) {
            bv_oracle(&c, sets[j], counts[j], sizes[j], vote, &zo_ref, &sq_ref);
            assert_bv_equal(&zo[j], &zo_ref);
            assert_bv_equal(&sq[j], &sq_ref);
        }
        assert_true(zo[2].variance == 0.0 && sq[2].variance == 0.0);
        assert_true(zo[0].variance > 0.0 && sq[0].variance > 0.0);
        /* either output may be NULL */
        dpt_bias_variance only[1];
        assert_int_equal(
            dpt_bias_variance_by_size(c.probs, 4, c.y, BN, BK, vote, sizes, 1, 6, 1, only, NULL),
            DPT_OK);
        assert_bv_equal(&only[0], &zo[0]);
        assert_int_equal(
            dpt_bias_variance_by_size(c.probs, 4, c.y, BN, BK, vote, sizes, 1, 6, 1, NULL, only),
            DPT_OK);
        assert_bv_equal(&only[0], &sq[0]);
    }
}

/* C(6, 3) = 20 > max_subsets = 7: seven distinct subsets drawn as the header documents
 * (stream key(seed, BOOTSTRAP, 0xfffff) at counter (3, 0), partial Fisher-Yates, sorted, repeats
 * redrawn). The draw is replayed here and its subsets fed to the oracle. */
static void test_by_size_samples_documented_subsets(void **state) {
    (void)state;
    static bv_case c;
    bv_case_fill(&c);
    enum { s = 3, T = 7 };
    const uint32_t seed = 5;
    int sets[T * s], t = 0;
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_BOOTSTRAP, 0xfffff), s, 0);
    while (t < T) {
        int perm[BG], cur[s];
        for (int j = 0; j < BG; j++)
            perm[j] = j;
        for (int j = 0; j < s; j++) {
            int q = j + (int)dpt_rng_below(&r, (uint32_t)(BG - j));
            int tmp = perm[j];
            perm[j] = perm[q];
            perm[q] = tmp;
            cur[j] = perm[j];
        }
        for (int j = 0; j < s; j++) /* sort three */
            for (int q = j + 1; q < s; q++)
                if (cur[q] < cur[j]) {
                    int tmp = cur[q];
                    cur[q] = cur[j];
                    cur[j] = tmp;
                }
        int repeat = 0;
        for (int u = 0; u < t; u++)
            repeat |= memcmp(sets + u * s, cur, sizeof cur) == 0;
        if (!repeat)
            memcpy(sets + s * t++, cur, sizeof cur);
    }
    const int size = s;
    dpt_bias_variance zo, sq, zo_ref, sq_ref, zo2, sq2;
    assert_int_equal(dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_SOFT, &size, 1, T,
                                               seed, &zo, &sq),
                     DPT_OK);
    bv_oracle(&c, sets, T, s, DPT_VOTE_SOFT, &zo_ref, &sq_ref);
    assert_bv_equal(&zo, &zo_ref);
    assert_bv_equal(&sq, &sq_ref);
    /* reproducible; and with room for all 20 the result is the enumeration's */
    assert_int_equal(dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_SOFT, &size, 1, T,
                                               seed, &zo2, &sq2),
                     DPT_OK);
    assert_bv_equal(&zo2, &zo);
    assert_bv_equal(&sq2, &sq);
    int all[20 * s], u = 0;
    for (int a = 0; a < BG; a++)
        for (int b = a + 1; b < BG; b++)
            for (int d = b + 1; d < BG; d++)
                all[u * s] = a, all[u * s + 1] = b, all[u * s + 2] = d, u++;
    assert_int_equal(dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_HARD, &size, 1,
                                               20, seed, &zo, &sq),
                     DPT_OK);
    bv_oracle(&c, all, 20, s, DPT_VOTE_HARD, &zo_ref, &sq_ref);
    assert_bv_equal(&zo, &zo_ref);
    assert_bv_equal(&sq, &sq_ref);
    /* C(6, 3) - 1 = 19 draws: the rejection of repeats terminates and stays reproducible */
    assert_int_equal(dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_HARD, &size, 1,
                                               19, seed, &zo, &sq),
                     DPT_OK);
}

static void test_by_size_rejects_bad_sizes(void **state) {
    (void)state;
    static bv_case c;
    bv_case_fill(&c);
    dpt_bias_variance zo[2], sq[2];
    const int zero[] = {0}, big[] = {2, BG + 1}, ok[] = {2};
    assert_int_equal(
        dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_SOFT, zero, 1, 5, 1, zo, sq),
        DPT_EINVAL);
    assert_int_equal(
        dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_SOFT, big, 2, 5, 1, zo, sq),
        DPT_EINVAL);
    assert_int_equal(
        dpt_bias_variance_by_size(c.probs, BG, c.y, BN, BK, DPT_VOTE_SOFT, ok, 1, 0, 1, zo, sq),
        DPT_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax_ties_and_nan),
        cmocka_unit_test(test_combine_hand_worked),
        cmocka_unit_test(test_combine_many_classes),
        cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_oob_hand_worked),
        cmocka_unit_test(test_oob_matches_sklearn),
        cmocka_unit_test(test_samme_hand_worked),
        cmocka_unit_test(test_samme_zero_and_tiny_weights),
        cmocka_unit_test(test_samme_rejects_bad_input),
        cmocka_unit_test(test_samme_matches_sklearn),
        cmocka_unit_test(test_bias_variance_01_hand_worked),
        cmocka_unit_test(test_bias_variance_sq_hand_worked),
        cmocka_unit_test(test_bias_variance_sq_identity),
        cmocka_unit_test(test_by_size_enumerates_subsets),
        cmocka_unit_test(test_by_size_samples_documented_subsets),
        cmocka_unit_test(test_by_size_rejects_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
