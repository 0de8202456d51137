/* LARS and LAMB: one trust ratio per parameter segment, from norms summed in double in a fixed
 * order, then a float32 element update (optim). The equations are the papers':
 * LARS, You, Gitman, Ginsburg 2017 (arXiv:1708.03888), Algorithm 1;
 * LAMB, You et al. 2019 (arXiv:1904.00962, ICLR 2020), Algorithm 2, with phi(z) = z. */
#include <math.h>

#include "optim_impl.h"

/* lambda = eta*|w| / (|g| + wd*|w|);  v = m*v + lr*lambda*(g + wd*w);  w = w - v.
 * Without momentum the buffer is v = lr*lambda*(g + wd*w) itself. */
void dpt__optim_lars(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict v = s->slot[SLOT_0];
    double ratio = 1.0;
    if (s->adapt) {
        double wn = sqrt(dpt__sumsq_array(p, s->n)), gn = sqrt(dpt__sumsq_array(g, s->n));
        ratio = dpt__trust_ratio(1, cfg->trust_coefficient * wn, gn + s->wd * wn);
    }
    const float scale = (float)(s->lr * ratio), wd = (float)s->wd, mom = (float)cfg->momentum;
    for (int64_t i = 0; i < s->n; i++) {
        float u = scale * dpt__l2_grad(g[i], p[i], wd);
        if (v) {
            u = mom * v[i] + u;
            v[i] = u;
        }
        p[i] = p[i] - u;
    }
}

/* r = m^ / (sqrt(v^) + eps) + wd*w, with m^ = m/(1 - b1^t), v^ = v/(1 - b2^t). */
static inline float lamb_direction(float m, float v, float w, float bc1, float bc2, float eps,
                                   float wd) {
    return (m / bc1) / (sqrtf(v / bc2) + eps) + wd * w;
}

/* Two passes: the first updates m and v and sums |w|^2 and |r|^2; the second recomputes r from
 * the stored m and v (the same float operations, so the same bits) and applies
 * w = w - lr * (|w| / |r|) * r. */
void dpt__optim_lamb(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    float *restrict p = s->p;
    const float *restrict g = s->g;
    float *restrict m = s->slot[SLOT_0];
    float *restrict v = s->slot[SLOT_1];
    const double b1 = cfg->betas[0], b2 = cfg->betas[1];
    const float beta1 = (float)b1, one_m_b1 = (float)(1.0 - b1);
    const float beta2 = (float)b2, one_m_b2 = (float)(1.0 - b2);
    const float bc1 = (float)(1.0 - pow(b1, (double)s->t));
    const float bc2 = (float)(1.0 - pow(b2, (double)s->t));
    const float eps = (float)cfg->eps, wd = (float)s->wd;
    dpt__sumsq wsq = {{0}}, rsq = {{0}};
    for (int64_t i = 0; i < s->n; i++) {
        float mi = m[i] * beta1 + one_m_b1 * g[i];
        float vi = v[i] * beta2 + one_m_b2 * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        dpt__sumsq_add(&wsq, i, p[i]);
        dpt__sumsq_add(&rsq, i, lamb_direction(mi, vi, p[i], bc1, bc2, eps, wd));
    }
    double ratio =
        dpt__trust_ratio(s->adapt, sqrt(dpt__sumsq_total(&wsq)), sqrt(dpt__sumsq_total(&rsq)));
    const float neg_step = (float)-(s->lr * ratio);
    for (int64_t i = 0; i < s->n; i++)
        p[i] = p[i] + neg_step * lamb_direction(m[i], v[i], p[i], bc1, bc2, eps, wd);
}
