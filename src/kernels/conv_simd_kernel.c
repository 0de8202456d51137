/* The micro-kernels of the SIMD convolution's direct passes (kernels, compiled once per ISA), and
 * the L2 prefetch streams they advance. The channel micro-kernel (channels in the lanes, R
 * positions in registers, the reduction over a table of offsets) is the forward (over c, taps),
 * the scattered backward-data (over o), the backward-weight (over positions) and the Winograd
 * products; the row micro-kernel (positions along a row in the lanes) is the forward of layers
 * with few output channels, over rows of the padded image or over its shifted rows. */
#include "conv_simd.h"
#include "dpt/status.h"

void dpt__prefetch_init(prefetch_stream *s, const float *a, int64_t na, const float *b, int64_t nb,
                        int64_t calls) {
    s->p[0] = (const char *)a;
    s->end[0] = s->p[0] + (a ? na : 0) * (int64_t)sizeof(float);
    s->p[1] = (const char *)b;
    s->end[1] = s->p[1] + (b ? nb : 0) * (int64_t)sizeof(float);
    const int64_t lines = ((a ? na : 0) + (b ? nb : 0)) * (int64_t)sizeof(float) / 64 + 2;
    s->step = calls > 0 ? (lines + calls - 1) / calls + 1 : 0;
}

SIMD_INLINE int64_t prefetch_take(prefetch_stream *s, const char **p) {
    const int i = s->p[0] < s->end[0] ? 0 : 1;
    const int64_t left = (s->end[i] - s->p[i] + 63) / 64;
    const int64_t n = left < s->step ? (left > 0 ? left : 0) : s->step;
    *p = s->p[i];
    s->p[i] += n * 64;
    return n;
}

/* One tile of dpt__channel_kernel with R, NV, rs and rows as compile-time constants: the R
 * positions are `rows` runs of R / rows, the runs a_row floats apart in `a`. The first n_prefetch
 * reduction steps also prefetch one line each from `prefetch` into L2: a steady trickle hidden
 * under the FMAs, where a burst between calls would stall on full miss queues. */
SIMD_INLINE void channel_tile(float *out, int64_t ldo, const float *init, const int R, const int NV,
                              const int64_t rs, const int rows, int64_t a_row, const float *a,
                              const int32_t *a_off, int64_t K, const float *B, int64_t ldb,
                              int nch, const char *prefetch, int64_t n_prefetch) {
    const int run = R / rows;
    vf c[CHANNEL_ACC_MAX];
    const int accum = init == out;
    SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        SIMD_UNROLL
        for (int v = 0; v < NV; v++)
            c[r * NV + v] = init && !accum ? V_LOAD(init + v * VL) : V_ZERO();
    }
    const int64_t k_prefetch = n_prefetch < K ? n_prefetch : K;
    int64_t k = 0;
#define CHANNEL_STEP(k)                                                                            \
    do {                                                                                           \
        const float *ap = a + a_off[k];                                                            \
        const float *bp = B + (k)*ldb;                                                             \
        const vf b0 = V_LOAD(bp);                                                                  \
        const vf b1 = NV > 1 ? V_LOAD(bp + VL) : b0;                                               \
        SIMD_UNROLL                                                                                \
        for (int r = 0; r < R; r++) {                                                              \
            const vf xa = V_SET1((r < run ? ap : ap + a_row)[(r % run) * rs]);                     \
            c[r * NV] = V_FMA(xa, b0, c[r * NV]);                                                  \
            if (NV > 1)                                                                            \
                c[r * NV + 1] = V_FMA(xa, b1, c[r * NV + 1]);                                      \
        }                                                                                          \
    } while (0)
    for (; k < k_prefetch; k++) {
        V_PREFETCH_L2(prefetch + 64 * k);
        CHANNEL_STEP(k);
    }
    for (; k < K; k++)
        CHANNEL_STEP(k);
#undef CHANNEL_STEP
    if (nch > 0) { /* channel-major: transpose the accumulators in registers, VL positions at once */
        SIMD_UNROLL
        for (int v = 0; v < NV; v++) {
            const int nj = nch - v * VL < VL ? nch - v * VL : VL;
            SIMD_UNROLL
            for (int r0 = 0; r0 < R; r0 += VL) {
                const int n = R - r0 < VL ? R - r0 : VL;
                vf t[VL];
                SIMD_UNROLL
                for (int r = 0; r < VL; r++)
                    t[r] = r < n ? c[(r0 + r) * NV + v] : V_ZERO();
                v_transpose(t);
                for (int j = 0; j < nj; j++) {
                    if (n == VL)
                        V_STORE(out + (v * VL + j) * ldo + r0, t[j]);
                    else
                        V_STORE_N(out + (v * VL + j) * ldo + r0, t[j], n);
                }
            }
        }
        return;
    }
    SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        SIMD_UNROLL
        for (int v = 0; v < NV; v++)
            V_STORE(out + r * ldo + v * VL,
                    accum ? V_ADD(V_LOAD(out + r * ldo + v * VL), c[r * NV + v]) : c[r * NV + v]);
    }
}

void dpt__channel_kernel(float *out, int64_t ldo, const float *init, int R, int NV, int64_t rs,
                         const float *a, const int32_t *a_off, int64_t K, const float *B,
                         int64_t ldb, int nch, prefetch_stream *ps) {
    DPT_ASSERT(nch == 0 || (R <= VL && nch <= NV * VL));
    const char *prefetch = NULL;
    const int64_t n_prefetch = ps ? prefetch_take(ps, &prefetch) : 0;
#define TILE_CASE(r, nv)                                                                           \
    case r:                                                                                        \
        if (rs == 1)                                                                               \
            channel_tile(out, ldo, init, r, nv, 1, 1, 0, a, a_off, K, B, ldb, nch, prefetch,       \
                         n_prefetch);                                                              \
        else                                                                                       \
            channel_tile(out, ldo, init, r, nv, rs, 1, 0, a, a_off, K, B, ldb, nch, prefetch,      \
                         n_prefetch);                                                              \
        return;
#define TILE_CASE2(r) TILE_CASE(r, 2)
#define TILE_CASE1(r) TILE_CASE(r, 1)
    if (NV == 2) {
        switch (R) {
            CHANNEL_TILES2(TILE_CASE2)
        default:
            break;
        }
    } else {
        switch (R) {
            CHANNEL_TILES1(TILE_CASE1)
        default:
            break;
        }
    }
#undef TILE_CASE2
#undef TILE_CASE1
#undef TILE_CASE
    DPT_ASSERT(!"dpt__channel_kernel: register block out of range");
}

void dpt__channel_kernel_two_rows(float *out, int64_t ldo, const float *init, int run,
                                  const float *a, int64_t a_row, const int32_t *a_off, int64_t K,
                                  const float *B, int nch, prefetch_stream *ps) {
    DPT_ASSERT(nch > 0 && nch <= VL);
    const char *prefetch = NULL;
    const int64_t n_prefetch = ps ? prefetch_take(ps, &prefetch) : 0;
#define TWO_ROW_CASE(r)                                                                            \
    case r:                                                                                        \
        channel_tile(out, ldo, init, 2 * (r), 1, 1, 2, a_row, a, a_off, K, B, VL, nch, prefetch,   \
                     n_prefetch);                                                                  \
        return;
    switch (run) {
        CHANNEL_TILES2(TWO_ROW_CASE)
    default:
        break;
    }
#undef TWO_ROW_CASE
    DPT_ASSERT(!"dpt__channel_kernel_two_rows: register block out of range");
}

/* Row block: OB channels x RB rows x WV vectors along a row.
 * y: rows of the block, y[o*yso + r*ysr + j]; a: padded input at the block origin, rows asr
 * apart; w: (OB, K) natural weights; nlast: valid lanes of the last vector. */
SIMD_INLINE void row_kernel(float *y, int64_t yso, int64_t ysr, int nlast, const int OB,
                            const int RB, const int WV, const float *a, int64_t asr,
                            const int32_t *a_off, int64_t K, const float *w, const float *bias) {
    vf c[ROW_ACC_MAX];
    SIMD_UNROLL
    for (int o = 0; o < OB; o++) {
        const vf bo = bias ? V_SET1(bias[o]) : V_ZERO();
        SIMD_UNROLL
        for (int i = 0; i < RB * WV; i++)
            c[o * RB * WV + i] = bo;
    }
    for (int64_t k = 0; k < K; k++) {
        const float *ap = a + a_off[k];
        vf wv[ROW_BLOCK_CH];
        SIMD_UNROLL
        for (int o = 0; o < OB; o++)
            wv[o] = V_SET1(w[o * K + k]);
        SIMD_UNROLL
        for (int r = 0; r < RB; r++) {
            SIMD_UNROLL
            for (int v = 0; v < WV; v++) {
                const vf xv = V_LOAD(ap + r * asr + v * VL);
                SIMD_UNROLL
                for (int o = 0; o < OB; o++)
                    c[(o * RB + r) * WV + v] = V_FMA(wv[o], xv, c[(o * RB + r) * WV + v]);
            }
        }
    }
    SIMD_UNROLL
    for (int o = 0; o < OB; o++) {
        SIMD_UNROLL
        for (int r = 0; r < RB; r++) {
            SIMD_UNROLL
            for (int v = 0; v < WV - 1; v++)
                V_STORE(y + o * yso + r * ysr + v * VL, c[(o * RB + r) * WV + v]);
            float *yl = y + o * yso + r * ysr + (WV - 1) * VL;
            if (nlast == VL)
                V_STORE(yl, c[(o * RB + r) * WV + WV - 1]);
            else
                V_STORE_N(yl, c[(o * RB + r) * WV + WV - 1], nlast);
        }
    }
}

/* row_kernel with OB, RB and WV as compile-time constants. */
static void run_row_kernel(int OB, int RB, int WV, float *y, int64_t yso, int64_t ysr, int nlast,
                           const float *a, int64_t asr, const int32_t *a_off, int64_t K,
                           const float *w, const float *bias) {
#define BLOCK_CALL(ob, rb, wv) row_kernel(y, yso, ysr, nlast, ob, rb, wv, a, asr, a_off, K, w, bias)
    BLOCK_SWITCH(ROW_BLOCKS, OB, RB, WV)
#undef BLOCK_CALL
    DPT_ASSERT(!"run_row_kernel: register block out of range");
}

void dpt__row_kernel(int OB, int RB, int WV, float *y, int64_t yso, int64_t ysr, int nlast,
                     const float *a, int64_t asr, const int32_t *a_off, int64_t K, const float *w,
                     const float *bias, prefetch_stream *ps) {
    run_row_kernel(OB, RB, WV, y, yso, ysr, nlast, a, asr, a_off, K, w, bias);
    const char *p;
    for (int64_t l = prefetch_take(ps, &p); l > 0; l--, p += 64)
        V_PREFETCH_L2(p);
}

void dpt__shifted_kernel(int OB, int WV, float *y, int64_t yso, int nlast, const float *a,
                         const int32_t *run_off, int64_t K, const float *w, const float *bias) {
#define BLOCK_CALL(ob, rb, wv) row_kernel(y, yso, 0, nlast, ob, rb, wv, a, 0, run_off, K, w, bias)
    BLOCK_SWITCH(SHIFTED_BLOCKS, OB, 1, WV)
#undef BLOCK_CALL
    DPT_ASSERT(!"dpt__shifted_kernel: register block out of range");
}
