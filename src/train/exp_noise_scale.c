/* Gradient noise scale estimators and their moving averages (train): McCandlish et al. 2018,
 * appendix A.1. Arithmetic on squared norms only; the trainer measures the norms. */
#include "dpt/noise_scale.h"

#include <math.h>
#include <string.h>

#include "dpt/status.h"

dpt_noise_estimate dpt_noise_estimate_make(double small_sq, int64_t b_small, double big_sq,
                                           int64_t b_big) {
    DPT_ASSERT(b_small >= 1 && b_small < b_big);
    double bs = (double)b_small, bb = (double)b_big;
    /* Solve E|G_B|^2 = |G|^2 + S/B at the two sizes for |G|^2 and S. */
    return (dpt_noise_estimate){
        .grad_sq = (bb * big_sq - bs * small_sq) / (bb - bs),
        .trace = (small_sq - big_sq) / (1.0 / bs - 1.0 / bb),
    };
}

void dpt_noise_ema_init(dpt_noise_ema *e, double decay) {
    DPT_ASSERT(decay >= 0 && decay < 1);
    memset(e, 0, sizeof *e);
    e->decay = decay;
    e->decay_pow = 1.0;
}

void dpt_noise_ema_update(dpt_noise_ema *e, dpt_noise_estimate x) {
    double d = e->decay;
    e->grad_sq = d * e->grad_sq + (1 - d) * x.grad_sq;
    e->trace = d * e->trace + (1 - d) * x.trace;
    e->decay_pow *= d;
    e->count++;
}

dpt_noise_estimate dpt_noise_ema_value(const dpt_noise_ema *e) {
    if (e->count == 0)
        return (dpt_noise_estimate){.grad_sq = NAN, .trace = NAN};
    double c = 1 - e->decay_pow; /* > 0 once count >= 1, since decay < 1 */
    return (dpt_noise_estimate){.grad_sq = e->grad_sq / c, .trace = e->trace / c};
}

double dpt_noise_ema_b_simple(const dpt_noise_ema *e) {
    dpt_noise_estimate v = dpt_noise_ema_value(e);
    return v.trace / v.grad_sq;
}
