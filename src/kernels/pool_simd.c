/* The vector rows of 2x2 stride-2 max pooling and of its backward (kernels, compiled once per
 * ISA): the dispatch-table entries that pool.c calls per plane, VL outputs per step. They
 * make the selections of pool.c's scalar rows in the same order, so every path gives the same y,
 * argmax and dx. kernel_table.c installs them only on a CPU that runs the ISA. */
#include "dpt/status.h"
#include "kernel_table.h"
#include "simd.h"

/* The argmax candidates of VL windows, in scan order: (0, 0), (0, 1), (1, 0), (1, 1). */
typedef struct {
    vi at[4];
} window_offsets;

/* top_left: the plane offset of each window's first element. */
SIMD_INLINE window_offsets offsets_of(vi top_left, vi row_step) {
    const vi one = VI_SET1(1), below = VI_ADD(top_left, row_step);
    return (window_offsets){{top_left, VI_ADD(top_left, one), below, VI_ADD(below, one)}};
}

/* The plane offsets of the top-left elements of the windows of outputs ow .. ow + VL - 1. */
SIMD_INLINE vi top_left_of(int32_t base, int64_t ow, vi lane_pairs) {
    return VI_ADD(VI_SET1(base + (int32_t)(2 * ow)), lane_pairs);
}

/* `live` outputs (<= VL; a constant VL in the loop body, where the masks fold away) of one row:
 * the inputs r0, r1 hold 2*live floats each. A later element wins when it is greater or NaN (a NaN
 * is the maximum, as in torch). */
SIMD_INLINE void max_block(float *yr, int32_t *ar, const float *r0, const float *r1,
                           window_offsets w, int64_t live) {
    vf a0, a1, b0, b1;
    if (live == VL) {
        a0 = V_LOAD(r0), a1 = V_LOAD(r0 + VL), b0 = V_LOAD(r1), b1 = V_LOAD(r1 + VL);
    } else {
        const vmask first = v_mask_n(2 * live), second = v_mask_n(2 * live - VL);
        a0 = V_LOAD_M(r0, first), a1 = V_LOAD_M(r0 + VL, second);
        b0 = V_LOAD_M(r1, first), b1 = V_LOAD_M(r1 + VL, second);
    }
    vf v[4];
    v_deinterleave(a0, a1, &v[0], &v[1]);
    v_deinterleave(b0, b1, &v[2], &v[3]);
    vf best = v[0];
    vi at = w.at[0];
    SIMD_UNROLL
    for (int i = 1; i < 4; i++) {
        const vmask take = V_MASK_OR(V_CMP_GT(v[i], best), V_ISNAN(v[i]));
        best = V_BLEND(take, best, v[i]);
        at = VI_BLEND(take, at, w.at[i]);
    }
    if (live == VL) {
        V_STORE(yr, best);
        VI_STORE(ar, at);
    } else {
        V_STORE_N(yr, best, (int)live);
        VI_STORE_N(ar, at, (int)live);
    }
}

SIMD_INLINE void max_row(float *yr, int32_t *ar, const float *r0, const float *r1, int32_t base,
                        int32_t W, int64_t oW) {
    const vi lane_pairs = VI_ADD(vi_lane_index(), vi_lane_index()), row_step = VI_SET1(W);
    int64_t ow = 0;
    for (; ow + VL <= oW; ow += VL)
        max_block(yr + ow, ar + ow, r0 + 2 * ow, r1 + 2 * ow,
                  offsets_of(top_left_of(base, ow, lane_pairs), row_step), VL);
    if (ow < oW)
        max_block(yr + ow, ar + ow, r0 + 2 * ow, r1 + 2 * ow,
                  offsets_of(top_left_of(base, ow, lane_pairs), row_step), oW - ow);
}

/* Backward, `live` outputs of one row: each window's 0 + dy (a -0 becomes +0, as pool.c's scalar
 * row) lands where its argmax points, +0 on the other three elements; d0, d1 are the window
 * rows, 2*live floats each. An argmax outside its window is a bug. */
SIMD_INLINE void unpool_block(float *d0, float *d1, const float *dyr, const int32_t *ar,
                              window_offsets w, int64_t live) {
    vf g;
    vi at;
    if (live == VL) {
        g = V_LOAD(dyr), at = VI_LOAD(ar);
    } else {
        const vmask lanes = v_mask_n(live);
        g = V_LOAD_M(dyr, lanes), at = VI_LOAD_M(ar, lanes);
    }
    g = V_ADD(V_ZERO(), g);
    vmask hit[4];
    SIMD_UNROLL
    for (int i = 0; i < 4; i++)
        hit[i] = VI_CMPEQ(at, w.at[i]);
    const unsigned live_bits = (unsigned)((1ull << live) - 1u);
    const unsigned found =
        v_mask_bits(V_MASK_OR(V_MASK_OR(hit[0], hit[1]), V_MASK_OR(hit[2], hit[3])));
    DPT_ASSERT((found & live_bits) == live_bits);
    float *const rows[2] = {d0, d1};
    SIMD_UNROLL
    for (int r = 0; r < 2; r++) {
        vf lo, hi;
        v_interleave(V_MASKZ(hit[2 * r], g), V_MASKZ(hit[2 * r + 1], g), &lo, &hi);
        if (live == VL) {
            V_STORE(rows[r], lo);
            V_STORE(rows[r] + VL, hi);
        } else {
            V_STORE_N(rows[r], lo, (int)min64(2 * live, VL));
            if (2 * live > VL)
                V_STORE_N(rows[r] + VL, hi, (int)(2 * live - VL));
        }
    }
}

SIMD_INLINE void unpool_row(float *d0, float *d1, const float *dyr, const int32_t *ar,
                           int32_t base, int32_t W, int64_t oW) {
    const vi lane_pairs = VI_ADD(vi_lane_index(), vi_lane_index()), row_step = VI_SET1(W);
    int64_t ow = 0;
    for (; ow + VL <= oW; ow += VL)
        unpool_block(d0 + 2 * ow, d1 + 2 * ow, dyr + ow, ar + ow,
                     offsets_of(top_left_of(base, ow, lane_pairs), row_step), VL);
    if (ow < oW)
        unpool_block(d0 + 2 * ow, d1 + 2 * ow, dyr + ow, ar + ow,
                     offsets_of(top_left_of(base, ow, lane_pairs), row_step), oW - ow);
}

static void max_plane(float *y, int32_t *argmax, const float *x, int32_t W, int64_t oW,
                      int64_t oH) {
    for (int64_t k = 0; k < oH; k++)
        max_row(y + k * oW, argmax + k * oW, x + 2 * k * W, x + (2 * k + 1) * W,
                (int32_t)(2 * k) * W, W, oW);
}

static void unpool_plane(float *dx, const float *dy, const int32_t *argmax, int32_t W, int64_t oW,
                         int64_t oH) {
    for (int64_t k = 0; k < oH; k++)
        unpool_row(dx + 2 * k * W, dx + (2 * k + 1) * W, dy + k * oW, argmax + k * oW,
                   (int32_t)(2 * k) * W, W, oW);
}

void ISA_NAME(dpt__pool_fill)(dpt__kernel_table *t) {
    t->maxpool2x2_plane = max_plane;
    t->maxunpool2x2_plane = unpool_plane;
}
