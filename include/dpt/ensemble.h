/* Ensemble arithmetic (train): combining members' per-sample class probabilities by soft or hard
 * vote, the out-of-bag score of bagging, SAMME's round update (AdaBoost for K classes), and the
 * bias-variance decompositions of the seed's "cost = bias^2 + variance + noise". Pure functions
 * of their arguments: no MPI, no files, no allocation that outlives a call. Every sum runs in
 * double in a fixed order (member order, then class order), so the same inputs give the same
 * bits wherever they are computed (training, `dptrain eval` of a manifest). Ties in an argmax go
 * to the lowest class, as numpy.argmax. Semantics follow scikit-learn (docs/ensembles.md). */
#ifndef DPT_ENSEMBLE_H
#define DPT_ENSEMBLE_H

#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DPT_VOTE_SOFT, /* mean of the members' probabilities (BaggingClassifier with predict_proba) */
    DPT_VOTE_HARD, /* (weighted) count of the members' predicted labels (SAMME's prediction) */
} dpt_vote;

/* Index of the largest of p[0..K), the lowest index among equals. NaN entries are never chosen
 * unless all entries are NaN (then 0). */
int32_t dpt_argmax_f32(const float *p, int64_t K);
int32_t dpt_argmax_f64(const double *p, int64_t K);

/* The ensemble's decision over n samples. probs[m]: member m's (n, K) row-major probabilities
 * (m < G). weight: G member weights (NULL: all 1; boosting passes its alphas). Scores:
 *   soft: score[i,k] = sum_m w_m p_m[i,k] / sum_m w_m
 *   hard: score[i,k] = sum_m w_m [argmax_k' p_m[i,k'] == k] / sum_m w_m
 * pred[i] = argmax_k score[i,k], taken on the double scores before they are rounded to float.
 * score may be NULL (then only pred is written). G >= 1; the weights must have a positive sum.
 * Holds K doubles of scratch: on the stack up to 1024 classes, else one heap buffer per call
 * (aborts if that allocation fails: there is no status to return). */
void dpt_ensemble_combine(float *score, int32_t *pred, const float *const *probs,
                          const double *weight, int G, int64_t n, int64_t K, dpt_vote vote);

/* Fraction of i < n with pred[i] == y[i] (NaN for n == 0). */
double dpt_accuracy(const int32_t *pred, const int32_t *y, int64_t n);

/* ---- Out-of-bag estimate (bagging) ---- */

/* Adds one member's probabilities over the whole training pool (n samples, (n, K)) to the OOB
 * sums of the samples that are out of its bag: for every i with in_bag[i] == 0,
 * sum[i,k] += probs[i,k] and count[i] += 1. in_bag[i]: times sample i was drawn (0: out of bag).
 * Call once per member, in member order. */
void dpt_oob_add(double *sum, int64_t *count, const float *probs, const int32_t *in_bag, int64_t n,
                 int64_t K);

typedef struct {
    double score;     /* accuracy of argmax_k sum[i,k] over the samples with count[i] > 0 */
    int64_t n_scored; /* samples out of bag at least once */
    int64_t n_never;  /* samples never out of bag (not scored; scikit-learn warns about them) */
} dpt_oob_result;

/* The OOB decision function is sum[i,k] / sum_k sum[i,k] (scikit-learn's
 * oob_decision_function_); its argmax is argmax_k sum[i,k]. decision may be NULL; when given, it
 * receives that (n, K) function, with NaN rows for samples never out of bag. */
dpt_oob_result dpt_oob_score(double *decision, const double *sum, const int64_t *count,
                             const int32_t *y, int64_t n, int64_t K);

/* ---- SAMME (Zhu, Zou, Rosset, Hastie 2009), as AdaBoostClassifier(algorithm="SAMME") ---- */

typedef enum {
    DPT_SAMME_CONTINUE, /* a normal round: kept, weights updated (unless last) */
    DPT_SAMME_PERFECT,  /* err == 0: kept with alpha 1 (scikit-learn), boosting stops */
    DPT_SAMME_TOO_WEAK, /* err >= 1 - 1/K: discarded, boosting stops, weights unchanged */
} dpt_samme_outcome;

typedef struct {
    double err;   /* weighted error sum_i w_i [incorrect_i] / sum_i w_i */
    double alpha; /* lr * (log((1 - err) / err) + log(K - 1)); 1 for PERFECT, 0 for TOO_WEAK */
    dpt_samme_outcome outcome;
} dpt_samme_round;

/* One boosting round. w: n sample weights (> 0 or 0), updated in place for a CONTINUE round that
 * is not the last: w_i <- w_i * exp(alpha * incorrect_i) for w_i > 0, then divided by their sum.
 * incorrect[i]: 1 when the round's learner misclassifies sample i. K >= 2 classes, lr > 0.
 * The update is computed as exp(log w_i + alpha incorrect_i), scikit-learn's expression, and
 * positive weights below DBL_EPSILON after the division are raised to it, as scikit-learn clips
 * them before the next fit.
 * DPT_EINVAL for K < 2, lr <= 0, a negative or non-finite weight or a zero weight sum (w is then
 * untouched); DPT_ENONFINITE when the updated weights overflow (scikit-learn stops boosting
 * there; *out describes the round, w holds the unnormalized weights). */
dpt_status dpt_samme_update(double *w, const unsigned char *incorrect, int64_t n, int64_t K,
                            double lr, int last, dpt_samme_round *out);

/* ---- Bias-variance decompositions over M predictors on n labelled samples ---- */

typedef struct {
    double loss;     /* mean over predictors and samples of the loss */
    double bias;     /* 0-1: mean of [main != y]; squared: mean of ||pbar - e_y||^2 (bias^2) */
    double variance; /* 0-1: mean over samples of mean_m [h_m != main]; squared: mean of
                      * mean_m ||p_m - pbar||^2 */
    double variance_unbiased; /* 0-1 only (Domingos): variance summed over samples with
                               * main == y, divided by n; NaN for squared */
    double variance_biased;   /* 0-1 only: the same over samples with main != y; NaN for squared */
} dpt_bias_variance;

/* 0-1 loss (Domingos 2000). pred[m]: predictor m's n labels. main[i] = mode of pred[.][i] (ties to
 * the lowest class). bias = mean_i [main_i != y_i]; variance = mean_i mean_m [pred_m,i != main_i];
 * loss = mean_i mean_m [pred_m,i != y_i]. M >= 1. The sums are integer counts, so each result
 * is exact up to its final division. DPT_ENOMEM (K counters). */
dpt_status dpt_bias_variance_01(const int32_t *const *pred, int M, const int32_t *y, int64_t n,
                                int64_t K, dpt_bias_variance *out);
/* Squared error of probability vectors against the one-hot label: loss = mean_i mean_m
 * ||p_m,i - e_yi||^2 = bias + variance exactly (in exact arithmetic); the noise term is zero
 * because a label is a deterministic function of its sample. pbar = mean_m p_m. The predictors
 * are read in two passes (sums, then distances to pbar); each predictor's terms are summed over
 * samples and classes, then the predictors in order, so dpt_bias_variance_by_size gives the
 * same bits on the same predictors. DPT_ENOMEM ((n, K) doubles of scratch). */
dpt_status dpt_bias_variance_sq(const float *const *probs, int M, const int32_t *y, int64_t n,
                                int64_t K, dpt_bias_variance *out);

/* The decompositions of ensembles of s members for every s in sizes[0..n_sizes) (1 <= s <= G):
 * the predictors are the sub-ensembles of s of the G members (all C(G, s) subsets when there are
 * at most max_subsets, else max_subsets distinct subsets drawn from the stream
 * key(seed, DPT_RNG_BOOTSTRAP, 0xfffff) at counter (s, 0)), each combined with equal weights by
 * `vote` (dpt_ensemble_combine, weight NULL). Enumerated subsets come in lexicographic order.
 * A drawn subset is the first s entries of a fresh partial Fisher-Yates shuffle of 0..G-1
 * (position j swaps with j + dpt_rng_below(G - j)), sorted; repeats are discarded, and the kept
 * ones are used in the order drawn. zero_one[j] and squared[j] receive the decompositions for
 * sizes[j]: the 0-1 one of the sub-ensembles' labels, the squared one of their scores (either
 * output may be NULL). Ensembles of all G members are a single predictor: variance 0. Memory:
 * (subsets, n) labels and (n, K) floats and doubles; a sub-ensemble is combined twice rather
 * than kept. DPT_EINVAL for a size outside [1, G] or max_subsets < 1; DPT_ENOMEM. */
dpt_status dpt_bias_variance_by_size(const float *const *probs, int G, const int32_t *y, int64_t n,
                                     int64_t K, dpt_vote vote, const int *sizes, int n_sizes,
                                     int max_subsets, uint32_t seed, dpt_bias_variance *zero_one,
                                     dpt_bias_variance *squared);

#ifdef __cplusplus
}
#endif
#endif
