/* The vector runs of batch norm (kernels, compiled once per ISA): the dispatch-table entries that
 * batchnorm.c's entry points call on one contiguous run of n values. They follow batchnorm.c's
 * scalar runs operation for operation, and its order of the sums (16 double lanes, folded by
 * halves), so that every path gives the same bits. kernel_table.c installs them only on a CPU
 * that runs the ISA. */
#include "dpt/status.h"
#include "kernel_table.h"
#include "simd.h"

/* The 16 sum lanes: SUM_VECS float vectors, widened into SUM_REGS double registers. */
enum { SUM_LANES = 16, SUM_VECS = SUM_LANES / VL, SUM_REGS = SUM_LANES / VD };

/* The floats p[0 .. live) (live <= SUM_LANES) in SUM_VECS vectors; the others read +0. Called with
 * live = SUM_LANES as a constant in the loops' bodies, where the masks fold away. */
SIMD_INLINE void load_block(vf v[SUM_VECS], const float *p, int64_t live) {
    SIMD_UNROLL
    for (int j = 0; j < SUM_VECS; j++)
        v[j] =
            live == SUM_LANES ? V_LOAD(p + j * VL) : V_LOAD_M(p + j * VL, v_mask_n(live - j * VL));
}

SIMD_INLINE void widen_block(vd d[SUM_REGS], const vf v[SUM_VECS]) {
    SIMD_UNROLL
    for (int j = 0; j < SUM_VECS; j++) {
        d[2 * j] = VD_WIDEN_LO(v[j]);
        d[2 * j + 1] = VD_WIDEN_HI(v[j]);
    }
}

/* batchnorm.c's fold16: lane j + lane j + 8, then + 4, + 2, + 1; the registers hold consecutive
 * lanes, so the first halvings pair whole registers. */
SIMD_INLINE double fold_lanes(vd a[SUM_REGS]) {
    SIMD_UNROLL
    for (int half = SUM_REGS / 2; half >= 1; half /= 2) {
        SIMD_UNROLL
        for (int j = 0; j < half; j++)
            a[j] = VD_ADD(a[j], a[j + half]);
    }
    return vd_reduce_halves(a[0]);
}

/* sum x and sum x^2 (x*x is exact in double: one fused step). Padding lanes read +0, and adding
 * +0 leaves a partial sum unchanged (it is never -0). */
SIMD_INLINE void stats_block(vd p[SUM_REGS], vd q[SUM_REGS], const float *a, int64_t live) {
    vf v[SUM_VECS];
    vd d[SUM_REGS];
    load_block(v, a, live);
    widen_block(d, v);
    SIMD_UNROLL
    for (int j = 0; j < SUM_REGS; j++) {
        p[j] = VD_ADD(p[j], d[j]);
        q[j] = VD_FMA(d[j], d[j], q[j]);
    }
}

static dpt__bn_sums stats_run(const float *a, int64_t n) {
    vd p[SUM_REGS], q[SUM_REGS];
    for (int j = 0; j < SUM_REGS; j++)
        p[j] = q[j] = VD_ZERO();
    int64_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        stats_block(p, q, a + i, SUM_LANES);
    if (i < n)
        stats_block(p, q, a + i, n - i);
    return (dpt__bn_sums){fold_lanes(p), fold_lanes(q)};
}

/* sum g and sum g*(x - mu), g = dy masked by y > 0 when relu = 1. g*(x - mu) rounds (unlike x*x):
 * a separate mul and add, as the scalar code; padding lanes are zeroed after the product (0*(0 -
 * mu) is NaN for an infinite mu). */
SIMD_INLINE void grad_sums_block(int relu, vd p[SUM_REGS], vd q[SUM_REGS], const float *dy,
                                 const float *y, const float *x, vd mu, int64_t live) {
    vf g[SUM_VECS], t[SUM_VECS];
    vd gd[SUM_REGS], td[SUM_REGS];
    load_block(g, dy, live);
    if (relu) {
        vf yv[SUM_VECS];
        load_block(yv, y, live);
        SIMD_UNROLL
        for (int j = 0; j < SUM_VECS; j++)
            g[j] = V_MASKZ(V_CMP_GT(yv[j], V_ZERO()), g[j]);
    }
    load_block(t, x, live);
    widen_block(gd, g);
    widen_block(td, t);
    SIMD_UNROLL
    for (int j = 0; j < SUM_REGS; j++) {
        vd r = VD_MUL(gd[j], VD_SUB(td[j], mu));
        if (live < SUM_LANES)
            r = VD_MASKZ(vd_mask_n(live - j * VD), r);
        p[j] = VD_ADD(p[j], gd[j]);
        q[j] = VD_ADD(q[j], r);
    }
}

static dpt__bn_sums grad_sums_run(int relu, const float *dy, const float *y, const float *x,
                                  float mu, int64_t n) {
    const vd vmu = VD_SET1(mu);
    vd p[SUM_REGS], q[SUM_REGS];
    for (int j = 0; j < SUM_REGS; j++)
        p[j] = q[j] = VD_ZERO();
    int64_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        grad_sums_block(relu, p, q, dy + i, y ? y + i : y, x + i, vmu, SUM_LANES);
    if (i < n)
        grad_sums_block(relu, p, q, dy + i, y ? y + i : y, x + i, vmu, n - i);
    return (dpt__bn_sums){fold_lanes(p), fold_lanes(q)};
}

/* The elementwise maps, batchnorm.c's affine_one and grad_one on VL lanes (no FMA: the same mul
 * and add). The ReLU keeps a NaN (u < 0 is false for it). */
SIMD_INLINE vf affine_lanes(int relu, vf x, vf mu, vf scale, vf shift) {
    const vf u = V_ADD(V_MUL(V_SUB(x, mu), scale), shift);
    return relu ? V_BLEND(V_CMP_LT(u, V_ZERO()), u, V_ZERO()) : u;
}

SIMD_INLINE vf grad_lanes(int relu, vf g, vf y, vf x, vf a, vf b, vf k, vf mu) {
    if (relu)
        g = V_MASKZ(V_CMP_GT(y, V_ZERO()), g);
    return V_MUL(a, V_SUB(V_SUB(g, b), V_MUL(k, V_SUB(x, mu))));
}

/* Runs go VL lanes at a time, then one masked vector; relu is tested per vector, a branch that
 * goes the same way for the whole run. A vector is read whole before it is written, so in-place
 * calls (y = x, dx = dy) are safe. */
static void affine_run(int relu, float *y, const float *x, float mu, float scale, float shift,
                       int64_t n) {
    const vf vmu = V_SET1(mu), vscale = V_SET1(scale), vshift = V_SET1(shift);
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        V_STORE(y + i, affine_lanes(relu, V_LOAD(x + i), vmu, vscale, vshift));
    if (i < n) {
        const int tail = (int)(n - i);
        const vf u = affine_lanes(relu, V_LOAD_N(x + i, tail), vmu, vscale, vshift);
        V_STORE_N(y + i, u, tail);
    }
}

static void grad_run(int relu, float *dx, const float *dy, const float *y, const float *x, float a,
                     float b, float k, float mu, int64_t n) {
    const vf va = V_SET1(a), vb = V_SET1(b), vk = V_SET1(k), vmu = V_SET1(mu);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        const vf yv = relu ? V_LOAD(y + i) : V_ZERO();
        V_STORE(dx + i, grad_lanes(relu, V_LOAD(dy + i), yv, V_LOAD(x + i), va, vb, vk, vmu));
    }
    if (i < n) {
        const int tail = (int)(n - i);
        const vmask live = v_mask_first(tail);
        const vf yv = relu ? V_LOAD_M(y + i, live) : V_ZERO();
        const vf g =
            grad_lanes(relu, V_LOAD_M(dy + i, live), yv, V_LOAD_M(x + i, live), va, vb, vk, vmu);
        V_STORE_N(dx + i, g, tail);
    }
}

void ISA_NAME(dpt__bn_fill)(dpt__kernel_table *t) {
    t->bn_stats = stats_run;
    t->bn_grad_sums = grad_sums_run;
    t->bn_affine = affine_run;
    t->bn_grad = grad_run;
}
