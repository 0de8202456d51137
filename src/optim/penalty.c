/* Norms in double with a fixed reduction order, the layer-wise trust ratio, and gradient clipping
 * by global norm and by value (optim). Knows nothing of layers: every function takes a flat
 * array. */
#include <math.h>

#include "optim_impl.h"

/* ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) */
double dpt__sumsq_total(const dpt__sumsq *s) {
    const double *l = s->lane;
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

double dpt__sumsq_array(const float *x, int64_t n) {
    /* Eight named accumulators keep the lanes in registers; lane k sums x[i] for i % 8 == k in
     * increasing i, exactly as dpt__sumsq_add does. */
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 += (double)x[i + 0] * x[i + 0];
        a1 += (double)x[i + 1] * x[i + 1];
        a2 += (double)x[i + 2] * x[i + 2];
        a3 += (double)x[i + 3] * x[i + 3];
        a4 += (double)x[i + 4] * x[i + 4];
        a5 += (double)x[i + 5] * x[i + 5];
        a6 += (double)x[i + 6] * x[i + 6];
        a7 += (double)x[i + 7] * x[i + 7];
    }
    dpt__sumsq s = {{a0, a1, a2, a3, a4, a5, a6, a7}};
    for (; i < n; i++)
        dpt__sumsq_add(&s, i, x[i]);
    return dpt__sumsq_total(&s);
}

double dpt_norm2(const float *x, int64_t n) { return sqrt(dpt__sumsq_array(x, n)); }

double dpt__trust_ratio(int adapt, double num, double den) {
    if (!adapt || !(num > 0) || !(den > 0))
        return 1.0;
    return num / den;
}

dpt_status dpt_clip_grad_norm(float *grads, int64_t n, double max_norm, double *total_norm) {
    if (!(max_norm > 0) || !isfinite(max_norm))
        return dpt_errorf(DPT_EINVAL, "gradient clipping: max_norm = %g: must be finite and > 0",
                          max_norm);
    double total = dpt_norm2(grads, n);
    if (total_norm)
        *total_norm = total;
    if (!isfinite(total))
        return dpt_errorf(DPT_ENONFINITE, "gradient clipping: the gradient norm is %g", total);
    /* torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total + 1e-6), applied if < 1 */
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (int64_t i = 0; i < n; i++)
            grads[i] *= c;
    }
    return DPT_OK;
}

dpt_status dpt_clip_grad_value(float *grads, int64_t n, double clip) {
    if (!(clip > 0) || !isfinite(clip))
        return dpt_errorf(DPT_EINVAL, "gradient clipping: clip value = %g: must be finite and > 0",
                          clip);
    float hi = (float)clip, lo = -hi;
    for (int64_t i = 0; i < n; i++)
        grads[i] = grads[i] < lo ? lo : grads[i] > hi ? hi : grads[i];
    return DPT_OK;
}
