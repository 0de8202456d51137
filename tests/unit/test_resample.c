/* Resampling index lists. Oracles: set identities checked by counting (bootstrap in-bag and OOB
 * disjoint and covering; K-fold a partition; the split's two lists a partition of the pool),
 * closed forms for the sizes (round(f n), floor/ceil(f n_c), floor/ceil(n / k)), golden fold
 * assignments computed by scikit-learn 1.2.1 (tests/fixtures/sklearn_reference.h), and binomial
 * bounds at 5 sigma for the random draws (OOB fraction, inclusion frequencies, weighted counts).
 * Seeds are fixed; a failure replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpt/sampler.h"

#include "../fixtures/sklearn_reference.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

enum { NMAX = 2000, KMAX = 8 };

/* Labels with unequal class sizes: class c has about (c + 1) shares. */
static void make_labels(int32_t *y, int64_t n, int64_t K) {
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)((i * 7 + i / 3) % (K * (K + 1) / 2));
    for (int64_t i = 0; i < n; i++) {
        int32_t v = y[i], c = 0;
        while (v >= c + 1)
            v -= c + 1, c++;
        y[i] = c;
    }
}

/* How many times each dataset index appears in a list (indices < NMAX * 4). */
static void count_into(int *counts, const int64_t *list, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        counts[list[i]]++;
}

static void test_bootstrap_in_bag_and_oob(void **state) {
    (void)state;
    enum { n = 1000 };
    static int64_t pool[n], in_bag[n], oob[n], in2[n], oob2[n];
    static int counts_in[4 * n], counts_oob[4 * n];
    for (int i = 0; i < n; i++)
        pool[i] = 4 * i + 1; /* a pool that is not 0..n-1 */
    int64_t n_oob = 0, n_oob2 = 0;
    dpt_resample_bootstrap(in_bag, n, oob, &n_oob, pool, n, 17, 3);
    count_into(counts_in, in_bag, n);
    count_into(counts_oob, oob, n_oob);
    for (int i = 0; i < 4 * n; i++) {
        int in_pool = i % 4 == 1;
        if (!in_pool)
            assert_true(counts_in[i] == 0 && counts_oob[i] == 0);
        else
            assert_true((counts_in[i] > 0) != (counts_oob[i] > 0)); /* disjoint and covering */
        assert_true(counts_oob[i] <= 1);
    }
    /* OOB count ~ Binomial-like with mean n(1-1/n)^n, variance <= n/4: a 5-sigma bound */
    double expect = n * pow(1.0 - 1.0 / n, n);
    assert_true(fabs((double)n_oob - expect) < 5.0 * sqrt(n / 4.0));
    /* same (seed, member): same replica; another member: another one */
    dpt_resample_bootstrap(in2, n, oob2, &n_oob2, pool, n, 17, 3);
    assert_int_equal(n_oob2, n_oob);
    assert_memory_equal(in2, in_bag, sizeof in2);
    dpt_resample_bootstrap(in2, n, oob2, &n_oob2, pool, n, 17, 4);
    assert_memory_not_equal(in2, in_bag, sizeof in2);
    /* m != n works too, and an m of 0 leaves everything out of bag */
    dpt_resample_bootstrap(in2, 10, oob2, &n_oob2, NULL, n, 1, 0);
    assert_true(n_oob2 >= n - 10 && n_oob2 < n);
    dpt_resample_bootstrap(in2, 0, oob2, &n_oob2, NULL, n, 1, 0);
    assert_int_equal(n_oob2, n);
}

static void test_kfold_is_a_partition(void **state) {
    (void)state;
    static int32_t y[2 * NMAX], fold_of[NMAX];
    static int64_t pool[NMAX], train[NMAX], val[NMAX];
    static const struct {
        int64_t n;
        int k;
        int stratified, shuffle;
    } cases[] = {{100, 5, 0, 1}, {103, 5, 1, 1}, {2000, 7, 1, 1}, {10, 10, 0, 1},
                 {37, 2, 1, 1},  {103, 5, 1, 0}, {2000, 7, 1, 0}, {23, 4, 0, 0}};
    const int64_t K = 4;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c].n;
        int k = cases[c].k;
        make_labels(y, 2 * n, K);
        for (int64_t i = 0; i < n; i++)
            pool[i] = 2 * i; /* labels are indexed by dataset index */
        const int32_t *yy = cases[c].stratified ? y : NULL;
        assert_int_equal(dpt_resample_kfold(fold_of, pool, n, yy, K, k, cases[c].shuffle, 9, 0),
                         DPT_OK);
        int64_t size[16] = {0}, per_class[16][KMAX] = {{0}}, n_c[KMAX] = {0};
        for (int64_t i = 0; i < n; i++) {
            assert_true(fold_of[i] >= 0 && fold_of[i] < k);
            size[fold_of[i]]++;
            per_class[fold_of[i]][y[pool[i]]]++;
            n_c[y[pool[i]]]++;
        }
        for (int f = 0; f < k; f++) {
            assert_true(size[f] == n / k || size[f] == (n + k - 1) / k);
            for (int64_t cl = 0; cl < K && cases[c].stratified; cl++)
                assert_true(per_class[f][cl] == n_c[cl] / k ||
                            per_class[f][cl] == (n_c[cl] + k - 1) / k);
        }
        /* each fold's lists: val is the fold, train the rest; over folds val covers once */
        static int seen_val[2 * NMAX];
        memset(seen_val, 0, sizeof seen_val);
        for (int f = 0; f < k; f++) {
            int64_t nt = 0, nv = 0;
            dpt_resample_fold(train, &nt, val, &nv, fold_of, pool, n, f);
            assert_int_equal(nt + nv, n);
            assert_int_equal(nv, size[f]);
            static int here[2 * NMAX];
            memset(here, 0, sizeof here);
            count_into(here, train, nt);
            count_into(here, val, nv);
            for (int64_t i = 0; i < n; i++)
                assert_int_equal(here[pool[i]], 1);
            count_into(seen_val, val, nv);
        }
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(seen_val[pool[i]], 1);
    }
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 5, NULL, 0, 6, 0, 1, 0), DPT_EINVAL);
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 5, NULL, 0, 1, 0, 1, 0), DPT_EINVAL);
    /* every class smaller than k: scikit-learn's ValueError (one small class only warns) */
    const int32_t yy[] = {0, 1, 0, 1, 2, 2};
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 6, yy, 3, 3, 0, 1, 0), DPT_EINVAL);
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 6, yy, 3, 2, 0, 1, 0), DPT_OK);
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 6, yy, 2, 2, 0, 1, 0), DPT_ERANGE);
}

/* Golden: KFold / StratifiedKFold (shuffle=False) test folds from scikit-learn, exactly. Run
 * once with the pool 0..n-1 and once through a pool that is not (labels then sit at the pool's
 * dataset indices). With shuffle the folds differ but each class's count per fold is the same. */
static void test_kfold_matches_sklearn(void **state) {
    (void)state;
    static int32_t fold_of[NMAX], shuffled[NMAX], again[NMAX], y_ds[3 * NMAX];
    static int64_t pool[NMAX];
    for (size_t c = 0; c < N_OF(sk_kfold_cases); c++) {
        const sk_kfold_case *kc = &sk_kfold_cases[c];
        int64_t n = kc->n;
        assert_int_equal(dpt_resample_kfold(fold_of, NULL, n, kc->y, kc->K, kc->k, 0, 3, 0),
                         DPT_OK);
        assert_memory_equal(fold_of, kc->fold, (size_t)n * sizeof *fold_of);
        for (int64_t i = 0; i < n; i++) {
            pool[i] = 3 * (n - 1 - i) + 2;
            y_ds[pool[i]] = kc->y ? kc->y[i] : 0;
        }
        memset(fold_of, 0xff, sizeof fold_of);
        assert_int_equal(
            dpt_resample_kfold(fold_of, pool, n, kc->y ? y_ds : NULL, kc->K, kc->k, 0, 3, 0),
            DPT_OK);
        assert_memory_equal(fold_of, kc->fold, (size_t)n * sizeof *fold_of);
        assert_int_equal(dpt_resample_kfold(shuffled, NULL, n, kc->y, kc->K, kc->k, 1, 3, 0),
                         DPT_OK);
        int64_t per_ref[8][8] = {{0}}, per[8][8] = {{0}};
        for (int64_t i = 0; i < n; i++) {
            int32_t cl = kc->y ? kc->y[i] : 0;
            per_ref[kc->fold[i]][cl]++;
            per[shuffled[i]][cl]++;
        }
        assert_memory_equal(per, per_ref, sizeof per);
        assert_int_equal(dpt_resample_kfold(again, NULL, n, kc->y, kc->K, kc->k, 1, 3, 0), DPT_OK);
        assert_memory_equal(again, shuffled, (size_t)n * sizeof *again);
        if (n >= 20) { /* another member, another assignment */
            assert_int_equal(dpt_resample_kfold(again, NULL, n, kc->y, kc->K, kc->k, 1, 3, 1),
                             DPT_OK);
            assert_memory_not_equal(again, shuffled, (size_t)n * sizeof *again);
        }
    }
}

/* With shuffle every sample is equally likely in every fold of its class's allocation: over
 * R = 3000 members, sample 0 of KFold(n = 6, k = 3) lands in fold f with p = 1/3 each; count ~
 * Binomial(R, 1/3), sd = sqrt(R p (1 - p)) = 25.8; bound 5 sd. The same for stratified with
 * labels {0, 0, 1, 1, 1, 1}: the sorted labels dealt round robin give class 1 (positions 2..5)
 * folds 2, 0, 1, 2, so sample 2 is in fold 2 with p = 1/2 (sd 27.4). */
static void test_kfold_shuffle_is_uniform(void **state) {
    (void)state;
    enum { R = 3000 };
    int64_t in0[3] = {0}, in_fold2 = 0;
    int32_t fold_of[6];
    const int32_t y[] = {0, 0, 1, 1, 1, 1};
    for (uint32_t m = 0; m < R; m++) {
        assert_int_equal(dpt_resample_kfold(fold_of, NULL, 6, NULL, 0, 3, 1, 8, m), DPT_OK);
        in0[fold_of[0]]++;
        assert_int_equal(dpt_resample_kfold(fold_of, NULL, 6, y, 2, 3, 1, 8, m), DPT_OK);
        in_fold2 += fold_of[2] == 2;
    }
    for (int f = 0; f < 3; f++)
        assert_true(fabs((double)in0[f] - R / 3.0) <= 5.0 * sqrt(R * (1.0 / 3.0) * (2.0 / 3.0)));
    assert_true(fabs((double)in_fold2 - R / 2.0) <= 5.0 * sqrt(R * 0.25));
}

/* Subsample without replacement: in-bag and OOB disjoint and covering, sizes m and n - m, both
 * in pool order; reproducible; members differ. Uniform over m-subsets: over R = 4000 members
 * with n = 20, m = 7, each position is in the bag ~ Binomial(R, m/n) (sd 30.2) and each pair of
 * positions ~ Binomial(R, m(m-1) / (n(n-1))) (p = 0.1105, sd 19.8): 5 sd bounds. */
static void test_subsample(void **state) {
    (void)state;
    enum { n = 500 };
    static int64_t pool[n], in_bag[n], oob[n], in2[n], oob2[n];
    static int counts[4 * n];
    for (int i = 0; i < n; i++)
        pool[i] = 4 * i + 3;
    const int64_t ms[] = {0, 1, 137, n - 1, n};
    for (size_t c = 0; c < N_OF(ms); c++) {
        int64_t m = ms[c], n_oob = -1, n_oob2 = -1;
        dpt_resample_subsample(in_bag, m, oob, &n_oob, pool, n, 21, 2);
        assert_int_equal(n_oob, n - m);
        memset(counts, 0, sizeof counts);
        count_into(counts, in_bag, m);
        count_into(counts, oob, n_oob);
        for (int i = 0; i < 4 * n; i++)
            assert_int_equal(counts[i], i % 4 == 3);
        for (int64_t i = 1; i < m; i++)
            assert_true(in_bag[i] > in_bag[i - 1]);
        for (int64_t i = 1; i < n_oob; i++)
            assert_true(oob[i] > oob[i - 1]);
        dpt_resample_subsample(in2, m, oob2, &n_oob2, pool, n, 21, 2);
        assert_memory_equal(in2, in_bag, (size_t)m * sizeof *in2);
        if (m > 1 && m < n - 1) {
            dpt_resample_subsample(in2, m, oob2, &n_oob2, pool, n, 21, 3);
            assert_memory_not_equal(in2, in_bag, (size_t)m * sizeof *in2);
        }
    }
    enum { R = 4000, nn = 20, mm = 7 };
    int64_t pos[nn], a[nn], b[nn], n_b;
    int64_t hits[nn] = {0}, pair01 = 0, pair_far = 0;
    for (uint32_t r = 0; r < R; r++) {
        dpt_resample_subsample(a, mm, b, &n_b, NULL, nn, 4, r);
        memset(pos, 0, sizeof pos);
        for (int j = 0; j < mm; j++)
            pos[a[j]] = 1;
        for (int i = 0; i < nn; i++)
            hits[i] += pos[i];
        pair01 += pos[0] && pos[1];
        pair_far += pos[3] && pos[19];
    }
    double p = (double)mm / nn, q = (double)mm * (mm - 1) / (nn * (nn - 1));
    for (int i = 0; i < nn; i++)
        assert_true(fabs((double)hits[i] - R * p) <= 5.0 * sqrt(R * p * (1 - p)));
    assert_true(fabs((double)pair01 - R * q) <= 5.0 * sqrt(R * q * (1 - q)));
    assert_true(fabs((double)pair_far - R * q) <= 5.0 * sqrt(R * q * (1 - q)));
}

/* Weighted draws: position i with probability w_i / sum w. With m = 200000 draws over
 * w = {1, 0, 2, 3, 4, 0.5} (sum 10.5), count_i ~ Binomial(m, p_i): |count_i - m p_i| <= 5 sd;
 * zero weights are never drawn. Output sorted pool elements; reproducible; members differ. */
static void test_weighted(void **state) {
    (void)state;
    enum { m = 200000, n = 6 };
    static int64_t drawn[m], again[m];
    const double w[n] = {1.0, 0.0, 2.0, 3.0, 4.0, 0.5};
    const int64_t pool[n] = {50, 40, 30, 20, 10, 0}; /* decreasing: "sorted" means by position */
    assert_int_equal(dpt_resample_weighted(drawn, m, w, pool, n, 12, 1), DPT_OK);
    int64_t count[n] = {0};
    for (int64_t j = 0; j < m; j++) {
        int64_t i = (50 - drawn[j]) / 10;
        assert_true(i >= 0 && i < n && pool[i] == drawn[j]);
        assert_true(j == 0 || (50 - drawn[j - 1]) / 10 <= i);
        count[i]++;
    }
    for (int i = 0; i < n; i++) {
        double p = w[i] / 10.5;
        assert_true(fabs((double)count[i] - m * p) <= 5.0 * sqrt(m * p * (1 - p)));
    }
    assert_int_equal(count[1], 0);
    assert_int_equal(dpt_resample_weighted(again, m, w, pool, n, 12, 1), DPT_OK);
    assert_memory_equal(again, drawn, sizeof drawn);
    assert_int_equal(dpt_resample_weighted(again, m, w, pool, n, 12, 2), DPT_OK);
    assert_memory_not_equal(again, drawn, sizeof drawn);
    /* one positive weight takes every draw; m = 0 draws nothing */
    const double one[3] = {0.0, 0.0, 7.0};
    assert_int_equal(dpt_resample_weighted(again, 100, one, NULL, 3, 1, 0), DPT_OK);
    for (int j = 0; j < 100; j++)
        assert_int_equal(again[j], 2);
    assert_int_equal(dpt_resample_weighted(again, 0, one, NULL, 3, 1, 0), DPT_OK);
    const double neg[2] = {1.0, -1.0}, nan_w[2] = {NAN, 1.0}, inf_w[2] = {INFINITY, 1.0},
                 zero[2] = {0.0, 0.0};
    assert_int_equal(dpt_resample_weighted(again, 5, neg, NULL, 2, 1, 0), DPT_EINVAL);
    assert_int_equal(dpt_resample_weighted(again, 5, nan_w, NULL, 2, 1, 0), DPT_EINVAL);
    assert_int_equal(dpt_resample_weighted(again, 5, inf_w, NULL, 2, 1, 0), DPT_EINVAL);
    assert_int_equal(dpt_resample_weighted(again, 5, zero, NULL, 2, 1, 0), DPT_EINVAL);
}

/* Strata preserved: each class sends floor or ceil of f n_c to validation; the total is
 * round(f n); train and val partition the pool and keep its order. */
static void test_stratified_split(void **state) {
    (void)state;
    static int32_t y[NMAX];
    static int64_t train[NMAX], val[NMAX], t2[NMAX], v2[NMAX];
    const int64_t K = 5;
    static const struct {
        int64_t n;
        double f;
    } cases[] = {{2000, 0.1}, {1000, 1.0 / 3.0}, {997, 0.25}, {50, 0.0}, {17, 0.5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c].n, nt = 0, nv = 0;
        double f = cases[c].f;
        make_labels(y, n, K);
        assert_int_equal(dpt_resample_split(train, &nt, val, &nv, NULL, n, y, K, f, 4, 0), DPT_OK);
        assert_int_equal(nt + nv, n);
        assert_int_equal(nv, (int64_t)llround(f * (double)n));
        int64_t n_c[KMAX] = {0}, v_c[KMAX] = {0};
        static int seen[NMAX];
        memset(seen, 0, sizeof seen);
        count_into(seen, train, nt);
        count_into(seen, val, nv);
        for (int64_t i = 0; i < n; i++) {
            assert_int_equal(seen[i], 1);
            n_c[y[i]]++;
        }
        for (int64_t i = 0; i < nv; i++)
            v_c[y[val[i]]]++;
        for (int64_t cl = 0; cl < K; cl++) {
            double share = f * (double)n_c[cl];
            assert_true(v_c[cl] == (int64_t)floor(share) || v_c[cl] == (int64_t)ceil(share));
        }
        for (int64_t i = 1; i < nt; i++)
            assert_true(train[i] > train[i - 1]);
        for (int64_t i = 1; i < nv; i++)
            assert_true(val[i] > val[i - 1]);
        /* deterministic in (seed, member); the seed matters */
        int64_t nt2, nv2;
        dpt_resample_split(t2, &nt2, v2, &nv2, NULL, n, y, K, f, 4, 0);
        assert_int_equal(nv2, nv);
        assert_memory_equal(v2, val, (size_t)nv * sizeof *val);
        if (nv >= 10) {
            dpt_resample_split(t2, &nt2, v2, &nv2, NULL, n, y, K, f, 5, 0);
            assert_memory_not_equal(v2, val, (size_t)nv * sizeof *val);
        }
    }
    int64_t nt, nv;
    assert_int_equal(dpt_resample_split(train, &nt, val, &nv, NULL, 10, NULL, 0, 1.0, 1, 0),
                     DPT_EINVAL);
    y[3] = 9;
    assert_int_equal(dpt_resample_split(train, &nt, val, &nv, NULL, 10, y, 5, 0.2, 1, 0),
                     DPT_ERANGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_in_bag_and_oob),
        cmocka_unit_test(test_kfold_is_a_partition),
        cmocka_unit_test(test_kfold_matches_sklearn),
        cmocka_unit_test(test_kfold_shuffle_is_uniform),
        cmocka_unit_test(test_subsample),
        cmocka_unit_test(test_weighted),
        cmocka_unit_test(test_stratified_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
