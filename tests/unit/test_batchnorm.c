/* Batch norm over (N, C, S). Oracles: the golden README §4.4 formulas in double (forward, running
 * statistics, eval mode), and central differences in double of the training-mode forward for
 * dx, dgamma and dbeta, checked through the kernel composition stats -> moments -> apply and
 * backward_sums -> backward_data that the layer uses. Seeds are fixed (SEED, stream per case). */
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
#include "kernels/kernel_table.h"

enum { SEED = 4242 };
#define FD_STEP 1e-5
#define EPS 1e-5
#define MOMENTUM 0.1

/* Data are drawn so that |mean|*invstd <= 1.8, |xhat| <= 1.8, |gamma| <= 1.5, |beta| <= 0.5 and
 * |dy| <= 1. Then each of the half-dozen float roundings in y = (x - mean)*(gamma*invstd) + beta
 * (including the float mean and invstd themselves) is at most ~2.7 ulp of 1: 16 ulp bounds the
 * sum. dx = a*(dy - b - k*(x - mean)) has ~4 roundings of terms up to 2, scaled by |a| <= 2.7:
 * 32 ulp. dgamma sums m products whose xhat carries the float mean/invstd error: 16 ulp * sqrt m.
 * dbeta is a double sum of floats: only the finite-difference error remains (h^2 |L'''| and
 * 1e-16 |L| / h, both < 1e-9). */
#define Y_TOL (16 * FLT_EPSILON)
#define DX_TOL (32 * FLT_EPSILON)
#define DBETA_TOL 1e-8



struct bn_case {
    int64_t N, C, S, n, m;
    float *x, *dy, *gamma, *beta, *rm, *rv;
    double *xd, *dyd, *gd, *bd, *yref, *mean, *var;
};

static struct bn_case *bn_case_new(int64_t N, int64_t C, int64_t S, uint32_t stream) {
    struct bn_case *c = calloc(1, sizeof *c);
    c->N = N, c->C = C, c->S = S, c->n = N * C * S, c->m = N * S;
    const int64_t n = c->n;
    c->x = malloc(n * sizeof *c->x), c->dy = malloc(n * sizeof *c->dy);
    c->gamma = malloc(C * sizeof(float)), c->beta = malloc(C * sizeof(float));
    c->rm = malloc(C * sizeof(float)), c->rv = malloc(C * sizeof(float));
    c->xd = malloc(n * sizeof(double)), c->dyd = malloc(n * sizeof(double));
    c->yref = malloc(n * sizeof(double));
    c->gd = malloc(C * sizeof(double)), c->bd = malloc(C * sizeof(double));
    c->mean = malloc(C * sizeof(double)), c->var = malloc(C * sizeof(double));
    /* channel c: centre in [-1, 1], half-width in [1, 2] (std >= 1/sqrt 3) */
    float centre[64], width[64];
    assert_true(C <= 64);
    dpt_fill_uniform(centre, C, -1.0f, 1.0f, SEED, stream);
    dpt_fill_uniform(width, C, 1.0f, 2.0f, SEED, stream + 1);
    dpt_fill_uniform(c->x, n, -1.0f, 1.0f, SEED, stream + 2);
    for (int64_t i = 0; i < n; i++) {
        int64_t ch = i / S % C;
        c->x[i] = centre[ch] + width[ch] * c->x[i];
    }
    dpt_fill_uniform(c->dy, n, -1.0f, 1.0f, SEED, stream + 3);
    dpt_fill_uniform(c->gamma, C, 0.5f, 1.5f, SEED, stream + 4);
    dpt_fill_uniform(c->beta, C, -0.5f, 0.5f, SEED, stream + 5);
    dpt_fill_uniform(c->rm, C, -0.5f, 0.5f, SEED, stream + 6);
    dpt_fill_uniform(c->rv, C, 0.5f, 2.0f, SEED, stream + 7);
    for (int64_t i = 0; i < n; i++)
        c->xd[i] = c->x[i], c->dyd[i] = c->dy[i];
    for (int64_t k = 0; k < C; k++)
        c->gd[k] = c->gamma[k], c->bd[k] = c->beta[k];
    print_message("batchnorm N=%lld C=%lld S=%lld seed %d stream %u\n", (long long)N,
                  (long long)C, (long long)S, SEED, stream);
    return c;
}

static void bn_case_free(struct bn_case *c) {
    free(c->x), free(c->dy), free(c->gamma), free(c->beta), free(c->rm), free(c->rv);
    free(c->xd), free(c->dyd), free(c->yref), free(c->gd), free(c->bd), free(c->mean);
    free(c->var), free(c);
}

/* Training-mode forward in double, README §4.4: biased variance normalises. */
static void ref_bn_train(struct bn_case *c) {
    const int64_t N = c->N, C = c->C, S = c->S;
    for (int64_t k = 0; k < C; k++) {
        double s = 0, q = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++)
                s += c->xd[(n * C + k) * S + i];
        const double mu = s / (double)c->m;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                double d = c->xd[(n * C + k) * S + i] - mu;
                q += d * d;
            }
        c->mean[k] = mu, c->var[k] = q / (double)c->m;
        const double is = 1 / sqrt(c->var[k] + EPS);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t j = (n * C + k) * S + i;
                c->yref[j] = c->gd[k] * (c->xd[j] - mu) * is + c->bd[k];
            }
    }
}

static double bn_objective(void *vctx) {
    struct bn_case *c = vctx;
    ref_bn_train(c);
    double L = 0;
    for (int64_t i = 0; i < c->n; i++)
        L += c->dyd[i] * c->yref[i];
    return L;
}

static const int64_t shapes[][3] = {{4, 3, 5}, {7, 2, 1}, {2, 2, 24}, {3, 5, 7}};

/* Training mode through the kernel composition: y vs the double formula, dx/dgamma/dbeta vs
 * central differences of it, running statistics vs the momentum formula with the unbiased
 * variance var*m/(m-1). */
static void test_bn_training_matches_formula_and_fd(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        struct bn_case *c = bn_case_new(shapes[t][0], shapes[t][1], shapes[t][2], 10 * t);
        const int64_t N = c->N, C = c->C, S = c->S, n = c->n, m = c->m;
        double sum[8], sumsq[8], var[8], dbs[8], dgs[8], gfd[8], rref[8];
        float mean[8], invstd[8], rm[8], rv[8];
        float *y = malloc(n * sizeof *y), *dx = malloc(n * sizeof *dx);
        double *gx = malloc(n * sizeof *gx);
        assert_true(C <= 8);

        dpt_bn_stats(sum, sumsq, c->x, N, C, S);
        dpt_bn_moments(mean, invstd, var, sum, sumsq, m, C, EPS);
        dpt_bn_apply(y, c->x, mean, invstd, c->gamma, c->beta, N, C, S);
        ref_bn_train(c);
        dpt_assert_close_f32_f64("y", y, c->yref, n, Y_TOL, Y_TOL);
        dpt_assert_close_f64("biased var", var, c->var, C, 4 * DBL_EPSILON * m,
                             4 * DBL_EPSILON * m);

        memcpy(rm, c->rm, C * sizeof *rm), memcpy(rv, c->rv, C * sizeof *rv);
        dpt_bn_update_running(rm, rv, mean, var, m, C, MOMENTUM);
        for (int64_t k = 0; k < C; k++)
            rref[k] = (1 - MOMENTUM) * c->rm[k] + MOMENTUM * c->mean[k];
        dpt_assert_close_f32_f64("running_mean", rm, rref, C, 4 * FLT_EPSILON, 4 * FLT_EPSILON);
        for (int64_t k = 0; k < C; k++)
            rref[k] = (1 - MOMENTUM) * c->rv[k] + MOMENTUM * c->var[k] * m / (m - 1);
        dpt_assert_close_f32_f64("running_var", rv, rref, C, 4 * FLT_EPSILON, 4 * FLT_EPSILON);

        dpt_bn_backward_sums(dbs, dgs, c->dy, c->x, mean, invstd, N, C, S);
        dpt_bn_backward_data(dx, c->dy, c->x, mean, invstd, c->gamma, dbs, dgs, m, N, C, S);
        dpt_fd_central(gx, c->xd, n, FD_STEP, bn_objective, c);
        dpt_assert_close_f32_f64("dx vs finite differences", dx, gx, n, DX_TOL, DX_TOL);
        dpt_fd_central(gfd, c->gd, C, FD_STEP, bn_objective, c);
        const double dg_tol = 16 * FLT_EPSILON * sqrt((double)m);
        dpt_assert_close_f64("dgamma vs finite differences", dgs, gfd, C, dg_tol, dg_tol);
        dpt_fd_central(gfd, c->bd, C, FD_STEP, bn_objective, c);
        dpt_assert_close_f64("dbeta vs finite differences", dbs, gfd, C, DBETA_TOL, DBETA_TOL);

        /* gamma NULL / beta NULL mean 1 / 0 (affine = false), bit for bit */
        float *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
        float ones[8], zeros[8];
        for (int k = 0; k < 8; k++)
            ones[k] = 1, zeros[k] = 0;
        dpt_bn_apply(y1, c->x, mean, invstd, NULL, NULL, N, C, S);
        dpt_bn_apply(y2, c->x, mean, invstd, ones, zeros, N, C, S);
        assert_memory_equal(y1, y2, n * sizeof *y1);
        dpt_bn_backward_data(y1, c->dy, c->x, mean, invstd, NULL, dbs, dgs, m, N, C, S);
        dpt_bn_backward_data(y2, c->dy, c->x, mean, invstd, ones, dbs, dgs, m, N, C, S);
        assert_memory_equal(y1, y2, n * sizeof *y1);
        /* in place: y over x, dx over dy */
        memcpy(y1, c->x, n * sizeof *y1);
        dpt_bn_apply(y1, y1, mean, invstd, c->gamma, c->beta, N, C, S);
        assert_memory_equal(y1, y, n * sizeof *y1);
        memcpy(y1, c->dy, n * sizeof *y1);
        dpt_bn_backward_data(y1, y1, c->x, mean, invstd, c->gamma, dbs, dgs, m, N, C, S);
        assert_memory_equal(y1, dx, n * sizeof *y1);
        free(y1), free(y2), free(y), free(dx), free(gx);
        bn_case_free(c);
    }
}

/* Eval mode: y = gamma*(x - running_mean)/sqrt(running_var + eps) + beta, in double. */
static void test_bn_eval_matches_formula(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        struct bn_case *c = bn_case_new(shapes[t][0], shapes[t][1], shapes[t][2], 100 + 10 * t);
        const int64_t N = c->N, C = c->C, S = c->S, n = c->n;
        float invstd[8];
        float *y = malloc(n * sizeof *y);
        dpt_bn_eval_invstd(invstd, c->rv, C, EPS);
        dpt_bn_apply(y, c->x, c->rm, invstd, c->gamma, c->beta, N, C, S);
        for (int64_t i = 0; i < n; i++) {
            int64_t k = i / S % C;
            c->yref[i] = c->gd[k] * (c->xd[i] - c->rm[k]) / sqrt((double)c->rv[k] + EPS) + c->bd[k];
        }
        dpt_assert_close_f32_f64("eval y", y, c->yref, n, Y_TOL, Y_TOL);
        free(y);
        bn_case_free(c);
    }
}

/* Ghost and synced BN: sums over the two halves of the batch, added, give the whole-batch moments
 * (double sums in another order: 1e-16-level), and backward_data with the global m and summed
 * gradient sums, run per half, gives the whole-batch dx to float rounding. */
static void test_bn_split_batch_equals_whole(void **state) {
    (void)state;
    struct bn_case *c = bn_case_new(6, 3, 4, 300);
    const int64_t C = c->C, S = c->S, n = c->n, m = c->m, half = c->N / 2, hn = half * C * S;
    double s[3], q[3], s2[3], q2[3], var[3], var2[3], db[3], dg[3], db2[3], dg2[3];
    float mean[3], invstd[3], mean2[3], invstd2[3];
    float *dx = malloc(n * sizeof *dx), *dx2 = malloc(n * sizeof *dx2);
    dpt_bn_stats(s, q, c->x, c->N, C, S);
    dpt_bn_moments(mean, invstd, var, s, q, m, C, EPS);
    dpt_bn_stats(s2, q2, c->x, half, C, S);
    {
        double s3[3], q3[3];
        dpt_bn_stats(s3, q3, c->x + hn, c->N - half, C, S);
        for (int k = 0; k < C; k++)
            s2[k] += s3[k], q2[k] += q3[k];
    }
    dpt_bn_moments(mean2, invstd2, var2, s2, q2, m, C, EPS);
    dpt_assert_close_f64("split var", var2, var, C, 16 * DBL_EPSILON * m, 16 * DBL_EPSILON * m);
    dpt_assert_close_f32("split mean", mean2, mean, C, FLT_EPSILON, FLT_EPSILON);
    dpt_assert_close_f32("split invstd", invstd2, invstd, C, FLT_EPSILON, FLT_EPSILON);

    dpt_bn_backward_sums(db, dg, c->dy, c->x, mean, invstd, c->N, C, S);
    dpt_bn_backward_data(dx, c->dy, c->x, mean, invstd, c->gamma, db, dg, m, c->N, C, S);
    dpt_bn_backward_sums(db2, dg2, c->dy, c->x, mean, invstd, half, C, S);
    {
        double db3[3], dg3[3];
        dpt_bn_backward_sums(db3, dg3, c->dy + hn, c->x + hn, mean, invstd, c->N - half, C, S);
        for (int k = 0; k < C; k++)
            db2[k] += db3[k], dg2[k] += dg3[k];
    }
    dpt_bn_backward_data(dx2, c->dy, c->x, mean, invstd, c->gamma, db2, dg2, m, half, C, S);
    dpt_bn_backward_data(dx2 + hn, c->dy + hn, c->x + hn, mean, invstd, c->gamma, db2, dg2, m,
                         c->N - half, C, S);
    dpt_assert_close_f32("split dx", dx2, dx, n, 2 * FLT_EPSILON, 2 * FLT_EPSILON);
    free(dx), free(dx2);
    bn_case_free(c);
}

/* The two-step sums threads use (each run's sums over pieces of the images, then the runs added
 * in image order) give the one-call sums bit for bit, wherever the pieces are cut; the eval-mode
 * scaling by invstd included. */
static void test_bn_run_sums_equal_one_call(void **state) {
    (void)state;
    struct bn_case *c = bn_case_new(7, 3, 29, 700);
    const int64_t N = c->N, C = c->C, S = c->S;
    double s[3], q[3], db[3], dg[3], dbr[3], dgr[3], s2[3], q2[3], r1[7 * 3], r2[7 * 3];
    float mean[3], invstd[3], *yr = malloc((size_t)c->n * sizeof *yr);
    assert_non_null(yr);
    dpt_bn_stats(s, q, c->x, N, C, S);
    dpt_bn_moments(mean, invstd, NULL, s, q, c->m, C, EPS);
    dpt_bn_apply_relu(yr, c->x, mean, invstd, c->gamma, c->beta, N, C, S);
    dpt_bn_backward_sums(db, dg, c->dy, c->x, mean, invstd, N, C, S);
    dpt_bn_backward_sums_relu(dbr, dgr, c->dy, yr, c->x, mean, invstd, N, C, S);
    static const int64_t cuts[][3] = {{0, 7, 7}, {0, 3, 7}, {1, 2, 7}, {5, 6, 7}};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        const int64_t a = cuts[k][0], b = cuts[k][1];
        memset(r1, 0xff, sizeof r1), memset(r2, 0xff, sizeof r2); /* NaN: every run written */
        dpt_bn_stats_runs(r1, r2, c->x, b, N, C, S);
        dpt_bn_stats_runs(r1, r2, c->x, 0, a, C, S);
        dpt_bn_stats_runs(r1, r2, c->x, a, b, C, S);
        dpt_bn_add_runs(s2, q2, r1, r2, NULL, N, C);
        assert_memory_equal(s2, s, sizeof s);
        assert_memory_equal(q2, q, sizeof q);
        for (int relu = 0; relu <= 1; relu++) {
            memset(r1, 0xff, sizeof r1), memset(r2, 0xff, sizeof r2);
            const float *y = relu ? yr : NULL;
            dpt_bn_backward_sums_runs(r1, r2, c->dy, y, c->x, mean, a, b, C, S);
            dpt_bn_backward_sums_runs(r1, r2, c->dy, y, c->x, mean, 0, a, C, S);
            dpt_bn_backward_sums_runs(r1, r2, c->dy, y, c->x, mean, b, N, C, S);
            dpt_bn_add_runs(s2, q2, r1, r2, invstd, N, C);
            assert_memory_equal(s2, relu ? dbr : db, sizeof s);
            assert_memory_equal(q2, relu ? dgr : dg, sizeof q);
        }
    }
    free(yr);
    bn_case_free(c);
}

/* A constant channel has variance 0 (clamped, never negative from rounding): invstd is
 * 1/sqrt(eps) and y = beta. */
static void test_bn_constant_channel(void **state) {
    (void)state;
    enum { N = 5, C = 1, S = 3 };
    float x[N * C * S], y[N * C * S], mean[1], invstd[1];
    double s[1], q[1], var[1];
    for (int i = 0; i < N * S; i++)
        x[i] = 0.1f;
    const float gamma = 2.0f, beta = 0.25f;
    dpt_bn_stats(s, q, x, N, C, S);
    dpt_bn_moments(mean, invstd, var, s, q, N * S, C, EPS);
    assert_true(var[0] >= 0.0 && var[0] < 1e-15);
    assert_true(fabs(invstd[0] - 1 / sqrt(EPS)) <= 1e-3 * (1 / sqrt(EPS)));
    dpt_bn_apply(y, x, mean, invstd, &gamma, &beta, N, C, S);
    for (int i = 0; i < N * S; i++)
        assert_true(fabsf(y[i] - beta) <= 1e-4f);
}

/* Every vector path this CPU runs (scalar, AVX2, AVX-512F) against the scalar one, bit for bit:
 * they sum in one fixed order (16 lanes), so the statistics, the backward sums and every output
 * must agree exactly. Run lengths S cover a lone element, tails below, at and past one 16-float
 * step, and fmnist-like lengths; in-place calls too. Per path, the fused ReLU kernels must also
 * equal batch norm then dpt_act_forward / dpt_act_backward(RELU) (the unfused model). */
struct bn_outputs {
    double s1[8], s2[8], db[8], dg[8], dbr[8], dgr[8];
    float *y, *yr, *dx, *dxr, *inplace_y, *inplace_dx;
};

static void run_every_kernel(struct bn_outputs *o, const struct bn_case *c, const float *mean,
                             const float *invstd) {
    const int64_t N = c->N, C = c->C, S = c->S, n = c->n, m = c->m;
    dpt_bn_stats(o->s1, o->s2, c->x, N, C, S);
    dpt_bn_apply(o->y, c->x, mean, invstd, c->gamma, c->beta, N, C, S);
    dpt_bn_apply_relu(o->yr, c->x, mean, invstd, c->gamma, c->beta, N, C, S);
    dpt_bn_backward_sums(o->db, o->dg, c->dy, c->x, mean, invstd, N, C, S);
    dpt_bn_backward_sums_relu(o->dbr, o->dgr, c->dy, o->yr, c->x, mean, invstd, N, C, S);
    dpt_bn_backward_data(o->dx, c->dy, c->x, mean, invstd, c->gamma, o->db, o->dg, m, N, C, S);
    dpt_bn_backward_data_relu(o->dxr, c->dy, o->yr, c->x, mean, invstd, c->gamma, o->dbr, o->dgr,
                              m, N, C, S);
    memcpy(o->inplace_y, c->x, n * sizeof(float));
    dpt_bn_apply_relu(o->inplace_y, o->inplace_y, mean, invstd, c->gamma, c->beta, N, C, S);
    memcpy(o->inplace_dx, c->dy, n * sizeof(float));
    dpt_bn_backward_data_relu(o->inplace_dx, o->inplace_dx, o->yr, c->x, mean, invstd, c->gamma,
                              o->dbr, o->dgr, m, N, C, S);
}

static void test_bn_every_path_same_bits(void **state) {
    (void)state;
    static const int64_t sh[][3] = {{3, 2, 1},  {2, 3, 5},  {2, 2, 15}, {2, 2, 16},
                                    {3, 2, 17}, {2, 3, 33}, {2, 2, 200}, {1, 1, 785}};
    const dpt__isa best = dpt__isa_best();
    for (size_t t = 0; t < sizeof sh / sizeof sh[0]; t++) {
        struct bn_case *c = bn_case_new(sh[t][0], sh[t][1], sh[t][2], 500 + 10 * (uint32_t)t);
        const int64_t N = c->N, C = c->C, S = c->S, n = c->n, m = c->m;
        struct bn_outputs o[2];
        float mean[8], invstd[8];
        for (int k = 0; k < 2; k++) {
            float **b[] = {&o[k].y, &o[k].yr, &o[k].dx, &o[k].dxr, &o[k].inplace_y,
                           &o[k].inplace_dx};
            for (size_t j = 0; j < sizeof b / sizeof b[0]; j++)
                *b[j] = malloc(n * sizeof(float));
        }
        float *u = malloc(n * sizeof *u), *g = malloc(n * sizeof *g), *v = malloc(n * sizeof *v);
        double db[8], dg[8];
        const dpt__isa old = dpt__isa_pin(DPT__ISA_SCALAR);
        dpt_bn_stats(o[0].s1, o[0].s2, c->x, N, C, S);
        dpt_bn_moments(mean, invstd, NULL, o[0].s1, o[0].s2, m, C, EPS);
        run_every_kernel(&o[0], c, mean, invstd);
        for (int isa = DPT__ISA_SCALAR; isa <= (int)best; isa++) {
            print_message("path %d\n", isa);
            dpt__isa_pin((dpt__isa)isa);
            run_every_kernel(&o[1], c, mean, invstd);
            assert_memory_equal(o[1].s1, o[0].s1, C * sizeof(double));
            assert_memory_equal(o[1].s2, o[0].s2, C * sizeof(double));
            assert_memory_equal(o[1].db, o[0].db, C * sizeof(double));
            assert_memory_equal(o[1].dg, o[0].dg, C * sizeof(double));
            assert_memory_equal(o[1].dbr, o[0].dbr, C * sizeof(double));
            assert_memory_equal(o[1].dgr, o[0].dgr, C * sizeof(double));
            assert_memory_equal(o[1].y, o[0].y, n * sizeof(float));
            assert_memory_equal(o[1].yr, o[0].yr, n * sizeof(float));
            assert_memory_equal(o[1].dx, o[0].dx, n * sizeof(float));
            assert_memory_equal(o[1].dxr, o[0].dxr, n * sizeof(float));
            assert_memory_equal(o[1].inplace_y, o[0].yr, n * sizeof(float));
            assert_memory_equal(o[1].inplace_dx, o[0].dxr, n * sizeof(float));
            /* fused == unfused: relu(bn(x)); relu backward (reads the relu input u) then bn's */
            dpt_bn_apply(u, c->x, mean, invstd, c->gamma, c->beta, N, C, S);
            dpt_act_forward(DPT_ACT_RELU, 0.0f, v, u, n);
            assert_memory_equal(v, o[1].yr, n * sizeof(float));
            dpt_act_backward(DPT_ACT_RELU, 0.0f, g, c->dy, u, NULL, n);
            dpt_bn_backward_sums(db, dg, g, c->x, mean, invstd, N, C, S);
            assert_memory_equal(db, o[1].dbr, C * sizeof(double));
            assert_memory_equal(dg, o[1].dgr, C * sizeof(double));
            dpt_bn_backward_data(v, g, c->x, mean, invstd, c->gamma, db, dg, m, N, C, S);
            assert_memory_equal(v, o[1].dxr, n * sizeof(float));
        }
        dpt__isa_pin(old);
        for (int k = 0; k < 2; k++)
            free(o[k].y), free(o[k].yr), free(o[k].dx), free(o[k].dxr), free(o[k].inplace_y),
                free(o[k].inplace_dx);
        free(u), free(g), free(v);
        bn_case_free(c);
    }
}

/* A large mean with a small spread: x = 1e4 + U(-2, 2), so E[x^2] = 1e8 and var ~ 1.3. E[x^2] -
 * mean^2 then cancels 8 digits: a float sum of x^2 (or of x) errs by ~FLT_EPSILON*1e8 ~ 10 > var
 * and fails; the double sums err by at most k*DBL_EPSILON*E[x^2] in E[x^2] and in mean^2, k the
 * additions on a chain (S/16 + 4 lanes and fold, then N runs). Oracle: the two-pass variance in
 * double of the same float data. Every path. */
static void test_bn_stats_large_mean(void **state) {
    (void)state;
    enum { N = 16, C = 2, S = 787 };
    const int64_t n = N * C * S, m = N * S;
    float *x = malloc(n * sizeof *x);
    dpt_fill_uniform(x, n, -2.0f, 2.0f, SEED, 600);
    for (int64_t i = 0; i < n; i++)
        x[i] += 1e4f;
    double mref[C] = {0}, vref[C] = {0};
    for (int64_t i = 0; i < n; i++)
        mref[i / S % C] += x[i];
    for (int k = 0; k < C; k++)
        mref[k] /= (double)m;
    for (int64_t i = 0; i < n; i++) {
        const double d = x[i] - mref[i / S % C];
        vref[i / S % C] += d * d;
    }
    for (int k = 0; k < C; k++)
        vref[k] /= (double)m;
    const double chain = S / 16 + 1 + 4 + N;
    const double atol = 2 * chain * DBL_EPSILON * 1e8 * 1.0001;
    const dpt__isa best = dpt__isa_best();
    for (int isa = DPT__ISA_SCALAR; isa <= (int)best; isa++) {
        double s[C], q[C], var[C];
        float mean[C], invstd[C];
        const dpt__isa old = dpt__isa_pin((dpt__isa)isa);
        dpt_bn_stats(s, q, x, N, C, S);
        dpt__isa_pin(old);
        dpt_bn_moments(mean, invstd, var, s, q, m, C, EPS);
        for (int k = 0; k < C; k++) {
            assert_true(vref[k] > 1.0 && vref[k] < 1.7);
            if (fabs(var[k] - vref[k]) > atol)
                fail_msg("path %d channel %d: var %.17g, two-pass %.17g, |diff| > %.3g", isa, k,
                         var[k], vref[k], atol);
            assert_true(mean[k] == (float)mref[k]);
        }
    }
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_training_matches_formula_and_fd),
        cmocka_unit_test(test_bn_eval_matches_formula),
        cmocka_unit_test(test_bn_split_batch_equals_whole),
        cmocka_unit_test(test_bn_run_sums_equal_one_call),
        cmocka_unit_test(test_bn_constant_channel),
        cmocka_unit_test(test_bn_every_path_same_bits),
        cmocka_unit_test(test_bn_stats_large_mean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
