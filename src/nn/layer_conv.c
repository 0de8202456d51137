/* Conv1d/2d/3d layers (nn): weight (O, C/groups, k...) and optional bias views into the flat
 * buffers; forward and backward through the model's conv implementation (kernels/conv_*.c).
 * Knows the geometry, not how the kernels compute it.
 * https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html */
#include <string.h>

#include "nn/layer.h"

static dpt_status conv_configure(dpt__layer *l, dpt__args *a) {
    int found = 0;
    dpt_status st;
    if ((st = dpt__arg_int(l, a, 0, "out", 0, 1, INT64_MAX, &l->u.conv.out_ch, &found)) != DPT_OK)
        return st;
    if (!found)
        return dpt__layer_error(l, DPT_EINVAL, "missing the number of output channels");
    if ((st = dpt__arg_dims(l, a, 1, "k", l->dims, 0, 1, 1, l->u.conv.k, &found)) != DPT_OK)
        return st;
    if (!found)
        return dpt__layer_error(l, DPT_EINVAL, "missing the kernel size");
    int64_t bias = 1;
    if ((st = dpt__arg_dims(l, a, -1, "stride", l->dims, 1, 1, 1, l->u.conv.stride, NULL)) ||
        (st = dpt__arg_dims(l, a, -1, "pad", l->dims, 0, 0, 0, l->u.conv.pad, NULL)) ||
        (st = dpt__arg_dims(l, a, -1, "dilation", l->dims, 1, 1, 1, l->u.conv.dil, NULL)) ||
        (st = dpt__arg_int(l, a, -1, "groups", 1, 1, INT64_MAX, &l->u.conv.groups, NULL)) ||
        (st = dpt__arg_int(l, a, -1, "bias", 1, 0, 1, &bias, NULL)))
        return st;
    l->u.conv.bias = (int)bias;
    return DPT_OK;
}

/* Floats of dw and db together: they are adjacent in the flat gradient buffer. */
static int64_t param_count(const dpt_conv_geom *g) {
    return dpt_conv_w_count(g) + (g->has_bias ? g->O : 0);
}

static size_t round16(size_t n) {
    return (n + 15) / 16 * 16;
}

/* Weight-gradient blocks whose partials are formed in one job before they are added: fewer
 * waits for the slowest thread than rounds of T blocks. One thread needs a single slot (it never
 * waits), T threads this many slots in all. */
enum { PARTIALS_PER_ROUND = 8 };

static dpt_status conv_infer(dpt__layer *l, const dpt__build *b) {
    const int dims = l->dims;
    dpt_status st = dpt__layer_need_spatial(l, dims);
    if (st != DPT_OK)
        return st;
    dpt_conv_geom *g = &l->u.conv.g;
    memset(g, 0, sizeof *g);
    g->dims = dims;
    g->N = b->max_batch;
    g->C = l->in.d[0];
    g->O = l->u.conv.out_ch;
    for (int i = 0; i < 3; i++) {
        g->in[i] = i < 3 - dims ? 1 : l->in.d[1 + i - (3 - dims)];
        g->k[i] = l->u.conv.k[i];
        g->stride[i] = l->u.conv.stride[i];
        g->pad[i] = l->u.conv.pad[i];
        g->dil[i] = l->u.conv.dil[i];
    }
    g->groups = l->u.conv.groups;
    g->has_bias = l->u.conv.bias;
    if ((st = dpt_conv_geom_check(g)) != DPT_OK)
        return dpt__layer_rethrow(l, st);

    int64_t out[DPT_MAX_DIMS] = {g->O}, w[DPT_MAX_DIMS] = {g->O, g->C / g->groups};
    for (int i = 0; i < dims; i++) {
        out[1 + i] = g->out[3 - dims + i];
        w[2 + i] = g->k[3 - dims + i];
    }
    l->out = dpt_shape_make(dims + 1, out);
    snprintf(l->kind, sizeof l->kind, "conv%dd", dims);
    dpt__layer_add_param(l, "weight", DPT_PARAM_WEIGHT, dims + 2, w);
    if (g->has_bias)
        dpt__layer_add_param(l, "bias", DPT_PARAM_BIAS, 1, &g->O);
    dpt_conv_geom one = *g, unit = *g;
    one.N = 1;
    unit.N = g->N < DPT__UNIT_IMAGES ? g->N : DPT__UNIT_IMAGES;
    l->flops = dpt_conv_flops(&one);
    /* A thread's kernel sees its share of the batch (forward, backward-data: up to the whole batch,
     * since shares follow the threads' speeds) or one block of a weight gradient. One sample is
     * asked about too, so that the maximum covers every count whichever way an implementation's
     * scratch scales with N. After the kernel's scratch: the thread's slots for blocks' partial
     * weight and bias gradients. */
    size_t wk = b->conv->workspace(g);
    const size_t wu = b->conv->workspace(&unit), w1 = b->conv->workspace(&one);
    wk = wk > wu ? wk : wu;
    wk = wk > w1 ? wk : w1;
    l->u.conv.partials = b->threads > 1 ? (PARTIALS_PER_ROUND + b->threads - 1) / b->threads : 1;
    l->work_floats = round16(wk) + (size_t)l->u.conv.partials * round16((size_t)param_count(g));
    l->prepared_floats = 0;
    if (b->conv->prepared_floats) {
        const size_t f = b->conv->prepared_floats(g, DPT_CONV_PASS_FORWARD);
        const size_t d = b->conv->prepared_floats(g, DPT_CONV_PASS_BACKWARD_DATA);
        l->prepared_floats = f > d ? f : d;
    }
    return DPT_OK;
}

/* Forward and backward-data: each thread runs the kernel on its share of the images with its own
 * scratch. The weight gradient: blocks of DPT__UNIT_IMAGES images. */
typedef struct {
    dpt__layer *l;
    const dpt__run *r;
    float *out;                  /* y or dx */
    const float *in;             /* x or dy */
    int64_t in_count, out_count; /* per image */
    size_t kernel_floats;        /* the kernel's part of a thread's scratch */
    int64_t first_unit;          /* weight gradient: the first unit of this round */
    const float *prepared;       /* forward, backward-data: the weights made once, or NULL */
} conv_job;

static dpt_conv_geom geom_of(const conv_job *j, int64_t n) {
    dpt_conv_geom g = j->l->u.conv.g;
    g.N = n;
    return g;
}

static void forward_share(void *ctx, int64_t n0, int64_t n, int t) {
    const conv_job *j = ctx;
    const dpt_conv_geom g = geom_of(j, n);
    const dpt__layer *l = j->l;
    float *y = j->out + n0 * j->out_count;
    const float *x = j->in + n0 * j->in_count, *b = g.has_bias ? l->param[1].v : NULL;
    if (j->prepared)
        j->r->conv->forward_prepared(y, x, j->prepared, b, &g, dpt__work(j->r, t));
    else
        j->r->conv->forward(y, x, l->param[0].v, b, &g, dpt__work(j->r, t));
}

static void backward_data_share(void *ctx, int64_t n0, int64_t n, int t) {
    const conv_job *j = ctx;
    const dpt_conv_geom g = geom_of(j, n);
    float *dx = j->out + n0 * j->in_count;
    const float *dy = j->in + n0 * j->out_count;
    if (j->prepared)
        j->r->conv->backward_data_prepared(dx, dy, j->prepared, &g, dpt__work(j->r, t));
    else
        j->r->conv->backward_data(dx, dy, j->l->param[0].v, &g, dpt__work(j->r, t));
}

/* Parts of the prepared weights: enough for free threads to even out, few enough that each is
 * a few output channels' worth. */
enum { PREPARE_PARTS = 16 };

typedef struct {
    const dpt__layer *l;
    const dpt__run *r;
    dpt_conv_pass pass;
} prepare_job;

static void prepare_parts(void *ctx, int64_t k0, int64_t n, int t) {
    (void)t;
    const prepare_job *pj = ctx;
    for (int64_t k = k0; k < k0 + n; k++)
        pj->r->conv->prepare(pj->r->prepared, pj->l->param[0].v, &pj->l->u.conv.g, pj->pass, k,
                             PREPARE_PARTS);
}

/* The weights of a forward or backward-data pass as its kernel calls read them, made once in
 * the run's shared area (a thread's share of the images may come in several calls): NULL when
 * the implementation reads w as it is, or when it needs more room than the model was built
 * with (the Winograd switch changed since). */
static const float *prepare(const dpt__layer *l, const dpt__run *r, dpt_conv_pass pass) {
    const size_t need = r->conv->prepared_floats ? r->conv->prepared_floats(&l->u.conv.g, pass) : 0;
    if (need == 0 || need > r->prepared_floats)
        return NULL;
    prepare_job pj = {.l = l, .r = r, .pass = pass};
    dpt__parallel(r, PREPARE_PARTS, 1, prepare_parts, &pj);
    return r->prepared;
}

/* The partial of block i of a round: slot i / T after the kernel's scratch of thread i % T's area
 * (the thread that runs block i may be another one; no two blocks of a round share an i). */
static float *partial_of(const conv_job *j, int64_t i) {
    const int64_t T = dpt_pool_threads(j->r->pool);
    return dpt__work(j->r, (int)(i % T)) + j->kernel_floats +
           (size_t)(i / T) * round16((size_t)param_count(&j->l->u.conv.g));
}

/* x: in, dy: out (backward reads what forward wrote). Unit 0 accumulates straight into dw, db
 * as a single-threaded pass over its images would; later units write partials. */
static void backward_weight_unit(void *ctx, int64_t i, int t) {
    const conv_job *j = ctx;
    const int64_t u = j->first_unit + i, n0 = u * DPT__UNIT_IMAGES;
    const int64_t n = j->r->n - n0 < DPT__UNIT_IMAGES ? j->r->n - n0 : DPT__UNIT_IMAGES;
    const dpt_conv_geom g = geom_of(j, n);
    float *dw = j->l->param[0].g;
    if (u > 0) {
        dw = partial_of(j, i);
        memset(dw, 0, (size_t)param_count(&g) * sizeof *dw);
    }
    j->r->conv->backward_weight(dw, g.has_bias ? dw + dpt_conv_w_count(&g) : NULL,
                                j->out + n0 * j->out_count, j->in + n0 * j->in_count, &g,
                                dpt__work(j->r, t));
}

static void backward_weight_blocks(void *ctx, int64_t i0, int64_t n, int t) {
    for (int64_t i = i0; i < i0 + n; i++)
        backward_weight_unit(ctx, i, t);
}

typedef struct {
    const conv_job *job;
    int64_t first, count; /* partials 0..count-1 of the round, first: the first one to add */
} reduce_job;

/* dw[e] += partial_i[e] in unit order, over one block of elements. */
static void reduce_block(void *ctx, int64_t e0, int64_t n, int t) {
    (void)t;
    const reduce_job *rj = ctx;
    float *restrict dw = rj->job->l->param[0].g + e0;
    for (int64_t i = rj->first; i < rj->count; i++) {
        const float *restrict p = partial_of(rj->job, i) + e0;
        for (int64_t e = 0; e < n; e++)
            dw[e] += p[e];
    }
}

/* A pass of layer l writing `out` from `in`. */
static conv_job job_of(dpt__layer *l, const dpt__run *r, float *out, const float *in) {
    return (conv_job){.l = l,
                      .r = r,
                      .out = out,
                      .in = in,
                      .in_count = dpt_shape_count(&l->in),
                      .out_count = dpt_shape_count(&l->out)};
}

static dpt_status conv_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    DPT_ASSERT(l->work_floats <= r->work_floats);
    conv_job j = job_of(l, r, y, x);
    j.prepared = prepare(l, r, DPT_CONV_PASS_FORWARD);
    dpt__parallel_images(r, 1, 1, forward_share, &j);
    return DPT_OK;
}

static dpt_status conv_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                const float *x, const float *y) {
    (void)y;
    const int64_t count = param_count(&l->u.conv.g);
    const int64_t slots = l->u.conv.partials;
    conv_job j = job_of(l, r, (float *)dy, x);
    j.kernel_floats = l->work_floats - (size_t)slots * round16((size_t)count);
    /* Rounds of T x slots blocks, T the thread count: their partials are added before the next
     * round reuses the slots. The sums do not depend on T: every dw element gets block 0's
     * contribution, then block 1's partial, block 2's, ... */
    const int64_t units = (r->n + DPT__UNIT_IMAGES - 1) / DPT__UNIT_IMAGES;
    const int64_t round = dpt_pool_threads(r->pool) * slots;
    for (int64_t first = 0; first < units; first += round) {
        const int64_t k = units - first < round ? units - first : round;
        j.first_unit = first;
        dpt__parallel_image_blocks(r, k, backward_weight_blocks, &j);
        reduce_job rj = {.job = &j, .first = first == 0 ? 1 : 0, .count = k};
        if (rj.first < rj.count)
            dpt__parallel_split(r, count, DPT__SPLIT_ALIGN, reduce_block, &rj);
    }
    if (dx) {
        conv_job d = job_of(l, r, dx, dy);
        d.prepared = prepare(l, r, DPT_CONV_PASS_BACKWARD_DATA);
        dpt__parallel_images(r, 1, 1, backward_data_share, &d);
    }
    return DPT_OK;
}

static int conv_describe(const dpt__layer *l, char *buf, size_t n) {
    int used = 0;
    const int dims = l->dims;
    static const int64_t ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0};
    dpt__fmt(buf, n, &used, "conv%dd(%lld,", dims, (long long)l->u.conv.out_ch);
    dpt__fmt_dims(buf, n, &used, l->u.conv.k, dims);
    if (memcmp(l->u.conv.stride + 3 - dims, ones, (size_t)dims * sizeof ones[0]) != 0) {
        dpt__fmt(buf, n, &used, ",stride=");
        dpt__fmt_dims(buf, n, &used, l->u.conv.stride, dims);
    }
    if (memcmp(l->u.conv.pad + 3 - dims, zeros, (size_t)dims * sizeof zeros[0]) != 0) {
        dpt__fmt(buf, n, &used, ",pad=");
        dpt__fmt_dims(buf, n, &used, l->u.conv.pad, dims);
    }
    if (memcmp(l->u.conv.dil + 3 - dims, ones, (size_t)dims * sizeof ones[0]) != 0) {
        dpt__fmt(buf, n, &used, ",dilation=");
        dpt__fmt_dims(buf, n, &used, l->u.conv.dil, dims);
    }
    if (l->u.conv.groups != 1)
        dpt__fmt(buf, n, &used, ",groups=%lld", (long long)l->u.conv.groups);
    if (!l->u.conv.bias)
        dpt__fmt(buf, n, &used, ",bias=0");
    dpt__fmt(buf, n, &used, ")");
    return used;
}

const dpt__layer_ops dpt__conv_ops = {
    .configure = conv_configure,
    .infer = conv_infer,
    .init = dpt__layer_init_kaiming,
    .forward = conv_forward,
    .backward = conv_backward,
    .describe = conv_describe,
};
