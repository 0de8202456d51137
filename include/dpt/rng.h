/* Counter-based randomness (core): Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers:
 * as easy as 1, 2, 3"). A stream is keyed by (seed, purpose, member) and positioned by a counter
 * (epoch or step, global sample index), so the random numbers of a sample do not depend on which
 * rank draws them or in which order. Never rand(), never a seed derived from the rank. */
#ifndef DPT_RNG_H
#define DPT_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a stream is for; part of the key so that two purposes never share numbers. */
typedef enum {
    DPT_RNG_INIT = 1,  /* weight initialization */
    DPT_RNG_SHUFFLE,   /* epoch permutation */
    DPT_RNG_AUGMENT,   /* flip, crop/shift, cutout */
    DPT_RNG_NOISE,     /* Gaussian input noise */
    DPT_RNG_MIX,       /* mixup / cutmix partner and lambda */
    DPT_RNG_DROPOUT,   /* dropout masks */
    DPT_RNG_BOOTSTRAP, /* bagging resamples */
    DPT_RNG_SPLIT,     /* validation split, K-fold assignment */
    DPT_RNG_TEST,      /* test data */
    DPT_RNG_SUBSPACE,  /* random subspaces (sharpness) */
} dpt_rng_purpose;

typedef struct {
    uint32_t k[2];
} dpt_rng_key;

/* The raw bijection: out = Philox4x32-10(ctr, key). */
void dpt_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* key = (seed, purpose << 20 | member); member < 2^20 (ensemble member, fold, sweep point). */
dpt_rng_key dpt_rng_key_make(uint32_t seed, dpt_rng_purpose purpose, uint32_t member);

/* A sequential stream at counter (block, index lo, index hi, epoch): draws walk `block`. */
typedef struct {
    dpt_rng_key key;
    uint32_t ctr[4];
    uint32_t buf[4];
    int used; /* words of buf already handed out */
} dpt_rng;

void dpt_rng_init(dpt_rng *r, dpt_rng_key key, uint32_t epoch, uint64_t index);
uint32_t dpt_rng_u32(dpt_rng *r);
/* Uniform on [0, 1) with 24 random bits (exactly representable floats). */
float dpt_rng_uniformf(dpt_rng *r);
/* Uniform on [0, 1) with 53 random bits. */
double dpt_rng_uniform(dpt_rng *r);
/* Standard normal (Box-Muller on two 53-bit uniforms; the spare value is not cached, so each
 * call consumes a fixed number of words and streams stay aligned). */
double dpt_rng_normal(dpt_rng *r);
/* Uniform integer in [0, n), n >= 1, without modulo bias (Lemire's method with rejection). */
uint32_t dpt_rng_below(dpt_rng *r, uint32_t n);
/* perm = a uniformly random permutation of 0..n-1 (Fisher-Yates), from the stream (key, epoch, 0).
 * The same (key, epoch, n) gives the same permutation on every rank. */
void dpt_rng_permutation(int64_t *perm, int64_t n, dpt_rng_key key, uint32_t epoch);

#ifdef __cplusplus
}
#endif
#endif
