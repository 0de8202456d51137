/* Batch normalisation kernels (kernels) over (N, C, S), statistics per channel, as
 * torch.nn.functional.batch_norm computes them. Split into sums / moments / apply steps so that
 * ghost BN and synced BN (sums allreduced between the steps) reuse them; knows no layers and no
 * MPI; never allocates. https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html */
#include <math.h>
#include <string.h>

#include "dpt/ops.h"

/* Sum and sum of squares of one contiguous run, added to *s1 and *s2 in double. Four partial sums
 * in a fixed interleaving give the compiler independent chains to vectorize, while the order of
 * every addition stays fixed by the source (no reassociation), so results do not depend on it. */
static void run_sums(double *restrict s1, double *restrict s2, const float *restrict a, int64_t n) {
    double p[4] = {0.0, 0.0, 0.0, 0.0}, q[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double v = a[i + j];
            p[j] += v;
            q[j] += v * v;
        }
    double t1 = (p[0] + p[1]) + (p[2] + p[3]), t2 = (q[0] + q[1]) + (q[2] + q[3]);
    for (; i < n; i++) {
        double v = a[i];
        t1 += v;
        t2 += v * v;
    }
    *s1 += t1;
    *s2 += t2;
}

/* x: (N, C, S)  sum, sumsq: (C), written. */
void dpt_bn_stats(double *sum, double *sumsq, const float *x, int64_t N, int64_t C, int64_t S) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1);
    for (int64_t c = 0; c < C; c++)
        sum[c] = sumsq[c] = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            run_sums(&sum[c], &sumsq[c], x + (n * C + c) * S, S);
}

/* sum, sumsq: (C) over m elements per channel  mean, invstd: (C) float  var: (C) double (biased;
 * may be NULL). The variance E[x^2] - mean^2 is formed in double and clamped at 0 against
 * rounding. */
void dpt_bn_moments(float *mean, float *invstd, double *var, const double *sum,
                    const double *sumsq, int64_t m, int64_t C, double eps) {
    DPT_ASSERT(m >= 1 && C >= 1 && eps >= 0.0);
    for (int64_t c = 0; c < C; c++) {
        double mu = sum[c] / (double)m;
        double v = sumsq[c] / (double)m - mu * mu;
        if (v < 0.0)
            v = 0.0;
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(v + eps));
        if (var)
            var[c] = v;
    }
}

/* running_mean, running_var: (C) updated in place  mean: (C)  var: (C) biased batch variance.
 * torch's momentum convention: the weight of the new batch statistic. */
void dpt_bn_update_running(float *running_mean, float *running_var, const float *mean,
                           const double *var, int64_t m, int64_t C, double momentum) {
    DPT_ASSERT(m >= 2 && C >= 1);
    const double unbias = (double)m / (double)(m - 1);
    for (int64_t c = 0; c < C; c++) {
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var[c] * unbias);
    }
}

/* Elementwise runs go in blocks of VB with a scalar tail: GCC's default -O2 cost model vectorizes
 * a loop of fixed trip count but not one that needs an epilogue. A block is read into locals
 * before it is written, so in-place calls (y = x, dx = dy) are safe without run-time alias
 * checks; block and tail do the same operations (no FP contraction under -std=c11). */
enum { VB = 8 };

/* The fused batch norm + ReLU variants (relu = 1) are the plain ones with ReLU's own operations
 * inserted: forward u < 0 ? 0 : u (a NaN passes, as dpt_act_forward), backward dy where the
 * ReLU output y > 0 (as dpt_act_backward, since y > 0 exactly where its input is). `relu` is a
 * constant at every call, so the compiler emits two specialized loops from one source. */
#define DPT_INLINE static inline __attribute__((always_inline))

DPT_INLINE float relu_if(int relu, float u) { return relu && u < 0.0f ? 0.0f : u; }

/* dy, or +0 where the ReLU after the batch norm was inactive (relu = 1). A bit mask, not a
 * branch or a multiply: the mask is data-random (a branch mispredicts half the time and blocks
 * vectorization), and 0*Inf would be NaN where ReLU's backward gives 0. */
DPT_INLINE float masked(int relu, const float *dy, const float *y, int64_t i) {
    if (!relu)
        return dy[i];
    uint32_t bits;
    memcpy(&bits, &dy[i], sizeof bits);
    bits &= -(uint32_t)(y[i] > 0.0f);
    float g;
    memcpy(&g, &bits, sizeof g);
    return g;
}

/* y = relu?((x - mu)*scale + shift) over one run. */
DPT_INLINE void affine_run(float *y, const float *x, float mu, float scale, float shift,
                           int64_t n, int relu) {
    int64_t i = 0;
    for (; i + VB <= n; i += VB) {
        float t[VB];
        for (int j = 0; j < VB; j++)
            t[j] = x[i + j];
        for (int j = 0; j < VB; j++)
            y[i + j] = relu_if(relu, (t[j] - mu) * scale + shift);
    }
    for (; i < n; i++)
        y[i] = relu_if(relu, (x[i] - mu) * scale + shift);
}

/* dx = a*(g - b - k*(x - mu)) over one run, g = dy masked by the ReLU output y (relu = 1). */
DPT_INLINE void grad_run(float *dx, const float *dy, const float *y, const float *x, float a,
                         float b, float k, float mu, int64_t n, int relu) {
    int64_t i = 0;
    for (; i + VB <= n; i += VB) {
        float g[VB], t[VB];
        for (int j = 0; j < VB; j++)
            g[j] = masked(relu, dy, y, i + j), t[j] = x[i + j];
        for (int j = 0; j < VB; j++)
            dx[i + j] = a * (g[j] - b - k * (t[j] - mu));
    }
    for (; i < n; i++)
        dx[i] = a * (masked(relu, dy, y, i) - b - k * (x[i] - mu));
}

/* x, y: (N, C, S) (y may alias x)  mean, invstd, gamma, beta: (C). gamma NULL means 1 and beta
 * NULL means 0 (affine=False). (x - mean) is formed first: it is exact-ish when x is near a large
 * mean, where x*scale + shift would cancel. */
DPT_INLINE void apply(float *y, const float *x, const float *mean, const float *invstd,
                      const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S,
                      int relu) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float scale = gamma ? gamma[c] * invstd[c] : invstd[c];
            const float shift = beta ? beta[c] : 0.0f;
            const int64_t off = (n * C + c) * S;
            affine_run(y + off, x + off, mean[c], scale, shift, S, relu);
        }
}

void dpt_bn_apply(float *y, const float *x, const float *mean, const float *invstd,
                  const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S) {
    apply(y, x, mean, invstd, gamma, beta, N, C, S, 0);
}

void dpt_bn_apply_relu(float *y, const float *x, const float *mean, const float *invstd,
                       const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S) {
    apply(y, x, mean, invstd, gamma, beta, N, C, S, 1);
}

/* running_var, invstd: (C). */
void dpt_bn_eval_invstd(float *invstd, const float *running_var, int64_t C, double eps) {
    DPT_ASSERT(C >= 1 && eps >= 0.0);
    for (int64_t c = 0; c < C; c++)
        invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
}

/* sum g and sum g*(x - mean) over one contiguous run, as run_sums; g = dy masked by the ReLU
 * output y when relu = 1. */
DPT_INLINE void run_grad_sums(double *restrict s1, double *restrict s2, const float *restrict dy,
                              const float *restrict y, const float *restrict x, float mu,
                              int64_t n, int relu) {
    double p[4] = {0.0, 0.0, 0.0, 0.0}, q[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double g = masked(relu, dy, y, i + j);
            p[j] += g;
            q[j] += g * ((double)x[i + j] - mu);
        }
    double t1 = (p[0] + p[1]) + (p[2] + p[3]), t2 = (q[0] + q[1]) + (q[2] + q[3]);
    for (; i < n; i++) {
        double g = masked(relu, dy, y, i);
        t1 += g;
        t2 += g * ((double)x[i] - mu);
    }
    *s1 += t1;
    *s2 += t2;
}

DPT_INLINE void backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy,
                              const float *y, const float *x, const float *mean,
                              const float *invstd, int64_t N, int64_t C, int64_t S, int relu) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1);
    for (int64_t c = 0; c < C; c++)
        dbeta_sum[c] = dgamma_sum[c] = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t off = (n * C + c) * S;
            run_grad_sums(&dbeta_sum[c], &dgamma_sum[c], dy + off, y ? y + off : NULL, x + off,
                          mean[c], S, relu);
        }
    for (int64_t c = 0; c < C; c++)
        dgamma_sum[c] *= invstd[c];
}

/* dy, x: (N, C, S)  mean, invstd: (C)  dbeta_sum, dgamma_sum: (C), written.
 * xhat = (x - mean)*invstd with the same float mean/invstd as the forward pass. */
void dpt_bn_backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy, const float *x,
                          const float *mean, const float *invstd, int64_t N, int64_t C,
                          int64_t S) {
    backward_sums(dbeta_sum, dgamma_sum, dy, NULL, x, mean, invstd, N, C, S, 0);
}

void dpt_bn_backward_sums_relu(double *dbeta_sum, double *dgamma_sum, const float *dy,
                               const float *y, const float *x, const float *mean,
                               const float *invstd, int64_t N, int64_t C, int64_t S) {
    backward_sums(dbeta_sum, dgamma_sum, dy, y, x, mean, invstd, N, C, S, 1);
}

DPT_INLINE void backward_data(float *dx, const float *dy, const float *y, const float *x,
                              const float *mean, const float *invstd, const float *gamma,
                              const double *dbeta_sum, const double *dgamma_sum, int64_t m,
                              int64_t N, int64_t C, int64_t S, int relu) {
    DPT_ASSERT(m >= 1 && N >= 0 && C >= 1 && S >= 1);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const double is = invstd[c];
            const float a = (float)((gamma ? gamma[c] : 1.0) * is);
            const float b = (float)(dbeta_sum[c] / (double)m);
            const float k = (float)(dgamma_sum[c] / (double)m * is);
            const int64_t off = (n * C + c) * S;
            grad_run(dx + off, dy + off, y ? y + off : NULL, x + off, a, b, k, mean[c], S, relu);
        }
}

/* dy, x, dx: (N, C, S) (dx may alias dy)  mean, invstd, gamma: (C) (gamma NULL means 1)
 * dbeta_sum, dgamma_sum: (C), summed over the m elements of the (possibly global) batch.
 * dx = gamma*invstd*(dy - dbeta_sum/m - xhat*dgamma_sum/m), coefficients formed in double. */
void dpt_bn_backward_data(float *dx, const float *dy, const float *x, const float *mean,
                          const float *invstd, const float *gamma, const double *dbeta_sum,
                          const double *dgamma_sum, int64_t m, int64_t N, int64_t C, int64_t S) {
    backward_data(dx, dy, NULL, x, mean, invstd, gamma, dbeta_sum, dgamma_sum, m, N, C, S, 0);
}

void dpt_bn_backward_data_relu(float *dx, const float *dy, const float *y, const float *x,
                               const float *mean, const float *invstd, const float *gamma,
                               const double *dbeta_sum, const double *dgamma_sum, int64_t m,
                               int64_t N, int64_t C, int64_t S) {
    backward_data(dx, dy, y, x, mean, invstd, gamma, dbeta_sum, dgamma_sum, m, N, C, S, 1);
}
