/* Dense (fully connected) layers (nn): y = x W^T + b with weight (out, in) and optional bias views
 * into the flat buffers, through the dense kernels (BLAS GEMM). Needs a flat (features) input.
 * https://pytorch.org/docs/stable/generated/torch.nn.Linear.html */
#include <string.h>

#include "nn/layer.h"

static dpt_status dense_configure(dpt__layer *l, dpt__args *a) {
    const char *text = NULL;
    int64_t bias = 1;
    dpt_status st = dpt__arg_text(l, a, 0, "out", &text);
    if (st != DPT_OK)
        return st;
    if (!text)
        return dpt__layer_error(l, DPT_EINVAL, "missing the number of output features");
    if (strcmp(text, "classes") == 0) {
        l->u.dense.out_is_classes = 1;
    } else {
        if ((st = dpt__arg_int(l, a, 0, "out", 0, 1, INT64_MAX, &l->u.dense.out, NULL)) != DPT_OK)
            return st;
    }
    if ((st = dpt__arg_int(l, a, -1, "bias", 1, 0, 1, &bias, NULL)) != DPT_OK)
        return st;
    l->u.dense.bias = (int)bias;
    return DPT_OK;
}

static dpt_status dense_infer(dpt__layer *l, const dpt__build *b) {
    if (l->in.ndim != 1) {
        char s[96];
        dpt_shape_format(&l->in, s, sizeof s);
        return dpt__layer_error(l, DPT_EINVAL,
                                "needs a flat (features) input, got %s; "
                                "put flatten before it",
                                s);
    }
    if (l->u.dense.out_is_classes) {
        if (b->num_classes < 1)
            return dpt__layer_error(l, DPT_EINVAL, "\"classes\" used but no class count given");
        l->u.dense.out = b->num_classes;
    }
    const int64_t in = l->in.d[0], out = l->u.dense.out;
    l->u.dense.in = in;
    l->out = dpt_shape_make(1, &out);
    snprintf(l->kind, sizeof l->kind, "dense");
    dpt__layer_add_param(l, "weight", DPT_PARAM_WEIGHT, 2, (int64_t[]){out, in});
    if (l->u.dense.bias)
        dpt__layer_add_param(l, "bias", DPT_PARAM_BIAS, 1, &out);
    l->flops = 2.0 * (double)in * (double)out;
    return DPT_OK;
}

/* Forward and backward-data over units of DPT__UNIT_IMAGES rows; the weight gradient over
 * blocks of output rows, each the whole batch's sum (no partials to add). */
enum { ROWS_PER_UNIT = 16 };

typedef struct {
    dpt__layer *l;
    float *out;
    const float *in, *dy;
} dense_job;

static void forward_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const dense_job *j = ctx;
    const dpt__layer *l = j->l;
    const int64_t K = l->u.dense.in, O = l->u.dense.out;
    dpt_dense_forward(DPT_GEMM_BLAS, j->out + n0 * O, j->in + n0 * K, l->param[0].v,
                      l->u.dense.bias ? l->param[1].v : NULL, n, K, O);
}

static void backward_data_rows(void *ctx, int64_t n0, int64_t n, int t) {
    (void)t;
    const dense_job *j = ctx;
    const int64_t K = j->l->u.dense.in, O = j->l->u.dense.out;
    dpt_dense_backward_data(DPT_GEMM_BLAS, j->out + n0 * K, j->dy + n0 * O, j->l->param[0].v, n,
                            K, O);
}

typedef struct {
    dense_job j;
    int64_t N;
} weight_job;

/* dw[o0:o0+m] += dy[:, o0:o0+m]^T x and db[o0:o0+m] += sum_n dy[n, o0:o0+m], n in order. */
static void backward_weight_rows(void *ctx, int64_t o0, int64_t m, int t) {
    (void)t;
    const weight_job *w = ctx;
    const dpt__layer *l = w->j.l;
    const int64_t K = l->u.dense.in, O = l->u.dense.out;
    dpt_sgemm(DPT_GEMM_BLAS, 1, 0, m, K, w->N, 1.0f, w->j.dy + o0, O, w->j.in, K, 1.0f,
              l->param[0].g + o0 * K, K);
    if (!l->u.dense.bias)
        return;
    float *restrict db = l->param[1].g + o0;
    for (int64_t n = 0; n < w->N; n++) {
        const float *restrict dyn = w->j.dy + n * O + o0;
        for (int64_t o = 0; o < m; o++)
            db[o] += dyn[o];
    }
}

static dpt_status dense_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    dense_job j = {.l = l, .out = y, .in = x};
    dpt__parallel(r, r->n, DPT__UNIT_IMAGES, forward_rows, &j);
    return DPT_OK;
}

static dpt_status dense_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                 const float *x, const float *y) {
    (void)y;
    weight_job w = {.j = {.l = l, .in = x, .dy = dy}, .N = r->n};
    dpt__parallel(r, l->u.dense.out, ROWS_PER_UNIT, backward_weight_rows, &w);
    if (dx) {
        dense_job j = {.l = l, .out = dx, .dy = dy};
        dpt__parallel(r, r->n, DPT__UNIT_IMAGES, backward_data_rows, &j);
    }
    return DPT_OK;
}

/* Prints the resolved count, so the canonical spec does not depend on the class count given. */
static int dense_describe(const dpt__layer *l, char *buf, size_t n) {
    int used = 0;
    dpt__fmt(buf, n, &used, "dense(%lld%s)", (long long)l->u.dense.out,
             l->u.dense.bias ? "" : ",bias=0");
    return used;
}

const dpt__layer_ops dpt__dense_ops = {
    .configure = dense_configure,
    .infer = dense_infer,
    .init = dpt__layer_init_kaiming,
    .forward = dense_forward,
    .backward = dense_backward,
    .describe = dense_describe,
};
