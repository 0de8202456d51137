/* Oracle: the published Philox4x32-10 known-answer vectors (Salmon et al., SC'11; Random123
 * kat_vectors), plus closed-form properties of the derived draws. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dpt/rng.h"

static void test_philox_known_answers(void **state) {
    (void)state;
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        dpt_philox4x32_10(out, kat[i].ctr, kat[i].key);
        for (int j = 0; j < 4; j++)
            assert_int_equal(out[j], kat[i].out[j]);
    }
}

/* The stream at (key, epoch, index) is a pure function of those: no hidden state. */
static void test_stream_depends_only_on_counter(void **state) {
    (void)state;
    dpt_rng_key key = dpt_rng_key_make(42, DPT_RNG_AUGMENT, 3);
    dpt_rng a, b, c;
    dpt_rng_init(&a, key, 7, 123456789012ull);
    dpt_rng_init(&c, key, 7, 123456789013ull);
    for (int i = 0; i < 5; i++)
        (void)dpt_rng_u32(&c);
    dpt_rng_init(&b, key, 7, 123456789012ull);
    for (int i = 0; i < 10; i++)
        assert_int_equal(dpt_rng_u32(&a), dpt_rng_u32(&b));
    /* a different purpose or member is a different stream */
    dpt_rng d, e;
    dpt_rng_init(&d, dpt_rng_key_make(42, DPT_RNG_DROPOUT, 3), 7, 0);
    dpt_rng_init(&e, dpt_rng_key_make(42, DPT_RNG_AUGMENT, 3), 7, 0);
    assert_int_not_equal(dpt_rng_u32(&d), dpt_rng_u32(&e));
}

/* Closed form: mean 1/2 and variance 1/12 for uniforms, 0 and 1 for normals, within 5 sigma. */
static void test_moments(void **state) {
    (void)state;
    enum { n = 200000 };
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(1, DPT_RNG_TEST, 0), 0, 0);
    double s = 0, s2 = 0, t = 0, t2 = 0;
    for (int i = 0; i < n; i++) {
        double u = dpt_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        float uf = dpt_rng_uniformf(&r);
        assert_true(uf >= 0.0f && uf < 1.0f);
        s += u, s2 += u * u;
        double z = dpt_rng_normal(&r);
        t += z, t2 += z * z;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    assert_true(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(var - 1.0 / 12) < 5 * sqrt(1.0 / 180 / n));
    double zm = t / n, zv = t2 / n - zm * zm;
    assert_true(fabs(zm) < 5 / sqrt((double)n));
    assert_true(fabs(zv - 1.0) < 5 * sqrt(2.0 / n));
}

/* Every position of a permutation of 5 takes each value ~1/5 of the time (chi-square bound);
 * the result is a permutation; the same (key, epoch) repeats it. */
static void test_permutation(void **state) {
    (void)state;
    enum { n = 5, trials = 20000 };
    int64_t counts[n][n] = {{0}};
    dpt_rng_key key = dpt_rng_key_make(9, DPT_RNG_SHUFFLE, 0);
    for (uint32_t e = 0; e < trials; e++) {
        int64_t p[n], q[n];
        int seen[n] = {0};
        dpt_rng_permutation(p, n, key, e);
        dpt_rng_permutation(q, n, key, e);
        for (int i = 0; i < n; i++) {
            assert_int_equal(p[i], q[i]);
            assert_true(p[i] >= 0 && p[i] < n && !seen[p[i]]);
            seen[p[i]] = 1;
            counts[i][p[i]]++;
        }
    }
    double chi2 = 0, expect = (double)trials / n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            chi2 += (counts[i][j] - expect) * (counts[i][j] - expect) / expect;
    /* 25 cells (16 degrees of freedom for a doubly-stochastic table): 60 is far in the tail. */
    assert_true(chi2 < 60.0);
}

static void test_below_is_in_range_and_uniform(void **state) {
    (void)state;
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(5, DPT_RNG_TEST, 1), 0, 0);
    int64_t counts[3] = {0};
    for (int i = 0; i < 30000; i++) {
        uint32_t v = dpt_rng_below(&r, 3);
        assert_true(v < 3);
        counts[v]++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(llabs(counts[i] - 10000) < 5 * 82); /* sigma = sqrt(30000*(1/3)*(2/3)) */
    assert_int_equal(dpt_rng_below(&r, 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_stream_depends_only_on_counter),
        cmocka_unit_test(test_moments),
        cmocka_unit_test(test_permutation),
        cmocka_unit_test(test_below_is_in_range_and_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
