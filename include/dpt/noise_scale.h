/* Gradient noise scale (train): the unbiased two-batch-size estimators of |G|^2 and tr(Sigma) of
 * McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training"
 * (arXiv:1812.06162), appendix A.1, their exponential moving averages, and the simple noise scale
 * B_simple = tr(Sigma) / |G|^2. Pure arithmetic on squared norms: knows no MPI and no model
 * (where the norms come from: docs/noise-scale.md). */
#ifndef DPT_NOISE_SCALE_H
#define DPT_NOISE_SCALE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One estimate of |G|^2 (the squared norm of the true gradient) and S = tr(Sigma) (the trace of
 * the per-sample gradient covariance). */
typedef struct {
    double grad_sq, trace;
} dpt_noise_estimate;

/* From the squared norms of two batch means of i.i.d. per-sample gradients with mean G and
 * covariance Sigma: small_sq = |G_small|^2 over b_small samples, big_sq = |G_big|^2 over b_big.
 * Because E|G_B|^2 = |G|^2 + tr(Sigma)/B for each batch (whether or not the two batches overlap):
 *     grad_sq = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
 *     trace   = (small_sq - big_sq) / (1/b_small - 1/b_big)
 * Both are unbiased; a single estimate is noisy and may be negative. 1 <= b_small < b_big
 * (asserted). */
dpt_noise_estimate dpt_noise_estimate_make(double small_sq, int64_t b_small, double big_sq,
                                           int64_t b_big);

/* Decay of the moving averages: a window of about 1 / (1 - decay) = 20 estimates. */
#define DPT_NOISE_EMA_DECAY_DEFAULT 0.95

/* Exponential moving averages of the two estimates, kept separately (the paper averages |G|^2
 * and S, then divides: the mean of ratios of noisy estimates would be biased and unstable).
 * Bias-corrected as Adam's moments: after k updates with decay d,
 *     m_k = d * m_{k-1} + (1 - d) * x_k,  m_0 = 0,  value = m_k / (1 - d^k),
 * so the first value is the first estimate and a constant input gives that constant. */
typedef struct {
    double decay;
    int64_t count;          /* updates so far */
    double grad_sq, trace;  /* m_k of each, before bias correction */
    double decay_pow;       /* d^count */
} dpt_noise_ema;

/* decay in [0, 1) (asserted); 0 is a valid decay (no smoothing), so pass
 * DPT_NOISE_EMA_DECAY_DEFAULT for the default. */
void dpt_noise_ema_init(dpt_noise_ema *e, double decay);
void dpt_noise_ema_update(dpt_noise_ema *e, dpt_noise_estimate x);
/* The bias-corrected averages; NaN in both before the first update. */
dpt_noise_estimate dpt_noise_ema_value(const dpt_noise_ema *e);
/* B_simple = trace / grad_sq of the averages; NaN before the first update. While the average
 * of |G|^2 is still <= 0 (noise swamps the signal) the ratio is negative or infinite: it is
 * returned as is, not hidden. */
double dpt_noise_ema_b_simple(const dpt_noise_ema *e);

#ifdef __cplusplus
}
#endif
#endif
