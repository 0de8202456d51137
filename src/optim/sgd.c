/* SGD, Momentum and Nesterov exactly as torch.optim.SGD (1.13, foreach=False) updates one
 * parameter segment: coupled L2, momentum buffer = gradient on the first step, then
 * buf = momentum*buf + (1 - dampening)*g; Nesterov steps along g + momentum*buf. */
#include "optim_impl.h"

/* The element loop, specialised by the compiler for each constant (momentum on, nesterov). */
static inline __attribute__((always_inline)) void sgd_loop(const dpt__optim_seg *s, float wd,
                                                           float mom, float keep_g, int first,
                                                           const int use_momentum,
                                                           const int nesterov) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict buf = s->slot[SLOT_0];
    const float neg_lr = (float)-s->lr;
    for (int64_t i = 0; i < s->n; i++) {
        float d = dpt__l2_grad(g[i], p[i], wd);
        if (use_momentum) {
            float b = first ? d : buf[i] * mom + keep_g * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[i] = p[i] + neg_lr * d;
    }
}

void dpt__optim_sgd(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    float wd = (float)s->wd, mom = (float)cfg->momentum;
    float keep_g = (float)(1.0 - cfg->dampening);
    int first = s->t == 1;
    if (cfg->momentum == 0)
        sgd_loop(s, wd, mom, keep_g, first, 0, 0);
    else if (cfg->nesterov)
        sgd_loop(s, wd, mom, keep_g, first, 1, 1);
    else
        sgd_loop(s, wd, mom, keep_g, first, 1, 0);
}
