/* Resampling index lists. Oracles: set identities checked by counting (bootstrap in-bag and OOB
 * disjoint and covering; K-fold a partition; the split's two lists a partition of the pool),
 * closed forms for the sizes (round(f n), floor/ceil(f n_c), floor/ceil(n / k)), and the
 * binomial bound for the OOB fraction (expected (1 - 1/n)^m). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpt/sampler.h"

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
        int stratified;
    } cases[] = {{100, 5, 0}, {103, 5, 1}, {2000, 7, 1}, {10, 10, 0}, {37, 2, 1}};
    const int64_t K = 4;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c].n;
        int k = cases[c].k;
        make_labels(y, 2 * n, K);
        for (int64_t i = 0; i < n; i++)
            pool[i] = 2 * i; /* labels are indexed by dataset index */
        const int32_t *yy = cases[c].stratified ? y : NULL;
        assert_int_equal(dpt_resample_kfold(fold_of, pool, n, yy, K, k, 9, 0), DPT_OK);
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
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 5, NULL, 0, 6, 1, 0), DPT_EINVAL);
    assert_int_equal(dpt_resample_kfold(fold_of, NULL, 5, NULL, 0, 1, 1, 0), DPT_EINVAL);
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
        cmocka_unit_test(test_stratified_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
