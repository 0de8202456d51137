/* Keskar's epsilon-sharpness (train): the projected sign-gradient maximizer over an objective
 * callback, the random subspace with its box, and the data-parallel training loss of a
 * checkpoint as one such objective. The maximizer knows no MPI and no model; only the objective
 * talks to the group. Method and choices: docs/sharpness.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/loss.h"
#include "dpt/rng.h"
#include "dpt/sharpness.h"
#include "train_impl.h"

double dpt_sharpness_value(double f0, double fmax) { return 100.0 * (fmax - f0) / (1.0 + f0); }

/* ---- The random subspace: A is n x P, column j at A + j*n ------------------------------- */

/* Column j is its own stream (counter (j, 0)), so A does not depend on how it is generated. */
static void subspace_matrix(float *A, int64_t n, int64_t P, uint32_t seed) {
    dpt_rng_key key = dpt_rng_key_make(seed, DPT_RNG_SUBSPACE, 0);
    for (int64_t j = 0; j < P; j++) {
        dpt_rng r;
        dpt_rng_init(&r, key, (uint32_t)j, 0);
        for (int64_t i = 0; i < n; i++)
            A[j * n + i] = (float)dpt_rng_normal(&r);
    }
}

/* y = A z, each element summed in double over the P columns; rows in blocks so the block's
 * sums stay in cache while the columns stream past. */
static void subspace_apply(float *y, const float *A, const float *z, int64_t n, int64_t P) {
    enum { ROWS = 256 };
    double acc[ROWS];
    for (int64_t i0 = 0; i0 < n; i0 += ROWS) {
        const int64_t rows = n - i0 < ROWS ? n - i0 : ROWS;
        memset(acc, 0, sizeof acc);
        for (int64_t j = 0; j < P; j++) {
            const float *a = A + j * n + i0;
            const double zj = z[j];
            for (int64_t i = 0; i < rows; i++)
                acc[i] += a[i] * zj;
        }
        for (int64_t i = 0; i < rows; i++)
            y[i0 + i] = (float)acc[i];
    }
}

/* gz = A^T g (the chain rule for y = A z), each in double. */
static void subspace_grad(float *gz, const float *A, const float *g, int64_t n, int64_t P) {
    for (int64_t j = 0; j < P; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += (double)A[j * n + i] * g[i];
        gz[j] = (float)s;
    }
}

/* G = L L^T in place (row-major P x P; L in the lower triangle). 0 when a pivot is not clearly
 * positive: A^T A of Gaussian columns is singular only when P is close to n. */
static int cholesky(double *G, int64_t P) {
    for (int64_t j = 0; j < P; j++) {
        double d = G[j * P + j];
        const double scale = d;
        for (int64_t k = 0; k < j; k++)
            d -= G[j * P + k] * G[j * P + k];
        if (!(d > 1e-10 * scale))
            return 0;
        const double ljj = sqrt(d);
        G[j * P + j] = ljj;
        for (int64_t i = j + 1; i < P; i++) {
            double s = G[i * P + j];
            for (int64_t k = 0; k < j; k++)
                s -= G[i * P + k] * G[j * P + k];
            G[i * P + j] = s / ljj;
        }
    }
    return 1;
}

/* Solves L L^T z = b in place. */
static void cholesky_solve(const double *L, double *b, int64_t P) {
    for (int64_t i = 0; i < P; i++) {
        for (int64_t k = 0; k < i; k++)
            b[i] -= L[i * P + k] * b[k];
        b[i] /= L[i * P + i];
    }
    for (int64_t i = P - 1; i >= 0; i--) {
        for (int64_t k = i + 1; k < P; k++)
            b[i] -= L[k * P + i] * b[k];
        b[i] /= L[i * P + i];
    }
}

/* The box of z: c_j = eps (|(A^+ x)_j| + 1), A^+ x = (A^T A)^-1 A^T x from the normal equations.
 * A^T A and A^T x are summed in double over blocks of rows copied row-major, so the inner loop
 * runs along a contiguous row of the upper triangle. */
static dpt_status subspace_box(float *c, const float *A, const float *x, int64_t n, int64_t P,
                               double eps) {
    enum { ROWS = 64 };
    double *G = calloc((size_t)(P * P), sizeof *G), *b = calloc((size_t)P, sizeof *b);
    double *rb = malloc((size_t)(ROWS * P) * sizeof *rb);
    dpt_status st = DPT_OK;
    if (!G || !b || !rb) {
        st = dpt_errorf(DPT_ENOMEM, "sharpness: cannot allocate the %lld x %lld normal equations",
                        (long long)P, (long long)P);
        goto out;
    }
    for (int64_t i0 = 0; i0 < n; i0 += ROWS) {
        const int64_t rows = n - i0 < ROWS ? n - i0 : ROWS;
        for (int64_t j = 0; j < P; j++)
            for (int64_t r = 0; r < rows; r++)
                rb[r * P + j] = A[j * n + i0 + r];
        for (int64_t r = 0; r < rows; r++) {
            const double *row = rb + r * P, xi = x[i0 + r];
            for (int64_t j = 0; j < P; j++) {
                const double a = row[j];
                b[j] += a * xi;
                for (int64_t k = j; k < P; k++)
                    G[j * P + k] += a * row[k];
            }
        }
    }
    for (int64_t j = 0; j < P; j++)
        for (int64_t k = 0; k < j; k++)
            G[j * P + k] = G[k * P + j];
    if (!cholesky(G, P)) {
        st = dpt_errorf(DPT_ERANGE, "sharpness: the random %lld-dimensional subspace is "
                                    "degenerate for %lld parameters (A^T A is singular); use a "
                                    "smaller --subspace",
                        (long long)P, (long long)n);
        goto out;
    }
    cholesky_solve(G, b, P);
    for (int64_t j = 0; j < P; j++)
        c[j] = (float)(eps * (fabs(b[j]) + 1.0));
out:
    free(G), free(b), free(rb);
    return st;
}

/* ---- The maximizer ------------------------------------------------------------------------ */

static dpt_status check_cfg(dpt_sharpness_cfg *cfg, int64_t n) {
    if (!(cfg->epsilon > 0 && isfinite(cfg->epsilon)))
        return dpt_errorf(DPT_EINVAL, "sharpness: epsilon must be positive and finite, got %g",
                          cfg->epsilon);
    if (cfg->iterations < 0)
        return dpt_errorf(DPT_EINVAL, "sharpness: %d iterations", cfg->iterations);
    if (!(cfg->step >= 0 && cfg->step <= 1))
        return dpt_errorf(DPT_EINVAL, "sharpness: step %g is not in (0, 1]", cfg->step);
    if (cfg->subspace < 0 || cfg->subspace > n)
        return dpt_errorf(DPT_ERANGE, "sharpness: --subspace %lld is not in [1, %lld] (the "
                                      "number of parameters)",
                          (long long)cfg->subspace, (long long)n);
    if (cfg->subspace > DPT_SHARPNESS_MAX_SUBSPACE_FLOATS / n)
        return dpt_errorf(DPT_ERANGE, "sharpness: --subspace %lld with %lld parameters needs a "
                                      "%lld x %lld matrix, more than the %lld floats allowed",
                          (long long)cfg->subspace, (long long)n, (long long)n,
                          (long long)cfg->subspace, (long long)DPT_SHARPNESS_MAX_SUBSPACE_FLOATS);
    if (cfg->iterations == 0)
        cfg->iterations = DPT_SHARPNESS_ITERATIONS_DEFAULT;
    if (cfg->step == 0)
        cfg->step = DPT_SHARPNESS_STEP_DEFAULT;
    return DPT_OK;
}

dpt_status dpt_sharpness_maximize(dpt_objective_fn fn, void *ctx, const float *x, int64_t n,
                                  const dpt_sharpness_cfg *cfg_in, dpt_sharpness_result *res,
                                  float *y_best) {
    DPT_ASSERT(fn && x && n >= 1 && cfg_in && res);
    memset(res, 0, sizeof *res);
    res->n_params = n;
    dpt_sharpness_cfg cfg = *cfg_in;
    dpt_status st = check_cfg(&cfg, n);
    if (st != DPT_OK)
        return st;
    const int64_t P = cfg.subspace, m = P > 0 ? P : n; /* m: length of the search variable v */
    const int K = cfg.iterations;
    const size_t fn_bytes = dpt_size_mul((size_t)n, sizeof(float));
    float *v = calloc((size_t)m, sizeof *v), *c = malloc((size_t)m * sizeof *c);
    float *gv = P > 0 ? malloc((size_t)P * sizeof *gv) : NULL;
    float *y = P > 0 ? calloc((size_t)n, sizeof *y) : v; /* y = v in the full space */
    float *pt = malloc(fn_bytes), *g = malloc(fn_bytes);
    float *A = P > 0 ? malloc(dpt_size_mul((size_t)(n * P), sizeof *A)) : NULL;
    if (!v || !c || !y || !pt || !g || (P > 0 && (!gv || !A))) {
        st = dpt_errorf(DPT_ENOMEM, "sharpness: cannot allocate the work arrays for %lld "
                                    "parameters",
                        (long long)n);
        goto out;
    }
    if (P > 0) {
        subspace_matrix(A, n, P, cfg.seed);
        if ((st = subspace_box(c, A, x, n, P, cfg.epsilon)) != DPT_OK)
            goto out;
    } else {
        for (int64_t i = 0; i < n; i++)
            c[i] = (float)(cfg.epsilon * (fabs((double)x[i]) + 1.0));
    }
    const float step = (float)cfg.step;
    double fbest = 0;
    for (int k = 0; k <= K; k++) {
        for (int64_t i = 0; i < n; i++)
            pt[i] = x[i] + y[i];
        double f = NAN;
        /* The last point needs no gradient: nothing steps from it. */
        st = fn(ctx, pt, n, &f, k < K ? g : NULL);
        res->evaluations++;
        if (st != DPT_OK)
            goto out;
        if (!isfinite(f)) {
            st = dpt_errorf(DPT_ENONFINITE, "sharpness: the objective is %g after %d of %d "
                                            "steps (epsilon %g too large?)",
                            f, k, K, cfg.epsilon);
            goto out;
        }
        if (k == 0)
            res->f0 = f;
        if (k == 0 || f > fbest) {
            fbest = f, res->best_iteration = k;
            if (y_best)
                memcpy(y_best, y, fn_bytes);
        }
        if (k == K)
            break;
        const float *gs = g;
        if (P > 0) {
            subspace_grad(gv, A, g, n, P);
            gs = gv;
        }
        /* sign(0) = +1: at y = 0 a coordinate with zero slope (x_i = 0 of a convex f) would
         * otherwise never move, though either face may be higher than the middle. */
        for (int64_t j = 0; j < m; j++) {
            const float s = step * c[j], t = v[j] + (gs[j] < 0 ? -s : s);
            v[j] = t > c[j] ? c[j] : t < -c[j] ? -c[j] : t;
        }
        if (P > 0)
            subspace_apply(y, A, v, n, P);
        res->iterations = k + 1;
    }
    res->fmax = fbest;
    res->sharpness = dpt_sharpness_value(res->f0, res->fmax);
out:
    free(v), free(c), free(gv), free(pt), free(g), free(A);
    if (P > 0)
        free(y);
    return st;
}

/* ---- The objective of a checkpoint: mean cross-entropy over a training subset ------------- */

typedef struct {
    dpt_model *m;
    const dpt_group *g;
    const dpt_dataset *ds;
    const int64_t *idx; /* the subset: idx[0..n) */
    int64_t n, chunks;
    dpt_eval_scratch s; /* one chunk of inputs and labels */
    double *chunk_loss; /* (chunks): each chunk's loss sum / n */
} subset_loss;

/* Chunk c on group rank c % size, as dpt__evaluate: the per-chunk losses meet in a SUM with one
 * non-zero term each (exact), then add up in chunk order, so f has the same bits for any group
 * size; the gradient is the fp32 allreduce of the ranks' partial sums (equal to rounding). */
static dpt_status subset_loss_eval(void *vctx, const float *x, int64_t n, double *f,
                                   float *grad) {
    subset_loss *L = vctx;
    const dpt_group *g = L->g;
    int64_t n_params = 0;
    float *params = dpt_model_params(L->m, &n_params);
    float *grads = dpt_model_grads(L->m, &n_params);
    DPT_ASSERT(n_params == n);
    memcpy(params, x, (size_t)n * sizeof *params);
    if (grad)
        dpt_model_zero_grad(L->m);
    memset(L->chunk_loss, 0, (size_t)L->chunks * sizeof *L->chunk_loss);
    const int64_t B = L->s.eval_batch, K = L->ds->K;
    dpt_status st = DPT_OK;
    for (int64_t c = g->rank; c < L->chunks && st == DPT_OK; c += g->size) {
        const int64_t first = c * B, rows = L->n - first < B ? L->n - first : B;
        dpt_dataset_gather(L->ds, L->s.x, L->idx, first, rows);
        for (int64_t j = 0; j < rows; j++)
            L->s.labels[j] = L->ds->y[L->idx[first + j]];
        if ((st = dpt_model_forward(L->m, L->s.x, rows, 0, NULL)) != DPT_OK)
            break;
        float *dlogits = grad ? dpt_model_dlogits_buffer(L->m) : NULL;
        /* denom = n: the chunk's share of the mean over the whole subset, gradient included. */
        L->chunk_loss[c] = dpt_xent_forward_backward(dlogits, NULL, dpt_model_logits(L->m),
                                                     L->s.labels, rows, K, 0, (double)L->n);
        if (grad)
            st = dpt_model_backward(L->m, dlogits);
    }
    st = dpt_group_agree(g, st);
    if (st == DPT_OK && g->size > 1)
        st = dpt_group_sum_f64(g, DPT_SCOPE_GROUP, L->chunk_loss, L->chunks);
    if (st == DPT_OK && grad && g->size > 1)
        st = dpt_group_sum_f32(g, DPT_SCOPE_GROUP, grads, n);
    if (st != DPT_OK)
        return st;
    if (grad)
        memcpy(grad, grads, (size_t)n * sizeof *grad);
    double sum = 0;
    for (int64_t c = 0; c < L->chunks; c++)
        sum += L->chunk_loss[c];
    *f = sum;
    return DPT_OK;
}

dpt_status dpt_sharpness_checkpoint(const char *ckpt, const char *data, const char *data_search,
                                    int64_t samples, const dpt_sharpness_cfg *cfg,
                                    struct dpt_group *g, dpt_sharpness_result *res) {
    memset(res, 0, sizeof *res);
    dpt_checkpoint_info info;
    dpt_data d;
    subset_loss L = {.g = g};
    int64_t *perm = NULL;
    float *x = NULL;
    dpt_status st = dpt__load_model_and_data(ckpt, data, data_search, DPT_EVAL_BATCH_DEFAULT,
                                             &L.m, &info, &d);
    int64_t n_params = 0;
    if (st == DPT_OK) {
        const int64_t N = d.train.N;
        L.ds = &d.train;
        L.n = samples > 0 ? samples : DPT_SHARPNESS_SAMPLES_DEFAULT;
        L.n = L.n < N ? L.n : N;
        L.chunks = (L.n + DPT_EVAL_BATCH_DEFAULT - 1) / DPT_EVAL_BATCH_DEFAULT;
        const float *params = dpt_model_params(L.m, &n_params);
        perm = malloc((size_t)N * sizeof *perm);
        L.chunk_loss = malloc((size_t)L.chunks * sizeof *L.chunk_loss);
        x = malloc((size_t)n_params * sizeof *x);
        if (!perm || !L.chunk_loss || !x) {
            st = dpt_errorf(DPT_ENOMEM, "sharpness: cannot allocate the subset of %lld samples",
                            (long long)L.n);
        } else {
            memcpy(x, params, (size_t)n_params * sizeof *x);
            dpt_rng_permutation(perm, N, dpt_rng_key_make(cfg->seed, DPT_RNG_SPLIT, 0),
                                DPT_SHARPNESS_SUBSET_COUNTER);
            L.idx = perm;
            st = dpt__eval_scratch_init(&L.s, DPT_EVAL_BATCH_DEFAULT,
                                        dpt_dataset_sample_numel(L.ds));
        }
    }
    st = dpt_group_agree(g, st);
    if (st == DPT_OK)
        st = dpt_sharpness_maximize(subset_loss_eval, &L, x, n_params, cfg, res, NULL);
    res->samples = L.n;
    dpt__eval_scratch_free(&L.s);
    free(L.chunk_loss), free(perm), free(x);
    dpt_model_destroy(L.m);
    dpt_data_free(&d); /* zeroed by the loader even when it failed */
    return st;
}
