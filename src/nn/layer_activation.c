/* Activation layers (nn): relu, leaky_relu, sigmoid, tanh, elu, gelu over any shape, through the
 * elementwise kernels (kernels/activation.c). Knows the spec names and default parameters.
 * https://pytorch.org/docs/stable/nn.html#non-linear-activations-weighted-sum-nonlinearity */
#include <string.h>

#include "nn/layer.h"

static const struct {
    const char *name;
    dpt_act act;
    const char *param_name; /* NULL: no parameter */
    double param_default;
} acts[] = {
    {"relu", DPT_ACT_RELU, NULL, 0.0},
    {"leaky_relu", DPT_ACT_LEAKY_RELU, "slope", 0.01}, /* torch's negative_slope */
    {"sigmoid", DPT_ACT_SIGMOID, NULL, 0.0},
    {"tanh", DPT_ACT_TANH, NULL, 0.0},
    {"elu", DPT_ACT_ELU, "alpha", 1.0},
    {"gelu", DPT_ACT_GELU, NULL, 0.0},
};

static dpt_status act_configure(dpt__layer *l, dpt__args *a) {
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(l->keyword, acts[i].name) != 0)
            continue;
        l->u.act.act = acts[i].act;
        l->u.act.param_name = acts[i].param_name;
        l->u.act.param_default = acts[i].param_default;
        if (!acts[i].param_name)
            return DPT_OK;
        return dpt__arg_double(l, a, 0, acts[i].param_name, acts[i].param_default, -1e6, 1e6,
                               &l->u.act.param);
    }
    DPT_ASSERT(!"activation keyword missing from the table");
    return DPT_EINVAL;
}

static dpt_status act_infer(dpt__layer *l, const dpt__build *b) {
    l->out = l->in;
    snprintf(l->kind, sizeof l->kind, "%s", l->keyword);
    l->flops = (double)dpt_shape_count(&l->in);
    l->backward_in_place = 1; /* dpt_act_backward allows dx == dy */
    return DPT_OK;
}

/* Elementwise: each thread its share of the elements. */
typedef struct {
    dpt__layer *l;
    float *out;
    const float *in, *x, *y;
} act_job;

static void forward_block(void *ctx, int64_t e0, int64_t n, int t) {
    (void)t;
    const act_job *j = ctx;
    dpt_act_forward(j->l->u.act.act, (float)j->l->u.act.param, j->out + e0, j->in + e0, n);
}

/* out: dx, in: dy; x or y may be NULL when the activation does not read it (never here). */
static void backward_block(void *ctx, int64_t e0, int64_t n, int t) {
    (void)t;
    const act_job *j = ctx;
    dpt_act_backward(j->l->u.act.act, (float)j->l->u.act.param, j->out + e0, j->in + e0,
                     j->x ? j->x + e0 : NULL, j->y ? j->y + e0 : NULL, n);
}

static dpt_status act_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    act_job j = {.l = l, .out = y, .in = x};
    dpt__parallel_images(r, dpt_shape_count(&l->in), DPT__SPLIT_ALIGN, forward_block, &j);
    return DPT_OK;
}

static dpt_status act_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                               const float *x, const float *y) {
    if (!dx)
        return DPT_OK;
    act_job j = {.l = l, .out = dx, .in = dy, .x = x, .y = y};
    dpt__parallel_images(r, dpt_shape_count(&l->in), DPT__SPLIT_ALIGN, backward_block, &j);
    return DPT_OK;
}

static int act_describe(const dpt__layer *l, char *buf, size_t n) {
    int used = 0;
    dpt__fmt(buf, n, &used, "%s", l->keyword);
    if (l->u.act.param_name && l->u.act.param != l->u.act.param_default) {
        dpt__fmt(buf, n, &used, "(%s=", l->u.act.param_name);
        dpt__fmt_double(buf, n, &used, l->u.act.param);
        dpt__fmt(buf, n, &used, ")");
    }
    return used;
}

const dpt__layer_ops dpt__activation_ops = {
    .configure = act_configure,
    .infer = act_infer,
    .forward = act_forward,
    .backward = act_backward,
    .describe = act_describe,
};
