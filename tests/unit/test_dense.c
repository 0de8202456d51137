/* Dense (fully connected) kernels on both GEMM backends. Oracles: a naive GEMM in double written
 * here (y = x W^T + b, dx = dy W, dW = dy^T x, db = sum_n dy, golden README §4.3), central
 * differences in double of L = <dy, x W^T + b> for dx, dw and db, and the accumulate contract
 * (dw, db +=). Seeds are fixed (SEED, stream per case). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "fdgrad.h"
#include "dpt/ops.h"

enum { SEED = 31337 };
#define FD_STEP 1e-3 /* L is linear in each of x, w, b: no truncation error at any step */



/* Sums of K float products with |terms| <= 1 accumulate a random-walk rounding error of about
 * FLT_EPSILON*sqrt(K) times the term size; 4x that is the budget (STYLE: eps*sqrt(K)). */
static double sum_tol(int64_t K) { return 4 * FLT_EPSILON * sqrt((double)K); }

struct dense_case {
    int64_t N, K, O;
    float *x, *w, *b, *dy;
    double *xd, *wd, *bd, *dyd;
};

static struct dense_case *case_new(int64_t N, int64_t K, int64_t O, uint32_t stream) {
    struct dense_case *c = calloc(1, sizeof *c);
    c->N = N, c->K = K, c->O = O;
    c->x = malloc(N * K * sizeof(float)), c->w = malloc(O * K * sizeof(float));
    c->b = malloc(O * sizeof(float)), c->dy = malloc(N * O * sizeof(float));
    c->xd = malloc(N * K * sizeof(double)), c->wd = malloc(O * K * sizeof(double));
    c->bd = malloc(O * sizeof(double)), c->dyd = malloc(N * O * sizeof(double));
    dpt_fill_uniform(c->x, N * K, -1.0f, 1.0f, SEED, stream);
    dpt_fill_uniform(c->w, O * K, -1.0f, 1.0f, SEED, stream + 1);
    dpt_fill_uniform(c->b, O, -1.0f, 1.0f, SEED, stream + 2);
    dpt_fill_uniform(c->dy, N * O, -1.0f, 1.0f, SEED, stream + 3);
    for (int64_t i = 0; i < N * K; i++)
        c->xd[i] = c->x[i];
    for (int64_t i = 0; i < O * K; i++)
        c->wd[i] = c->w[i];
    for (int64_t i = 0; i < O; i++)
        c->bd[i] = c->b[i];
    for (int64_t i = 0; i < N * O; i++)
        c->dyd[i] = c->dy[i];
    print_message("dense N=%lld K=%lld O=%lld seed %d stream %u\n", (long long)N, (long long)K,
                  (long long)O, SEED, stream);
    return c;
}

static void case_free(struct dense_case *c) {
    free(c->x), free(c->w), free(c->b), free(c->dy);
    free(c->xd), free(c->wd), free(c->bd), free(c->dyd), free(c);
}

/* y = x W^T + b, dx = dy W, dw = dy^T x, db = sum_n dy: all in double. */
static void ref_dense(const struct dense_case *c, double *y, double *dx, double *dw, double *db) {
    const int64_t N = c->N, K = c->K, O = c->O;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            double s = c->bd[o];
            for (int64_t k = 0; k < K; k++)
                s += c->xd[n * K + k] * c->wd[o * K + k];
            y[n * O + o] = s;
        }
    if (!dx)
        return;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t o = 0; o < O; o++)
                s += c->dyd[n * O + o] * c->wd[o * K + k];
            dx[n * K + k] = s;
        }
    for (int64_t o = 0; o < O; o++) {
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++)
                s += c->dyd[n * O + o] * c->xd[n * K + k];
            dw[o * K + k] = s;
        }
        double s = 0;
        for (int64_t n = 0; n < N; n++)
            s += c->dyd[n * O + o];
        db[o] = s;
    }
}

static const int64_t shapes[][3] = {{5, 37, 11}, {1, 3, 2}, {64, 300, 70}, {9, 1, 1}};
static const dpt_gemm_backend backends[] = {DPT_GEMM_BLAS, DPT_GEMM_NAIVE};
static const char *const backend_name[] = {"blas", "naive"};

/* Every backend vs the double GEMM, for y, dx and the accumulated dw, db. */
static void test_dense_backends_match_ref(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        struct dense_case *c = case_new(shapes[t][0], shapes[t][1], shapes[t][2], 10 * t);
        const int64_t N = c->N, K = c->K, O = c->O;
        double *y = malloc(N * O * sizeof *y), *dx = malloc(N * K * sizeof *dx);
        double *dw = malloc(O * K * sizeof *dw), *db = malloc(O * sizeof *db);
        float *yf = malloc(N * O * sizeof *yf), *dxf = malloc(N * K * sizeof *dxf);
        float *dwf = malloc(O * K * sizeof *dwf), *dbf = malloc(O * sizeof *dbf);
        float *prev_w = malloc(O * K * sizeof *prev_w), *prev_b = malloc(O * sizeof *prev_b);
        float *yb[2], *dxb[2];
        ref_dense(c, y, dx, dw, db);
        /* dw/db start from non-zero values: backward_weight must add to them */
        dpt_fill_uniform(prev_w, O * K, -1.0f, 1.0f, SEED, 10 * (uint32_t)t + 7);
        dpt_fill_uniform(prev_b, O, -1.0f, 1.0f, SEED, 10 * (uint32_t)t + 8);
        for (int64_t i = 0; i < O * K; i++)
            dw[i] += prev_w[i];
        for (int64_t i = 0; i < O; i++)
            db[i] += prev_b[i];
        for (int be = 0; be < 2; be++) {
            char what[64];
            yb[be] = malloc(N * O * sizeof(float)), dxb[be] = malloc(N * K * sizeof(float));
            dpt_dense_forward(backends[be], yf, c->x, c->w, c->b, N, K, O);
            snprintf(what, sizeof what, "%s y", backend_name[be]);
            dpt_assert_close_f32_f64(what, yf, y, N * O, sum_tol(K + 1), sum_tol(K + 1));
            dpt_dense_backward_data(backends[be], dxf, c->dy, c->w, N, K, O);
            snprintf(what, sizeof what, "%s dx", backend_name[be]);
            dpt_assert_close_f32_f64(what, dxf, dx, N * K, sum_tol(O), sum_tol(O));
            memcpy(dwf, prev_w, O * K * sizeof *dwf), memcpy(dbf, prev_b, O * sizeof *dbf);
            dpt_dense_backward_weight(backends[be], dwf, dbf, c->dy, c->x, N, K, O);
            snprintf(what, sizeof what, "%s dw (accumulated)", backend_name[be]);
            dpt_assert_close_f32_f64(what, dwf, dw, O * K, sum_tol(N + 1), sum_tol(N + 1));
            snprintf(what, sizeof what, "%s db (accumulated)", backend_name[be]);
            dpt_assert_close_f32_f64(what, dbf, db, O, sum_tol(N + 1), sum_tol(N + 1));
            memcpy(yb[be], yf, N * O * sizeof *yf), memcpy(dxb[be], dxf, N * K * sizeof *dxf);
        }
        /* and the two backends agree with each other within the same budget */
        dpt_assert_close_f32("blas vs naive y", yb[0], yb[1], N * O, 2 * sum_tol(K + 1),
                             2 * sum_tol(K + 1));
        dpt_assert_close_f32("blas vs naive dx", dxb[0], dxb[1], N * K, 2 * sum_tol(O),
                             2 * sum_tol(O));
        for (int be = 0; be < 2; be++)
            free(yb[be]), free(dxb[be]);
        free(y), free(dx), free(dw), free(db), free(yf), free(dxf), free(dwf), free(dbf);
        free(prev_w), free(prev_b);
        case_free(c);
    }
}

struct fd_ctx {
    const struct dense_case *c;
    double *y;
};

static double dense_objective(void *vctx) {
    const struct fd_ctx *f = vctx;
    ref_dense(f->c, f->y, NULL, NULL, NULL);
    double L = 0;
    for (int64_t i = 0; i < f->c->N * f->c->O; i++)
        L += f->c->dyd[i] * f->y[i];
    return L;
}

/* dx, dw, db (from zero) vs central differences of <dy, x W^T + b>, on the BLAS backend. */
static void test_dense_grads_vs_fd(void **state) {
    (void)state;
    struct dense_case *c = case_new(4, 7, 3, 500);
    const int64_t N = c->N, K = c->K, O = c->O;
    double y[12], gx[28], gw[21], gb[3];
    float dx[28], dw[21] = {0}, db[3] = {0};
    struct fd_ctx f = {.c = c, .y = y};
    dpt_dense_backward_data(DPT_GEMM_BLAS, dx, c->dy, c->w, N, K, O);
    dpt_dense_backward_weight(DPT_GEMM_BLAS, dw, db, c->dy, c->x, N, K, O);
    dpt_fd_central(gx, c->xd, N * K, FD_STEP, dense_objective, &f);
    dpt_fd_central(gw, c->wd, O * K, FD_STEP, dense_objective, &f);
    dpt_fd_central(gb, c->bd, O, FD_STEP, dense_objective, &f);
    dpt_assert_close_f32_f64("dx vs finite differences", dx, gx, N * K, sum_tol(O), sum_tol(O));
    dpt_assert_close_f32_f64("dw vs finite differences", dw, gw, O * K, sum_tol(N), sum_tol(N));
    dpt_assert_close_f32_f64("db vs finite differences", db, gb, O, sum_tol(N), sum_tol(N));
    case_free(c);
}

/* b = NULL is a bias-free layer (y = x W^T); db = NULL skips the bias gradient and leaves dw
 * identical; N = 0 touches nothing. */
static void test_dense_optional_bias(void **state) {
    (void)state;
    struct dense_case *c = case_new(3, 5, 4, 600);
    const int64_t N = c->N, K = c->K, O = c->O;
    float y0[12], y1[12], zero_b[4] = {0}, dw0[20] = {0}, dw1[20] = {0}, db[4] = {0};
    for (int be = 0; be < 2; be++) {
        dpt_dense_forward(backends[be], y0, c->x, c->w, NULL, N, K, O);
        dpt_dense_forward(backends[be], y1, c->x, c->w, zero_b, N, K, O);
        dpt_assert_close_f32("y without bias", y0, y1, N * O, sum_tol(K), sum_tol(K));
    }
    dpt_dense_backward_weight(DPT_GEMM_BLAS, dw0, NULL, c->dy, c->x, N, K, O);
    dpt_dense_backward_weight(DPT_GEMM_BLAS, dw1, db, c->dy, c->x, N, K, O);
    assert_memory_equal(dw0, dw1, sizeof dw0);
    float untouched[20];
    memcpy(untouched, dw0, sizeof untouched);
    dpt_dense_backward_weight(DPT_GEMM_BLAS, dw0, db, c->dy, c->x, 0, K, O);
    assert_memory_equal(dw0, untouched, sizeof dw0);
    case_free(c);
}

static int setup(void **state) {
    (void)state;
    dpt_gemm_init();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_backends_match_ref),
        cmocka_unit_test(test_dense_grads_vs_fd),
        cmocka_unit_test(test_dense_optional_bias),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
