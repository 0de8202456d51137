/* Mixup and cutmix (data): the per-sample mixing draws (kind, lambda ~ Beta(alpha, alpha), cutmix
 * box) and the blending of a sample with its partner into inputs and soft targets.
 * Zhang et al., "mixup" (ICLR 2018); Yun et al., "CutMix" (ICCV 2019). Knows no models and no
 * MPI; which sample is the partner is the sampler's rule (dpt_sampler_partner). */
#include <math.h>
#include <string.h>

#include "augment_impl.h"
#include "dpt/rng.h"

/* Gamma(alpha, 1) by Marsaglia and Tsang (ACM TOMS 2000), with the boost
 * Gamma(a) = Gamma(a + 1) * U^(1/a) for a < 1. */
static double gamma_draw(dpt_rng *r, double alpha) {
    double boost = 1.0;
    if (alpha < 1.0) {
        boost = pow(1.0 - dpt_rng_uniform(r), 1.0 / alpha);
        alpha += 1.0;
    }
    double d = alpha - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = dpt_rng_normal(r), v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = 1.0 - dpt_rng_uniform(r); /* (0, 1] */
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v * boost;
    }
}

static double beta_draw(dpt_rng *r, double alpha) {
    double g1 = gamma_draw(r, alpha), g2 = gamma_draw(r, alpha);
    return g1 + g2 > 0.0 ? g1 / (g1 + g2) : 0.5; /* both underflow only for tiny alpha */
}

void dpt__mix_draw(dpt_augment_params *p, const dpt_augment *a, uint32_t epoch, int64_t sample) {
    const dpt_augment_cfg *cfg = &a->cfg;
    p->mix = DPT_MIX_NONE;
    p->lam = 1.0f;
    const int64_t ext[3] = {a->D, a->H, a->W};
    for (int ax = 0; ax < 3; ax++)
        p->mix_lo[ax] = 0, p->mix_hi[ax] = 0;
    if (cfg->mixup_alpha <= 0.0f && cfg->cutmix_alpha <= 0.0f)
        return;
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(cfg->seed, DPT_RNG_MIX, cfg->member), epoch,
                 (uint64_t)sample);
    float coin = dpt_rng_uniformf(&r);
    if (cfg->mixup_alpha > 0.0f && cfg->cutmix_alpha > 0.0f)
        p->mix = coin < 0.5f ? DPT_MIX_MIXUP : DPT_MIX_CUTMIX;
    else
        p->mix = cfg->mixup_alpha > 0.0f ? DPT_MIX_MIXUP : DPT_MIX_CUTMIX;
    int64_t centre[3] = {0, 0, 0};
    for (int ax = 3 - a->sdims; ax < 3; ax++)
        centre[ax] = dpt_rng_below(&r, (uint32_t)ext[ax]);
    double alpha = p->mix == DPT_MIX_MIXUP ? cfg->mixup_alpha : cfg->cutmix_alpha;
    double lam = beta_draw(&r, alpha);
    if (p->mix == DPT_MIX_MIXUP) {
        p->lam = (float)lam;
        return;
    }
    /* Cutmix: a box of relative volume about 1 - lam (side ratio (1 - lam)^(1/sdims)), centre
     * uniform, clipped at the borders; lam is then the exact share of the sample's own pixels. */
    double side_ratio = pow(1.0 - lam, 1.0 / a->sdims), boxed = 1.0;
    for (int ax = 0; ax < 3; ax++) {
        if (ax < 3 - a->sdims) {
            p->mix_lo[ax] = 0, p->mix_hi[ax] = ext[ax];
            continue;
        }
        int64_t side = (int64_t)floor(side_ratio * (double)ext[ax]);
        int64_t lo = centre[ax] - side / 2, hi = lo + side;
        p->mix_lo[ax] = lo < 0 ? 0 : lo;
        p->mix_hi[ax] = hi > ext[ax] ? ext[ax] : hi;
        boxed *= (double)(p->mix_hi[ax] - p->mix_lo[ax]) / (double)ext[ax];
    }
    p->lam = (float)(1.0 - boxed);
}

void dpt__mix_apply(float *x, float *soft, const float *xp, const dpt_augment_params *p,
                    const dpt_augment *a, int32_t y_self, int32_t y_partner) {
    int64_t plane = a->D * a->H * a->W, n = a->C * plane;
    float lam = p->lam;
    if (p->mix == DPT_MIX_MIXUP) {
        for (int64_t i = 0; i < n; i++)
            x[i] = lam * x[i] + (1.0f - lam) * xp[i];
    } else if (p->mix == DPT_MIX_CUTMIX) {
        for (int64_t c = 0; c < a->C; c++)
            for (int64_t z = p->mix_lo[0]; z < p->mix_hi[0]; z++)
                for (int64_t h = p->mix_lo[1]; h < p->mix_hi[1]; h++) {
                    int64_t row = c * plane + (z * a->H + h) * a->W;
                    memcpy(x + row + p->mix_lo[2], xp + row + p->mix_lo[2],
                           (size_t)(p->mix_hi[2] - p->mix_lo[2]) * sizeof(float));
                }
    }
    if (soft) {
        memset(soft, 0, (size_t)a->K * sizeof(float));
        soft[y_self] += lam;
        soft[y_partner] += 1.0f - lam;
    }
}
