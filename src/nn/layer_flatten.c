/* Flatten layers (nn): (C, ...) -> (C*...) per sample, as torch.nn.Flatten() / x.view(N, -1).
 * Row-major memory is already in that order, so the output is a view of the input: no copy
 * forward, and the gradient passes through untouched. */
#include "nn/layer.h"

static dpt_status flatten_configure(dpt__layer *l, dpt__args *a) {
    return DPT_OK;
}

static dpt_status flatten_infer(dpt__layer *l, const dpt__build *b) {
    const int64_t n = dpt_shape_count(&l->in);
    l->out = dpt_shape_make(1, &n);
    l->is_view = 1;
    snprintf(l->kind, sizeof l->kind, "flatten");
    return DPT_OK;
}

static int flatten_describe(const dpt__layer *l, char *buf, size_t n) {
    return snprintf(buf, n, "flatten");
}

/* forward and backward stay NULL: the model never calls them for a view. */
const dpt__layer_ops dpt__flatten_ops = {
    .configure = flatten_configure,
    .infer = flatten_infer,
    .describe = flatten_describe,
};
