/* Philox4x32-10 and the draws built on it (core). Constants from Salmon et al. (SC'11), Random123. */
#include "dpt/rng.h"

#include <math.h>

#include "dpt/status.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k[0];
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k[1];
    c[3] = lo0;
}

void dpt_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    for (int i = 0; i < 4; i++)
        out[i] = c[i];
}

dpt_rng_key dpt_rng_key_make(uint32_t seed, dpt_rng_purpose purpose, uint32_t member) {
    DPT_ASSERT(member < (1u << 20) && (uint32_t)purpose < (1u << 12));
    return (dpt_rng_key){{seed, ((uint32_t)purpose << 20) | member}};
}

void dpt_rng_init(dpt_rng *r, dpt_rng_key key, uint32_t epoch, uint64_t index) {
    r->key = key;
    r->ctr[0] = 0;
    r->ctr[1] = (uint32_t)index;
    r->ctr[2] = (uint32_t)(index >> 32);
    r->ctr[3] = epoch;
    r->used = 4;
}

uint32_t dpt_rng_u32(dpt_rng *r) {
    if (r->used == 4) {
        dpt_philox4x32_10(r->buf, r->ctr, r->key.k);
        r->ctr[0]++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

float dpt_rng_uniformf(dpt_rng *r) { return (float)(dpt_rng_u32(r) >> 8) * 0x1.0p-24f; }

double dpt_rng_uniform(dpt_rng *r) {
    uint64_t hi = dpt_rng_u32(r) >> 5, lo = dpt_rng_u32(r) >> 6; /* 27 + 26 = 53 bits */
    return (double)((hi << 26) | lo) * 0x1.0p-53;
}

double dpt_rng_normal(dpt_rng *r) {
    double u1 = 1.0 - dpt_rng_uniform(r); /* (0, 1]: log never sees 0 */
    double u2 = dpt_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint32_t dpt_rng_below(dpt_rng *r, uint32_t n) {
    DPT_ASSERT(n >= 1);
    uint64_t m = (uint64_t)dpt_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)dpt_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void dpt_rng_permutation(int64_t *perm, int64_t n, dpt_rng_key key, uint32_t epoch) {
    DPT_ASSERT(n >= 0 && n <= UINT32_MAX);
    dpt_rng r;
    dpt_rng_init(&r, key, epoch, 0);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = dpt_rng_below(&r, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
