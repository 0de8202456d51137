/* Norms in double with a fixed reduction order, the layer-wise trust ratio, and gradient clipping
 * by global norm and by value (optim). Knows nothing of layers: every function takes a flat
 * array. */
#include "optim_impl.h"

/* ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) */
double dpt__sumsq_total(const dpt__sumsq *s) {
    const vd *q = s->pair;
    return ((q[0][0] + q[0][1]) + (q[1][0] + q[1][1])) +
           ((q[2][0] + q[2][1]) + (q[3][0] + q[3][1]));
}

double dpt__sumsq_array(const float *x, int64_t n) {
    /* The lanes of dpt__sumsq_add kept in registers, eight elements per iteration; the tail goes
     * through dpt__sumsq_add itself. */
    dpt__sumsq s = {{{0, 0}, {0, 0}, {0, 0}, {0, 0}}};
    vd q0 = s.pair[0], q1 = s.pair[1], q2 = s.pair[2], q3 = s.pair[3];
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf a, b;
        vd a01, a23, b01, b23;
        memcpy(&a, x + i, sizeof a);
        memcpy(&b, x + i + 4, sizeof b);
        v_widen(a, &a01, &a23);
        v_widen(b, &b01, &b23);
        q0 = VD_ADD(q0, VD_MUL(a01, a01));
        q1 = VD_ADD(q1, VD_MUL(a23, a23));
        q2 = VD_ADD(q2, VD_MUL(b01, b01));
        q3 = VD_ADD(q3, VD_MUL(b23, b23));
    }
    s = (dpt__sumsq){{q0, q1, q2, q3}};
    for (; i < n; i += 4) {
        dpt__lanes t = {.i = i, .valid = n - i < 4 ? (int)(n - i) : 4};
        memcpy(&t.p, x + i, (size_t)t.valid * sizeof(float));
        dpt__sumsq_add(&s, &t, t.p);
    }
    return dpt__sumsq_total(&s);
}

double dpt_norm2(const float *x, int64_t n) {
    return sqrt(dpt__sumsq_array(x, n));
}

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
