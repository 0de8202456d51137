/* Batch norm layers (nn), 1-D to 3-D, as torch.nn.BatchNorm{1,2,3}d: weight (gamma) and bias
 * (beta) parameters, running mean and variance buffers. Training statistics come from the whole
 * local batch, passed through the model's reducer (synced batch norm: the comm module sums them
 * over ranks; nn never sees MPI), or from consecutive ghost batches of a fixed size, each of which
 * also updates the running statistics in turn, as a chunked torch BatchNorm would.
 * https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html */
#include <math.h>

#include "nn/layer.h"

/* Views of l->state. Doubles: per-channel sums | sums of squares | element count, then the two
 * backward sums, the batch variance, each chunk's element count, and the runs' two sums (one run:
 * one image's one channel) of the largest batch. Floats: each chunk's mean and invstd (chunk 0's
 * invstd holds the eval-mode one after an eval forward). */
typedef struct {
    double *sums;  /* 2C + 1: sum, sumsq, m */
    double *dsums; /* 2C: dbeta_sum, dgamma_sum */
    double *var;   /* C */
    double *m;     /* chunks */
    double *runs;  /* 2 * rows * C: first sums | second sums, (rows, C) each */
    float *mean;   /* chunks * C */
    float *invstd; /* chunks * C */
} bn_state;

static size_t state_bytes(int64_t C, int64_t chunks, int64_t rows) {
    return (size_t)(6 * C + 1 + chunks + 2 * rows * C) * sizeof(double) +
           (size_t)(2 * chunks * C) * sizeof(float);
}

static bn_state state_of(const dpt__layer *l) {
    const int64_t C = l->u.bn.C, chunks = l->u.bn.chunks;
    bn_state s;
    s.sums = l->state;
    s.dsums = s.sums + 2 * C + 1;
    s.var = s.dsums + 2 * C;
    s.m = s.var + C;
    s.runs = s.m + chunks;
    s.mean = (float *)(s.runs + 2 * l->u.bn.rows * C);
    s.invstd = s.mean + chunks * C;
    return s;
}

static dpt_status bn_configure(dpt__layer *l, dpt__args *a) {
    dpt_status st = dpt__arg_double(l, a, -1, "eps", 1e-5, 0.0, 1.0, &l->u.bn.eps);
    if (st != DPT_OK)
        return st;
    return dpt__arg_double(l, a, -1, "momentum", 0.1, 0.0, 1.0, &l->u.bn.momentum);
}

static dpt_status bn_infer(dpt__layer *l, const dpt__build *b) {
    const int nd = l->in.ndim;
    const int dims = nd <= 2 ? 1 : nd - 1; /* (C) and (C, L) are both BatchNorm1d inputs */
    if (nd < 1 || nd > 4 || (l->dims && l->dims != dims)) {
        char s[96];
        dpt_shape_format(&l->in, s, sizeof s);
        return dpt__layer_error(l, DPT_EINVAL, "needs a %s input, got %s",
                                l->dims == 1   ? "(C) or (C, L)"
                                : l->dims == 2 ? "(C, H, W)"
                                : l->dims == 3 ? "(C, D, H, W)"
                                               : "(C), (C, L), (C, H, W) or (C, D, H, W)",
                                s);
    }
    l->dims = dims;
    const int64_t C = l->in.d[0];
    l->u.bn.C = C;
    l->u.bn.S = dpt_shape_count(&l->in) / C;
    l->u.bn.chunks = b->bn_ghost > 0 ? (b->max_batch + b->bn_ghost - 1) / b->bn_ghost : 1;
    l->u.bn.rows = b->max_batch; /* an eval-mode backward sums the whole batch */
    l->out = l->in;
    snprintf(l->kind, sizeof l->kind, "batchnorm%dd", dims);
    dpt__layer_add_param(l, "weight", DPT_PARAM_NORM, 1, &C);
    dpt__layer_add_param(l, "bias", DPT_PARAM_NORM, 1, &C);
    dpt__layer_add_buffer(l, "running_mean", 1, &C);
    dpt__layer_add_buffer(l, "running_var", 1, &C);
    l->state_bytes = state_bytes(C, l->u.bn.chunks, l->u.bn.rows);
    l->backward_in_place = 1; /* each chunk's sums are taken before its dx is written */
    l->flops = 4.0 * (double)dpt_shape_count(&l->in);
    return DPT_OK;
}

static void bn_init(dpt__layer *l, dpt_rng_key key) {
    for (int64_t c = 0; c < l->u.bn.C; c++) {
        l->param[0].v[c] = 1.0f;
        l->param[1].v[c] = 0.0f;
        l->buffer[0].v[c] = 0.0f;
        l->buffer[1].v[c] = 1.0f;
    }
}

/* Rows per statistics chunk: the ghost size, or the whole batch. */
static int64_t chunk_rows(const dpt__run *r) {
    return r->bn_ghost > 0 ? r->bn_ghost : r->n;
}

/* Threads split every pass by images: the per-channel sums as each run's sums, added in image
 * order on the caller (dpt_bn_add_runs: N adds per channel), so that a thread reads only the
 * images it wrote. The moments and the reducer run on the caller. */
typedef struct {
    dpt__layer *l;
    double *r1, *r2; /* the runs' sums, (n, C) each */
    float *out;      /* y or dx */
    const float *x, *dy, *y;
    const float *mean, *invstd;
    const double *dsums;
    int64_t n, m; /* rows of this chunk; elements per channel of its statistics (backward) */
    int eval;     /* backward: the eval-mode affine map */
} bn_job;

static void stats_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const bn_job *j = ctx;
    dpt_bn_stats_runs(j->r1, j->r2, j->x, n0, n0 + n, j->l->u.bn.C, j->l->u.bn.S);
}

static void grad_sums_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const bn_job *j = ctx;
    dpt_bn_backward_sums_runs(j->r1, j->r2, j->dy, j->l->u.bn.fused_relu ? j->y : NULL, j->x,
                              j->mean, n0, n0 + n, j->l->u.bn.C, j->l->u.bn.S);
}

static void apply_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const bn_job *j = ctx;
    const int64_t C = j->l->u.bn.C, S = j->l->u.bn.S, off = n0 * C * S;
    (j->l->u.bn.fused_relu ? dpt_bn_apply_relu : dpt_bn_apply)(
        j->out + off, j->x + off, j->mean, j->invstd, j->l->param[0].v, j->l->param[1].v, n, C,
        S);
}

static void grad_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const bn_job *j = ctx;
    const int64_t C = j->l->u.bn.C, S = j->l->u.bn.S, off = n0 * C * S;
    const float *gamma = j->l->param[0].v;
    const int relu = j->l->u.bn.fused_relu;
    if (j->eval) { /* y = gamma*(x - running_mean)*invstd + beta: a per-channel affine map */
        for (int64_t i = n0 * C; i < (n0 + n) * C; i++) {
            const float scale = gamma[i % C] * j->invstd[i % C];
            for (int64_t k = 0; k < S; k++) {
                const int64_t e = i * S + k;
                j->out[e] = relu && !(j->y[e] > 0.0f) ? 0.0f : j->dy[e] * scale;
            }
        }
    } else if (relu) {
        dpt_bn_backward_data_relu(j->out + off, j->dy + off, j->y + off, j->x + off, j->mean,
                                  j->invstd, gamma, j->dsums, j->dsums + C, j->m, n, C, S);
    } else {
        dpt_bn_backward_data(j->out + off, j->dy + off, j->x + off, j->mean, j->invstd, gamma,
                             j->dsums, j->dsums + C, j->m, n, C, S);
    }
}

/* The rows of one chunk: the whole batch is cut as every per-image pass cuts it; a ghost batch,
 * a part of it, is cut on its own. */
static void rows_parallel(const dpt__run *r, int64_t nk, dpt__range_fn fn, bn_job *j) {
    if (nk == r->n)
        dpt__parallel_images(r, 1, 1, fn, j);
    else
        dpt__parallel_split(r, nk, 1, fn, j);
}

static dpt_status bn_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    const int64_t C = l->u.bn.C, S = l->u.bn.S;
    float *rmean = l->buffer[0].v, *rvar = l->buffer[1].v;
    bn_state s = state_of(l);
    if (!r->training) {
        dpt_bn_eval_invstd(s.invstd, rvar, C, l->u.bn.eps);
        bn_job j = {.l = l, .out = y, .x = x, .mean = rmean, .invstd = s.invstd};
        dpt__parallel_images(r, 1, 1, apply_rows, &j);
        return DPT_OK;
    }
    const int64_t G = chunk_rows(r);
    for (int64_t k = 0, n0 = 0; n0 < r->n; k++, n0 += G) {
        const int64_t nk = r->n - n0 < G ? r->n - n0 : G;
        const float *xk = x + n0 * C * S;
        float *mean = s.mean + k * C, *invstd = s.invstd + k * C;
        bn_job j = {.l = l, .r1 = s.runs, .r2 = s.runs + nk * C, .out = y + n0 * C * S, .x = xk,
                    .mean = mean, .invstd = invstd, .n = nk};
        rows_parallel(r, nk, stats_rows, &j);
        dpt_bn_add_runs(s.sums, s.sums + C, j.r1, j.r2, NULL, nk, C);
        s.sums[2 * C] = (double)(nk * S);
        if (r->bn_ghost == 0 && r->reduce) {
            dpt_status st = r->reduce(r->reduce_ctx, s.sums, 2 * C + 1);
            if (st != DPT_OK)
                return st;
        }
        const int64_t m = (int64_t)llround(s.sums[2 * C]);
        if (m < 2)
            return dpt__layer_error(l, DPT_EINVAL,
                                    "training needs more than one value per "
                                    "channel, got %lld",
                                    (long long)m);
        s.m[k] = (double)m;
        dpt_bn_moments(mean, invstd, s.var, s.sums, s.sums + C, m, C, l->u.bn.eps);
        dpt_bn_update_running(rmean, rvar, mean, s.var, m, C, l->u.bn.momentum);
        rows_parallel(r, nk, apply_rows, &j);
    }
    return DPT_OK;
}

/* dgamma += sum dy*xhat, dbeta += sum dy: this rank's share, before any reduction. */
static void accumulate_param_grads(dpt__layer *l, const double *dsums) {
    const int64_t C = l->u.bn.C;
    for (int64_t c = 0; c < C; c++) {
        l->param[0].g[c] += (float)dsums[C + c];
        l->param[1].g[c] += (float)dsums[c];
    }
}

static dpt_status bn_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                              const float *x, const float *y) {
    const int64_t C = l->u.bn.C, S = l->u.bn.S;
    bn_state s = state_of(l);
    if (!r->training) {
        bn_job j = {.l = l, .r1 = s.runs, .r2 = s.runs + r->n * C, .out = dx, .x = x, .dy = dy, .y = y,
                    .mean = l->buffer[0].v, .invstd = s.invstd, .n = r->n, .eval = 1};
        dpt__parallel_images(r, 1, 1, grad_sums_rows, &j);
        dpt_bn_add_runs(s.dsums, s.dsums + C, j.r1, j.r2, j.invstd, r->n, C);
        accumulate_param_grads(l, s.dsums);
        if (dx)
            dpt__parallel_images(r, 1, 1, grad_rows, &j);
        return DPT_OK;
    }
    const int64_t G = chunk_rows(r);
    for (int64_t k = 0, n0 = 0; n0 < r->n; k++, n0 += G) {
        const int64_t nk = r->n - n0 < G ? r->n - n0 : G, off = n0 * C * S;
        bn_job j = {.l = l, .r1 = s.runs, .r2 = s.runs + nk * C, .out = dx ? dx + off : NULL,
                    .x = x + off, .dy = dy + off, .y = y + off, .mean = s.mean + k * C,
                    .invstd = s.invstd + k * C, .dsums = s.dsums, .n = nk, .m = (int64_t)s.m[k]};
        rows_parallel(r, nk, grad_sums_rows, &j);
        dpt_bn_add_runs(s.dsums, s.dsums + C, j.r1, j.r2, j.invstd, nk, C);
        accumulate_param_grads(l, s.dsums);
        if (!dx)
            continue;
        if (r->bn_ghost == 0 && r->reduce) {
            dpt_status st = r->reduce(r->reduce_ctx, s.dsums, 2 * C);
            if (st != DPT_OK)
                return st;
        }
        rows_parallel(r, nk, grad_rows, &j);
    }
    return DPT_OK;
}

static int bn_describe(const dpt__layer *l, char *buf, size_t n) {
    int used = 0, opts = 0;
    dpt__fmt(buf, n, &used, "%s", l->kind);
    if (l->u.bn.eps != 1e-5) {
        dpt__fmt(buf, n, &used, "(eps=");
        dpt__fmt_double(buf, n, &used, l->u.bn.eps);
        opts++;
    }
    if (l->u.bn.momentum != 0.1) {
        dpt__fmt(buf, n, &used, "%smomentum=", opts ? "," : "(");
        dpt__fmt_double(buf, n, &used, l->u.bn.momentum);
        opts++;
    }
    if (opts)
        dpt__fmt(buf, n, &used, ")");
    return used;
}

const dpt__layer_ops dpt__batchnorm_ops = {
    .configure = bn_configure,
    .infer = bn_infer,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .describe = bn_describe,
};
