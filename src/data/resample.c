/* Index lists (data): stratified validation split, bootstrap replica with out-of-bag set,
 * subsample without replacement, weighted draws (boosting), K-fold partition. Pure functions of
 * (pool, labels, seed, member) computed identically on every rank; they allocate only scratch
 * that is freed before returning. Knows no models and no MPI. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/rng.h"
#include "dpt/sampler.h"
#include "dpt/tensor.h"

/* Counter (epoch) values of the streams, so that no two lists share numbers: the split and the
 * folds in DPT_RNG_SPLIT; the bootstrap, the subsample and the weighted draws in
 * DPT_RNG_BOOTSTRAP (member by member). */
enum { SPLIT_CTR_VALIDATION = 0, SPLIT_CTR_KFOLD = 1 };
enum { BOOTSTRAP_CTR_REPLICA = 0, BOOTSTRAP_CTR_SUBSAMPLE = 1, BOOTSTRAP_CTR_WEIGHTED = 2 };

static int64_t pool_at(const int64_t *pool, int64_t i) {
    return pool ? pool[i] : i;
}

/* Class of pool position i (0 when not stratified). */
static int32_t class_at(const int32_t *y, const int64_t *pool, int64_t i) {
    return y ? y[pool_at(pool, i)] : 0;
}

static dpt_status check_labels(const char *what, const int32_t *y, const int64_t *pool, int64_t n,
                               int64_t K) {
    if (!y)
        return DPT_OK;
    if (K < 1)
        return dpt_errorf(DPT_EINVAL, "%s: %lld classes", what, (long long)K);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = class_at(y, pool, i);
        if (c < 0 || c >= K)
            return dpt_errorf(DPT_ERANGE, "%s: label %d of sample %lld is out of range [0, %lld)",
                              what, c, (long long)pool_at(pool, i), (long long)K);
    }
    return DPT_OK;
}

typedef struct {
    double rem;
    int64_t cls;
} class_share;

static int by_remainder(const void *pa, const void *pb) {
    const class_share *a = pa, *b = pb;
    if (a->rem != b->rem)
        return a->rem > b->rem ? -1 : 1;
    return a->cls < b->cls ? -1 : a->cls > b->cls;
}

dpt_status dpt_resample_split(int64_t *train, int64_t *n_train, int64_t *val, int64_t *n_val,
                              const int64_t *pool, int64_t n, const int32_t *y, int64_t K,
                              double fraction, uint32_t seed, uint32_t member) {
    *n_train = *n_val = 0;
    if (!(fraction >= 0.0 && fraction < 1.0))
        return dpt_errorf(DPT_EINVAL, "validation split: fraction %g is not in [0, 1)", fraction);
    if (n < 1 || n > (int64_t)UINT32_MAX)
        return dpt_errorf(DPT_EINVAL, "validation split: %lld samples", (long long)n);
    if (!y)
        K = 1;
    dpt_status st = check_labels("validation split", y, pool, n, K);
    if (st != DPT_OK)
        return st;
    int64_t *perm = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    int64_t *count = dpt_alloc_aligned(dpt_size_mul(2 * (size_t)K, sizeof(int64_t)));
    class_share *rems = dpt_alloc_aligned(dpt_size_mul((size_t)K, sizeof(class_share)));
    unsigned char *in_val = dpt_alloc_aligned((size_t)n);
    if (!perm || !count || !rems || !in_val) {
        st = DPT_ENOMEM;
        goto out;
    }
    int64_t *quota = count + K;
    for (int64_t i = 0; i < n; i++)
        count[class_at(y, pool, i)]++;
    /* Largest remainders: each class gets floor or ceil of fraction * n_c, total round(f * n). */
    int64_t total = (int64_t)llround(fraction * (double)n), assigned = 0;
    for (int64_t c = 0; c < K; c++) {
        double share = fraction * (double)count[c];
        quota[c] = (int64_t)floor(share);
        rems[c] = (class_share){share - (double)quota[c], c};
        assigned += quota[c];
    }
    qsort(rems, (size_t)K, sizeof *rems, by_remainder);
    for (int64_t j = 0; j < K && assigned < total; j++) {
        int64_t c = rems[j].cls;
        if (rems[j].rem > 0.0 && quota[c] < count[c]) {
            quota[c]++;
            assigned++;
        }
    }
    dpt_rng_permutation(perm, n, dpt_rng_key_make(seed, DPT_RNG_SPLIT, member),
                        SPLIT_CTR_VALIDATION);
    for (int64_t c = 0; c < K; c++)
        count[c] = 0; /* now: taken so far */
    for (int64_t i = 0; i < n; i++) {
        int32_t c = class_at(y, pool, perm[i]);
        if (count[c] < quota[c]) {
            count[c]++;
            in_val[perm[i]] = 1;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (in_val[i])
            val[(*n_val)++] = pool_at(pool, i);
        else
            train[(*n_train)++] = pool_at(pool, i);
    }
out:
    dpt_free_aligned(perm);
    dpt_free_aligned(count);
    dpt_free_aligned(rems);
    dpt_free_aligned(in_val);
    return st;
}

static int by_value(const void *pa, const void *pb) {
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

void dpt_resample_bootstrap(int64_t *in_bag, int64_t m, int64_t *oob, int64_t *n_oob,
                            const int64_t *pool, int64_t n, uint32_t seed, uint32_t member) {
    DPT_ASSERT(n >= 1 && n <= (int64_t)UINT32_MAX && m >= 0);
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_BOOTSTRAP, member), BOOTSTRAP_CTR_REPLICA, 0);
    for (int64_t i = 0; i < m; i++)
        in_bag[i] = dpt_rng_below(&r, (uint32_t)n);
    qsort(in_bag, (size_t)m, sizeof *in_bag, by_value);
    /* Positions never drawn: one merge walk over the sorted draws. */
    *n_oob = 0;
    int64_t j = 0;
    for (int64_t p = 0; p < n; p++) {
        while (j < m && in_bag[j] < p)
            j++;
        if (j == m || in_bag[j] != p)
            oob[(*n_oob)++] = pool_at(pool, p);
    }
    for (int64_t i = 0; i < m; i++)
        in_bag[i] = pool_at(pool, in_bag[i]);
}

void dpt_resample_subsample(int64_t *in_bag, int64_t m, int64_t *oob, int64_t *n_oob,
                            const int64_t *pool, int64_t n, uint32_t seed, uint32_t member) {
    DPT_ASSERT(n >= 1 && n <= (int64_t)UINT32_MAX && m >= 0 && m <= n);
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_BOOTSTRAP, member), BOOTSTRAP_CTR_SUBSAMPLE, 0);
    /* Selection sampling (Knuth, TAOCP 3.4.2, Algorithm S): position p is taken with probability
     * (still needed) / (still left), an exact integer comparison, which makes every m-subset
     * equally likely and emits both lists already in pool order. */
    int64_t taken = 0;
    *n_oob = 0;
    for (int64_t p = 0; p < n; p++) {
        if ((int64_t)dpt_rng_below(&r, (uint32_t)(n - p)) < m - taken)
            in_bag[taken++] = pool_at(pool, p);
        else
            oob[(*n_oob)++] = pool_at(pool, p);
    }
    DPT_ASSERT(taken == m);
}

dpt_status dpt_resample_weighted(int64_t *drawn, int64_t m, const double *w, const int64_t *pool,
                                 int64_t n, uint32_t seed, uint32_t member) {
    DPT_ASSERT(n >= 1 && m >= 0);
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!(w[i] >= 0.0 && isfinite(w[i])))
            return dpt_errorf(DPT_EINVAL, "weighted resample: weight %g of position %lld", w[i],
                              (long long)i);
        total += w[i];
    }
    if (!(total > 0.0 && isfinite(total)))
        return dpt_errorf(DPT_EINVAL, "weighted resample: the %lld weights sum to %g", (long long)n,
                          total);
    double *cum = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof *cum));
    if (!cum)
        return DPT_ENOMEM;
    int64_t last_positive = 0;
    double run = 0.0;
    for (int64_t i = 0; i < n; i++) {
        run += w[i];
        cum[i] = run;
        if (w[i] > 0.0)
            last_positive = i;
    }
    /* Inverse CDF: the first position whose cumulative sum exceeds u * total. A zero weight
     * repeats the previous sum and so is never the first to exceed it. u * total can round up
     * to the total itself; that draw belongs to the last position with a positive weight. */
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_BOOTSTRAP, member), BOOTSTRAP_CTR_WEIGHTED, 0);
    for (int64_t j = 0; j < m; j++) {
        double u = dpt_rng_uniform(&r) * total; /* total == run: the same sums in order */
        int64_t lo = 0, hi = n;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cum[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        drawn[j] = lo < n ? lo : last_positive;
    }
    dpt_free_aligned(cum);
    qsort(drawn, (size_t)m, sizeof *drawn, by_value);
    for (int64_t j = 0; j < m; j++)
        drawn[j] = pool_at(pool, drawn[j]);
    return DPT_OK;
}

/* Number of j in [0, x) with j % k == f (x >= 0, 0 <= f < k). */
static int64_t count_residue(int64_t x, int64_t f, int64_t k) {
    return (x + k - 1 - f) / k;
}

dpt_status dpt_resample_kfold(int32_t *fold_of, const int64_t *pool, int64_t n, const int32_t *y,
                              int64_t K, int k, int shuffle, uint32_t seed, uint32_t member) {
    if (k < 2 || k > n)
        return dpt_errorf(DPT_EINVAL, "k-fold: %d folds for %lld samples (need 2 <= k <= n)", k,
                          (long long)n);
    if (n > (int64_t)UINT32_MAX)
        return dpt_errorf(DPT_EINVAL, "k-fold: %lld samples", (long long)n);
    if (!y)
        K = 1;
    dpt_status st = check_labels("k-fold", y, pool, n, K);
    if (st != DPT_OK)
        return st;
    int64_t *code = dpt_alloc_aligned(dpt_size_mul(2 * (size_t)K + 1, sizeof(int64_t)));
    int64_t *grouped = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    int32_t *labels = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int32_t)));
    if (!code || !grouped || !labels) {
        st = DPT_ENOMEM;
        goto out;
    }
    /* Classes are numbered in order of first appearance in the pool, as StratifiedKFold does;
     * the folds depend on that numbering. Without labels everything is class 0: KFold. */
    int64_t *offset = code + K, n_classes = 0;
    for (int64_t c = 0; c < K; c++)
        code[c] = -1;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = class_at(y, pool, i);
        if (code[c] < 0)
            code[c] = n_classes++;
        offset[code[c] + 1]++;
    }
    int64_t largest = 0;
    for (int64_t c = 0; c < n_classes; c++) {
        largest = offset[c + 1] > largest ? offset[c + 1] : largest;
        offset[c + 1] += offset[c];
    }
    if (largest < k) {
        st = dpt_errorf(DPT_EINVAL,
                        "stratified k-fold: %d folds, more than any class has "
                        "(the largest has %lld samples)",
                        k, (long long)largest);
        goto out;
    }
    /* Class c is the run [offset[c], offset[c + 1]) of the sorted labels; dealing them round
     * robin gives fold f the members of that run at positions = f (mod k). Class c's samples,
     * in pool order, take fold 0 that many times, then fold 1, and so on; with shuffle those
     * fold labels are permuted, class after class, from one stream. */
    for (int64_t c = 0; c < n_classes; c++) {
        int64_t j = offset[c];
        for (int64_t f = 0; f < k; f++) {
            int64_t take = count_residue(offset[c + 1], f, k) - count_residue(offset[c], f, k);
            for (int64_t t = 0; t < take; t++)
                labels[j++] = (int32_t)f;
        }
    }
    if (shuffle) {
        dpt_rng r;
        dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_SPLIT, member), SPLIT_CTR_KFOLD, 0);
        for (int64_t c = 0; c < n_classes; c++) {
            int32_t *run = labels + offset[c];
            for (int64_t i = offset[c + 1] - offset[c] - 1; i > 0; i--) {
                int64_t q = dpt_rng_below(&r, (uint32_t)(i + 1));
                int32_t t = run[i];
                run[i] = run[q];
                run[q] = t;
            }
        }
    }
    for (int64_t i = 0; i < n; i++) /* stable counting sort: class runs keep pool order */
        grouped[offset[code[class_at(y, pool, i)]]++] = i;
    for (int64_t i = 0; i < n; i++)
        fold_of[grouped[i]] = labels[i];
out:
    dpt_free_aligned(code);
    dpt_free_aligned(grouped);
    dpt_free_aligned(labels);
    return st;
}

void dpt_resample_fold(int64_t *train, int64_t *n_train, int64_t *val, int64_t *n_val,
                       const int32_t *fold_of, const int64_t *pool, int64_t n, int fold) {
    *n_train = *n_val = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fold_of[i] == fold)
            val[(*n_val)++] = pool_at(pool, i);
        else
            train[(*n_train)++] = pool_at(pool, i);
    }
}
