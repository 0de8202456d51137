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
    if (cfg->drop_last && n < cfg->global_batch)
        return dpt_errorf(DPT_EINVAL,
                          "sampler: %lld samples make no full global batch of %lld (drop_last)",
                          (long long)n, (long long)cfg->global_batch);
    s->cfg = *cfg;
    s->n = n;
    s->pool = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    s->order = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    if (!s->pool || !s->order) {
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
    memset(s, 0, sizeof *s);
    s->epoch = -1;
}

void dpt_sampler_set_epoch(dpt_sampler *s, uint32_t epoch) {
    DPT_ASSERT(s->order);
    if (s->cfg.no_shuffle) {
        memcpy(s->order, s->pool, (size_t)s->n * sizeof(int64_t));
    } else {
        dpt_rng_key key = dpt_rng_key_make(s->cfg.seed, DPT_RNG_SHUFFLE, s->cfg.member);
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
