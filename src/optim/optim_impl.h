/* Internal contract between optim.c (configuration, segments, state slots, dispatch) and the
 * per-rule files sgd.c, adaptive.c, adam.c and layerwise.c: one update function per rule, called
 * once per parameter segment with pointers already offset to that segment; the 4-lane streaming
 * loop they all share; the fixed-order double sum of squares. */
#ifndef DPT_OPTIM_IMPL_H
#define DPT_OPTIM_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dpt/optim.h"

/* Slot indices are fixed per rule (absent slots are NULL): */
enum { SLOT_0, SLOT_1, SLOT_2 };

typedef struct {
    float *restrict p;                /* the segment's parameters */
    const float *restrict g;          /* its gradients */
    float *slot[DPT_OPTIM_MAX_SLOTS]; /* its part of each state slot, NULL if absent */
    int64_t n;                        /* elements */
    double wd;                        /* weight decay, 0 for a NO_DECAY segment */
    int adapt;                        /* layer-wise trust ratio on (LARS/LAMB) */
    double lr;                        /* this step's learning rate */
    int64_t t;                        /* step number, 1 on the first step */
} dpt__optim_seg;

typedef void (*dpt__optim_update)(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);

void dpt__optim_sgd(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_adagrad(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_rmsprop(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_adadelta(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_adam(const dpt_optim_cfg *cfg, const dpt__optim_seg *s); /* adam and adamw */
void dpt__optim_lars(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_lamb(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);

/* ---- 4-lane float vectors (GCC/Clang vector extensions; SSE sqrt/max on x86, per-lane libm
 * elsewhere). Each lane does exactly the float32 operations the scalar code would, in the same
 * order, so results do not depend on the vector width. The build has -ffp-contract=off (ISO C),
 * so a*b + c is never fused. Not kernels/simd.h's vocabulary: that header compiles only in the
 * per-ISA x86 builds, while every build (any CPU, any DPT_KERNEL) runs these rules, so in simd.h
 * they would need a second, portable copy of each torch-ordered update (issue #14). ---- */
typedef float dpt__v4 __attribute__((vector_size(16)));
typedef double dpt__v2d __attribute__((vector_size(16)));

static inline dpt__v4 dpt__v4_sqrt(dpt__v4 x) {
#if defined(__SSE__)
    return _mm_sqrt_ps(x);
#else
    return (dpt__v4){sqrtf(x[0]), sqrtf(x[1]), sqrtf(x[2]), sqrtf(x[3])};
#endif
}

/* max(a, b) per lane; a NaN in b propagates (as torch.maximum would). */
static inline dpt__v4 dpt__v4_max(dpt__v4 a, dpt__v4 b) {
#if defined(__SSE__)
    return _mm_max_ps(a, b);
#else
    return (dpt__v4){a[0] > b[0] ? a[0] : b[0], a[1] > b[1] ? a[1] : b[1],
                     a[2] > b[2] ? a[2] : b[2], a[3] > b[3] ? a[3] : b[3]};
#endif
}

/* The coupled L2 penalty's gradient, as torch adds it: grad.add(param, alpha=weight_decay). */
static inline dpt__v4 dpt__l2_grad(dpt__v4 g, dpt__v4 p, float wd) {
    return g + wd * p;
}

/* Exponential moving averages in torch's operation order: avg.mul_(a).add_(x, alpha=1-a) and
 * avg.mul_(a).addcmul_(x, x, value=1-a). */
static inline dpt__v4 dpt__ema(dpt__v4 avg, dpt__v4 x, float a, float one_m_a) {
    return avg * a + one_m_a * x;
}
static inline dpt__v4 dpt__ema_sq(dpt__v4 avg, dpt__v4 x, float a, float one_m_a) {
    return avg * a + one_m_a * x * x;
}

/* Four consecutive elements of every stream of a segment: params, grads, state slots. */
typedef struct {
    dpt__v4 p, g, s[DPT_OPTIM_MAX_SLOTS];
    int64_t i; /* segment index of lane 0 */
    int valid; /* lanes holding elements: 4, fewer in the tail (the others are 0) */
} dpt__lanes;

typedef void (*dpt__lanes_fn)(dpt__lanes *x, void *ctx);

#define DPT__NO_GRAD (1u << 8) /* in dpt__stream's slots_in: fn does not read x->g */

/* The first `valid` floats at p, zero-padded to four lanes / stored back. */
static inline dpt__v4 dpt__v4_load(const float *p, int valid) {
    dpt__v4 v = {0, 0, 0, 0};
    memcpy(&v, p, (size_t)valid * sizeof(float));
    return v;
}
static inline void dpt__v4_store(float *p, dpt__v4 v, int valid) {
    memcpy(p, &v, (size_t)valid * sizeof(float));
}

/* One block of `valid` elements at segment index i (see dpt__stream). The slots are spelled out
 * rather than looped over, so that with constant masks x lives in registers. */
static inline __attribute__((always_inline)) void
dpt__stream_block(const dpt__optim_seg *s, int64_t i, const int valid, const unsigned slots_in,
                  const unsigned slots_out, const int p_out, dpt__lanes_fn fn, void *ctx) {
    const dpt__v4 zero = {0, 0, 0, 0};
    dpt__lanes x = {.p = dpt__v4_load(s->p + i, valid),
                    .g = slots_in & DPT__NO_GRAD ? zero : dpt__v4_load(s->g + i, valid),
                    .s = {slots_in & 1u ? dpt__v4_load(s->slot[0] + i, valid) : zero,
                          slots_in & 2u ? dpt__v4_load(s->slot[1] + i, valid) : zero,
                          slots_in & 4u ? dpt__v4_load(s->slot[2] + i, valid) : zero,
                          slots_in & 8u ? dpt__v4_load(s->slot[3] + i, valid) : zero},
                    .i = i,
                    .valid = valid};
    fn(&x, ctx);
    if (p_out)
        dpt__v4_store(s->p + i, x.p, valid);
    if (slots_out & 1u)
        dpt__v4_store(s->slot[0] + i, x.s[0], valid);
    if (slots_out & 2u)
        dpt__v4_store(s->slot[1] + i, x.s[1], valid);
    if (slots_out & 4u)
        dpt__v4_store(s->slot[2] + i, x.s[2], valid);
    if (slots_out & 8u)
        dpt__v4_store(s->slot[3] + i, x.s[3], valid);
}

/* Runs `fn` over the segment four elements at a time: loads params, grads (unless `slots_in`
 * has DPT__NO_GRAD) and the slots in `slots_in` (bit k = slot k), calls fn, stores params if
 * `p_out` and the slots in `slots_out`. The tail is zero-padded and only its valid lanes are
 * stored. Inlined with a constant fn, this is the one loop every rule shares. */
static inline __attribute__((always_inline)) void
dpt__stream(const dpt__optim_seg *s, const unsigned slots_in, const unsigned slots_out,
            const int p_out, dpt__lanes_fn fn, void *ctx) {
    int64_t i = 0;
    for (; i + 4 <= s->n; i += 4)
        dpt__stream_block(s, i, 4, slots_in, slots_out, p_out, fn, ctx);
    if (i < s->n)
        dpt__stream_block(s, i, (int)(s->n - i), slots_in, slots_out, p_out, fn, ctx);
}

/* The four lanes of v as doubles: lanes 0-1 in *lo, 2-3 in *hi (exact). */
static inline void dpt__v4_widen(dpt__v4 v, dpt__v2d *lo, dpt__v2d *hi) {
#if defined(__SSE2__)
    *lo = _mm_cvtps_pd(v);
    *hi = _mm_cvtps_pd(_mm_movehl_ps(v, v));
#else
    *lo = (dpt__v2d){v[0], v[1]};
    *hi = (dpt__v2d){v[2], v[3]};
#endif
}

/* Sum of squares in double with a fixed order: element i goes to lane i % 8, each lane sums in
 * increasing i, and the lanes are combined pairwise. Rank-, thread- and ISA-independent.
 * pair[j] holds lanes 2j and 2j+1. */
typedef struct {
    dpt__v2d pair[4];
} dpt__sumsq;

/* Adds the squares of the x->valid first lanes of v, elements x->i, x->i + 1, ... (x->i is a
 * multiple of 4, so the block is lanes 0-3 or 4-7). */
static inline void dpt__sumsq_add(dpt__sumsq *s, const dpt__lanes *x, dpt__v4 v) {
    for (int l = x->valid; l < 4; l++)
        v[l] = 0;
    dpt__v2d lo, hi;
    dpt__v4_widen(v, &lo, &hi);
    int h = (x->i & 4) ? 2 : 0;
    s->pair[h] += lo * lo;
    s->pair[h + 1] += hi * hi;
}
double dpt__sumsq_total(const dpt__sumsq *s);
/* The same order over an array: sum of x[i]^2 for i < n. */
double dpt__sumsq_array(const float *x, int64_t n);

/* The layer-wise ratio num/den of LARS and LAMB, 1 when either norm is 0 (a zero-initialized
 * layer would otherwise never move) or when the segment is not adapted. */
double dpt__trust_ratio(int adapt, double num, double den);

#endif
