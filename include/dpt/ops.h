/* Non-convolution kernels (kernels): GEMM, dense, pooling, activations, softmax, batch norm.
 * Same conventions as conv.h: row-major PyTorch layouts, output first, no allocation,
 * forward/backward_data WRITE, parameter gradients ACCUMULATE (+=). Shapes are given as
 * (N, C, S) where S is the product of the spatial extents. */
#ifndef DPT_OPS_H
#define DPT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, like cblas_sgemm ------------------ */
typedef enum { DPT_GEMM_BLAS, DPT_GEMM_NAIVE } dpt_gemm_backend;
void dpt_sgemm(dpt_gemm_backend be, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc);
/* Pins OpenBLAS to one thread (one rank per core); called once at start-up, idempotent. */
void dpt_gemm_init(void);
/* The CPU kernel set OpenBLAS runs ("Haswell", "SkylakeX", ...; OPENBLAS_CORETYPE forces one):
 * sgemm results differ in the last bits between them. */
const char *dpt_gemm_core(void);

/* ---- dense: y = x W^T + b   x: (N, K)  w: (O, K)  b: (O)  y: (N, O) --------------------------
 * (K, not I, for the inputs: cblas.h includes <complex.h>, whose macro I would break a prototype) */
/* b may be NULL (no bias); N may be 0. */
void dpt_dense_forward(dpt_gemm_backend be, float *y, const float *x, const float *w,
                       const float *b, int64_t N, int64_t K, int64_t O);
/* dx = dy W  (writes) */
void dpt_dense_backward_data(dpt_gemm_backend be, float *dx, const float *dy, const float *w,
                             int64_t N, int64_t K, int64_t O);
/* dw += dy^T x,  db += sum_n dy  (db may be NULL) */
void dpt_dense_backward_weight(dpt_gemm_backend be, float *dw, float *db, const float *dy,
                               const float *x, int64_t N, int64_t K, int64_t O);

/* ---- pooling (torch max_pool/avg_pool, ceil_mode=False, dilation 1) -------------------------- */
typedef struct {
    int dims;          /* 1, 2 or 3 */
    int64_t N, C;
    int64_t in[3];     /* (D, H, W), 0 means 1 */
    int64_t k[3];      /* window; 0 means 1 */
    int64_t stride[3]; /* 0 means the window size (torch's default) */
    int64_t pad[3];    /* 2*pad <= k */
    int count_include_pad; /* avg only */
    int64_t out[3];    /* filled by dpt_pool_geom_check */
} dpt_pool_geom;

/* Fills the defaults and `out`; DPT_EINVAL with a message naming the field for an impossible
 * geometry (dims, N, C, a size < 1, pad < 0, 2*pad > k, k > in + 2*pad, a unit leading dimension
 * with k != 1 or pad != 0), DPT_ERANGE when the (D, H, W) plane exceeds int32 or a tensor size
 * overflows int64. */
dpt_status dpt_pool_geom_check(dpt_pool_geom *g);
/* x: (N, C, in)  y: (N, C, out)  argmax: (N, C, out) flat index into the (D, H, W) plane of x,
 * saved for backward (padding is -inf, never selected; ties keep the first index in (d, h, w)
 * order; a NaN in a window is its maximum, as in torch). */
void dpt_maxpool_forward(float *y, int32_t *argmax, const float *x, const dpt_pool_geom *g);
/* dx = 0, then dx[argmax] += dy */
void dpt_maxpool_backward(float *dx, const float *dy, const int32_t *argmax,
                          const dpt_pool_geom *g);
/* y = sum of the in-bounds x / divisor: prod(k) if count_include_pad, else the in-bounds count. */
void dpt_avgpool_forward(float *y, const float *x, const dpt_pool_geom *g);
/* dx = 0, then each in-bounds x of a window += dy/divisor (overlapping windows accumulate). */
void dpt_avgpool_backward(float *dx, const float *dy, const dpt_pool_geom *g);

/* ---- elementwise activations: y = f(x), dx = dy * f'(x) over n elements ---------------------- */
typedef enum {
    DPT_ACT_RELU,
    DPT_ACT_LEAKY_RELU, /* param: negative slope */
    DPT_ACT_SIGMOID,
    DPT_ACT_TANH,
    DPT_ACT_ELU,        /* param: alpha */
    DPT_ACT_GELU,       /* exact (erf) form */
    DPT_ACT_COUNT
} dpt_act;

/* "relu", "leaky_relu", ... (the golden files' op names); "unknown" outside the enum. */
const char *dpt_act_name(dpt_act a);
/* y may alias x (in place). A NaN input gives a NaN output. */
void dpt_act_forward(dpt_act a, float param, float *y, const float *x, int64_t n);
/* dx may alias dy. relu, leaky relu, elu and gelu read x (f'(0) = 0 for relu); sigmoid and tanh
 * read y. The argument an op does not read may be NULL. */
void dpt_act_backward(dpt_act a, float param, float *dx, const float *dy, const float *x,
                      const float *y, int64_t n);

/* ---- softmax along C of (N, C, S) ------------------------------------------------------------ */
/* exp(x - max) / sum, the sum in double; y may alias x. */
void dpt_softmax_forward(float *y, const float *x, int64_t N, int64_t C, int64_t S);
/* dx = y * (dy - sum_c dy*y); dx may alias dy. */
void dpt_softmax_backward(float *dx, const float *dy, const float *y, int64_t N, int64_t C,
                          int64_t S);

/* ---- batch norm over (N, C, S), statistics per channel --------------------------------------
 * Split into sums and apply steps so that ghost BN (sub-batches) and synced BN (sums allreduced
 * across ranks between the two steps) reuse the same kernels. Sums are in double.
 * https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html */
/* sum[c] = sum x, sumsq[c] = sum x^2 over N and S (writes). */
void dpt_bn_stats(double *sum, double *sumsq, const float *x, int64_t N, int64_t C, int64_t S);
/* From sums over m elements: mean and biased var, invstd = 1/sqrt(var + eps). var may be NULL.
 * E[x^2] - mean^2 in double errs by ~1e-16 (mean/std)^2 relative: negligible for float data. */
void dpt_bn_moments(float *mean, float *invstd, double *var, const double *sum,
                    const double *sumsq, int64_t m, int64_t C, double eps);
/* running = (1-momentum)*running + momentum*batch, with the unbiased variance var*m/(m-1);
 * m >= 2 (asserted: the layer rejects a batch with one value per channel). */
void dpt_bn_update_running(float *running_mean, float *running_var, const float *mean,
                           const double *var, int64_t m, int64_t C, double momentum);
/* y = gamma * (x - mean) * invstd + beta  (training: batch mean/invstd; eval: running ones).
 * gamma NULL means 1 and beta NULL means 0 (affine=False); y may alias x. */
void dpt_bn_apply(float *y, const float *x, const float *mean, const float *invstd,
                  const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S);
/* Eval-mode invstd from running_var. */
void dpt_bn_eval_invstd(float *invstd, const float *running_var, int64_t C, double eps);
/* dbeta_sum[c] = sum dy, dgamma_sum[c] = sum dy * xhat (writes, double). */
void dpt_bn_backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy, const float *x,
                          const float *mean, const float *invstd, int64_t N, int64_t C, int64_t S);
/* dx = gamma*invstd*(dy - dbeta_sum/m - xhat*dgamma_sum/m), m the (global) count (writes).
 * gamma NULL means 1; dx may alias dy. */
void dpt_bn_backward_data(float *dx, const float *dy, const float *x, const float *mean,
                          const float *invstd, const float *gamma, const double *dbeta_sum,
                          const double *dgamma_sum, int64_t m, int64_t N, int64_t C, int64_t S);

/* The same sums in two steps, for threads that split the images: first each run's (one image's
 * one channel's) sums for images [n0, n1), written at r1[n * C + c], r2[n * C + c] of (N, C)
 * arrays, x, dy, y being whole (N, C, S) tensors; then dpt_bn_add_runs adds a channel's runs in
 * image order, bit for bit what the one-call functions give. For the backward sums, y non-NULL
 * selects the fused ReLU variant (dpt_bn_backward_sums_relu), NULL the plain one, and
 * dpt_bn_add_runs's invstd (NULL for the statistics) scales the second sum. */
void dpt_bn_stats_runs(double *r1, double *r2, const float *x, int64_t n0, int64_t n1, int64_t C,
                       int64_t S);
void dpt_bn_backward_sums_runs(double *r1, double *r2, const float *dy, const float *y,
                               const float *x, const float *mean, int64_t n0, int64_t n1,
                               int64_t C, int64_t S);
void dpt_bn_add_runs(double *s1, double *s2, const double *r1, const double *r2,
                     const float *invstd, int64_t N, int64_t C);

/* Batch norm fused with the ReLU after it (one pass instead of two each way). The same
 * operations as dpt_bn_apply followed by dpt_act_forward(RELU), bit for bit; y = relu(bn(x)).
 * Backward takes dy = d(loss)/d(relu output) and that output y, and gives what
 * dpt_act_backward(RELU) followed by the plain batch-norm backward gives (dx may alias dy). */
void dpt_bn_apply_relu(float *y, const float *x, const float *mean, const float *invstd,
                       const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S);
void dpt_bn_backward_sums_relu(double *dbeta_sum, double *dgamma_sum, const float *dy,
                               const float *y, const float *x, const float *mean,
                               const float *invstd, int64_t N, int64_t C, int64_t S);
void dpt_bn_backward_data_relu(float *dx, const float *dy, const float *y, const float *x,
                               const float *mean, const float *invstd, const float *gamma,
                               const double *dbeta_sum, const double *dgamma_sum, int64_t m,
                               int64_t N, int64_t C, int64_t S);

#ifdef __cplusplus
}
#endif
#endif
