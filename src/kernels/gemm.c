/* GEMM wrappers (kernels): row-major C = alpha*op(A)*op(B) + beta*C through OpenBLAS (pinned to one
 * thread: one rank per core) or through plain loops accumulating in double, the oracle for the
 * BLAS path and the fallback for bit-stable results. Knows nothing about layers or convolutions. */
#include <limits.h>
#include <stdatomic.h>

#include <cblas.h>

#include "dpt/ops.h"

static atomic_int gemm_ready;

void dpt_gemm_init(void) {
    /* Setting the thread count twice is harmless, so a race between two first callers is too. */
    if (!atomic_exchange(&gemm_ready, 1))
        openblas_set_num_threads(1);
}

const char *dpt_gemm_core(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

/* C = beta*C for K == 0 (BLAS semantics: C is not read when beta == 0). */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

static void naive_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc) {
    /* op(A)[i][k] and op(B)[k][j] as strides, so one loop nest serves all four cases. */
    const int64_t a_i = trans_a ? 1 : lda, a_k = trans_a ? lda : 1;
    const int64_t b_k = trans_b ? 1 : ldb, b_j = trans_b ? ldb : 1;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)A[i * a_i + k * a_k] * (double)B[k * b_k + j * b_j];
            double c = (double)alpha * acc;
            if (beta != 0.0f)
                c += (double)beta * (double)C[i * ldc + j];
            C[i * ldc + j] = (float)c;
        }
}

void dpt_sgemm(dpt_gemm_backend be, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc) {
    DPT_ASSERT(M >= 0 && N >= 0 && K >= 0);
    DPT_ASSERT(ldc >= (N > 1 ? N : 1));
    DPT_ASSERT(lda >= ((trans_a ? M : K) > 1 ? (trans_a ? M : K) : 1));
    DPT_ASSERT(ldb >= ((trans_b ? K : N) > 1 ? (trans_b ? K : N) : 1));
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    if (be == DPT_GEMM_NAIVE) {
        naive_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    DPT_ASSERT(be == DPT_GEMM_BLAS);
    DPT_ASSERT(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX);
    DPT_ASSERT(lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX);
    if (!atomic_load_explicit(&gemm_ready, memory_order_relaxed))
        dpt_gemm_init();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha, A,
                (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}
