/* Pooling kernels (kernels): max and average pooling over 1-, 2- and 3-D windows, forward and
 * backward, as torch.nn.functional.max_pool{n}d / avg_pool{n}d with ceil_mode=False, dilation 1.
 * 1-D and 2-D are 3-D with unit leading extents. Knows no layers; never allocates.
 * https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "dpt/ops.h"
#include "kernel_table.h"
#include "simd.h" /* the portable flavor: this file is compiled once, for any CPU */

static const char *const dim_letter[3] = {"D", "H", "W"};
static const char *const field_name[4] = {"in", "k", "stride", "pad"};
static const int field_min[4] = {1, 1, 1, 0};

/* Elements of an extent (D, H, W). */
static int64_t volume(const int64_t e[3]) {
    return e[0] * e[1] * e[2];
}

dpt_status dpt_pool_geom_check(dpt_pool_geom *g) {
    if (g->dims < 1 || g->dims > 3)
        return dpt_errorf(DPT_EINVAL, "pool: dims = %d must be 1, 2 or 3", g->dims);
    if (g->N < 1)
        return dpt_errorf(DPT_EINVAL, "pool: N = %lld must be >= 1", (long long)g->N);
    if (g->C < 1)
        return dpt_errorf(DPT_EINVAL, "pool: C = %lld must be >= 1", (long long)g->C);
    if (g->count_include_pad != 0 && g->count_include_pad != 1)
        return dpt_errorf(DPT_EINVAL, "pool: count_include_pad = %d must be 0 or 1",
                          g->count_include_pad);
    int64_t plane = 1;
    for (int i = 0; i < 3; i++) {
        const char *L = dim_letter[i];
        int unused = i < 3 - g->dims; /* a leading dimension the user does not see */
        if (g->in[i] == 0)
            g->in[i] = 1;
        if (g->k[i] == 0)
            g->k[i] = 1;
        if (g->stride[i] == 0)
            g->stride[i] = g->k[i];
        const int64_t *const field[4] = {g->in, g->k, g->stride, g->pad};
        for (int f = 0; f < 4; f++)
            if (field[f][i] < field_min[f])
                return dpt_errorf(DPT_EINVAL, "pool: %s[%d] (%s) = %lld must be >= %d",
                                  field_name[f], i, L, (long long)field[f][i], field_min[f]);
        if (unused && (g->in[i] != 1 || g->k[i] != 1 || g->pad[i] != 0))
            return dpt_errorf(DPT_EINVAL,
                              "pool: a %d-D pool has no %s dimension, but in[%d] = %lld, "
                              "k[%d] = %lld, pad[%d] = %lld (must be 1, 1, 0)",
                              g->dims, L, i, (long long)g->in[i], i, (long long)g->k[i], i,
                              (long long)g->pad[i]);
        /* pad <= k - pad is 2*pad <= k without overflow. */
        if (g->pad[i] > g->k[i] - g->pad[i])
            return dpt_errorf(DPT_EINVAL,
                              "pool: pad[%d] (%s) = %lld must be at most half the window "
                              "k[%d] = %lld",
                              i, L, (long long)g->pad[i], i, (long long)g->k[i]);
        if (g->k[i] - 2 * g->pad[i] > g->in[i])
            return dpt_errorf(DPT_EINVAL,
                              "pool: window k[%d] (%s) = %lld is larger than the padded input "
                              "in[%d] + 2*pad[%d] = %lld + %lld",
                              i, L, (long long)g->k[i], i, i, (long long)g->in[i],
                              (long long)(2 * g->pad[i]));
        /* in - (k - 2 pad) >= 0 by the check above: no overflow. */
        g->out[i] = (g->in[i] - (g->k[i] - 2 * g->pad[i])) / g->stride[i] + 1;
        if (__builtin_mul_overflow(plane, g->in[i], &plane) || plane > INT32_MAX)
            return dpt_errorf(DPT_ERANGE,
                              "pool: the input plane in[0]*in[1]*in[2] exceeds %d elements "
                              "(argmax is int32)",
                              INT32_MAX);
    }
    /* The output can be larger than the input (2*pad = k, stride 1), so both are checked. */
    int64_t nc, total, out_total;
    if (__builtin_mul_overflow(g->N, g->C, &nc) || __builtin_mul_overflow(nc, plane, &total) ||
        __builtin_mul_overflow(nc, g->out[0], &out_total) ||
        __builtin_mul_overflow(out_total, g->out[1], &out_total) ||
        __builtin_mul_overflow(out_total, g->out[2], &out_total))
        return dpt_errorf(DPT_ERANGE, "pool: N*C times the input or output plane overflows int64");
    return DPT_OK;
}

/* The in-bounds part [lo[i], hi[i]) of the window of output o (a flat index into the
 * (oD, oH, oW) plane) along each dimension i; never empty when 2*pad <= k. */
typedef struct {
    int64_t lo[3], hi[3];
} pool_window;

static inline pool_window window_of(const dpt_pool_geom *g, int64_t o) {
    const int64_t p[3] = {o / (g->out[1] * g->out[2]), o / g->out[2] % g->out[1], o % g->out[2]};
    pool_window w;
    for (int i = 0; i < 3; i++) {
        const int64_t a = p[i] * g->stride[i] - g->pad[i], b = a + g->k[i];
        w.lo[i] = a < 0 ? 0 : a;
        w.hi[i] = b > g->in[i] ? g->in[i] : b;
    }
    return w;
}

/* Visits every in-bounds input offset `e` (into the (D, H, W) plane) of window `w`, in
 * (d, h, w) order, running the statement that follows. */
#define FOR_EACH_IN_WINDOW(g, w, e)                                                                \
    for (int64_t d_ = (w).lo[0]; d_ < (w).hi[0]; d_++)                                             \
        for (int64_t h_ = (w).lo[1]; h_ < (w).hi[1]; h_++)                                         \
            for (int64_t e = (d_ * (g)->in[1] + h_) * (g)->in[2] + (w).lo[2],                      \
                         e##_end = e - (w).lo[2] + (w).hi[2];                                      \
                 e < e##_end; e++)

/* One output of the 2x2 window: row-major scan, strictly greater (or NaN) wins, as the general
 * loop. */
static inline void max2x2_one(float *y, int32_t *at, const float *r0, const float *r1, int32_t base,
                              int32_t W) {
    const float v[4] = {r0[0], r0[1], r1[0], r1[1]};
    const int32_t idx[4] = {base, base + 1, base + W, base + W + 1};
    float best = v[0];
    int k = 0;
    for (int i = 1; i < 4; i++)
        if (v[i] > best || isnan(v[i])) {
            best = v[i];
            k = i;
        }
    *y = best;
    *at = idx[k];
}

/* "take the new value": new > best, or new is NaN (a NaN is the maximum, as in torch) */
static inline void select_lanes(vf *best, vi *at, vf v, vi vat) {
    const vmask take = V_MASK_OR(V_CMP_GT(v, *best), V_ISNAN(v));
    *best = V_BLEND(take, *best, v);
    *at = VI_BLEND(take, *at, vat);
}

/* One output row pair of the 2x2 path: r0, r1 the two input rows, `base` the plane offset of
 * r0[0], outputs ow in [0, oW). The vector rows (pool_simd.c) make the same selections as
 * max2x2_one in the same order, so every path gives the same y and argmax. */
static void max2x2_row_scalar(float *yr, int32_t *ar, const float *r0, const float *r1,
                              int32_t base, int32_t W, int64_t oW) {
    int64_t ow = 0;
    const vi step = VI_SET1(2 * VL), one = VI_SET1(1), wv = VI_SET1(W);
    vi at0 = VI_SET1(base);
    for (int l = 0; l < VL; l++)
        at0[l] += 2 * l;
    for (; ow + VL <= oW; ow += VL, at0 = VI_ADD(at0, step)) {
        vf a[2], b[2], best;
        v_deinterleave(V_LOAD(r0 + 2 * ow), V_LOAD(r0 + 2 * ow + VL), &a[0], &a[1]);
        v_deinterleave(V_LOAD(r1 + 2 * ow), V_LOAD(r1 + 2 * ow + VL), &b[0], &b[1]);
        best = a[0];
        vi at = at0;
        select_lanes(&best, &at, a[1], VI_ADD(at0, one));
        const vi at2 = VI_ADD(at0, wv);
        select_lanes(&best, &at, b[0], at2);
        select_lanes(&best, &at, b[1], VI_ADD(at2, one));
        V_STORE(yr + ow, best);
        VI_STORE(ar + ow, at);
    }
    for (; ow < oW; ow++)
        max2x2_one(yr + ow, ar + ow, r0 + 2 * ow, r1 + 2 * ow, base + (int32_t)(2 * ow), W);
}

static void max2x2_plane_scalar(float *y, int32_t *argmax, const float *x, int32_t W, int64_t oW,
                                int64_t oH) {
    for (int64_t k = 0; k < oH; k++)
        max2x2_row_scalar(y + k * oW, argmax + k * oW, x + 2 * k * W, x + (2 * k + 1) * W,
                          (int32_t)(2 * k) * W, W, oW);
}

/* The 2x2 stride-2 unpadded window of 2-D models, without the general clipping arithmetic, one
 * output row at a time with branch-free selects (the comparisons are data-random, so branches
 * would mispredict half the time): 16 outputs per step with AVX-512F, 8 with AVX2, 4 with
 * simd.h's portable flavor; one table call per plane. */
static void maxpool2x2(float *y, int32_t *argmax, const float *x, const dpt_pool_geom *g) {
    const int64_t H = g->in[1], W = g->in[2], oH = g->out[1], oW = g->out[2];
    dpt__maxpool_plane_fn *const plane = dpt__kernels()->maxpool2x2_plane;
    for (int64_t nc = 0; nc < g->N * g->C; nc++)
        plane(y + nc * oH * oW, argmax + nc * oH * oW, x + nc * H * W, (int32_t)W, oW, oH);
}

/* ---- backward of the 2x2 path: each input element belongs to at most one window, so dx is
 * written in one pass (no zeroing pass, no scattered read-modify-write): the window's dy lands
 * where its argmax points, +0 elsewhere. 0 + dy, as the general path's zero-then-add computes it
 * (a -0 gradient becomes +0). An argmax outside its window is a bug (asserted, as there). */

/* Row pair of dx (d0, d1: rows 2oh and 2oh + 1, the first 2*oW columns) from one row of dy and
 * argmax. */
static void unpool2x2_row_scalar(float *d0, float *d1, const float *dyr, const int32_t *ar,
                                 int32_t base, int32_t W, int64_t oW) {
    for (int64_t ow = 0; ow < oW; ow++) {
        const int32_t at = ar[ow] - (base + (int32_t)(2 * ow));
        const float v = 0.0f + dyr[ow];
        DPT_ASSERT(at == 0 || at == 1 || at == W || at == W + 1);
        d0[2 * ow] = at == 0 ? v : 0.0f;
        d0[2 * ow + 1] = at == 1 ? v : 0.0f;
        d1[2 * ow] = at == W ? v : 0.0f;
        d1[2 * ow + 1] = at == W + 1 ? v : 0.0f;
    }
}

static void unpool2x2_plane_scalar(float *dx, const float *dy, const int32_t *argmax, int32_t W,
                                   int64_t oW, int64_t oH) {
    for (int64_t k = 0; k < oH; k++)
        unpool2x2_row_scalar(dx + 2 * k * W, dx + (2 * k + 1) * W, dy + k * oW, argmax + k * oW,
                             (int32_t)(2 * k) * W, W, oW);
}

static void maxunpool2x2(float *dx, const float *dy, const int32_t *argmax,
                         const dpt_pool_geom *g) {
    const int64_t H = g->in[1], W = g->in[2], oH = g->out[1], oW = g->out[2];
    dpt__maxunpool_plane_fn *const plane = dpt__kernels()->maxunpool2x2_plane;
    for (int64_t nc = 0; nc < g->N * g->C; nc++) {
        float *dxp = dx + nc * H * W;
        plane(dxp, dy + nc * oH * oW, argmax + nc * oH * oW, (int32_t)W, oW, oH);
        if (W > 2 * oW) /* an odd width: the last column is in no window */
            for (int64_t r = 0; r < 2 * oH; r++)
                dxp[r * W + W - 1] = 0.0f;
        if (H > 2 * oH) /* an odd height: the last row is in no window */
            memset(dxp + 2 * oH * W, 0, (size_t)W * sizeof *dxp);
    }
}

/* The vector paths are pool_simd.c, compiled once per ISA. */
void dpt__pool_fill_table(dpt__kernel_table *t, dpt__isa isa) {
    t->maxpool2x2_plane = max2x2_plane_scalar;
    t->maxunpool2x2_plane = unpool2x2_plane_scalar;
#ifdef DPT_KERNELS_X86
    if (isa == DPT__ISA_AVX512)
        dpt__pool_fill_avx512(t);
    else if (isa == DPT__ISA_AVX2)
        dpt__pool_fill_avx2(t);
#endif
}

static int is_2x2(const dpt_pool_geom *g) {
    return g->in[0] == 1 && g->k[0] == 1 && g->k[1] == 2 && g->k[2] == 2 && g->stride[1] == 2 &&
           g->stride[2] == 2 && g->pad[1] == 0 && g->pad[2] == 0;
}

void dpt_maxpool_forward(float *y, int32_t *argmax, const float *x, const dpt_pool_geom *g) {
    if (is_2x2(g)) {
        maxpool2x2(y, argmax, x, g);
        return;
    }
    const int64_t plane = volume(g->in), oplane = volume(g->out);
    for (int64_t nc = 0; nc < g->N * g->C; nc++) {
        const float *restrict xp = x + nc * plane;
        float *restrict yp = y + nc * oplane;
        int32_t *restrict ap = argmax + nc * oplane;
        for (int64_t o = 0; o < oplane; o++) {
            const pool_window w = window_of(g, o);
            float best = -INFINITY;
            /* kept if the window is all -inf */
            int64_t at = (w.lo[0] * g->in[1] + w.lo[1]) * g->in[2] + w.lo[2];
            FOR_EACH_IN_WINDOW(g, w, e) {
                if (xp[e] > best || isnan(xp[e])) {
                    best = xp[e];
                    at = e;
                }
            }
            yp[o] = best;
            ap[o] = (int32_t)at;
        }
    }
}

/* dy, argmax: (N, C, oD, oH, oW)  dx: (N, C, D, H, W), written: zero, then dx[argmax] += dy. */
void dpt_maxpool_backward(float *dx, const float *dy, const int32_t *argmax,
                          const dpt_pool_geom *g) {
    /* Rows of up to 8 outputs are cheaper zeroed and scattered (measured at 14x14 inputs: the
     * per-row overhead of the one-pass writer outweighs the pass it saves). */
    if (is_2x2(g) && g->out[2] > 8) {
        maxunpool2x2(dx, dy, argmax, g);
        return;
    }
    const int64_t plane = volume(g->in), oplane = volume(g->out);
    memset(dx, 0, (size_t)(g->N * g->C * plane) * sizeof *dx);
    for (int64_t nc = 0; nc < g->N * g->C; nc++) {
        float *restrict dxp = dx + nc * plane;
        const float *restrict dyp = dy + nc * oplane;
        const int32_t *restrict ap = argmax + nc * oplane;
        for (int64_t o = 0; o < oplane; o++) {
            DPT_ASSERT(ap[o] >= 0 && ap[o] < plane);
            dxp[ap[o]] += dyp[o];
        }
    }
}

static inline int64_t avg_divisor(const dpt_pool_geom *g, const pool_window *w) {
    return g->count_include_pad
               ? g->k[0] * g->k[1] * g->k[2]
               : (w->hi[0] - w->lo[0]) * (w->hi[1] - w->lo[1]) * (w->hi[2] - w->lo[2]);
}

/* x: (N, C, D, H, W)  y: (N, C, oD, oH, oW). The sum covers the in-bounds elements only; the
 * divisor is the whole window (count_include_pad) or the in-bounds count. With floor mode a window
 * never reaches past the padding, so the whole window is prod(k), as in torch. */
void dpt_avgpool_forward(float *y, const float *x, const dpt_pool_geom *g) {
    const int64_t plane = volume(g->in), oplane = volume(g->out);
    for (int64_t nc = 0; nc < g->N * g->C; nc++) {
        const float *restrict xp = x + nc * plane;
        float *restrict yp = y + nc * oplane;
        for (int64_t o = 0; o < oplane; o++) {
            const pool_window w = window_of(g, o);
            float sum = 0.0f;
            FOR_EACH_IN_WINDOW(g, w, e)
            sum += xp[e];
            yp[o] = sum / (float)avg_divisor(g, &w);
        }
    }
}

/* dy: (N, C, oD, oH, oW)  dx: (N, C, D, H, W), written: every in-bounds element of a window gets
 * dy/divisor, accumulated over overlapping windows. */
void dpt_avgpool_backward(float *dx, const float *dy, const dpt_pool_geom *g) {
    const int64_t plane = volume(g->in), oplane = volume(g->out);
    memset(dx, 0, (size_t)(g->N * g->C * plane) * sizeof *dx);
    for (int64_t nc = 0; nc < g->N * g->C; nc++) {
        float *restrict dxp = dx + nc * plane;
        const float *restrict dyp = dy + nc * oplane;
        for (int64_t o = 0; o < oplane; o++) {
            const pool_window w = window_of(g, o);
            const float v = dyp[o] / (float)avg_divisor(g, &w);
            FOR_EACH_IN_WINDOW(g, w, e)
            dxp[e] += v;
        }
    }
}
