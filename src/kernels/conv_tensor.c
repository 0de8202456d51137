/* The tensor-level convolution entry points (kernels): validate ranks, extents, bias, scratch
 * size and aliasing before any memory is touched, then run the implementation asked for or the
 * default one (kernel_table.c). */
#include <stdint.h>
#include <stdio.h>

#include "dpt/conv.h"

/* The checked copy of g and the implementation to run, or the status that says why not. */
static dpt_status prepare(const char *pass, const dpt_conv_impl **impl, const dpt_conv_geom *g,
                          dpt_conv_geom *gc, char *op, size_t opn) {
    if (!g)
        return dpt_errorf(DPT_EINVAL, "conv %s: geometry is NULL", pass);
    *gc = *g;
    dpt_status st = dpt_conv_geom_check(gc);
    if (st != DPT_OK)
        return st; /* the check named the field */
    if (!*impl)
        *impl = dpt_conv_default();
    snprintf(op, opn, "conv%dd %s (%s)", gc->dims, pass, (*impl)->name);
    return DPT_OK;
}

/* Expected shape of an activation (N, ch, spatial) or a weight (O, C/groups, k). */
static dpt_shape shape_of(const dpt_conv_geom *g, int64_t lead0, int64_t lead1,
                          const int64_t *spatial) {
    dpt_shape s = {.ndim = g->dims + 2};
    s.d[0] = lead0;
    s.d[1] = lead1;
    for (int i = 0; i < g->dims; i++)
        s.d[2 + i] = spatial[3 - g->dims + i];
    return s;
}

static dpt_status check_tensor(const char *op, const char *name, const dpt_tensor *t,
                               dpt_shape want) {
    if (!dpt_shape_equal(&t->shape, &want)) {
        char got_s[128], want_s[128];
        dpt_shape_format(&t->shape, got_s, sizeof got_s);
        dpt_shape_format(&want, want_s, sizeof want_s);
        if (t->shape.ndim != want.ndim)
            return dpt_errorf(DPT_ESHAPE, "%s: %s has rank %d %s, expected rank %d %s", op, name,
                              t->shape.ndim, got_s, want.ndim, want_s);
        return dpt_errorf(DPT_ESHAPE, "%s: %s has shape %s, expected %s", op, name, got_s, want_s);
    }
    if (!t->data)
        return dpt_errorf(DPT_EINVAL, "%s: %s has no data (NULL)", op, name);
    return DPT_OK;
}

static dpt_status check_work(const char *op, const dpt_conv_impl *impl, const dpt_conv_geom *g,
                             const float *work, size_t work_floats) {
    size_t need = impl->workspace(g);
    if (work_floats < need)
        return dpt_errorf(DPT_EINVAL, "%s: workspace of %zu floats is too small, %zu needed", op,
                          work_floats, need);
    if (need > 0 && !work)
        return dpt_errorf(DPT_EINVAL, "%s: workspace is NULL, %zu floats needed", op, need);
    return DPT_OK;
}

/* 1 when the byte ranges of the two tensors' data overlap. */
static int overlaps(const dpt_tensor *a, const dpt_tensor *b) {
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    uintptr_t a1 = a0 + (uintptr_t)dpt_shape_count(&a->shape) * sizeof(float);
    uintptr_t b1 = b0 + (uintptr_t)dpt_shape_count(&b->shape) * sizeof(float);
    return a0 < b1 && b0 < a1;
}

static dpt_status check_alias(const char *op, const char *out_name, const dpt_tensor *out,
                              const char *in_name, const dpt_tensor *in) {
    if (overlaps(out, in))
        return dpt_errorf(DPT_EINVAL, "%s: output %s overlaps input %s", op, out_name, in_name);
    return DPT_OK;
}

static int work_overlaps(const float *work, size_t work_floats, const dpt_tensor *t) {
    if (!work || work_floats == 0)
        return 0;
    dpt_tensor w = {.data = (float *)work, .shape = {.ndim = 1, .d = {(int64_t)work_floats}}};
    return overlaps(&w, t);
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        dpt_status st_ = (expr);                                                                   \
        if (st_ != DPT_OK)                                                                         \
            return st_;                                                                            \
    } while (0)

typedef struct {
    const char *name;
    const dpt_tensor *t; /* NULL: an absent bias, skipped */
    dpt_shape want;
    int output;
} operand;

/* What every pass checks once its bias arguments agree with the geometry: the shape and data of
 * each operand in order; that no output (the last one first) overlaps another operand; the
 * scratch size; that the scratch overlaps no operand. */
static dpt_status check_operands(const char *op, const operand *ops, int n,
                                 const dpt_conv_impl *impl, const dpt_conv_geom *g,
                                 const float *work, size_t work_floats) {
    for (int i = 0; i < n; i++)
        if (ops[i].t)
            TRY(check_tensor(op, ops[i].name, ops[i].t, ops[i].want));
    for (int i = n - 1; i >= 0; i--)
        for (int j = 0; j < n; j++)
            if (ops[i].output && ops[i].t && ops[j].t && j != i && !(ops[j].output && j > i))
                TRY(check_alias(op, ops[i].name, ops[i].t, ops[j].name, ops[j].t));
    TRY(check_work(op, impl, g, work, work_floats));
    for (int i = 0; i < n; i++)
        if (ops[i].t && work_overlaps(work, work_floats, ops[i].t))
            return dpt_errorf(DPT_EINVAL, "%s: workspace overlaps an operand", op);
    return DPT_OK;
}

/* Expected shapes: an activation of `ch` channels over `spatial`, a weight, a bias. */
static dpt_shape act_shape(const dpt_conv_geom *g, int64_t ch, const int64_t *spatial) {
    return shape_of(g, g->N, ch, spatial);
}
static dpt_shape weight_shape(const dpt_conv_geom *g) {
    return shape_of(g, g->O, g->C / g->groups, g->k);
}
static dpt_shape bias_shape(const dpt_conv_geom *g) {
    return (dpt_shape){.ndim = 1, .d = {g->O}};
}

dpt_status dpt_conv_forward(const dpt_conv_impl *impl, dpt_tensor y, dpt_tensor x, dpt_tensor w,
                            const dpt_tensor *b, const dpt_conv_geom *g, float *work,
                            size_t work_floats) {
    dpt_conv_geom gc;
    char op[64];
    TRY(prepare("forward", &impl, g, &gc, op, sizeof op));
    if (gc.has_bias && !b)
        return dpt_errorf(DPT_EINVAL, "%s: the geometry has a bias but b is NULL", op);
    if (!gc.has_bias && b)
        return dpt_errorf(DPT_EINVAL, "%s: b given but the geometry has no bias (has_bias = 0)",
                          op);
    const operand ops[] = {{"x", &x, act_shape(&gc, gc.C, gc.in), 0},
                           {"w", &w, weight_shape(&gc), 0},
                           {"b", b, bias_shape(&gc), 0},
                           {"y", &y, act_shape(&gc, gc.O, gc.out), 1}};
    TRY(check_operands(op, ops, 4, impl, &gc, work, work_floats));
    impl->forward(y.data, x.data, w.data, b ? b->data : NULL, &gc, work);
    return DPT_OK;
}

dpt_status dpt_conv_backward_data(const dpt_conv_impl *impl, dpt_tensor dx, dpt_tensor dy,
                                  dpt_tensor w, const dpt_conv_geom *g, float *work,
                                  size_t work_floats) {
    dpt_conv_geom gc;
    char op[64];
    TRY(prepare("backward_data", &impl, g, &gc, op, sizeof op));
    const operand ops[] = {{"dy", &dy, act_shape(&gc, gc.O, gc.out), 0},
                           {"w", &w, weight_shape(&gc), 0},
                           {"dx", &dx, act_shape(&gc, gc.C, gc.in), 1}};
    TRY(check_operands(op, ops, 3, impl, &gc, work, work_floats));
    impl->backward_data(dx.data, dy.data, w.data, &gc, work);
    return DPT_OK;
}

dpt_status dpt_conv_backward_weight(const dpt_conv_impl *impl, dpt_tensor dw, dpt_tensor *db,
                                    dpt_tensor dy, dpt_tensor x, const dpt_conv_geom *g,
                                    float *work, size_t work_floats) {
    dpt_conv_geom gc;
    char op[64];
    TRY(prepare("backward_weight", &impl, g, &gc, op, sizeof op));
    if (db && !gc.has_bias)
        return dpt_errorf(DPT_EINVAL, "%s: db given but the geometry has no bias (has_bias = 0)",
                          op);
    const operand ops[] = {{"dy", &dy, act_shape(&gc, gc.O, gc.out), 0},
                           {"x", &x, act_shape(&gc, gc.C, gc.in), 0},
                           {"dw", &dw, weight_shape(&gc), 1},
                           {"db", db, bias_shape(&gc), 1}};
    TRY(check_operands(op, ops, 4, impl, &gc, work, work_floats));
    impl->backward_weight(dw.data, db ? db->data : NULL, dy.data, x.data, &gc, work);
    return DPT_OK;
}
