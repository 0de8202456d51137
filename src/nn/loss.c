/* Losses (nn): softmax cross-entropy with label smoothing, soft-target cross-entropy (mixup,
 * cutmix) and mean squared error, each returning the loss and writing its input gradient in one
 * pass. Per-row log-sum-exp subtracts the row maximum; every sum is in double. Knows no MPI.
 * https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html */
#include <math.h>
#include <stddef.h>

#include "dpt/loss.h"
#include "dpt/status.h"

/* Row maximum and its first index, and log sum_k exp(x_k - max) in double. */
static double row_lse(const float *x, int64_t K, int64_t *argmax) {
    float m = x[0];
    int64_t at = 0;
    for (int64_t k = 1; k < K; k++)
        if (x[k] > m) {
            m = x[k];
            at = k;
        }
    double s = 0.0;
    for (int64_t k = 0; k < K; k++)
        s += exp((double)x[k] - m);
    if (argmax)
        *argmax = at;
    return (double)m + log(s);
}

/* logits, dlogits: (N, K) (dlogits may alias logits)  labels: (N). */
double dpt_xent_forward_backward(float *dlogits, int64_t *correct, const float *logits,
                                 const int32_t *labels, int64_t N, int64_t K,
                                 double label_smoothing, double denom) {
    DPT_ASSERT(N >= 0 && K >= 1 && denom > 0.0);
    DPT_ASSERT(label_smoothing >= 0.0 && label_smoothing <= 1.0);
    const double eps = label_smoothing, off = eps / (double)K, on = 1.0 - eps + off;
    double total = 0.0;
    int64_t hits = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * K;
        const int64_t y = labels[n];
        DPT_ASSERT(y >= 0 && y < K);
        int64_t at;
        const double lse = row_lse(x, K, &at);
        hits += at == y;
        /* -sum_k q_k logp_k with -logp_k = lse - x_k >= 0: a sum of non-negative terms, with no
         * cancellation however large the logits are. */
        double nll_all = 0.0;
        for (int64_t k = 0; k < K; k++)
            nll_all += lse - (double)x[k];
        total += (1.0 - eps) * (lse - (double)x[y]) + off * nll_all;
        if (dlogits) {
            float *d = dlogits + n * K;
            for (int64_t k = 0; k < K; k++) {
                double q = k == y ? on : off;
                d[k] = (float)((exp((double)x[k] - lse) - q) / denom);
            }
        }
    }
    if (correct)
        *correct = hits;
    return total / denom;
}

/* logits, targets, dlogits: (N, K) (dlogits may alias logits). */
double dpt_soft_xent_forward_backward(float *dlogits, const float *logits, const float *targets,
                                      int64_t N, int64_t K, double denom) {
    DPT_ASSERT(N >= 0 && K >= 1 && denom > 0.0);
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * K, *t = targets + n * K;
        const double lse = row_lse(x, K, NULL);
        /* -sum_k t_k logp_k = sum_k t_k (lse - x_k), non-negative terms */
        double st = 0.0, nll = 0.0;
        for (int64_t k = 0; k < K; k++) {
            st += t[k];
            nll += (double)t[k] * (lse - (double)x[k]);
        }
        total += nll;
        if (dlogits) {
            float *d = dlogits + n * K;
            for (int64_t k = 0; k < K; k++)
                d[k] = (float)((exp((double)x[k] - lse) * st - t[k]) / denom);
        }
    }
    return total / denom;
}

/* pred, target, dpred: (n) (dpred may alias pred). */
double dpt_mse_forward_backward(float *dpred, const float *pred, const float *target, int64_t n) {
    DPT_ASSERT(n >= 1);
    double total = 0.0;
    const double scale = 2.0 / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)pred[i] - target[i];
        total += e * e;
        if (dpred)
            dpred[i] = (float)(scale * e);
    }
    return total / (double)n;
}
