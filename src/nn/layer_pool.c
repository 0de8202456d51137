/* Max and average pooling layers (nn), 1-D to 3-D, through the pooling kernels (kernels/pool.c):
 * torch's max_pool/avg_pool with ceil_mode=False and dilation 1. Without a 1d/2d/3d suffix the
 * dimensionality comes from the input. Max pooling keeps its argmax for backward.
 * https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html */
#include <string.h>

#include "nn/layer.h"

static dpt_status pool_configure(dpt__layer *l, dpt__args *a) {
    int64_t cip = 1;
    dpt_status st;
    l->u.pool.is_max = strncmp(l->keyword, "maxpool", 7) == 0;
    if ((st = dpt__arg_dims(l, a, 0, "k", l->dims, 0, 1, 1, l->u.pool.k, &l->u.pool.k_n)) != DPT_OK)
        return st;
    if (!l->u.pool.k_n)
        return dpt__layer_error(l, DPT_EINVAL, "missing the window size");
    if ((st = dpt__arg_dims(l, a, -1, "stride", l->dims, 0, 1, 1, l->u.pool.stride,
                            &l->u.pool.stride_n)) != DPT_OK ||
        (st = dpt__arg_dims(l, a, -1, "pad", l->dims, 0, 0, 0, l->u.pool.pad, &l->u.pool.pad_n)))
        return st;
    if (!l->u.pool.is_max &&
        (st = dpt__arg_int(l, a, -1, "count_include_pad", 1, 0, 1, &cip, NULL)) != DPT_OK)
        return st;
    l->u.pool.count_include_pad = (int)cip;
    return DPT_OK;
}

/* Spreads a single value over the layer's dimensions; a list must have one value per dimension. */
static dpt_status resolve_dims(dpt__layer *l, const char *what, int64_t v[3], int given,
                               int64_t fill) {
    const int dims = l->dims;
    if (given > 1 && given != dims)
        return dpt__layer_error(l, DPT_EINVAL, "%s gives %d values for %d dimension%s", what, given,
                                dims, dims == 1 ? "" : "s");
    const int64_t one = v[2];
    for (int i = 0; i < 3; i++)
        if (i < 3 - dims)
            v[i] = fill;
        else if (given == 1)
            v[i] = one;
    return DPT_OK;
}

static dpt_status pool_infer(dpt__layer *l, const dpt__build *b) {
    if (l->dims == 0 && (l->in.ndim < 2 || l->in.ndim > 4)) {
        char s[96];
        dpt_shape_format(&l->in, s, sizeof s);
        return dpt__layer_error(l, DPT_EINVAL,
                                "needs a (C, L), (C, H, W) or (C, D, H, W) input, "
                                "got %s",
                                s);
    }
    if (l->dims == 0)
        l->dims = l->in.ndim - 1;
    const int dims = l->dims;
    dpt_status st = dpt__layer_need_spatial(l, dims);
    if (st != DPT_OK || (st = resolve_dims(l, "k", l->u.pool.k, l->u.pool.k_n, 1)) != DPT_OK ||
        (st = resolve_dims(l, "stride", l->u.pool.stride, l->u.pool.stride_n, 1)) != DPT_OK ||
        (st = resolve_dims(l, "pad", l->u.pool.pad, l->u.pool.pad_n, 0)) != DPT_OK)
        return st;
    if (!l->u.pool.stride_n) /* torch: stride defaults to the window */
        memcpy(l->u.pool.stride, l->u.pool.k, sizeof l->u.pool.stride);

    dpt_pool_geom *g = &l->u.pool.g;
    memset(g, 0, sizeof *g);
    g->dims = dims;
    g->N = b->max_batch;
    g->C = l->in.d[0];
    for (int i = 0; i < 3; i++) {
        g->in[i] = i < 3 - dims ? 1 : l->in.d[1 + i - (3 - dims)];
        g->k[i] = l->u.pool.k[i];
        g->stride[i] = l->u.pool.stride[i];
        g->pad[i] = l->u.pool.pad[i];
    }
    g->count_include_pad = l->u.pool.count_include_pad;
    if ((st = dpt_pool_geom_check(g)) != DPT_OK)
        return dpt__layer_rethrow(l, st);

    int64_t out[DPT_MAX_DIMS] = {g->C};
    for (int i = 0; i < dims; i++)
        out[1 + i] = g->out[3 - dims + i];
    l->out = dpt_shape_make(dims + 1, out);
    snprintf(l->kind, sizeof l->kind, "%spool%dd", l->u.pool.is_max ? "max" : "avg", dims);
    const int64_t out_count = dpt_shape_count(&l->out);
    l->flops = (double)out_count * (double)(g->k[0] * g->k[1] * g->k[2]);
    if (l->u.pool.is_max)
        l->state_bytes =
            dpt_size_mul(dpt_size_mul((size_t)b->max_batch, (size_t)out_count), sizeof(int32_t));
    return DPT_OK;
}

/* Each thread pools its share of the images: pooling never mixes images. */
typedef struct {
    dpt__layer *l;
    float *out;
    const float *in;
} pool_job;

/* Images [n0, n0 + n): their geometry and where their x, y (and argmax) start. */
typedef struct {
    dpt_pool_geom g;
    int64_t x_at, y_at;
} pool_share;

static pool_share share_of(const pool_job *j, int64_t n0, int64_t n) {
    pool_share s = {.g = j->l->u.pool.g,
                    .x_at = n0 * dpt_shape_count(&j->l->in),
                    .y_at = n0 * dpt_shape_count(&j->l->out)};
    s.g.N = n;
    return s;
}

static void forward_share(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const pool_job *j = ctx;
    const pool_share s = share_of(j, n0, n);
    if (j->l->u.pool.is_max)
        dpt_maxpool_forward(j->out + s.y_at, (int32_t *)j->l->state + s.y_at, j->in + s.x_at,
                            &s.g);
    else
        dpt_avgpool_forward(j->out + s.y_at, j->in + s.x_at, &s.g);
}

/* out: dx, in: dy */
static void backward_share(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const pool_job *j = ctx;
    const pool_share s = share_of(j, n0, n);
    if (j->l->u.pool.is_max)
        dpt_maxpool_backward(j->out + s.x_at, j->in + s.y_at,
                             (const int32_t *)j->l->state + s.y_at, &s.g);
    else
        dpt_avgpool_backward(j->out + s.x_at, j->in + s.y_at, &s.g);
}

static dpt_status pool_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    pool_job j = {.l = l, .out = y, .in = x};
    dpt__parallel_images(r, 1, 1, forward_share, &j);
    return DPT_OK;
}

static dpt_status pool_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                const float *x, const float *y) {
    (void)x, (void)y;
    if (!dx)
        return DPT_OK;
    pool_job j = {.l = l, .out = dx, .in = dy};
    dpt__parallel_images(r, 1, 1, backward_share, &j);
    return DPT_OK;
}

static int pool_describe(const dpt__layer *l, char *buf, size_t n) {
    const int dims = l->dims;
    int used = 0;
    dpt__fmt(buf, n, &used, "%s(", l->kind);
    dpt__fmt_dims(buf, n, &used, l->u.pool.k, dims);
    if (memcmp(l->u.pool.stride, l->u.pool.k, sizeof l->u.pool.k) != 0) {
        dpt__fmt(buf, n, &used, ",stride=");
        dpt__fmt_dims(buf, n, &used, l->u.pool.stride, dims);
    }
    if (l->u.pool.pad[0] || l->u.pool.pad[1] || l->u.pool.pad[2]) {
        dpt__fmt(buf, n, &used, ",pad=");
        dpt__fmt_dims(buf, n, &used, l->u.pool.pad, dims);
    }
    if (!l->u.pool.is_max && !l->u.pool.count_include_pad)
        dpt__fmt(buf, n, &used, ",count_include_pad=0");
    dpt__fmt(buf, n, &used, ")");
    return used;
}

const dpt__layer_ops dpt__pool_ops = {
    .configure = pool_configure,
    .infer = pool_infer,
    .forward = pool_forward,
    .backward = pool_backward,
    .describe = pool_describe,
};
