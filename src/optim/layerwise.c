/* LARS and LAMB: one trust ratio per parameter segment, from norms summed in double in a fixed
 * order, then a float32 element update (optim). The equations are the papers':
 * LARS, You, Gitman, Ginsburg 2017 (arXiv:1708.03888), Algorithm 1;
 * LAMB, You et al. 2019 (arXiv:1904.00962, ICLR 2020), Algorithm 2, with phi(z) = z. */
#include "optim_impl.h"

/* lambda = eta*|w| / (|g| + wd*|w|);  v = m*v + lr*lambda*(g + wd*w);  w = w - v.
 * Without momentum the buffer is v = lr*lambda*(g + wd*w) itself. */
typedef struct {
    float scale, wd, mom;
    int use_momentum;
} lars_coef;

static inline void lars_lanes(dpt__lanes *x, void *ctx) {
    const lars_coef *k = ctx;
    vf u = V_MUL(V_SET1(k->scale), dpt__l2_grad(x->g, x->p, k->wd));
    if (k->use_momentum) {
        u = V_ADD(V_MUL(V_SET1(k->mom), x->s[SLOT_0]), u);
        x->s[SLOT_0] = u;
    }
    x->p = V_SUB(x->p, u);
}

void dpt__optim_lars(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    double ratio = 1.0;
    if (s->adapt) {
        double wn = sqrt(dpt__sumsq_array(s->p, s->n)), gn = sqrt(dpt__sumsq_array(s->g, s->n));
        ratio = dpt__trust_ratio(1, cfg->trust_coefficient * wn, gn + s->wd * wn);
    }
    lars_coef k = {.scale = (float)(s->lr * ratio),
                   .wd = (float)s->wd,
                   .mom = (float)cfg->momentum,
                   .use_momentum = cfg->momentum > 0};
    if (k.use_momentum)
        dpt__stream(s, 1u << SLOT_0, 1u << SLOT_0, 1, lars_lanes, &k);
    else
        dpt__stream(s, 0, 0, 1, lars_lanes, &k);
}

/* r = m^ / (sqrt(v^) + eps) + wd*w, with m^ = m/(1 - b1^t), v^ = v/(1 - b2^t), both bias
 * corrections applied as float multipliers (one division per element instead of three).
 * Slots: exp_avg, exp_avg_sq. */
typedef struct {
    float beta1, one_m_b1, beta2, one_m_b2, inv_bc1, inv_bc2, eps, wd, neg_step;
    dpt__sumsq wsq, rsq;
} lamb_coef;

static inline vf lamb_direction(const lamb_coef *k, vf m, vf v, vf w) {
    return V_ADD(V_DIV(V_MUL(m, V_SET1(k->inv_bc1)),
                       V_ADD(V_SQRT(V_MUL(v, V_SET1(k->inv_bc2))), V_SET1(k->eps))),
                 V_MUL(V_SET1(k->wd), w));
}

/* Pass 1: update m and v, sum |w|^2 and |r|^2. */
static inline void lamb_moments_lanes(dpt__lanes *x, void *ctx) {
    lamb_coef *k = ctx;
    vf m = dpt__ema(x->s[SLOT_0], x->g, k->beta1, k->one_m_b1);
    vf v = dpt__ema_sq(x->s[SLOT_1], x->g, k->beta2, k->one_m_b2);
    x->s[SLOT_0] = m;
    x->s[SLOT_1] = v;
    dpt__sumsq_add(&k->wsq, x, x->p);
    dpt__sumsq_add(&k->rsq, x, lamb_direction(k, m, v, x->p));
}

/* Pass 2: recompute r from the stored m and v (the same float operations, so the same bits) and
 * apply w = w - lr * (|w| / |r|) * r. */
static inline void lamb_apply_lanes(dpt__lanes *x, void *ctx) {
    const lamb_coef *k = ctx;
    x->p = V_ADD(x->p,
                 V_MUL(V_SET1(k->neg_step), lamb_direction(k, x->s[SLOT_0], x->s[SLOT_1], x->p)));
}

void dpt__optim_lamb(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    const double b1 = cfg->betas[0], b2 = cfg->betas[1], t = (double)s->t;
    lamb_coef k = {.beta1 = (float)b1,
                   .one_m_b1 = (float)(1.0 - b1),
                   .beta2 = (float)b2,
                   .one_m_b2 = (float)(1.0 - b2),
                   .inv_bc1 = (float)(1.0 / (1.0 - pow(b1, t))),
                   .inv_bc2 = (float)(1.0 / (1.0 - pow(b2, t))),
                   .eps = (float)cfg->eps,
                   .wd = (float)s->wd};
    const unsigned mv = 1u << SLOT_0 | 1u << SLOT_1;
    dpt__stream(s, mv, mv, 0, lamb_moments_lanes, &k);
    double ratio =
        dpt__trust_ratio(s->adapt, sqrt(dpt__sumsq_total(&k.wsq)), sqrt(dpt__sumsq_total(&k.rsq)));
    k.neg_step = (float)-(s->lr * ratio);
    dpt__stream(s, mv | DPT__NO_GRAD, 0, 1, lamb_apply_lanes, &k);
}
