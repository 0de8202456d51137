/* Sampler, called in one process with (rank, size) pairs. Oracles: the slices of every rank
 * count must tile each global batch exactly (concatenated in rank order they equal the 1-rank
 * batch); the epoch order must be pool[dpt_rng_permutation(...)] computed here directly; counts
 * follow the closed forms floor/ceil(n / b_g). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpt/rng.h"
#include "dpt/sampler.h"

static const int rank_counts[] = {1, 2, 3, 4, 8};

static void test_shard_range_tiles(void **state) {
    (void)state;
    for (int64_t n = 0; n <= 41; n++)
        for (size_t k = 0; k < sizeof rank_counts / sizeof rank_counts[0]; k++) {
            int R = rank_counts[k];
            int64_t next = 0, lo = n, hi = 0;
            for (int r = 0; r < R; r++) {
                int64_t begin, count;
                dpt_shard_range(n, r, R, &begin, &count);
                assert_int_equal(begin, next); /* contiguous, in rank order */
                next = begin + count;
                lo = count < lo ? count : lo;
                hi = count > hi ? count : hi;
            }
            assert_int_equal(next, n); /* sums to exactly n */
            assert_true(hi - lo <= 1); /* as even as possible */
            assert_int_equal(hi, (n + R - 1) / R);
        }
}

/* For R in {1,2,3,4,8}: the slices of each global batch, concatenated over ranks, equal the
 * 1-rank batch, so the global batch composition does not depend on the rank count. */
static void check_tiling(const dpt_sampler *s) {
    for (int64_t t = 0; t < dpt_sampler_steps(s); t++) {
        const int64_t *whole;
        int64_t b = dpt_sampler_slice(s, t, 0, 1, &whole, NULL);
        assert_int_equal(b, dpt_sampler_batch_size(s, t));
        for (size_t k = 0; k < sizeof rank_counts / sizeof rank_counts[0]; k++) {
            int R = rank_counts[k];
            int64_t pos = 0;
            for (int r = 0; r < R; r++) {
                const int64_t *idx;
                int64_t first = -1;
                int64_t c = dpt_sampler_slice(s, t, r, R, &idx, &first);
                assert_int_equal(first, pos);
                for (int64_t i = 0; i < c; i++)
                    assert_int_equal(idx[i], whole[pos + i]);
                pos += c;
            }
            assert_int_equal(pos, b);
        }
    }
}

static void test_slices_tile_global_batches(void **state) {
    (void)state;
    enum { n = 103 };
    for (int drop = 0; drop <= 1; drop++) {
        dpt_sampler s;
        dpt_sampler_cfg cfg = {.global_batch = 16, .seed = 11, .drop_last = drop};
        assert_int_equal(dpt_sampler_init(&s, &cfg, NULL, n), DPT_OK);
        assert_int_equal(dpt_sampler_steps(&s), drop ? 6 : 7); /* floor / ceil of 103 / 16 */
        for (uint32_t e = 0; e < 3; e++) {
            dpt_sampler_set_epoch(&s, e);
            check_tiling(&s);
        }
        if (!drop)
            assert_int_equal(dpt_sampler_batch_size(&s, 6), n - 6 * 16);
        dpt_sampler_free(&s);
    }
}

/* Oracle: the order is pool[perm] with perm from dpt_rng_permutation with the documented key.
 * Every epoch visits each pool element exactly once; epochs differ; the seed and member matter. */
static void test_epoch_order(void **state) {
    (void)state;
    enum { n = 50 };
    int64_t pool[n], perm[n], prev[n];
    for (int i = 0; i < n; i++)
        pool[i] = 1000 + 3 * i;
    dpt_sampler s;
    dpt_sampler_cfg cfg = {.global_batch = 7, .seed = 5, .member = 2};
    assert_int_equal(dpt_sampler_init(&s, &cfg, pool, n), DPT_OK);
    for (uint32_t e = 0; e < 4; e++) {
        dpt_sampler_set_epoch(&s, e);
        dpt_rng_permutation(perm, n, dpt_rng_key_make(5, DPT_RNG_SHUFFLE, 2), e);
        int seen[n] = {0};
        for (int i = 0; i < n; i++) {
            assert_int_equal(s.order[i], pool[perm[i]]);
            int64_t k = (s.order[i] - 1000) / 3;
            assert_true(k >= 0 && k < n && (s.order[i] - 1000) % 3 == 0);
            seen[k]++;
        }
        for (int i = 0; i < n; i++)
            assert_int_equal(seen[i], 1);
        if (e > 0)
            assert_memory_not_equal(prev, s.order, sizeof prev);
        memcpy(prev, s.order, sizeof prev);
    }
    /* a different member is a different order */
    dpt_sampler s2;
    cfg.member = 3;
    assert_int_equal(dpt_sampler_init(&s2, &cfg, pool, n), DPT_OK);
    dpt_sampler_set_epoch(&s2, 3);
    assert_memory_not_equal(prev, s2.order, sizeof prev);
    dpt_sampler_free(&s2);
    /* no_shuffle keeps pool order */
    cfg.no_shuffle = 1;
    assert_int_equal(dpt_sampler_init(&s2, &cfg, pool, n), DPT_OK);
    dpt_sampler_set_epoch(&s2, 9);
    assert_memory_equal(s2.order, pool, sizeof pool);
    dpt_sampler_free(&s2);
    dpt_sampler_free(&s);
}

/* Chunk-aware order: still a permutation of the pool; window w (W blocks of R pool positions)
 * holds exactly the positions of W distinct blocks, all of each; epochs differ. */
static void test_window_order(void **state) {
    (void)state;
    enum { n = 103, R = 10, W = 3, nb = (n + R - 1) / R };
    int64_t pool[n], prev[n];
    for (int i = 0; i < n; i++)
        pool[i] = 7 + 2 * i;
    dpt_sampler s;
    dpt_sampler_cfg cfg = {.global_batch = 8, .seed = 4, .block_rows = R, .window_blocks = W};
    assert_int_equal(dpt_sampler_init(&s, &cfg, pool, n), DPT_OK);
    for (uint32_t e = 0; e < 3; e++) {
        dpt_sampler_set_epoch(&s, e);
        int seen[n] = {0};
        int64_t at = 0;
        for (int w = 0; w * W < nb; w++) {
            int in_window[nb] = {0}, blocks = 0;
            int64_t size = 0;
            for (int k = w * W; k < nb && k < (w + 1) * W; k++)
                size += s.blocks[k] == nb - 1 ? n - (nb - 1) * R : R;
            for (int64_t i = at; i < at + size; i++) {
                int64_t pos = (s.order[i] - 7) / 2;
                assert_true(pos >= 0 && pos < n);
                seen[pos]++;
                blocks += !in_window[pos / R]++;
            }
            assert_int_equal(blocks, nb - w * W < W ? nb - w * W : W);
            at += size;
        }
        assert_int_equal(at, n);
        for (int i = 0; i < n; i++)
            assert_int_equal(seen[i], 1);
        if (e > 0)
            assert_memory_not_equal(prev, s.order, sizeof prev);
        memcpy(prev, s.order, sizeof prev);
    }
    dpt_sampler_free(&s);
    cfg.block_rows = 0; /* a window needs blocks */
    assert_int_equal(dpt_sampler_init(&s, &cfg, pool, n), DPT_EINVAL);
    dpt_sampler_free(&s);
}

/* The partner rule: mirrored position in the same global batch; an involution. */
static void test_partner(void **state) {
    (void)state;
    dpt_sampler s;
    dpt_sampler_cfg cfg = {.global_batch = 9, .seed = 1};
    assert_int_equal(dpt_sampler_init(&s, &cfg, NULL, 40), DPT_OK); /* last batch has 4 */
    dpt_sampler_set_epoch(&s, 2);
    for (int64_t t = 0; t < dpt_sampler_steps(&s); t++) {
        const int64_t *whole;
        int64_t b = dpt_sampler_slice(&s, t, 0, 1, &whole, NULL);
        for (int64_t j = 0; j < b; j++) {
            int64_t p = dpt_sampler_partner(&s, t, j);
            assert_int_equal(p, whole[b - 1 - j]);
            assert_int_equal(dpt_sampler_partner(&s, t, b - 1 - j), whole[j]);
        }
    }
    dpt_sampler_free(&s);
}

static void test_bad_config(void **state) {
    (void)state;
    dpt_sampler s;
    assert_int_equal(dpt_sampler_init(&s, &(dpt_sampler_cfg){.global_batch = 0}, NULL, 10),
                     DPT_EINVAL);
    dpt_sampler_free(&s);
    assert_int_equal(
        dpt_sampler_init(&s, &(dpt_sampler_cfg){.global_batch = 11, .drop_last = 1}, NULL, 10),
        DPT_EINVAL);
    dpt_sampler_free(&s);
    /* kept: one partial batch of all 10 */
    assert_int_equal(dpt_sampler_init(&s, &(dpt_sampler_cfg){.global_batch = 11}, NULL, 10),
                     DPT_OK);
    assert_int_equal(dpt_sampler_steps(&s), 1);
    dpt_sampler_set_epoch(&s, 0);
    assert_int_equal(dpt_sampler_batch_size(&s, 0), 10);
    check_tiling(&s); /* R = 8 > ... and 3 ranks with uneven counts */
    dpt_sampler_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_range_tiles), cmocka_unit_test(test_slices_tile_global_batches),
        cmocka_unit_test(test_epoch_order),       cmocka_unit_test(test_partner),
        cmocka_unit_test(test_bad_config),        cmocka_unit_test(test_window_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
