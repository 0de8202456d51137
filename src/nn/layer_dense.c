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

static dpt_status dense_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    dpt_dense_forward(DPT_GEMM_BLAS, y, x, l->param[0].v, l->u.dense.bias ? l->param[1].v : NULL,
                      r->n, l->u.dense.in, l->u.dense.out);
    return DPT_OK;
}

static dpt_status dense_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                 const float *x, const float *y) {
    dpt_dense_backward_weight(DPT_GEMM_BLAS, l->param[0].g, l->u.dense.bias ? l->param[1].g : NULL,
                              dy, x, r->n, l->u.dense.in, l->u.dense.out);
    if (dx)
        dpt_dense_backward_data(DPT_GEMM_BLAS, dx, dy, l->param[0].v, r->n, l->u.dense.in,
                                l->u.dense.out);
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
