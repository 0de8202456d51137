/* SGD, Momentum and Nesterov exactly as torch.optim.SGD (1.13, foreach=False) updates one
 * parameter segment: coupled L2, momentum buffer = gradient on the first step, then
 * buf = momentum*buf + (1 - dampening)*g; Nesterov steps along g + momentum*buf. */
#include "optim_impl.h"

typedef struct {
    float wd, mom, keep_g, neg_lr;
    int first, use_momentum, nesterov;
} sgd_coef;

static inline void sgd_lanes(dpt__lanes *x, void *ctx) {
    const sgd_coef *k = ctx;
    vf d = dpt__l2_grad(x->g, x->p, k->wd);
    if (k->use_momentum) {
        vf b =
            k->first ? d : V_ADD(V_MUL(x->s[SLOT_0], V_SET1(k->mom)), V_MUL(V_SET1(k->keep_g), d));
        x->s[SLOT_0] = b;
        d = k->nesterov ? V_ADD(d, V_MUL(V_SET1(k->mom), b)) : b;
    }
    x->p = V_ADD(x->p, V_MUL(V_SET1(k->neg_lr), d));
}

void dpt__optim_sgd(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    sgd_coef k = {.wd = (float)s->wd,
                  .mom = (float)cfg->momentum,
                  .keep_g = (float)(1.0 - cfg->dampening),
                  .neg_lr = (float)-s->lr,
                  .first = s->t == 1,
                  .use_momentum = cfg->momentum != 0,
                  .nesterov = cfg->nesterov};
    if (k.use_momentum)
        dpt__stream(s, 1u << SLOT_0, 1u << SLOT_0, 1, sgd_lanes, &k);
    else
        dpt__stream(s, 0, 0, 1, sgd_lanes, &k);
}
