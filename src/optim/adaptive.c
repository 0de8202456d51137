/* Adagrad, RMSprop (plain, centered, with momentum) and Adadelta exactly as torch.optim 1.13
 * (foreach=False) updates one parameter segment, in torch's operation order and in float32.
 * eps sits outside the square root for Adagrad and RMSprop, inside it for Adadelta (as torch). */
#include "optim_impl.h"

/* Adagrad: sum += g^2; p -= clr * g / (sqrt(sum) + eps), clr = lr / (1 + (t-1)*lr_decay). */
typedef struct {
    float wd, eps, neg_clr;
} adagrad_coef;

static inline void adagrad_lanes(dpt__lanes *x, void *ctx) {
    const adagrad_coef *k = ctx;
    vf d = dpt__l2_grad(x->g, x->p, k->wd);
    vf acc = V_ADD(x->s[SLOT_0], V_MUL(d, d));
    x->s[SLOT_0] = acc;
    x->p = V_ADD(x->p, V_DIV(V_MUL(V_SET1(k->neg_clr), d), V_ADD(V_SQRT(acc), V_SET1(k->eps))));
}

void dpt__optim_adagrad(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    adagrad_coef k = {
        .wd = (float)s->wd,
        .eps = (float)cfg->eps,
        .neg_clr = (float)-(s->lr / (1.0 + (double)(s->t - 1) * cfg->lr_decay)),
    };
    dpt__stream(s, 1u << SLOT_0, 1u << SLOT_0, 1, adagrad_lanes, &k);
}

/* RMSprop: v = alpha*v + (1-alpha)*g^2; centered: gbar = alpha*gbar + (1-alpha)*g and
 * den = sqrt(v - gbar^2) + eps, else den = sqrt(v) + eps; with momentum buf = mom*buf + g/den and
 * p -= lr*buf, else p -= lr*g/den. Slots: square_avg, momentum_buffer, grad_avg. */
typedef struct {
    float wd, eps, mom, alpha, one_m_alpha, neg_lr;
    int centered, use_momentum;
} rmsprop_coef;

static inline void rmsprop_lanes(dpt__lanes *x, void *ctx) {
    const rmsprop_coef *k = ctx;
    vf d = dpt__l2_grad(x->g, x->p, k->wd);
    vf v = dpt__ema_sq(x->s[SLOT_0], d, k->alpha, k->one_m_alpha);
    x->s[SLOT_0] = v;
    if (k->centered) {
        vf ga = dpt__ema(x->s[SLOT_2], d, k->alpha, k->one_m_alpha);
        x->s[SLOT_2] = ga;
        v = V_ADD(v, V_MUL(V_MUL(V_SET1(-1.0f), ga), ga));
    }
    vf den = V_ADD(V_SQRT(v), V_SET1(k->eps));
    if (k->use_momentum) {
        vf b = V_ADD(V_MUL(x->s[SLOT_1], V_SET1(k->mom)), V_DIV(d, den));
        x->s[SLOT_1] = b;
        x->p = V_ADD(x->p, V_MUL(V_SET1(k->neg_lr), b));
    } else {
        x->p = V_ADD(x->p, V_DIV(V_MUL(V_SET1(k->neg_lr), d), den));
    }
}

void dpt__optim_rmsprop(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    rmsprop_coef k = {.wd = (float)s->wd,
                      .eps = (float)cfg->eps,
                      .mom = (float)cfg->momentum,
                      .alpha = (float)cfg->alpha,
                      .one_m_alpha = (float)(1.0 - cfg->alpha),
                      .neg_lr = (float)-s->lr,
                      .centered = cfg->centered != 0,
                      .use_momentum = cfg->momentum > 0};
    unsigned slots =
        1u << SLOT_0 | (k.use_momentum ? 1u << SLOT_1 : 0) | (k.centered ? 1u << SLOT_2 : 0);
    /* one call per constant slot set, so each is compiled without the unused streams */
    if (slots == (1u << SLOT_0))
        dpt__stream(s, 1u << SLOT_0, 1u << SLOT_0, 1, rmsprop_lanes, &k);
    else
        dpt__stream(s, slots, slots, 1, rmsprop_lanes, &k);
}

/* Adadelta: v = rho*v + (1-rho)*g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
 * u = rho*u + (1-rho)*delta^2; p -= lr*delta. Slots: square_avg, acc_delta. */
typedef struct {
    float wd, eps, rho, one_m_rho, neg_lr;
} adadelta_coef;

static inline void adadelta_lanes(dpt__lanes *x, void *ctx) {
    const adadelta_coef *k = ctx;
    vf d = dpt__l2_grad(x->g, x->p, k->wd);
    vf v = dpt__ema_sq(x->s[SLOT_0], d, k->rho, k->one_m_rho);
    x->s[SLOT_0] = v;
    vf delta = V_MUL(
        V_DIV(V_SQRT(V_ADD(x->s[SLOT_1], V_SET1(k->eps))), V_SQRT(V_ADD(v, V_SET1(k->eps)))), d);
    x->s[SLOT_1] = dpt__ema_sq(x->s[SLOT_1], delta, k->rho, k->one_m_rho);
    x->p = V_ADD(x->p, V_MUL(V_SET1(k->neg_lr), delta));
}

void dpt__optim_adadelta(const dpt_optim_cfg *cfg, const dpt__optim_seg *s) {
    adadelta_coef k = {.wd = (float)s->wd,
                       .eps = (float)cfg->eps,
                       .rho = (float)cfg->rho,
                       .one_m_rho = (float)(1.0 - cfg->rho),
                       .neg_lr = (float)-s->lr};
    const unsigned slots = 1u << SLOT_0 | 1u << SLOT_1;
    dpt__stream(s, slots, slots, 1, adadelta_lanes, &k);
}
