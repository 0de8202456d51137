/* Batch normalisation kernels (kernels) over (N, C, S), statistics per channel, as
 * torch.nn.functional.batch_norm computes them. Split into sums / moments / apply steps so that
 * ghost BN and synced BN (sums allreduced between the steps) reuse them; knows no layers and no
 * MPI; never allocates. https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html */
#include <math.h>
#include <string.h>

#include "dpt/ops.h"
#include "kernel_table.h"

#define DPT_INLINE static inline __attribute__((always_inline))

/* ---- the order of the sums ------------------------------------------------------------------
 * Every per-channel sum (statistics and backward sums) is built run by run: the contiguous run of
 * S values of one (n, c) is summed in double over SL = 16 lanes, lane j taking elements j, j + 16,
 * j + 32, ... in order; the lanes are folded pairwise (j + 8 onto j, then j + 4, j + 2, j + 1) and
 * the run's total is added to the channel's sum in n order. The scalar code and each vector path
 * follow exactly this order (16 lanes are one AVX-512 register pair or four AVX2 registers), so
 * all give the same bits, and a sample's contribution does not depend on which rank or batch row
 * it sits in. Products of floats are exact in double, so the only roundings are the additions
 * (~16x fewer in each chain than one running sum); a float x, x*x and dy*(x - mean) in double
 * never lose the digits a large mean would cancel (E[x^2] - mean^2 in dpt_bn_moments). */
enum { SL = 16 };

static double fold16(const double p[SL]) {
    double t[8], u[4];
    for (int j = 0; j < 8; j++)
        t[j] = p[j] + p[j + 8];
    for (int j = 0; j < 4; j++)
        u[j] = t[j] + t[j + 4];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

/* dy, or +0 where the ReLU after the batch norm was inactive (relu = 1). A bit mask, not a
 * branch or a multiply: the mask is data-random (a branch mispredicts half the time), and 0*Inf
 * would be NaN where ReLU's backward gives 0. */
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

/* The fused batch norm + ReLU variants (relu = 1) are the plain ones with ReLU's own operations
 * inserted: forward u < 0 ? 0 : u (a NaN passes, as dpt_act_forward), backward dy where the
 * ReLU output y > 0 (as dpt_act_backward, since y > 0 exactly where its input is). `relu` is a
 * constant at every call, so the compiler emits two specialized loops from one source. */
DPT_INLINE float relu_if(int relu, float u) {
    return relu && u < 0.0f ? 0.0f : u;
}

/* The elementwise maps, one element; every path computes exactly these operations (no FMA: the
 * build has no FP contraction, and the vector code spells out the same mul and add). (x - mu) is
 * formed first: it is exact-ish when x is near a large mean, where x*scale + shift would cancel. */
DPT_INLINE float affine_one(int relu, float x, float mu, float scale, float shift) {
    return relu_if(relu, (x - mu) * scale + shift);
}

DPT_INLINE float grad_one(float g, float x, float a, float b, float k, float mu) {
    return a * (g - b - k * (x - mu));
}

/* ---- portable scalar runs -------------------------------------------------------------------- */

static dpt__bn_sums stats_run_scalar(const float *a, int64_t n) {
    double p[SL] = {0}, q[SL] = {0};
    for (int64_t i = 0; i < n; i += SL)
        for (int j = 0; j < SL && i + j < n; j++) {
            const double v = a[i + j];
            p[j] += v;
            q[j] += v * v;
        }
    return (dpt__bn_sums){fold16(p), fold16(q)};
}

/* sum g and sum g*(x - mu), g = dy masked by the ReLU output y when relu = 1. */
DPT_INLINE dpt__bn_sums gsums_run_scalar(int relu, const float *dy, const float *y, const float *x,
                                         float mu, int64_t n) {
    double p[SL] = {0}, q[SL] = {0};
    for (int64_t i = 0; i < n; i += SL)
        for (int j = 0; j < SL && i + j < n; j++) {
            const double g = masked(relu, dy, y, i + j);
            p[j] += g;
            q[j] += g * ((double)x[i + j] - mu);
        }
    return (dpt__bn_sums){fold16(p), fold16(q)};
}

/* Elementwise runs go in blocks of VB with a scalar tail: GCC's default -O2 cost model vectorizes
 * a loop of fixed trip count but not one that needs an epilogue. A block is read into locals
 * before it is written, so in-place calls (y = x, dx = dy) are safe without run-time alias
 * checks. */
enum { VB = 8 };

DPT_INLINE void affine_run_scalar(int relu, float *y, const float *x, float mu, float scale,
                                  float shift, int64_t n) {
    int64_t i = 0;
    for (; i + VB <= n; i += VB) {
        float t[VB];
        for (int j = 0; j < VB; j++)
            t[j] = x[i + j];
        for (int j = 0; j < VB; j++)
            y[i + j] = affine_one(relu, t[j], mu, scale, shift);
    }
    for (; i < n; i++)
        y[i] = affine_one(relu, x[i], mu, scale, shift);
}

/* dx = a*(g - b - k*(x - mu)) over one run. */
DPT_INLINE void grad_run_scalar(int relu, float *dx, const float *dy, const float *y,
                                const float *x, float a, float b, float k, float mu, int64_t n) {
    int64_t i = 0;
    for (; i + VB <= n; i += VB) {
        float g[VB], t[VB];
        for (int j = 0; j < VB; j++)
            g[j] = masked(relu, dy, y, i + j), t[j] = x[i + j];
        for (int j = 0; j < VB; j++)
            dx[i + j] = grad_one(g[j], t[j], a, b, k, mu);
    }
    for (; i < n; i++)
        dx[i] = grad_one(masked(relu, dy, y, i), x[i], a, b, k, mu);
}

/* ---- the scalar path's entries of the dispatch table: relu is a constant in each call of a
 * run, so that the compiler emits a specialized loop for each value. --------------------------- */
static dpt__bn_sums gsums_scalar(int relu, const float *dy, const float *y, const float *x,
                                 float mu, int64_t n) {
    return relu ? gsums_run_scalar(1, dy, y, x, mu, n) : gsums_run_scalar(0, dy, y, x, mu, n);
}

static void affine_scalar(int relu, float *y, const float *x, float mu, float scale, float shift,
                          int64_t n) {
    if (relu)
        affine_run_scalar(1, y, x, mu, scale, shift, n);
    else
        affine_run_scalar(0, y, x, mu, scale, shift, n);
}

static void grad_scalar(int relu, float *dx, const float *dy, const float *y, const float *x,
                        float a, float b, float k, float mu, int64_t n) {
    if (relu)
        grad_run_scalar(1, dx, dy, y, x, a, b, k, mu, n);
    else
        grad_run_scalar(0, dx, dy, y, x, a, b, k, mu, n);
}

/* The vector paths are batchnorm_simd.c, compiled once per ISA. */
void dpt__bn_fill_table(dpt__kernel_table *t, dpt__isa isa) {
#ifdef DPT_KERNELS_X86
    if (isa == DPT__ISA_AVX512) {
        dpt__bn_fill_avx512(t);
        return;
    }
    if (isa == DPT__ISA_AVX2) {
        dpt__bn_fill_avx2(t);
        return;
    }
#endif
    t->bn_stats = stats_run_scalar;
    t->bn_grad_sums = gsums_scalar;
    t->bn_affine = affine_scalar;
    t->bn_grad = grad_scalar;
}

/* ---- entry points -----------------------------------------------------------------------------
 */

/* The sums of the run at off: of x (relu = -1), or of g and g*(x - mean) with g = dy masked by y
 * when relu = 1. */
static dpt__bn_sums one_run(const dpt__kernel_table *kt, const float *dy, const float *y,
                            const float *x, float mean, int64_t off, int64_t S, int relu) {
    if (relu < 0)
        return kt->bn_stats(x + off, S);
    return kt->bn_grad_sums(relu, dy + off, y ? y + off : NULL, x + off, mean, S);
}

/* r1, r2: (N, C), entries of images [n0, n1) written: each run's sums, of x (relu = -1), or of g
 * and g*(x - mean) with g = dy masked by y when relu = 1. */
static void run_sums(double *r1, double *r2, const float *dy, const float *y, const float *x,
                     const float *mean, int64_t n0, int64_t n1, int64_t C, int64_t S, int relu) {
    DPT_ASSERT(0 <= n0 && n0 <= n1 && C >= 1 && S >= 1);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t off = (n * C + c) * S;
            const dpt__bn_sums t = one_run(kt, dy, y, x, mean ? mean[c] : 0.0f, off, S, relu);
            r1[n * C + c] = t.s1;
            r2[n * C + c] = t.s2;
        }
}

void dpt_bn_add_runs(double *s1, double *s2, const double *r1, const double *r2,
                     const float *invstd, int64_t N, int64_t C) {
    DPT_ASSERT(N >= 0 && C >= 1);
    for (int64_t c = 0; c < C; c++)
        s1[c] = s2[c] = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            s1[c] += r1[n * C + c];
            s2[c] += r2[n * C + c];
        }
    if (invstd)
        for (int64_t c = 0; c < C; c++)
            s2[c] *= invstd[c];
}

/* s1, s2: (C) written: per channel, the sums of its runs (one_run) in n order. */
static void channel_sums(double *s1, double *s2, const float *dy, const float *y, const float *x,
                         const float *mean, int64_t N, int64_t C, int64_t S, int relu) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t c = 0; c < C; c++)
        s1[c] = s2[c] = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t off = (n * C + c) * S;
            const dpt__bn_sums t = one_run(kt, dy, y, x, mean ? mean[c] : 0.0f, off, S, relu);
            s1[c] += t.s1;
            s2[c] += t.s2;
        }
}

/* x: (N, C, S)  sum, sumsq: (C), written. */
void dpt_bn_stats(double *sum, double *sumsq, const float *x, int64_t N, int64_t C, int64_t S) {
    channel_sums(sum, sumsq, NULL, NULL, x, NULL, N, C, S, -1);
}

void dpt_bn_stats_runs(double *r1, double *r2, const float *x, int64_t n0, int64_t n1, int64_t C,
                       int64_t S) {
    run_sums(r1, r2, NULL, NULL, x, NULL, n0, n1, C, S, -1);
}

/* sum, sumsq: (C) over m elements per channel  mean, invstd: (C) float  var: (C) double (biased;
 * may be NULL). The variance E[x^2] - mean^2 is formed in double and clamped at 0 against
 * rounding. */
void dpt_bn_moments(float *mean, float *invstd, double *var, const double *sum, const double *sumsq,
                    int64_t m, int64_t C, double eps) {
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

/* x, y: (N, C, S) (y may alias x)  mean, invstd, gamma, beta: (C). gamma NULL means 1 and beta
 * NULL means 0 (affine=False). */
static void apply(float *y, const float *x, const float *mean, const float *invstd,
                  const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S,
                  int relu) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float scale = gamma ? gamma[c] * invstd[c] : invstd[c];
            const float shift = beta ? beta[c] : 0.0f;
            const int64_t off = (n * C + c) * S;
            kt->bn_affine(relu, y + off, x + off, mean[c], scale, shift, S);
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

static void backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy, const float *y,
                          const float *x, const float *mean, const float *invstd, int64_t N,
                          int64_t C, int64_t S, int relu) {
    channel_sums(dbeta_sum, dgamma_sum, dy, y, x, mean, N, C, S, relu);
    for (int64_t c = 0; c < C; c++)
        dgamma_sum[c] *= invstd[c];
}

void dpt_bn_backward_sums_runs(double *r1, double *r2, const float *dy, const float *y,
                               const float *x, const float *mean, int64_t n0, int64_t n1,
                               int64_t C, int64_t S) {
    run_sums(r1, r2, dy, y, x, mean, n0, n1, C, S, y ? 1 : 0);
}

/* dy, x: (N, C, S)  mean, invstd: (C)  dbeta_sum, dgamma_sum: (C), written.
 * xhat = (x - mean)*invstd with the same float mean/invstd as the forward pass. */
void dpt_bn_backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy, const float *x,
                          const float *mean, const float *invstd, int64_t N, int64_t C, int64_t S) {
    backward_sums(dbeta_sum, dgamma_sum, dy, NULL, x, mean, invstd, N, C, S, 0);
}

void dpt_bn_backward_sums_relu(double *dbeta_sum, double *dgamma_sum, const float *dy,
                               const float *y, const float *x, const float *mean,
                               const float *invstd, int64_t N, int64_t C, int64_t S) {
    backward_sums(dbeta_sum, dgamma_sum, dy, y, x, mean, invstd, N, C, S, 1);
}

/* The coefficients of dx = a*(g - b - k*(x - mean)) for channel c, formed in double. */
typedef struct {
    float a, b, k;
} grad_coeffs;

static grad_coeffs coeffs_of(int64_t c, const float *invstd, const float *gamma,
                             const double *dbeta_sum, const double *dgamma_sum, int64_t m) {
    const double is = invstd[c];
    return (grad_coeffs){(float)((gamma ? gamma[c] : 1.0) * is), (float)(dbeta_sum[c] / (double)m),
                         (float)(dgamma_sum[c] / (double)m * is)};
}

static void backward_data(float *dx, const float *dy, const float *y, const float *x,
                          const float *mean, const float *invstd, const float *gamma,
                          const double *dbeta_sum, const double *dgamma_sum, int64_t m, int64_t N,
                          int64_t C, int64_t S, int relu) {
    DPT_ASSERT(m >= 1 && N >= 0 && C >= 1 && S >= 1);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const grad_coeffs k = coeffs_of(c, invstd, gamma, dbeta_sum, dgamma_sum, m);
            const int64_t off = (n * C + c) * S;
            kt->bn_grad(relu, dx + off, dy + off, y ? y + off : NULL, x + off, k.a, k.b, k.k,
                        mean[c], S);
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
