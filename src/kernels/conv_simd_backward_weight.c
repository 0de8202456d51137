/* Weight and bias gradients of the convolution on the simd.h vocabulary (kernels, compiled once
 * per ISA). Both blockings reduce over positions: layers with many input channels run the channel
 * micro-kernel over runs of a channel-last copy of the input; layers with few run dot products of
 * dy rows with the rows of an im2col (or shifted rows) of the image. 3x3 layers that fit go to
 * conv_winograd.c. dw and db are accumulated (+=), one partial sum per image. */
#include <string.h>

#include "conv_simd.h"
#include "dpt/status.h"

typedef enum {
    WEIGHT_GRAD_CHANNELS, /* channel micro-kernel; rows = runs of the channel-last input */
    WEIGHT_GRAD_DOTS,     /* dot products along positions of dy and an im2col of the image */
} weight_grad_kind;

static weight_grad_kind weight_grad_kind_of(const conv_sizes *sz) {
    return sz->Cg * sz->k[2] >= CHANNEL_TILE_MAX2 ? WEIGHT_GRAD_CHANNELS : WEIGHT_GRAD_DOTS;
}

typedef struct { /* offsets in floats */
    /* both: window offsets of the output positions */
    int64_t pos_off;
    /* dots: tap offsets, col-row offsets, padded x, im2col or shifted rows, vector partials */
    int64_t tap_off, row_off, x_padded, col, partial;
    /* channels: channel-last x, dy transposed, dw transposed */
    int64_t x_cl, dy_t, dw_t;
    int64_t end;
} weight_grad_layout;

static int64_t weight_grad_plan(const conv_sizes *sz, weight_grad_layout *b) {
    int64_t o = 0;
    memset(b, 0, sizeof *b);
    b->pos_off = o;
    o += round_up(sz->out_plane, 16);
    if (weight_grad_kind_of(sz) == WEIGHT_GRAD_DOTS) {
        b->tap_off = o;
        o += round_up(sz->K, 16);
        b->row_off = o;
        o += round_up(sz->K + 1, 16);
        b->x_padded = o;
        o += round_up(sz->Cg * sz->padded_plane + SLACK, 16);
        b->col = o; /* the im2col matrix, or the shifted rows plus a ones row */
        o += round_up(dpt__shifted_rows_ok(sz) ? dpt__shifted_rows_floats(sz) + sz->out_plane
                                               : (sz->K + 1) * round_up(sz->out_plane, VL),
                      16);
        b->partial = o;
        o += round_up(sz->Og * (sz->K + 1) * VL, 16);
    } else {
        b->x_cl = o;
        o += round_up(sz->padded_plane * sz->Cg, 16);
        b->dy_t = o;
        o += round_up(sz->out_plane * sz->OgPad, 16);
        b->dw_t = o;
        o += round_up(sz->taps * sz->Cg * sz->OgPad, 16);
    }
    return b->end = o;
}

int64_t dpt__simd_backward_weight_floats(const conv_sizes *sz) {
    weight_grad_layout b; /* Winograd has its own layouts from 0 */
    return max64(weight_grad_plan(sz, &b), dpt__wino_weight_grad_floats(sz));
}

/* acc: (OB, KB, VL) running vector sums, row o at acc + o*accso; dy: OB rows of P positions,
 * dyso apart; col: KB rows of P floats at col + row_off[j]; next: the OB rows of dy used next
 * (streamed from outside L2: prefetched one line per row and step). */
SIMD_INLINE void dot_kernel(const int OB, const int KB, float *acc, int64_t accso, const float *dy,
                            int64_t dyso, const float *col, const int32_t *row_off, int64_t P,
                            const float *next) {
    vf c[DOT_BLOCK_CH * DOT_BLOCK_ROWS], g[DOT_BLOCK_CH];
    const float *cr[DOT_BLOCK_ROWS];
    SIMD_UNROLL
    for (int j = 0; j < KB; j++)
        cr[j] = col + row_off[j];
    SIMD_UNROLL
    for (int o = 0; o < OB; o++) {
        SIMD_UNROLL
        for (int j = 0; j < KB; j++)
            c[o * KB + j] = V_LOAD(acc + o * accso + j * VL);
    }
    int64_t p = 0;
    for (; p + VL <= P; p += VL) {
        SIMD_UNROLL
        for (int o = 0; o < OB; o++) {
            V_PREFETCH(next + o * dyso + p);
            g[o] = V_LOAD(dy + o * dyso + p);
        }
        SIMD_UNROLL
        for (int j = 0; j < KB; j++) {
            vf xv = V_LOAD(cr[j] + p);
            if (OB > 1)
                V_PIN(xv);
            SIMD_UNROLL
            for (int o = 0; o < OB; o++)
                c[o * KB + j] = V_FMA(g[o], xv, c[o * KB + j]);
        }
    }
    if (p < P) { /* masked tail: lanes past P read as 0 from both */
        SIMD_UNROLL
        for (int o = 0; o < OB; o++)
            g[o] = V_LOAD_N(dy + o * dyso + p, (int)(P - p));
        SIMD_UNROLL
        for (int j = 0; j < KB; j++) {
            const vf xv = V_LOAD_N(cr[j] + p, (int)(P - p));
            SIMD_UNROLL
            for (int o = 0; o < OB; o++)
                c[o * KB + j] = V_FMA(g[o], xv, c[o * KB + j]);
        }
    }
    SIMD_UNROLL
    for (int o = 0; o < OB; o++) {
        SIMD_UNROLL
        for (int j = 0; j < KB; j++)
            V_STORE(acc + o * accso + j * VL, c[o * KB + j]);
    }
}

/* dot_kernel with OB and KB as compile-time constants. */
static void run_dot_kernel(int OB, int KB, float *acc, int64_t accso, const float *dy, int64_t dyso,
                           const float *col, const int32_t *row_off, int64_t P, const float *next) {
#define BLOCK_CALL(ob, kb, one) dot_kernel(ob, kb, acc, accso, dy, dyso, col, row_off, P, next)
    BLOCK_SWITCH(DOT_BLOCKS, OB, KB, 1)
#undef BLOCK_CALL
    DPT_ASSERT(!"run_dot_kernel: register block out of range");
}

/* pos_off[p]: offset of output position p's window origin in the padded input, times `scale`. */
static void window_offsets(int32_t *pos_off, const conv_sizes *sz, int64_t scale) {
    DPT_ASSERT(sz->padded_plane * scale < INT32_MAX);
    const int64_t pH = sz->padded[1], pW = sz->padded[2];
    int64_t p = 0;
    for (int64_t od = 0; od < sz->out[0]; od++)
        for (int64_t oh = 0; oh < sz->out[1]; oh++)
            for (int64_t ow = 0; ow < sz->out[2]; ow++)
                pos_off[p++] = (int32_t)(((od * sz->stride[0] * pH + oh * sz->stride[1]) * pW +
                                          ow * sz->stride[2]) *
                                         scale);
}

/* col rows k < K of one padded image xp: row k = (c, kd, kh, kw) at col + row_off[k], the input
 * under tap k at every output position. */
static void fill_im2col(float *col, const float *xp, const int32_t *row_off, const int32_t *tap_off,
                        const int32_t *pos_off, const conv_sizes *sz) {
    const int64_t oW = sz->out[2], P = sz->out_plane;
    for (int64_t k = 0; k < sz->K; k++) {
        float *ck = col + row_off[k];
        const float *xk = xp + tap_off[k];
        if (sz->stride[2] == 1) { /* each output row reads a contiguous input run */
            for (int64_t p = 0; p < P; p += oW)
                v_copy(ck + p, xk + pos_off[p], oW);
        } else
            for (int64_t p = 0; p < P; p++)
                ck[p] = xk[pos_off[p]];
    }
}

/* Per image: col = im2col of the padded input, (K + 1, ldc) with a last row of ones whose dot
 * product with dy is the bias gradient; then dot products of dy rows with col rows along the
 * positions, where both are contiguous: no transposes and, with aligned tensors, no split loads.
 * partial: (Og, K + 1, VL) vector sums of one group. */
static void weight_grad_dots(float *dw, float *db, const float *dy, const float *x,
                             const conv_sizes *sz, int32_t *pos_off, int32_t *tap_off,
                             int32_t *row_off, float *xp, float *col, float *partial) {
    const int64_t K1 = sz->K + 1, P = sz->out_plane;
    const int shifted = dpt__shifted_rows_ok(sz);
    /* row_off[k]: col row k = (c, kd, kh, kw), or the ones row for k = K, starts at col +
     * row_off[k] */
    int64_t ones;
    DPT_ASSERT(K1 * round_up(P, VL) + dpt__shifted_rows_floats(sz) < INT32_MAX);
    if (shifted) {
        dpt__shifted_rows_offsets(row_off, sz);
        ones = dpt__shifted_rows_floats(sz);
    } else {
        for (int64_t k = 0; k < sz->K; k++)
            row_off[k] = (int32_t)(k * round_up(P, VL));
        ones = sz->K * round_up(P, VL);
        window_offsets(pos_off, sz, 1);
        dpt__tap_offsets(tap_off, sz);
    }
    row_off[sz->K] = (int32_t)ones;
    memset(xp, 0, (size_t)(sz->Cg * sz->padded_plane + SLACK) * sizeof(float));
    memset(col, 0, (size_t)ones * sizeof(float));
    for (int64_t p = 0; p < P; p++)
        col[ones + p] = 1.0f;
    for (int64_t gi = 0; gi < sz->groups; gi++) {
        memset(partial, 0, (size_t)(sz->Og * K1 * VL) * sizeof(float));
        for (int64_t n = 0; n < sz->N; n++) {
            dpt__fill_padded(xp, x + (n * sz->C + gi * sz->Cg) * sz->in_plane, sz->Cg, sz);
            if (shifted)
                dpt__fill_shifted_rows(col, xp, sz->Cg, sz);
            else
                fill_im2col(col, xp, row_off, tap_off, pos_off, sz);
            const float *dy_g = dy + (n * sz->O + gi * sz->Og) * P;
            for (int64_t o = 0; o < sz->Og; o += DOT_BLOCK_CH) {
                const int OB = (int)min64(DOT_BLOCK_CH, sz->Og - o);
                for (int64_t k = 0; k < K1; k += DOT_BLOCK_ROWS) {
                    const int KB = (int)min64(DOT_BLOCK_ROWS, K1 - k);
                    /* the next rows: same rows while k advances, then the next block of o */
                    const int64_t o_next = k + DOT_BLOCK_ROWS < K1 ? o : min64(o + OB, sz->Og - OB);
                    run_dot_kernel(OB, KB, partial + (o * K1 + k) * VL, K1 * VL, dy_g + o * P, P,
                                   col, row_off + k, P, dy_g + o_next * P);
                }
            }
        }
        for (int64_t o = 0; o < sz->Og; o++) {
            for (int64_t k = 0; k < sz->K; k++)
                dw[(gi * sz->Og + o) * sz->K + k] += V_REDUCE(V_LOAD(partial + (o * K1 + k) * VL));
            if (db)
                db[gi * sz->Og + o] += V_REDUCE(V_LOAD(partial + (o * K1 + sz->K) * VL));
        }
    }
}

/* Rows of the micro-kernel are consecutive entries of the channel-last input x_cl: (kw, c) runs
 * when dilation along W is 1. dy_t: per block of NV channel vectors at ob, a contiguous
 * (P, NV*VL) transpose of dy, so the micro-kernel streams it sequentially; dw_t: (taps*Cg,
 * OgPad), accumulated in place by the micro-kernel. The next image's x and dy are prefetched into
 * L2 during this image's calls. */
static void weight_grad_channels(float *dw, const float *dy, const float *x, const conv_sizes *sz,
                                 int32_t *pos_off, float *x_cl, float *dy_t, float *dw_t) {
    const int64_t Cg = sz->Cg, ld = sz->OgPad, P = sz->out_plane;
    const int64_t pH = sz->padded[1], pW = sz->padded[2];
    const int runs_kw = sz->dil[2] == 1;
    const int64_t L = runs_kw ? sz->k[2] * Cg : Cg; /* rows per run */
    int64_t calls = 0;                              /* micro-kernel calls per (image, group) */
    for (int64_t ob = 0; ob < sz->Og; ob += 2 * VL)
        calls += sz->taps / (runs_kw ? sz->k[2] : 1) *
                 tiles_count(L, sz->Og - ob > VL ? CHANNEL_TILE_MAX2 : CHANNEL_TILE_MAX1);
    window_offsets(pos_off, sz, Cg);
    memset(x_cl, 0, (size_t)(sz->padded_plane * Cg) * sizeof(float));
    memset(dy_t, 0, (size_t)(P * ld) * sizeof(float));
    for (int64_t gi = 0; gi < sz->groups; gi++) {
        memset(dw_t, 0, (size_t)(sz->taps * Cg * ld) * sizeof(float));
        for (int64_t n = 0; n < sz->N; n++) {
            dpt__fill_padded_channel_last(x_cl, Cg, x + (n * sz->C + gi * Cg) * sz->in_plane, Cg,
                                          sz);
            const float *dy_g = dy + (n * sz->O + gi * sz->Og) * P;
            for (int64_t ob = 0; ob < sz->Og; ob += 2 * VL)
                dpt__transpose(dy_t + ob * P, (sz->Og - ob > VL ? 2 : 1) * VL, dy_g + ob * P, P,
                               min64(2 * VL, sz->Og - ob), P);
            prefetch_stream ps;
            const int more = n + 1 < sz->N;
            dpt__prefetch_init(&ps, more ? x + ((n + 1) * sz->C + gi * Cg) * sz->in_plane : NULL,
                               Cg * sz->in_plane, more ? dy_g + sz->O * P : NULL, sz->Og * P,
                               calls);
            for (int64_t ob = 0; ob < sz->Og; ob += 2 * VL) {
                const int NV = sz->Og - ob > VL ? 2 : 1;
                const int64_t nt = tiles_count(L, NV == 2 ? CHANNEL_TILE_MAX2 : CHANNEL_TILE_MAX1);
                for (int64_t kd = 0; kd < sz->k[0]; kd++)
                    for (int64_t kh = 0; kh < sz->k[1]; kh++)
                        for (int64_t kw = 0; kw < (runs_kw ? 1 : sz->k[2]); kw++) {
                            const int64_t base =
                                ((kd * sz->dil[0] * pH + kh * sz->dil[1]) * pW + kw * sz->dil[2]) *
                                Cg;
                            const int64_t row0 = ((kd * sz->k[1] + kh) * sz->k[2] + kw) * Cg;
                            for (int64_t t = 0; t < nt; t++) {
                                int64_t j0;
                                int R;
                                tile_bounds(L, nt, t, &j0, &R);
                                float *acc = dw_t + (row0 + j0) * ld + ob;
                                dpt__channel_kernel(acc, ld, acc, R, NV, 1, x_cl + base + j0,
                                                    pos_off, P, dy_t + ob * P, NV * VL, 0, &ps);
                            }
                        }
            }
        }
        for (int64_t o = 0; o < sz->Og; o++)
            for (int64_t c = 0; c < Cg; c++)
                for (int64_t t = 0; t < sz->taps; t++)
                    dw[((gi * sz->Og + o) * Cg + c) * sz->taps + t] += dw_t[(t * Cg + c) * ld + o];
    }
}

/* db: (O) += sum over n and positions of dy. Four independent vector sums per row, so the adds
 * are not one latency chain; the per-row totals add up in double. */
static void bias_grad(float *db, const float *dy, const conv_sizes *sz) {
    const int64_t P = sz->out_plane;
    for (int64_t o = 0; o < sz->O; o++) {
        double s = 0.0;
        for (int64_t n = 0; n < sz->N; n++) {
            const float *r = dy + (n * sz->O + o) * P;
            vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
            int64_t i = 0;
            for (; i + 4 * VL <= P; i += 4 * VL) {
                a0 = V_ADD(a0, V_LOAD(r + i));
                a1 = V_ADD(a1, V_LOAD(r + i + VL));
                a2 = V_ADD(a2, V_LOAD(r + i + 2 * VL));
                a3 = V_ADD(a3, V_LOAD(r + i + 3 * VL));
            }
            for (; i + VL <= P; i += VL)
                a0 = V_ADD(a0, V_LOAD(r + i));
            float t = V_REDUCE(V_ADD(V_ADD(a0, a1), V_ADD(a2, a3)));
            for (; i < P; i++)
                t += r[i];
            s += t;
        }
        db[o] += (float)s;
    }
}

void dpt__simd_backward_weight(float *dw, float *db, const float *dy, const float *x,
                               const conv_sizes *sz, float *work) {
    if (dpt__wino_one_channel_use(sz)) {
        dpt__wino_one_channel_backward_weight(dw, db, dy, x, sz, work);
        return;
    }
    if (dpt__wino_use(sz)) {
        dpt__wino_backward_weight(dw, dy, x, sz, work);
        if (db)
            bias_grad(db, dy, sz);
        return;
    }
    weight_grad_layout ws;
    weight_grad_plan(sz, &ws);
    int32_t *pos_off = (int32_t *)(work + ws.pos_off);
    if (weight_grad_kind_of(sz) == WEIGHT_GRAD_DOTS) {
        weight_grad_dots(dw, db, dy, x, sz, pos_off, (int32_t *)(work + ws.tap_off),
                         (int32_t *)(work + ws.row_off), work + ws.x_padded, work + ws.col,
                         work + ws.partial);
        return;
    }
    weight_grad_channels(dw, dy, x, sz, pos_off, work + ws.x_cl, work + ws.dy_t, work + ws.dw_t);
    if (db)
        bias_grad(db, dy, sz);
}
