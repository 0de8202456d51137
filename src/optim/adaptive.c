/* Adagrad, RMSprop (plain, centered, with momentum) and Adadelta exactly as torch.optim 1.13
 * (foreach=False) updates one parameter segment, in torch's operation order and in float32.
 * eps sits outside the square root for Adagrad and RMSprop, inside it for Adadelta (as torch). */
#include <math.h>

#include "optim_impl.h"

/* Adagrad: sum += g^2; p -= clr * g / (sqrt(sum) + eps), clr = lr / (1 + (t-1)*lr_decay). */
void dpt__optim_adagrad(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict sum = s->slot[SLOT_0];
    const float wd = (float)s->wd, eps = (float)cfg->eps;
    const float neg_clr = (float)-(s->lr / (1.0 + (double)(s->t - 1) * cfg->lr_decay));
    for (int64_t i = 0; i < s->n; i++) {
        float d = dpt__l2_grad(g[i], p[i], wd);
        float acc = sum[i] + d * d;
        sum[i] = acc;
        p[i] = p[i] + neg_clr * d / (sqrtf(acc) + eps);
    }
}

/* RMSprop, specialised for each (centered, momentum on) pair:
 *   v = alpha*v + (1-alpha)*g^2;  centered: gbar = alpha*gbar + (1-alpha)*g, den = sqrt(v - gbar^2)
 *   + eps, else den = sqrt(v) + eps;  momentum: buf = mom*buf + g/den, p -= lr*buf,
 *   else p -= lr*g/den. */
static inline __attribute__((always_inline)) void rmsprop_loop(const dpt_optim_cfg *cfg,
                                                               const dpt__optim_seg *s,
                                                               const int centered,
                                                               const int use_momentum) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict sq = s->slot[SLOT_0];
    float *restrict buf = s->slot[SLOT_1];
    float *restrict gavg = s->slot[SLOT_2];
    const float wd = (float)s->wd, eps = (float)cfg->eps, mom = (float)cfg->momentum;
    const float alpha = (float)cfg->alpha, one_m_alpha = (float)(1.0 - cfg->alpha);
    const float neg_lr = (float)-s->lr;
    for (int64_t i = 0; i < s->n; i++) {
        float d = dpt__l2_grad(g[i], p[i], wd);
        float v = sq[i] * alpha + one_m_alpha * d * d;
        sq[i] = v;
        if (centered) {
            float ga = gavg[i] * alpha + one_m_alpha * d;
            gavg[i] = ga;
            v = v + -1.0f * ga * ga;
        }
        float den = sqrtf(v) + eps;
        if (use_momentum) {
            float b = buf[i] * mom + d / den;
            buf[i] = b;
            p[i] = p[i] + neg_lr * b;
        } else {
            p[i] = p[i] + neg_lr * d / den;
        }
    }
}

void dpt__optim_rmsprop(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    int centered = cfg->centered != 0, use_momentum = cfg->momentum > 0;
    if (centered && use_momentum)
        rmsprop_loop(cfg, s, 1, 1);
    else if (centered)
        rmsprop_loop(cfg, s, 1, 0);
    else if (use_momentum)
        rmsprop_loop(cfg, s, 0, 1);
    else
        rmsprop_loop(cfg, s, 0, 0);
}

/* Adadelta: v = rho*v + (1-rho)*g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
 * u = rho*u + (1-rho)*delta^2; p -= lr*delta. */
void dpt__optim_adadelta(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict sq = s->slot[SLOT_0];
    float *restrict acc = s->slot[SLOT_1];
    const float wd = (float)s->wd, eps = (float)cfg->eps;
    const float rho = (float)cfg->rho, one_m_rho = (float)(1.0 - cfg->rho);
    const float neg_lr = (float)-s->lr;
    for (int64_t i = 0; i < s->n; i++) {
        float d = dpt__l2_grad(g[i], p[i], wd);
        float v = sq[i] * rho + one_m_rho * d * d;
        sq[i] = v;
        float delta = sqrtf(acc[i] + eps) / sqrtf(v + eps) * d;
        acc[i] = acc[i] * rho + one_m_rho * delta * delta;
        p[i] = p[i] + neg_lr * delta;
    }
}
