/* Internal contract between optim.c (configuration, segments, state slots, dispatch) and the
 * per-rule files sgd.c, adaptive.c, adam.c and layerwise.c: one update function per rule, called
 * once per parameter segment with pointers already offset to that segment. */
#ifndef DPT_OPTIM_IMPL_H
#define DPT_OPTIM_IMPL_H

#include <stdint.h>

#include "dpt/optim.h"

/* Slot indices are fixed per rule (absent slots are NULL): */
enum { SLOT_0, SLOT_1, SLOT_2 };

typedef struct {
    float *restrict p;                     /* the segment's parameters */
    const float *restrict g;               /* its gradients */
    float *slot[DPT_OPTIM_MAX_SLOTS];      /* its part of each state slot, NULL if absent */
    int64_t n;                             /* elements */
    double wd;                             /* weight decay, 0 for a NO_DECAY segment */
    int adapt;                             /* layer-wise trust ratio on (LARS/LAMB) */
    double lr;                             /* this step's learning rate */
    int64_t t;                             /* step number, 1 on the first step */
} dpt__optim_seg;

typedef void (*dpt__optim_update)(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);

void dpt__optim_sgd(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_adagrad(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_rmsprop(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_adadelta(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_adam(const dpt_optim_cfg *cfg, const dpt__optim_seg *s); /* adam and adamw */
void dpt__optim_lars(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);
void dpt__optim_lamb(const dpt_optim_cfg *cfg, const dpt__optim_seg *s);

/* The coupled L2 penalty's gradient, as torch adds it: grad.add(param, alpha=weight_decay). */
static inline float dpt__l2_grad(float g, float p, float wd) { return g + wd * p; }

/* Sum of squares in double with a fixed order: element i goes to lane i % 8, lanes are summed
 * sequentially and combined pairwise. Rank-, thread- and ISA-independent. */
typedef struct {
    double lane[8];
} dpt__sumsq;

static inline void dpt__sumsq_add(dpt__sumsq *s, int64_t i, float x) {
    s->lane[i & 7] += (double)x * (double)x;
}
double dpt__sumsq_total(const dpt__sumsq *s);
/* The same order over an array: sum of x[i]^2 for i < n. */
double dpt__sumsq_array(const float *x, int64_t n);

/* The layer-wise ratio num/den of LARS and LAMB, 1 when either norm is 0 (a zero-initialized
 * layer would otherwise never move) or when the segment is not adapted. */
double dpt__trust_ratio(int adapt, double num, double den);

#endif
