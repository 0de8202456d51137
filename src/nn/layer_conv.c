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
    dpt_conv_geom one = *g;
    one.N = 1;
    l->flops = dpt_conv_flops(&one);
    /* Scratch for the largest batch; one sample is asked about too, so that the maximum covers
     * every batch size whichever way an implementation's scratch scales with N. */
    size_t wa = b->conv->workspace(g), wb = b->conv->workspace(&one);
    l->work_floats = wa > wb ? wa : wb;
    return DPT_OK;
}

static dpt_status conv_forward(dpt__layer *l, const dpt__run *r, float *y, const float *x) {
    dpt_conv_geom g = l->u.conv.g;
    g.N = r->n;
    DPT_ASSERT(l->work_floats <= r->work_floats);
    r->conv->forward(y, x, l->param[0].v, g.has_bias ? l->param[1].v : NULL, &g, r->work);
    return DPT_OK;
}

static dpt_status conv_backward(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                                const float *x, const float *y) {
    dpt_conv_geom g = l->u.conv.g;
    g.N = r->n;
    r->conv->backward_weight(l->param[0].g, g.has_bias ? l->param[1].g : NULL, dy, x, &g, r->work);
    if (dx)
        r->conv->backward_data(dx, dy, l->param[0].v, &g, r->work);
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
