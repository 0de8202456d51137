/* Internal contract between optim.c (configuration, segments, state slots, dispatch) and the
 * per-rule files sgd.c, adaptive.c, adam.c and layerwise.c: one update function per rule, called
 * once per parameter segment with pointers already offset to that segment; the 4-lane streaming
 * loop they all share; the fixed-order double sum of squares. */
#ifndef DPT_OPTIM_IMPL_H
#define DPT_OPTIM_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dpt/optim.h"
#include "kernels/simd.h"

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

/* The vectors are kernels/simd.h's portable flavor: 4 float lanes, each doing exactly the float
 * operations the scalar code would, in the same order. */
/* The coupled L2 penalty's gradient, as torch adds it: grad.add(param, alpha=weight_decay). */
static inline vf dpt__l2_grad(vf g, vf p, float wd) {
    return V_ADD(g, V_MUL(V_SET1(wd), p));
}

/* Exponential moving averages in torch's operation order: avg.mul_(a).add_(x, alpha=1-a) and
 * avg.mul_(a).addcmul_(x, x, value=1-a). */
static inline vf dpt__ema(vf avg, vf x, float a, float one_m_a) {
    return V_ADD(V_MUL(avg, V_SET1(a)), V_MUL(V_SET1(one_m_a), x));
}
static inline vf dpt__ema_sq(vf avg, vf x, float a, float one_m_a) {
    return V_ADD(V_MUL(avg, V_SET1(a)), V_MUL(V_MUL(V_SET1(one_m_a), x), x));
}

/* Four consecutive elements of every stream of a segment: params, grads, state slots. */
typedef struct {
    vf p, g, s[DPT_OPTIM_MAX_SLOTS];
    int64_t i; /* segment index of lane 0 */
    int valid; /* lanes holding elements: 4, fewer in the tail (the others are 0) */
} dpt__lanes;

typedef void (*dpt__lanes_fn)(dpt__lanes *x, void *ctx);

#define DPT__NO_GRAD (1u << 8) /* in dpt__stream's slots_in: fn does not read x->g */

/* One block of `valid` elements at segment index i (see dpt__stream). The slots are spelled out
 * rather than looped over, so that with constant masks x lives in registers. */
static inline __attribute__((always_inline)) void
dpt__stream_block(const dpt__optim_seg *s, int64_t i, const int valid, const unsigned slots_in,
                  const unsigned slots_out, const int p_out, dpt__lanes_fn fn, void *ctx) {
    const vf zero = V_ZERO();
    dpt__lanes x = {.p = V_LOAD_N(s->p + i, valid),
                    .g = slots_in & DPT__NO_GRAD ? zero : V_LOAD_N(s->g + i, valid),
                    .s = {slots_in & 1u ? V_LOAD_N(s->slot[0] + i, valid) : zero,
                          slots_in & 2u ? V_LOAD_N(s->slot[1] + i, valid) : zero,
                          slots_in & 4u ? V_LOAD_N(s->slot[2] + i, valid) : zero,
                          slots_in & 8u ? V_LOAD_N(s->slot[3] + i, valid) : zero},
                    .i = i,
                    .valid = valid};
    fn(&x, ctx);
    if (p_out)
        V_STORE_N(s->p + i, x.p, valid);
    if (slots_out & 1u)
        V_STORE_N(s->slot[0] + i, x.s[0], valid);
    if (slots_out & 2u)
        V_STORE_N(s->slot[1] + i, x.s[1], valid);
    if (slots_out & 4u)
        V_STORE_N(s->slot[2] + i, x.s[2], valid);
    if (slots_out & 8u)
        V_STORE_N(s->slot[3] + i, x.s[3], valid);
}

/* Runs `fn` over the segment four elements at a time: loads params, grads (unless `slots_in`
 * has DPT__NO_GRAD) and the slots in `slots_in` (bit k = slot k), calls fn, stores params if
 * `p_out` and the slots in `slots_out`. The tail is zero-padded and only its valid lanes are
 * stored. Inlined with a constant fn, this is the one loop every rule shares. */
static inline __attribute__((always_inline)) void
dpt__stream(const dpt__optim_seg *s, const unsigned slots_in, const unsigned slots_out,
            const int p_out, dpt__lanes_fn fn, void *ctx) {
    int64_t i = 0;
    for (; i + VL <= s->n; i += VL)
        dpt__stream_block(s, i, VL, slots_in, slots_out, p_out, fn, ctx);
    if (i < s->n)
        dpt__stream_block(s, i, (int)(s->n - i), slots_in, slots_out, p_out, fn, ctx);
}

/* Sum of squares in double with a fixed order: element i goes to lane i % 8, each lane sums in
 * increasing i, and the lanes are combined pairwise. Rank-, thread- and ISA-independent.
 * pair[j] holds lanes 2j and 2j+1. */
typedef struct {
    vd pair[4];
} dpt__sumsq;

/* Adds the squares of the x->valid first lanes of v, elements x->i, x->i + 1, ... (x->i is a
 * multiple of 4, so the block is lanes 0-3 or 4-7). */
static inline void dpt__sumsq_add(dpt__sumsq *s, const dpt__lanes *x, vf v) {
    for (int l = x->valid; l < 4; l++)
        v[l] = 0;
    vd lo, hi;
    v_widen(v, &lo, &hi);
    int h = (x->i & 4) ? 2 : 0;
    s->pair[h] = VD_ADD(s->pair[h], VD_MUL(lo, lo));
    s->pair[h + 1] = VD_ADD(s->pair[h + 1], VD_MUL(hi, hi));
}
double dpt__sumsq_total(const dpt__sumsq *s);
/* The same order over an array: sum of x[i]^2 for i < n. */
double dpt__sumsq_array(const float *x, int64_t n);

/* The layer-wise ratio num/den of LARS and LAMB, 1 when either norm is 0 (a zero-initialized
 * layer would otherwise never move) or when the segment is not adapted. */
double dpt__trust_ratio(int adapt, double num, double den);

#endif
