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

dpt_status dpt_conv_forward(const dpt_conv_impl *impl, dpt_tensor y, dpt_tensor x, dpt_tensor w,
                            const dpt_tensor *b, const dpt_conv_geom *g, float *work,
                            size_t work_floats) {
    dpt_conv_geom gc;
    char op[64];
    TRY(prepare("forward", &impl, g, &gc, op, sizeof op));
    const int64_t Cg = gc.C / gc.groups;
    TRY(check_tensor(op, "x", &x, shape_of(&gc, gc.N, gc.C, gc.in)));
    TRY(check_tensor(op, "w", &w, shape_of(&gc, gc.O, Cg, gc.k)));
    TRY(check_tensor(op, "y", &y, shape_of(&gc, gc.N, gc.O, gc.out)));
    if (gc.has_bias && !b)
        return dpt_errorf(DPT_EINVAL, "%s: the geometry has a bias but b is NULL", op);
    if (!gc.has_bias && b)
        return dpt_errorf(DPT_EINVAL, "%s: b given but the geometry has no bias (has_bias = 0)",
                          op);
    if (b) {
        TRY(check_tensor(op, "b", b, (dpt_shape){.ndim = 1, .d = {gc.O}}));
        TRY(check_alias(op, "y", &y, "b", b));
    }
    TRY(check_alias(op, "y", &y, "x", &x));
    TRY(check_alias(op, "y", &y, "w", &w));
    TRY(check_work(op, impl, &gc, work, work_floats));
    if (work_overlaps(work, work_floats, &y) || work_overlaps(work, work_floats, &x) ||
        work_overlaps(work, work_floats, &w) || (b && work_overlaps(work, work_floats, b)))
        return dpt_errorf(DPT_EINVAL, "%s: workspace overlaps an operand", op);
    impl->forward(y.data, x.data, w.data, b ? b->data : NULL, &gc, work);
    return DPT_OK;
}

dpt_status dpt_conv_backward_data(const dpt_conv_impl *impl, dpt_tensor dx, dpt_tensor dy,
                                  dpt_tensor w, const dpt_conv_geom *g, float *work,
                                  size_t work_floats) {
    dpt_conv_geom gc;
    char op[64];
    TRY(prepare("backward_data", &impl, g, &gc, op, sizeof op));
    const int64_t Cg = gc.C / gc.groups;
    TRY(check_tensor(op, "dy", &dy, shape_of(&gc, gc.N, gc.O, gc.out)));
    TRY(check_tensor(op, "w", &w, shape_of(&gc, gc.O, Cg, gc.k)));
    TRY(check_tensor(op, "dx", &dx, shape_of(&gc, gc.N, gc.C, gc.in)));
    TRY(check_alias(op, "dx", &dx, "dy", &dy));
    TRY(check_alias(op, "dx", &dx, "w", &w));
    TRY(check_work(op, impl, &gc, work, work_floats));
    if (work_overlaps(work, work_floats, &dx) || work_overlaps(work, work_floats, &dy) ||
        work_overlaps(work, work_floats, &w))
        return dpt_errorf(DPT_EINVAL, "%s: workspace overlaps an operand", op);
    impl->backward_data(dx.data, dy.data, w.data, &gc, work);
    return DPT_OK;
}

dpt_status dpt_conv_backward_weight(const dpt_conv_impl *impl, dpt_tensor dw, dpt_tensor *db,
                                    dpt_tensor dy, dpt_tensor x, const dpt_conv_geom *g,
                                    float *work, size_t work_floats) {
    dpt_conv_geom gc;
    char op[64];
    TRY(prepare("backward_weight", &impl, g, &gc, op, sizeof op));
    const int64_t Cg = gc.C / gc.groups;
    TRY(check_tensor(op, "dy", &dy, shape_of(&gc, gc.N, gc.O, gc.out)));
    TRY(check_tensor(op, "x", &x, shape_of(&gc, gc.N, gc.C, gc.in)));
    TRY(check_tensor(op, "dw", &dw, shape_of(&gc, gc.O, Cg, gc.k)));
    if (db) {
        if (!gc.has_bias)
            return dpt_errorf(DPT_EINVAL,
                              "%s: db given but the geometry has no bias (has_bias = 0)", op);
        TRY(check_tensor(op, "db", db, (dpt_shape){.ndim = 1, .d = {gc.O}}));
        TRY(check_alias(op, "db", db, "dy", &dy));
        TRY(check_alias(op, "db", db, "x", &x));
        TRY(check_alias(op, "db", db, "dw", &dw));
    }
    TRY(check_alias(op, "dw", &dw, "dy", &dy));
    TRY(check_alias(op, "dw", &dw, "x", &x));
    TRY(check_work(op, impl, &gc, work, work_floats));
    if (work_overlaps(work, work_floats, &dw) || work_overlaps(work, work_floats, &dy) ||
        work_overlaps(work, work_floats, &x) || (db && work_overlaps(work, work_floats, db)))
        return dpt_errorf(DPT_EINVAL, "%s: workspace overlaps an operand", op);
    impl->backward_weight(dw.data, db ? db->data : NULL, dy.data, x.data, &gc, work);
    return DPT_OK;
}
