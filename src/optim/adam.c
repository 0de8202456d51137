/* Adam (coupled L2, optional AMSGrad) and AdamW (decoupled weight decay) exactly as
 * torch.optim 1.13 (foreach=False) updates one parameter segment: eps is added after the bias
 * correction of sqrt(v), outside the square root, and the step size is lr / (1 - beta1^t). */
#include <math.h>

#include "optim_impl.h"

/* m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  amsgrad: vmax = max(vmax, v) replaces v;
 * den = sqrt(v) / sqrt(1 - b2^t) + eps;  p = keep*p - lr/(1 - b1^t) * m / den. */
static inline __attribute__((always_inline)) void adam_loop(const dpt_optim_cfg *cfg,
                                                            const dpt__optim_seg *s, float l2,
                                                            float keep, const int amsgrad) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict m = s->slot[SLOT_0];
    float *restrict v = s->slot[SLOT_1];
    float *restrict vmax = s->slot[SLOT_2];
    const double b1 = cfg->betas[0], b2 = cfg->betas[1];
    const float beta1 = (float)b1, one_m_b1 = (float)(1.0 - b1);
    const float beta2 = (float)b2, one_m_b2 = (float)(1.0 - b2);
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)s->t));
    const float neg_step = (float)-(s->lr / (1.0 - pow(b1, (double)s->t)));
    const float eps = (float)cfg->eps;
    for (int64_t i = 0; i < s->n; i++) {
        float d = dpt__l2_grad(g[i], p[i], l2);
        float mi = m[i] * beta1 + one_m_b1 * d;
        float vi = v[i] * beta2 + one_m_b2 * d * d;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            vi = fmaxf(vmax[i], vi);
            vmax[i] = vi;
        }
        float den = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] * keep + neg_step * mi / den;
    }
}

void dpt__optim_adam(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    /* adam adds wd*p to the gradient; adamw first scales p by 1 - lr*wd (torch: param.mul_) */
    int decoupled = cfg->kind == DPT_OPTIM_ADAMW;
    float l2 = decoupled ? 0.0f : (float)s->wd;
    float keep = decoupled ? (float)(1.0 - s->lr * s->wd) : 1.0f;
    if (cfg->amsgrad)
        adam_loop(cfg, s, l2, keep, 1);
    else
        adam_loop(cfg, s, l2, keep, 0);
}
