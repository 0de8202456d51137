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

/* Every pass is cut into fixed blocks of columns, the same GEMM calls for any thread count (a
 * GEMM's rounding of one row can depend on how many rows it is given, so rows are never split):
 * forward over output features, backward-data and the weight gradient over input features, each
 * block the whole batch's product (no partials to add). The bias gradient goes with the first
 * weight-gradient block. */
enum {
    OUT_COLUMNS_PER_BLOCK = 64, /* forward: each block packs x again */
    IN_COLUMNS_PER_BLOCK = 256, /* backward: each block packs dy again, which is small */
};

typedef struct {
    dpt__layer *l;
    float *out;
    const float *in, *dy;
    int64_t N;
} dense_job;

/* y[:, o0:o0+m] = b[o0:o0+m] + x W[o0:o0+m]^T */
static void forward_columns(void *ctx, int64_t o0, int64_t m, int t) {
    (void)t;
    const dense_job *j = ctx;
    const dpt__layer *l = j->l;
    const int64_t K = l->u.dense.in, O = l->u.dense.out;
    float beta = 0.0f;
    if (l->u.dense.bias) { /* broadcast the bias, the GEMM adds on top: one pass over y */
        for (int64_t n = 0; n < j->N; n++)
            memcpy(j->out + n * O + o0, l->param[1].v + o0, (size_t)m * sizeof(float));
        beta = 1.0f;
    }
    dpt_sgemm(DPT_GEMM_BLAS, 0, 1, j->N, m, K, 1.0f, j->in, K, l->param[0].v + o0 * K, K, beta,
              j->out + o0, O);
}

/* dx[:, k0:k0+m] = dy W[:, k0:k0+m] */
static void backward_data_columns(void *ctx, int64_t k0, int64_t m, int t) {
    (void)t;
    const dense_job *j = ctx;
    const int64_t K = j->l->u.dense.in, O = j->l->u.dense.out;
    dpt_sgemm(DPT_GEMM_BLAS, 0, 0, j->N, m, O, 1.0f, j->dy, O, j->l->param[0].v + k0, K, 0.0f,
              j->out + k0, K);
}

/* dw[:, k0:k0+m] += dy^T x[:, k0:k0+m]; with the first block, db += sum_n dy, n in order. */
static void backward_weight_columns(void *ctx, int64_t k0, int64_t m, int t) {
    (void)t;
    const dense_job *j = ctx;
    const dpt__layer *l = j->l;
    const int64_t K = l->u.dense.in, O = l->u.dense.out;
    dpt_sgemm(DPT_GEMM_BLAS, 1, 0, O, m, j->N, 1.0f, j->dy, O, j->in + k0, K, 1.0f,
              l->param[0].g + k0, K);
    if (!l->u.dense.bias || k0 != 0)
        return;
    float *restrict db = l->param[1].g;
    for (int64_t n = 0; n < j->N; n++) {
        const float *restrict dyn = j->dy + n * O;
        for (int64_t o = 0; o < O; o++)
            db[o] += dyn[o];
    }
}

static dpt_status dense_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    if (r->n == 0)
        return DPT_OK;
    dense_job j = {.l = l, .out = y, .in = x, .N = r->n};
    dpt__parallel(r, l->u.dense.out, OUT_COLUMNS_PER_BLOCK, forward_columns, &j);
    return DPT_OK;
}

static dpt_status dense_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                 const float *x, const float *y) {
    (void)y;
    if (r->n == 0)
        return DPT_OK;
    dense_job j = {.l = l, .in = x, .dy = dy, .N = r->n};
    dpt__parallel(r, l->u.dense.in, IN_COLUMNS_PER_BLOCK, backward_weight_columns, &j);
    if (dx) {
        j.out = dx;
        dpt__parallel(r, l->u.dense.in, IN_COLUMNS_PER_BLOCK, backward_data_columns, &j);
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
