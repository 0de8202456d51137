/* Ensemble arithmetic (train): soft and hard votes, out-of-bag sums and score, SAMME's round and
 * the bias-variance decompositions declared in dpt/ensemble.h. Pure functions of their arguments:
 * no MPI, no files, no models, and all scratch is freed before returning. Every sum is a double
 * accumulated in a fixed order (member order, then class order, then sample order). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/ensemble.h"
#include "dpt/rng.h"
#include "dpt/tensor.h"

/* One loop for both precisions: float -> double is exact, so the comparisons are the same. */
static int32_t argmax_any(const float *pf, const double *pd, int64_t K) {
    int64_t best = -1;
    double best_v = 0.0;
    for (int64_t k = 0; k < K; k++) {
        double v = pf ? (double)pf[k] : pd[k];
        if (isnan(v))
            continue;
        if (best < 0 || v > best_v) {
            best = k;
            best_v = v;
        }
    }
    return best < 0 ? 0 : (int32_t)best;
}

int32_t dpt_argmax_f32(const float *p, int64_t K) {
    DPT_ASSERT(p && K >= 1);
    return argmax_any(p, NULL, K);
}

int32_t dpt_argmax_f64(const double *p, int64_t K) {
    DPT_ASSERT(p && K >= 1);
    return argmax_any(NULL, p, K);
}

/* Up to this many classes the per-sample vote lives on the stack; above it one heap buffer is
 * taken per call. combine returns no status, so a failure of that small allocation aborts. */
enum { SMALL_K = 1024 };

void dpt_ensemble_combine(float *score, int32_t *pred, const float *const *probs,
                          const double *weight, int G, int64_t n, int64_t K, dpt_vote vote) {
    DPT_ASSERT(pred && probs && G >= 1 && n >= 0 && K >= 1);
    DPT_ASSERT(vote == DPT_VOTE_SOFT || vote == DPT_VOTE_HARD);
    double total = 0.0;
    for (int m = 0; m < G; m++)
        total += weight ? weight[m] : 1.0;
    DPT_ASSERT(total > 0.0 && isfinite(total));
    double small[SMALL_K];
    double *acc = small;
    if (K > SMALL_K) {
        acc = dpt_alloc_aligned(dpt_size_mul((size_t)K, sizeof *acc));
        DPT_ASSERT(acc != NULL);
    }
    for (int64_t i = 0; i < n; i++) {
        if (vote == DPT_VOTE_SOFT) {
            for (int64_t k = 0; k < K; k++) {
                double a = 0.0;
                for (int m = 0; m < G; m++)
                    a += (weight ? weight[m] : 1.0) * (double)probs[m][i * K + k];
                acc[k] = a;
            }
        } else {
            for (int64_t k = 0; k < K; k++)
                acc[k] = 0.0;
            for (int m = 0; m < G; m++)
                acc[dpt_argmax_f32(probs[m] + i * K, K)] += weight ? weight[m] : 1.0;
        }
        /* Divide before the argmax, as scikit-learn's predict does on its normalized scores. */
        for (int64_t k = 0; k < K; k++) {
            acc[k] /= total;
            if (score)
                score[i * K + k] = (float)acc[k];
        }
        pred[i] = dpt_argmax_f64(acc, K);
    }
    if (acc != small)
        dpt_free_aligned(acc);
}

double dpt_accuracy(const int32_t *pred, const int32_t *y, int64_t n) {
    DPT_ASSERT(n >= 0);
    if (n == 0)
        return NAN;
    int64_t hit = 0;
    for (int64_t i = 0; i < n; i++)
        hit += pred[i] == y[i];
    return (double)hit / (double)n;
}

/* ---- Out-of-bag estimate ---- */

void dpt_oob_add(double *sum, int64_t *count, const float *probs, const int32_t *in_bag, int64_t n,
                 int64_t K) {
    DPT_ASSERT(n >= 0 && K >= 1);
    for (int64_t i = 0; i < n; i++) {
        if (in_bag[i] != 0)
            continue;
        for (int64_t k = 0; k < K; k++)
            sum[i * K + k] += (double)probs[i * K + k];
        count[i]++;
    }
}

dpt_oob_result dpt_oob_score(double *decision, const double *sum, const int64_t *count,
                             const int32_t *y, int64_t n, int64_t K) {
    DPT_ASSERT(n >= 0 && K >= 1);
    dpt_oob_result r = {NAN, 0, 0};
    int64_t hit = 0;
    for (int64_t i = 0; i < n; i++) {
        const double *row = sum + i * K;
        if (count[i] > 0) {
            r.n_scored++;
            hit += dpt_argmax_f64(row, K) == y[i];
        } else {
            r.n_never++;
        }
        if (!decision)
            continue;
        double total = 0.0;
        for (int64_t k = 0; k < K; k++)
            total += row[k];
        for (int64_t k = 0; k < K; k++)
            decision[i * K + k] = count[i] > 0 ? row[k] / total : NAN;
    }
    if (r.n_scored > 0)
        r.score = (double)hit / (double)r.n_scored;
    return r;
}

/* ---- SAMME ---- */

dpt_status dpt_samme_update(double *w, const unsigned char *incorrect, int64_t n, int64_t K,
                            double lr, int last, dpt_samme_round *out) {
    *out = (dpt_samme_round){NAN, 0.0, DPT_SAMME_TOO_WEAK};
    if (K < 2)
        return dpt_errorf(DPT_EINVAL, "SAMME: %lld classes (need at least 2)", (long long)K);
    if (!(lr > 0.0 && isfinite(lr)))
        return dpt_errorf(DPT_EINVAL, "SAMME: learning rate %g is not a positive number", lr);
    double total = 0.0, wrong = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!(w[i] >= 0.0 && isfinite(w[i])))
            return dpt_errorf(DPT_EINVAL, "SAMME: weight %g of sample %lld is not >= 0", w[i],
                              (long long)i);
        total += w[i];
        wrong += incorrect[i] ? w[i] : 0.0;
    }
    if (!(total > 0.0 && isfinite(total)))
        return dpt_errorf(DPT_EINVAL, "SAMME: the %lld sample weights sum to %g", (long long)n,
                          total);
    out->err = wrong / total;
    if (out->err <= 0.0) {
        out->alpha = 1.0;
        out->outcome = DPT_SAMME_PERFECT;
        return DPT_OK;
    }
    if (out->err >= 1.0 - 1.0 / (double)K)
        return DPT_OK; /* already TOO_WEAK with alpha 0 */
    out->alpha = lr * (log((1.0 - out->err) / out->err) + log((double)K - 1.0));
    out->outcome = DPT_SAMME_CONTINUE;
    if (last)
        return DPT_OK;
    /* exp(log w + alpha [incorrect]) rather than w * exp(alpha): scikit-learn's expression, so
     * the weights agree with it to the last bit wherever exp and log are correctly rounded. */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] > 0.0)
            w[i] = exp(log(w[i]) + (incorrect[i] ? out->alpha : 0.0));
        sum += w[i];
    }
    if (!(sum > 0.0 && isfinite(sum)))
        return dpt_errorf(DPT_ENONFINITE, "SAMME: new weights sum to %g (alpha %g): lower lr", sum,
                          out->alpha);
    /* scikit-learn then clips positive weights at machine epsilon before the next fit (its
     * issue #20320), so that no sample is silently dropped; weights that were 0 stay 0. */
    for (int64_t i = 0; i < n; i++) {
        w[i] /= sum;
        if (w[i] > 0.0 && w[i] < DBL_EPSILON)
            w[i] = DBL_EPSILON;
    }
    return DPT_OK;
}

/* ---- Bias-variance ---- */

static void check_label(int32_t c, int64_t K) {
    DPT_ASSERT(c >= 0 && c < K);
}

/* The 0-1 decomposition of M label rows; count: K scratch. Every term is a count, so the sums
 * are exact integers and each result has one rounding. */
static void bv_zero_one(const int32_t *const *pred, int M, const int32_t *y, int64_t n, int64_t K,
                        int32_t *count, dpt_bias_variance *out) {
    int64_t wrong = 0, biased = 0, off_unbiased = 0, off_biased = 0;
    for (int64_t i = 0; i < n; i++) {
        check_label(y[i], K);
        memset(count, 0, (size_t)K * sizeof *count);
        for (int m = 0; m < M; m++) {
            int32_t c = pred[m][i];
            check_label(c, K);
            count[c]++;
            wrong += c != y[i];
        }
        int32_t main_c = 0;
        for (int64_t k = 1; k < K; k++)
            if (count[k] > count[main_c])
                main_c = (int32_t)k;
        int64_t off = M - count[main_c];
        if (main_c == y[i]) {
            off_unbiased += off;
        } else {
            biased++;
            off_biased += off;
        }
    }
    double Mn = (double)M * (double)n;
    out->loss = (double)wrong / Mn;
    out->bias = (double)biased / (double)n;
    out->variance = (double)(off_unbiased + off_biased) / Mn;
    out->variance_unbiased = (double)off_unbiased / Mn;
    out->variance_biased = (double)off_biased / Mn;
}

/* The squared decomposition, streamed over predictors so that it never holds more than one of
 * them: pass 1 adds each predictor into psum (n, K) and its squared distance to the labels into
 * `loss`; pass 2 (after all of pass 1) adds its squared distance to pbar = psum / M into `var`.
 * One predictor's terms are summed over (sample, class) first, then the predictors in order. */
typedef struct {
    double *psum; /* (n, K), zero before pass 1 */
    double loss, var;
    int M; /* predictors seen in pass 1 */
} sq_acc;

static void sq_pass1(sq_acc *a, const float *p, const int32_t *y, int64_t n, int64_t K) {
    double l = 0.0;
    for (int64_t i = 0; i < n; i++) {
        check_label(y[i], K);
        for (int64_t k = 0; k < K; k++) {
            double v = (double)p[i * K + k];
            double d = v - (k == y[i] ? 1.0 : 0.0);
            a->psum[i * K + k] += v;
            l += d * d;
        }
    }
    a->loss += l;
    a->M++;
}

static void sq_pass2(sq_acc *a, const float *p, int64_t n, int64_t K) {
    double v = 0.0;
    for (int64_t j = 0; j < n * K; j++) {
        double d = (double)p[j] - a->psum[j] / a->M;
        v += d * d;
    }
    a->var += v;
}

static void sq_finish(const sq_acc *a, const int32_t *y, int64_t n, int64_t K,
                      dpt_bias_variance *out) {
    double b = 0.0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < K; k++) {
            double d = a->psum[i * K + k] / a->M - (k == y[i] ? 1.0 : 0.0);
            b += d * d;
        }
    }
    double Mn = (double)a->M * (double)n;
    out->loss = a->loss / Mn;
    out->bias = b / (double)n;
    out->variance = a->var / Mn;
    out->variance_unbiased = NAN;
    out->variance_biased = NAN;
}

dpt_status dpt_bias_variance_01(const int32_t *const *pred, int M, const int32_t *y, int64_t n,
                                int64_t K, dpt_bias_variance *out) {
    DPT_ASSERT(M >= 1 && n >= 0 && K >= 1);
    int32_t *count = dpt_alloc_aligned(dpt_size_mul((size_t)K, sizeof *count));
    if (!count)
        return DPT_ENOMEM;
    bv_zero_one(pred, M, y, n, K, count, out);
    dpt_free_aligned(count);
    return DPT_OK;
}

dpt_status dpt_bias_variance_sq(const float *const *probs, int M, const int32_t *y, int64_t n,
                                int64_t K, dpt_bias_variance *out) {
    DPT_ASSERT(M >= 1 && n >= 0 && K >= 1);
    sq_acc a = {.psum = dpt_alloc_aligned(dpt_size_mul((size_t)(n * K), sizeof(double)))};
    if (!a.psum)
        return DPT_ENOMEM;
    for (int m = 0; m < M; m++)
        sq_pass1(&a, probs[m], y, n, K);
    for (int m = 0; m < M; m++)
        sq_pass2(&a, probs[m], n, K);
    sq_finish(&a, y, n, K, out);
    dpt_free_aligned(a.psum);
    return DPT_OK;
}

/* C(G, s) when it is at most `cap`, else cap + 1. Each prefix product is itself a binomial
 * coefficient, so the division is exact, and it stays below cap * G < 2^62. */
static int64_t binomial_capped(int G, int s, int64_t cap) {
    int64_t c = 1;
    for (int i = 1; i <= s; i++) {
        c = c * (G - s + i) / i;
        if (c > cap)
            return cap + 1;
    }
    return c;
}

static uint64_t subset_hash(const int *set, int s) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (int j = 0; j < s; j++) {
        h ^= (uint64_t)(unsigned)set[j];
        h *= 1099511628211u;
    }
    return h;
}

/* The subsets of size s, each sorted ascending, rows of `sets` (count, s). All of them in
 * lexicographic order when there are at most max_subsets; else max_subsets distinct ones in the
 * order drawn. A draw is the first s entries of a fresh partial Fisher-Yates shuffle of 0..G-1
 * (position j swaps with j + below(G - j)), sorted; a repeat is discarded. Scratch: perm (G),
 * table (slots, a power of two >= 2 max_subsets, zeroed). Returns the count. */
static int64_t make_subsets(int *sets, int G, int s, int max_subsets, uint32_t seed, int *perm,
                            int32_t *table, int64_t slots) {
    int64_t total = binomial_capped(G, s, max_subsets);
    if (total <= max_subsets) {
        int *cur = perm;
        for (int j = 0; j < s; j++)
            cur[j] = j;
        for (int64_t t = 0; t < total; t++) {
            memcpy(sets + t * s, cur, (size_t)s * sizeof *cur);
            int j = s - 1; /* next combination: bump the last entry that can move */
            while (j >= 0 && cur[j] == G - s + j)
                j--;
            if (j < 0)
                break;
            cur[j]++;
            for (int q = j + 1; q < s; q++)
                cur[q] = cur[q - 1] + 1;
        }
        return total;
    }
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_BOOTSTRAP, 0xfffff), (uint32_t)s, 0);
    memset(table, 0, (size_t)slots * sizeof *table);
    int64_t t = 0;
    while (t < max_subsets) {
        for (int j = 0; j < G; j++)
            perm[j] = j;
        int *cur = sets + t * s;
        for (int j = 0; j < s; j++) {
            int q = j + (int)dpt_rng_below(&r, (uint32_t)(G - j));
            int tmp = perm[j];
            perm[j] = perm[q];
            perm[q] = tmp;
            cur[j] = perm[j];
        }
        for (int j = 1; j < s; j++) /* insertion sort: s is small */
            for (int q = j; q > 0 && cur[q - 1] > cur[q]; q--) {
                int tmp = cur[q];
                cur[q] = cur[q - 1];
                cur[q - 1] = tmp;
            }
        /* Open addressing: a slot holds 1 + the index of a kept subset. */
        int64_t slot = (int64_t)(subset_hash(cur, s) & (uint64_t)(slots - 1));
        int repeat = 0;
        while (table[slot] != 0) {
            if (memcmp(sets + (int64_t)(table[slot] - 1) * s, cur, (size_t)s * sizeof *cur) == 0) {
                repeat = 1;
                break;
            }
            slot = (slot + 1) & (slots - 1);
        }
        if (!repeat) {
            table[slot] = (int32_t)(t + 1);
            t++;
        }
    }
    return t;
}

dpt_status dpt_bias_variance_by_size(const float *const *probs, int G, const int32_t *y, int64_t n,
                                     int64_t K, dpt_vote vote, const int *sizes, int n_sizes,
                                     int max_subsets, uint32_t seed, dpt_bias_variance *zero_one,
                                     dpt_bias_variance *squared) {
    DPT_ASSERT(probs && G >= 1 && n >= 0 && K >= 1 && n_sizes >= 0);
    if (max_subsets < 1)
        return dpt_errorf(DPT_EINVAL, "bias-variance: max_subsets %d (need at least 1)",
                          max_subsets);
    int s_max = 0;
    int64_t t_max = 0;
    for (int j = 0; j < n_sizes; j++) {
        if (sizes[j] < 1 || sizes[j] > G)
            return dpt_errorf(DPT_EINVAL, "bias-variance: ensemble size %d outside [1, %d]",
                              sizes[j], G);
        int64_t t = binomial_capped(G, sizes[j], max_subsets);
        t_max = t > t_max ? t : t_max;
        s_max = sizes[j] > s_max ? sizes[j] : s_max;
    }
    if (t_max > max_subsets)
        t_max = max_subsets;
    int64_t slots = 2;
    while (slots < 2 * (int64_t)max_subsets)
        slots *= 2;
    dpt_status st = DPT_OK;
    int *sets = dpt_alloc_aligned(dpt_size_mul((size_t)(t_max * s_max), sizeof *sets));
    int *perm = dpt_alloc_aligned(dpt_size_mul((size_t)G, sizeof *perm));
    int32_t *table = dpt_alloc_aligned(dpt_size_mul((size_t)slots, sizeof *table));
    const float **members = dpt_alloc_aligned(dpt_size_mul((size_t)G, sizeof *members));
    float *score = dpt_alloc_aligned(dpt_size_mul((size_t)(n * K), sizeof *score));
    int32_t *count = dpt_alloc_aligned(dpt_size_mul((size_t)K, sizeof *count));
    /* The 0-1 mode needs every predictor's labels at once: (subsets, n), plus one row that
     * takes the labels combine writes when they are not kept. */
    int64_t label_rows = (zero_one ? t_max : 0) + 1;
    int32_t *labels = dpt_alloc_aligned(dpt_size_mul((size_t)(label_rows * n), sizeof *labels));
    const int32_t **rows = dpt_alloc_aligned(dpt_size_mul((size_t)t_max, sizeof *rows));
    sq_acc a = {0};
    if (squared)
        a.psum = dpt_alloc_aligned(dpt_size_mul((size_t)(n * K), sizeof(double)));
    if (!sets || !perm || !table || !members || !score || !count || !labels || !rows ||
        (squared && !a.psum)) {
        st = DPT_ENOMEM;
        goto out;
    }
    for (int j = 0; j < n_sizes; j++) {
        int s = sizes[j];
        int64_t T = make_subsets(sets, G, s, max_subsets, seed, perm, table, slots);
        if (squared) {
            memset(a.psum, 0, (size_t)(n * K) * sizeof *a.psum);
            a.loss = a.var = 0.0;
            a.M = 0;
        }
        /* Pass 1: labels for the 0-1 decomposition, sums for the squared one. A sub-ensemble
         * is recombined in pass 2 rather than kept, so memory stays (subsets, n) labels. */
        for (int pass = 1; pass <= (squared ? 2 : 1); pass++) {
            for (int64_t t = 0; t < T; t++) {
                for (int q = 0; q < s; q++)
                    members[q] = probs[sets[t * s + q]];
                int keep = zero_one && pass == 1;
                int32_t *row = labels + (keep ? t : label_rows - 1) * n;
                dpt_ensemble_combine(squared ? score : NULL, row, members, NULL, s, n, K, vote);
                if (keep)
                    rows[t] = row;
                if (squared && pass == 1)
                    sq_pass1(&a, score, y, n, K);
                else if (squared)
                    sq_pass2(&a, score, n, K);
            }
        }
        if (zero_one)
            bv_zero_one(rows, (int)T, y, n, K, count, &zero_one[j]);
        if (squared)
            sq_finish(&a, y, n, K, &squared[j]);
    }
out:
    dpt_free_aligned(sets);
    dpt_free_aligned(perm);
    dpt_free_aligned(table);
    dpt_free_aligned(members);
    dpt_free_aligned(score);
    dpt_free_aligned(count);
    dpt_free_aligned(labels);
    dpt_free_aligned(rows);
    dpt_free_aligned(a.psum);
    return st;
}
