/* Convolution geometry (kernels): defaults, validation with messages that name the field, output
 * extents, tensor sizes, FLOP counts and the one-line description. Knows no implementation: the
 * workspace each one needs is its own business (dpt_conv_impl.workspace). */
#include <stdarg.h>
#include <stdio.h>

#include "dpt/conv.h"

static const char axis_name[3] = {'D', 'H', 'W'};

/* a * b into *r; 0 on int64 overflow (operands are non-negative). */
static int mul_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static int add_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}

/* Product of a list of non-negative factors, or -1 on overflow. */
static int64_t product(const int64_t *f, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        if (!mul_ok(p, f[i], &p))
            return -1;
    return p;
}

static int clamp_dims(int dims) {
    return dims < 1 ? 1 : dims > 3 ? 3 : dims;
}

/* Validates one spatial dimension i of g (defaults already applied) and computes out[i]. */
static dpt_status check_axis(dpt_conv_geom *g, int i, const char *op) {
    const char ax = axis_name[i];
    const struct {
        const char *name;
        int64_t value, min;
    } fields[] = {{"in", g->in[i], 1},
                  {"k", g->k[i], 1},
                  {"stride", g->stride[i], 1},
                  {"dil", g->dil[i], 1},
                  {"pad", g->pad[i], 0}};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        if (fields[f].value < fields[f].min)
            return dpt_errorf(DPT_EINVAL, "%s: %s[%d] (%c) = %lld %s", op, fields[f].name, i, ax,
                              (long long)fields[f].value,
                              fields[f].min > 0 ? "must be positive" : "must not be negative");
    if (i < 3 - g->dims) {
        /* a unit dimension: 1-D and 2-D are 3-D with extent 1 in front */
        if (g->in[i] != 1 || g->k[i] != 1 || g->pad[i] != 0)
            return dpt_errorf(DPT_EINVAL,
                              "%s: dimension %d (%c) is not used by a %d-D convolution and must "
                              "have in = k = 1 and pad = 0 (got in=%lld k=%lld pad=%lld)",
                              op, i, ax, g->dims, (long long)g->in[i], (long long)g->k[i],
                              (long long)g->pad[i]);
    }
    int64_t padded, span;
    if (!mul_ok(g->pad[i], 2, &padded) || !add_ok(padded, g->in[i], &padded))
        return dpt_errorf(DPT_EINVAL, "%s: in[%d] + 2*pad[%d] (%c) overflows int64", op, i, i, ax);
    if (!mul_ok(g->dil[i], g->k[i] - 1, &span) || !add_ok(span, 1, &span))
        return dpt_errorf(DPT_EINVAL, "%s: dil[%d]*(k[%d]-1)+1 (%c) overflows int64", op, i, i, ax);
    if (span > padded)
        return dpt_errorf(DPT_EINVAL,
                          "%s: the window along %c (k[%d]=%lld, dil[%d]=%lld, spanning %lld) is "
                          "larger than the padded input (in[%d]=%lld + 2*pad[%d]=%lld = %lld)",
                          op, ax, i, (long long)g->k[i], i, (long long)g->dil[i], (long long)span,
                          i, (long long)g->in[i], i, (long long)g->pad[i], (long long)padded);
    g->out[i] = (padded - span) / g->stride[i] + 1;
    return DPT_OK;
}

dpt_status dpt_conv_geom_check(dpt_conv_geom *g) {
    if (!g)
        return dpt_errorf(DPT_EINVAL, "conv: geometry is NULL");
    if (g->dims < 1 || g->dims > 3)
        return dpt_errorf(DPT_EINVAL, "conv: dims = %d must be 1, 2 or 3", g->dims);
    /* Work on a copy so that a failed check leaves the caller's struct as it was. */
    dpt_conv_geom c = *g;
    char op[8];
    snprintf(op, sizeof op, "conv%dd", c.dims);
    for (int i = 0; i < 3; i++) {
        if (c.in[i] == 0)
            c.in[i] = 1;
        if (c.k[i] == 0)
            c.k[i] = 1;
        if (c.stride[i] == 0)
            c.stride[i] = 1;
        if (c.dil[i] == 0)
            c.dil[i] = 1;
    }
    if (c.groups == 0)
        c.groups = 1;
    if (c.N < 1)
        return dpt_errorf(DPT_EINVAL, "%s: N = %lld must be positive", op, (long long)c.N);
    if (c.C < 1)
        return dpt_errorf(DPT_EINVAL, "%s: C = %lld must be positive", op, (long long)c.C);
    if (c.O < 1)
        return dpt_errorf(DPT_EINVAL, "%s: O = %lld must be positive", op, (long long)c.O);
    if (c.groups < 1)
        return dpt_errorf(DPT_EINVAL, "%s: groups = %lld must be positive", op,
                          (long long)c.groups);
    if (c.C % c.groups != 0)
        return dpt_errorf(DPT_EINVAL, "%s: groups = %lld does not divide C = %lld", op,
                          (long long)c.groups, (long long)c.C);
    if (c.O % c.groups != 0)
        return dpt_errorf(DPT_EINVAL, "%s: groups = %lld does not divide O = %lld", op,
                          (long long)c.groups, (long long)c.O);
    for (int i = 0; i < 3; i++) {
        dpt_status st = check_axis(&c, i, op);
        if (st != DPT_OK)
            return st;
    }
    /* Every size an implementation may form: x, w, y, and one group's column matrix. */
    const int64_t xs[5] = {c.N, c.C, c.in[0], c.in[1], c.in[2]};
    const int64_t ws[5] = {c.O, c.C / c.groups, c.k[0], c.k[1], c.k[2]};
    const int64_t ys[5] = {c.N, c.O, c.out[0], c.out[1], c.out[2]};
    const int64_t cs[5] = {c.C / c.groups, c.k[0], c.k[1], c.k[2], 1};
    if (product(xs, 5) < 0)
        return dpt_errorf(DPT_EINVAL, "%s: the input size N*C*D*H*W overflows int64", op);
    if (product(ws, 5) < 0)
        return dpt_errorf(DPT_EINVAL, "%s: the weight size O*(C/groups)*kD*kH*kW overflows int64",
                          op);
    if (product(ys, 5) < 0)
        return dpt_errorf(DPT_EINVAL, "%s: the output size N*O*oD*oH*oW overflows int64", op);
    int64_t col = product(cs, 5), outs = product(c.out, 3);
    if (col < 0 || outs < 0 || !mul_ok(col, outs, &col) || col > INT64_MAX / (int64_t)sizeof(float))
        return dpt_errorf(DPT_EINVAL, "%s: the column matrix (C/groups)*k*out overflows int64", op);
    *g = c;
    return DPT_OK;
}

int64_t dpt_conv_x_count(const dpt_conv_geom *g) {
    return g->N * g->C * g->in[0] * g->in[1] * g->in[2];
}

int64_t dpt_conv_w_count(const dpt_conv_geom *g) {
    return g->O * (g->C / g->groups) * g->k[0] * g->k[1] * g->k[2];
}

int64_t dpt_conv_y_count(const dpt_conv_geom *g) {
    return g->N * g->O * g->out[0] * g->out[1] * g->out[2];
}

double dpt_conv_flops(const dpt_conv_geom *g) {
    double f = 2.0 * (double)g->N * (double)g->O * (double)(g->C / g->groups);
    for (int i = 0; i < 3; i++)
        f *= (double)g->out[i] * (double)g->k[i];
    return f;
}

/* snprintf at offset `total` of buf (which may be full); returns the new total length. */
__attribute__((format(printf, 4, 5))) static int append(char *buf, size_t n, int total,
                                                        const char *fmt, ...) {
    size_t used = (size_t)total < n ? (size_t)total : n;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(used < n ? buf + used : NULL, n - used, fmt, ap);
    va_end(ap);
    return k < 0 ? total : total + k;
}

/* " key=AxBxC" over the last `dims` entries of v. */
static int append_list(char *buf, size_t n, int total, const char *key, const int64_t *v,
                       int dims) {
    total = append(buf, n, total, " %s=", key);
    for (int i = 3 - dims; i < 3; i++)
        total = append(buf, n, total, "%s%lld", i > 3 - dims ? "x" : "", (long long)v[i]);
    return total;
}

int dpt_conv_geom_format(const dpt_conv_geom *g, char *buf, size_t n) {
    int dims = clamp_dims(g->dims);
    int total = append(buf, n, 0, "conv%dd N=%lld C=%lld->%lld", g->dims, (long long)g->N,
                       (long long)g->C, (long long)g->O);
    total = append_list(buf, n, total, "in", g->in, dims);
    total = append_list(buf, n, total, "k", g->k, dims);
    total = append_list(buf, n, total, "s", g->stride, dims);
    total = append_list(buf, n, total, "p", g->pad, dims);
    total = append_list(buf, n, total, "d", g->dil, dims);
    return append(buf, n, total, " g=%lld", (long long)g->groups);
}
