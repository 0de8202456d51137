/* Fully connected kernels (kernels): y = x W^T + b and its two backward passes, as three row-major
 * GEMMs through dpt_sgemm (BLAS or naive backend). Knows no layers; never allocates.
 * https://pytorch.org/docs/stable/generated/torch.nn.Linear.html */
#include "dpt/ops.h"

/* x: (N, K)  w: (O, K)  b: (O) or NULL  y: (N, O) */
void dpt_dense_forward(dpt_gemm_backend be, float *y, const float *x, const float *w,
                       const float *b, int64_t N, int64_t K, int64_t O) {
    DPT_ASSERT(N >= 0 && K >= 1 && O >= 1);
    if (N == 0)
        return;
    /* Broadcast the bias into y, then let the GEMM add x W^T on top (beta = 1): one pass over y
     * instead of a second sweep after the product. */
    float beta = 0.0f;
    if (b) {
        for (int64_t n = 0; n < N; n++) {
            float *restrict yn = y + n * O;
            for (int64_t o = 0; o < O; o++)
                yn[o] = b[o];
        }
        beta = 1.0f;
    }
    dpt_sgemm(be, 0, 1, N, O, K, 1.0f, x, K, w, K, beta, y, O);
}

/* dy: (N, O)  w: (O, K)  dx: (N, K), written. */
void dpt_dense_backward_data(dpt_gemm_backend be, float *dx, const float *dy, const float *w,
                             int64_t N, int64_t K, int64_t O) {
    DPT_ASSERT(N >= 0 && K >= 1 && O >= 1);
    if (N == 0)
        return;
    dpt_sgemm(be, 0, 0, N, K, O, 1.0f, dy, O, w, K, 0.0f, dx, K);
}

/* dy: (N, O)  x: (N, K)  dw: (O, K) += dy^T x  db: (O) += sum_n dy (skipped when NULL). */
void dpt_dense_backward_weight(dpt_gemm_backend be, float *dw, float *db, const float *dy,
                               const float *x, int64_t N, int64_t K, int64_t O) {
    DPT_ASSERT(N >= 0 && K >= 1 && O >= 1);
    if (N == 0)
        return;
    dpt_sgemm(be, 1, 0, O, K, N, 1.0f, dy, O, x, K, 1.0f, dw, K);
    if (!db)
        return;
    /* Row by row so that the inner loop is contiguous; the sum over n runs in a fixed order, so
     * the result does not depend on the GEMM backend. */
    for (int64_t n = 0; n < N; n++) {
        const float *restrict dyn = dy + n * O;
        float *restrict dbo = db;
        for (int64_t o = 0; o < O; o++)
            dbo[o] += dyn[o];
    }
}
