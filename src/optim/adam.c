/* Adam (coupled L2, optional AMSGrad) and AdamW (decoupled weight decay) exactly as
 * torch.optim 1.13 (foreach=False) updates one parameter segment: eps is added after the bias
 * correction of sqrt(v), outside the square root, and the step size is lr / (1 - beta1^t). */
#include "optim_impl.h"

/* m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  amsgrad: vmax = max(vmax, v) replaces v;
 * den = sqrt(v) / sqrt(1 - b2^t) + eps;  p = keep*p - lr/(1 - b1^t) * m / den.
 * Slots: exp_avg, exp_avg_sq, max_exp_avg_sq. */
typedef struct {
    float l2, keep, beta1, one_m_b1, beta2, one_m_b2, bc2_sqrt, neg_step, eps;
    int amsgrad;
} adam_coef;

static inline void adam_lanes(dpt__lanes *x, void *ctx) {
    const adam_coef *k = ctx;
    vf d = dpt__l2_grad(x->g, x->p, k->l2);
    vf m = dpt__ema(x->s[SLOT_0], d, k->beta1, k->one_m_b1);
    vf v = dpt__ema_sq(x->s[SLOT_1], d, k->beta2, k->one_m_b2);
    x->s[SLOT_0] = m;
    x->s[SLOT_1] = v;
    if (k->amsgrad) {
        v = V_MAX(x->s[SLOT_2], v);
        x->s[SLOT_2] = v;
    }
    vf den = V_ADD(V_DIV(V_SQRT(v), V_SET1(k->bc2_sqrt)), V_SET1(k->eps));
    x->p = V_ADD(V_MUL(x->p, V_SET1(k->keep)), V_DIV(V_MUL(V_SET1(k->neg_step), m), den));
}

void dpt__optim_adam(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    /* adam adds wd*p to the gradient; adamw first scales p by 1 - lr*wd (torch: param.mul_) */
    const int decoupled = cfg->kind == DPT_OPTIM_ADAMW;
    const double b1 = cfg->betas[0], b2 = cfg->betas[1], t = (double)s->t;
    adam_coef k = {.l2 = decoupled ? 0.0f : (float)s->wd,
                   .keep = decoupled ? (float)(1.0 - s->lr * s->wd) : 1.0f,
                   .beta1 = (float)b1,
                   .one_m_b1 = (float)(1.0 - b1),
                   .beta2 = (float)b2,
                   .one_m_b2 = (float)(1.0 - b2),
                   .bc2_sqrt = (float)sqrt(1.0 - pow(b2, t)),
                   .neg_step = (float)-(s->lr / (1.0 - pow(b1, t))),
                   .eps = (float)cfg->eps,
                   .amsgrad = cfg->amsgrad != 0};
    const unsigned mv = 1u << SLOT_0 | 1u << SLOT_1;
    if (k.amsgrad)
        dpt__stream(s, mv | 1u << SLOT_2, mv | 1u << SLOT_2, 1, adam_lanes, &k);
    else
        dpt__stream(s, mv, mv, 1, adam_lanes, &k);
}
