/* Epoch sampler (data): the seeded epoch order over a pool of dataset indices, its global
 * batches, each rank's slice and each sample's mix partner (DESIGN §2). Knows no models and no
 * MPI: ranks are (rank, size) pairs, and everything is a pure function of global input. */
#include "dpt/sampler.h"

#include <string.h>

#include "dpt/rng.h"
#include "dpt/tensor.h"

void dpt_shard_range(int64_t n, int rank, int size, int64_t *begin, int64_t *count) {
    DPT_ASSERT(n >= 0 && size >= 1 && rank >= 0 && rank < size);
    int64_t q = n / size, r = n % size;
    *count = q + (rank < r ? 1 : 0);
    *begin = rank * q + (rank < r ? rank : r);
}

dpt_status dpt_sampler_init(dpt_sampler *s, const dpt_sampler_cfg *cfg, const int64_t *idx,
                            int64_t n) {
    memset(s, 0, sizeof *s);
    s->epoch = -1;
    if (cfg->global_batch < 1)
        return dpt_errorf(DPT_EINVAL, "sampler: global batch %lld must be >= 1",
                          (long long)cfg->global_batch);
    if (n < 1 || n > (int64_t)UINT32_MAX)
        return dpt_errorf(DPT_EINVAL, "sampler: %lld samples (need 1 to 2^32 - 1)", (long long)n);
    if (cfg->member >= (1u << 20))
        return dpt_errorf(DPT_EINVAL, "sampler: member %u must be < 2^20", cfg->member);
    if (cfg->window_blocks < 0 || (cfg->window_blocks > 0 && cfg->block_rows < 1))
        return dpt_errorf(DPT_EINVAL, "sampler: a shuffle window of %lld blocks of %lld rows",
                          (long long)cfg->window_blocks, (long long)cfg->block_rows);
    if (cfg->drop_last && n < cfg->global_batch)
        return dpt_errorf(DPT_EINVAL,
                          "sampler: %lld samples make no full global batch of %lld (drop_last)",
                          (long long)n, (long long)cfg->global_batch);
    s->cfg = *cfg;
    s->n = n;
    s->pool = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    s->order = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    if (cfg->window_blocks > 0)
        s->blocks = dpt_alloc_aligned(
            dpt_size_mul((size_t)((n + cfg->block_rows - 1) / cfg->block_rows), sizeof(int64_t)));
    if (!s->pool || !s->order || (cfg->window_blocks > 0 && !s->blocks)) {
        dpt_sampler_free(s);
        return DPT_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        s->pool[i] = idx ? idx[i] : i;
    int64_t b = cfg->global_batch;
    s->steps = cfg->drop_last ? n / b : (n + b - 1) / b;
    return DPT_OK;
}

void dpt_sampler_free(dpt_sampler *s) {
    if (!s)
        return;
    dpt_free_aligned(s->pool);
    dpt_free_aligned(s->order);
    dpt_free_aligned(s->blocks);
    memset(s, 0, sizeof *s);
    s->epoch = -1;
}

/* The chunk-aware order (sampler.h): block order at random, then each window of W blocks
 * shuffled, so a window's rows come from W chunks that a chunk cache of W chunks holds. */
static void window_order(dpt_sampler *s, dpt_rng_key key, uint32_t epoch) {
    const int64_t R = s->cfg.block_rows, W = s->cfg.window_blocks, nb = (s->n + R - 1) / R;
    dpt_rng_permutation(s->blocks, nb, key, epoch);
    int64_t at = 0;
    for (int64_t w = 0; w * W < nb; w++) {
        const int64_t start = at;
        for (int64_t k = w * W; k < nb && k < (w + 1) * W; k++)
            for (int64_t i = s->blocks[k] * R; i < s->n && i < (s->blocks[k] + 1) * R; i++)
                s->order[at++] = i; /* a pool position, mapped below */
        dpt_rng r;
        dpt_rng_init(&r, key, epoch, (uint64_t)w + 1);
        for (int64_t i = at - start - 1; i > 0; i--) {
            int64_t j = dpt_rng_below(&r, (uint32_t)(i + 1));
            int64_t t = s->order[start + i];
            s->order[start + i] = s->order[start + j];
            s->order[start + j] = t;
        }
    }
    DPT_ASSERT(at == s->n);
}

void dpt_sampler_set_epoch(dpt_sampler *s, uint32_t epoch) {
    DPT_ASSERT(s->order);
    if (s->cfg.no_shuffle) {
        memcpy(s->order, s->pool, (size_t)s->n * sizeof(int64_t));
    } else {
        dpt_rng_key key = dpt_rng_key_make(s->cfg.seed, DPT_RNG_SHUFFLE, s->cfg.member);
        if (s->cfg.window_blocks > 0)
            window_order(s, key, epoch);
        else
            dpt_rng_permutation(s->order, s->n, key, epoch);
        for (int64_t i = 0; i < s->n; i++)
            s->order[i] = s->pool[s->order[i]];
    }
    s->epoch = epoch;
}

int64_t dpt_sampler_steps(const dpt_sampler *s) {
    return s->steps;
}

int64_t dpt_sampler_batch_size(const dpt_sampler *s, int64_t step) {
    DPT_ASSERT(step >= 0 && step < s->steps);
    int64_t b = s->cfg.global_batch, left = s->n - step * b;
    return left < b ? left : b;
}

int64_t dpt_sampler_slice(const dpt_sampler *s, int64_t step, int rank, int size,
                          const int64_t **idx, int64_t *first) {
    DPT_ASSERT(s->epoch >= 0);
    int64_t begin = 0, count = 0;
    dpt_shard_range(dpt_sampler_batch_size(s, step), rank, size, &begin, &count);
    *idx = s->order + step * s->cfg.global_batch + begin;
    if (first)
        *first = begin;
    return count;
}

int64_t dpt_sampler_partner(const dpt_sampler *s, int64_t step, int64_t j) {
    DPT_ASSERT(s->epoch >= 0);
    int64_t b = dpt_sampler_batch_size(s, step);
    DPT_ASSERT(j >= 0 && j < b);
    return s->order[step * s->cfg.global_batch + (b - 1 - j)];
}
