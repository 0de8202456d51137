/* Dropout layers (nn): inverted dropout as torch.nn.Dropout (training: zero with probability p,
 * scale the rest by 1/(1-p); eval: identity). The mask of a sample comes from the Philox stream
 * keyed by (seed, DPT_RNG_DROPOUT, member) at counter (step, layer << 48 | global sample index),
 * so it does not depend on the rank or the batch row that processes the sample.
 * https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html */
#include <string.h>

#include "nn/layer.h"

static dpt_status dropout_configure(dpt__layer *l, dpt__args *a) {
    return dpt__arg_double(l, a, 0, "p", 0.5, 0.0, 1.0, &l->u.drop.p);
}

static dpt_status dropout_infer(dpt__layer *l, const dpt__build *b) {
    l->out = l->in;
    snprintf(l->kind, sizeof l->kind, "dropout");
    l->flops = (double)dpt_shape_count(&l->in);
    l->backward_in_place = 1;
    /* the scaled mask of every element, kept for backward */
    l->state_bytes = dpt_size_mul(
        dpt_size_mul((size_t)b->max_batch, (size_t)dpt_shape_count(&l->in)), sizeof(float));
    return DPT_OK;
}

/* Each thread its share of the rows: a row's mask depends on its sample only. */
typedef struct {
    dpt__layer *l;
    const dpt__run *r;
    float *out;
    const float *in;
} drop_job;

static void forward_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const drop_job *j = ctx;
    const dpt__run *r = j->r;
    const int64_t per = dpt_shape_count(&j->l->in);
    const double p = j->l->u.drop.p;
    const float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    const dpt_rng_key key = dpt_rng_key_make(r->rng->seed, DPT_RNG_DROPOUT, r->rng->member);
    float *mask = j->l->state;
    for (int64_t i = n0; i < n0 + n; i++) {
        const int64_t sample = r->rng->sample ? r->rng->sample[i] : i;
        DPT_ASSERT(sample >= 0 && sample < ((int64_t)1 << 48));
        dpt_rng g;
        dpt_rng_init(&g, key, r->rng->step, ((uint64_t)j->l->index << 48) | (uint64_t)sample);
        float *mi = mask + i * per;
        for (int64_t e = 0; e < per; e++)
            mi[e] = (double)dpt_rng_uniformf(&g) >= p ? scale : 0.0f;
    }
    for (int64_t e = n0 * per; e < (n0 + n) * per; e++)
        j->out[e] = j->in[e] * mask[e];
}

/* out: dx, in: dy */
static void backward_block(void *ctx, int64_t e0, int64_t n, int t) {
    (void)t;
    const drop_job *j = ctx;
    const float *mask = j->l->state;
    for (int64_t e = e0; e < e0 + n; e++)
        j->out[e] = j->in[e] * mask[e];
}

static dpt_status dropout_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    const int64_t per = dpt_shape_count(&l->in);
    if (!r->training) {
        memcpy(y, x, (size_t)(r->n * per) * sizeof *y);
        return DPT_OK;
    }
    DPT_ASSERT(r->rng); /* the contract: rng may be NULL only for models without dropout */
    drop_job j = {.l = l, .r = r, .out = y, .in = x};
    dpt__parallel_images(r, 1, 1, forward_rows, &j);
    return DPT_OK;
}

static dpt_status dropout_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                   const float *x, const float *y) {
    (void)x, (void)y;
    const int64_t count = r->n * dpt_shape_count(&l->in);
    if (!dx)
        return DPT_OK;
    if (!r->training) {
        if (dx != dy) /* backward may run in place */
            memcpy(dx, dy, (size_t)count * sizeof *dx);
        return DPT_OK;
    }
    drop_job j = {.l = l, .r = r, .out = dx, .in = dy};
    dpt__parallel_images(r, dpt_shape_count(&l->in), DPT__SPLIT_ALIGN, backward_block, &j);
    return DPT_OK;
}

static int dropout_describe(const dpt__layer *l, char *buf, size_t n) {
    int used = 0;
    dpt__fmt(buf, n, &used, "dropout(");
    dpt__fmt_double(buf, n, &used, l->u.drop.p);
    dpt__fmt(buf, n, &used, ")");
    return used;
}

const dpt__layer_ops dpt__dropout_ops = {
    .configure = dropout_configure,
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .describe = dropout_describe,
};
