/* Backward-data convolution on the simd.h vocabulary (kernels, compiled once per ISA). With stride
 * 1 and pad <= dil*(k-1) it is a forward convolution of dy, padded by dil*(k-1) - pad, with the
 * kernel flipped and the channel roles swapped, unless that padding would make a third or more of
 * the forward's products multiply zeros (a 5x5 layer without padding) or dx has too few channels
 * for the forward's channel blocks (a first layer): then, per input channel, the rows (tap,
 * positions of dy) = W^T dy are formed by the shifted-row kernel and each dx row is summed from
 * them in registers (a col2im). Any other geometry scatters per-tap products of the channel
 * micro-kernel into a channel-last dx. */
#include <string.h>

#include "conv_simd.h"
#include "dpt/status.h"

static int backward_as_forward(const conv_sizes *sz) {
    for (int i = 0; i < 3; i++)
        if (sz->stride[i] != 1 || sz->pad[i] > sz->dil[i] * (sz->k[i] - 1))
            return 0;
    return 1;
}

/* Columns instead of the as-forward route when a third or more of its products would multiply
 * padding (dx positions >= 1.5 x dy positions), or when dx has so few channels (a first layer's
 * input gradient) that the forward's output-channel blocks would be mostly empty, if the columns'
 * sums over dy's channels are long enough to pay for storing them (lenet5's conv1, 6 channels,
 * ran 40 % slower by columns with AVX2). */
static int backward_by_columns(const conv_sizes *sz) {
    return backward_as_forward(sz) && sz->out_plane >= VL &&
           (2 * sz->in_plane >= 3 * sz->out_plane || (4 * sz->Cg <= VL && sz->Og >= 16));
}

/* Floats per row of dy and of the column rows: whole vectors, so loads of the last one stay in
 * the row. */
static int64_t column_ld(const conv_sizes *sz) {
    return round_up(sz->out_plane, VL);
}

typedef struct {                     /* offsets in floats */
    int64_t w_flipped, forward;      /* as a forward: flipped weights, the forward's workspace */
    int64_t w_taps, dy_rows, cols;   /* columns: (Cg, taps, Og) weights, dy copy, one channel's rows */
    int64_t o_off, w_scatter, dx_cl; /* scatter: o offsets, (taps, Og, CgPad) weights, dx */
    int64_t end;
} backward_data_layout;

static int64_t backward_data_plan(const conv_sizes *sz, backward_data_layout *b) {
    int64_t o = 0;
    memset(b, 0, sizeof *b);
    if (backward_by_columns(sz)) {
        b->o_off = o;
        o += round_up(sz->Og, 16);
        b->w_taps = o;
        o += round_up(sz->Cg * sz->taps * sz->Og, 16);
        b->dy_rows = o;
        o += round_up(sz->Og * column_ld(sz), 16);
        b->cols = o;
        o += round_up(sz->taps * column_ld(sz), 16);
    } else if (backward_as_forward(sz)) {
        conv_sizes t;
        dpt__sizes_transposed(&t, sz);
        b->w_flipped = o;
        o += round_up(sz->C * sz->Og * sz->taps, 16);
        b->forward = o;
        o += dpt__simd_forward_floats(&t);
    } else {
        b->o_off = o;
        o += round_up(sz->Og, 16);
        b->w_scatter = o;
        o += round_up(sz->taps * sz->Og * sz->CgPad, 16);
        b->dx_cl = o;
        o += round_up(sz->padded_plane * sz->CgPad, 16);
    }
    return b->end = o;
}

int64_t dpt__simd_backward_data_floats(const conv_sizes *sz) {
    backward_data_layout b;
    return backward_data_plan(sz, &b);
}

/* dx_cl: (pD, pH, pW, CgPad) += the products of tap t = (kd, kh, kw) for one (image, group):
 * dy_g: (Og, oD, oH, oW), w_t: (Og, CgPad). */
static void scatter_tap(float *dx_cl, const float *dy_g, const float *w_t, const int32_t *o_off,
                        int64_t kd, int64_t kh, int64_t kw, const conv_sizes *sz) {
    float out[CHANNEL_ACC_MAX * VL];
    const int64_t ld = sz->CgPad, pH = sz->padded[1], pW = sz->padded[2];
    for (int64_t cb = 0; cb < sz->Cg; cb += 2 * VL) {
        const int NV = sz->Cg - cb > VL ? 2 : 1;
        const int64_t nt = tiles_count(sz->out[2], NV == 2 ? CHANNEL_TILE_MAX2 : CHANNEL_TILE_MAX1);
        for (int64_t od = 0; od < sz->out[0]; od++)
            for (int64_t oh = 0; oh < sz->out[1]; oh++) {
                const float *arow = dy_g + (od * sz->out[1] + oh) * sz->out[2];
                const int64_t irow = ((od * sz->stride[0] + kd * sz->dil[0]) * pH +
                                      oh * sz->stride[1] + kh * sz->dil[1]) *
                                         pW +
                                     kw * sz->dil[2];
                for (int64_t ti = 0; ti < nt; ti++) {
                    int64_t ow0;
                    int R;
                    tile_bounds(sz->out[2], nt, ti, &ow0, &R);
                    dpt__channel_kernel(out, NV * VL, NULL, R, NV, 1, arow + ow0, o_off, sz->Og,
                                        w_t + cb, ld, 0, NULL);
                    for (int r = 0; r < R; r++) {
                        float *dst = dx_cl + (irow + (ow0 + r) * sz->stride[2]) * ld + cb;
                        for (int v = 0; v < NV; v++)
                            V_STORE(dst + v * VL,
                                    V_ADD(V_LOAD(dst + v * VL), V_LOAD(out + (r * NV + v) * VL)));
                    }
                }
            }
    }
}

/* w_scatter: (taps, Og, CgPad) weights of one group; dx_cl: (pD, pH, pW, CgPad). */
static void backward_data_scatter(float *dx, const float *dy, const float *w, const conv_sizes *sz,
                                  int32_t *o_off, float *w_scatter, float *dx_cl) {
    const int64_t ld = sz->CgPad, pH = sz->padded[1], pW = sz->padded[2];
    DPT_ASSERT(sz->Og * sz->out_plane < INT32_MAX);
    for (int64_t o = 0; o < sz->Og; o++)
        o_off[o] = (int32_t)(o * sz->out_plane);
    for (int64_t gi = 0; gi < sz->groups; gi++) {
        for (int64_t t = 0; t < sz->taps; t++)
            for (int64_t o = 0; o < sz->Og; o++)
                for (int64_t c = 0; c < ld; c++)
                    w_scatter[(t * sz->Og + o) * ld + c] =
                        c < sz->Cg ? w[((gi * sz->Og + o) * sz->Cg + c) * sz->taps + t] : 0.0f;
        for (int64_t n = 0; n < sz->N; n++) {
            const float *dy_g = dy + (n * sz->O + gi * sz->Og) * sz->out_plane;
            memset(dx_cl, 0, (size_t)(sz->padded_plane * ld) * sizeof(float));
            for (int64_t kd = 0; kd < sz->k[0]; kd++)
                for (int64_t kh = 0; kh < sz->k[1]; kh++)
                    for (int64_t kw = 0; kw < sz->k[2]; kw++) {
                        const int64_t t = (kd * sz->k[1] + kh) * sz->k[2] + kw;
                        scatter_tap(dx_cl, dy_g, w_scatter + t * sz->Og * ld, o_off, kd, kh, kw,
                                    sz);
                    }
            for (int64_t c = 0; c < sz->Cg; c++) /* the interior of dx_cl, channel-major */
                for (int64_t d = 0; d < sz->in[0]; d++)
                    for (int64_t h = 0; h < sz->in[1]; h++) {
                        float *dxr =
                            dx + (((n * sz->C + gi * sz->Cg + c) * sz->in[0] + d) * sz->in[1] + h) *
                                     sz->in[2];
                        const float *src =
                            dx_cl +
                            (((d + sz->pad[0]) * pH + h + sz->pad[1]) * pW + sz->pad[2]) * ld + c;
                        for (int64_t x = 0; x < sz->in[2]; x++)
                            dxr[x] = src[x * ld];
                    }
        }
    }
}

/* dx rows summed at once by sum_columns: independent dependency chains of vector adds. */
enum { SUM_ROWS = 4 };

/* dx_c: one input channel (D, H, W) = the sum of its column rows cols: (taps, ld), each tap's
 * products at every output position. A vector of a dx row sums, in registers and in tap order,
 * the masked loads of the taps that reach it, and is stored once (adding into dx tap by tap
 * would reload each store a lane over, which store forwarding cannot serve). Stride 1. */
static void sum_columns(float *dx_c, const float *cols, int64_t ld, const conv_sizes *sz) {
    const int64_t H = sz->in[1], W = sz->in[2], oW = sz->out[2], oH = sz->out[1];
    for (int64_t d = 0; d < sz->in[0]; d++)
        for (int64_t h0 = 0; h0 < H; h0 += SUM_ROWS)
            for (int64_t x0 = 0; x0 < W; x0 += VL) {
                vf acc[SUM_ROWS];
                SIMD_UNROLL
                for (int r = 0; r < SUM_ROWS; r++)
                    acc[r] = V_ZERO();
                for (int64_t kd = 0; kd < sz->k[0]; kd++) {
                    const int64_t od = d + sz->pad[0] - kd * sz->dil[0];
                    if (od < 0 || od >= sz->out[0])
                        continue;
                    for (int64_t kh = 0; kh < sz->k[1]; kh++) {
                        const int64_t oh0 = h0 + sz->pad[1] - kh * sz->dil[1]; /* of row h0 */
                        for (int64_t kw = 0; kw < sz->k[2]; kw++) {
                            const int64_t w0 = kw * sz->dil[2] - sz->pad[2]; /* of column 0 */
                            const int64_t lo = max64(w0, x0) - x0;
                            const int64_t hi = min64(min64(w0 + oW, W), x0 + VL) - x0;
                            if (hi <= lo)
                                continue;
                            const int64_t t = (kd * sz->k[1] + kh) * sz->k[2] + kw;
                            /* lane j of row r: column x0 + j - w0 of output row (od, oh0 + r) */
                            const float *src = cols + t * ld + (od * oH + oh0) * oW + x0 - w0;
                            const vmask m = v_mask_first((int)hi) & ~v_mask_first((int)lo);
                            SIMD_UNROLL
                            for (int r = 0; r < SUM_ROWS; r++)
                                if (oh0 + r >= 0 && oh0 + r < oH)
                                    acc[r] = V_ADD(acc[r], V_LOAD_M(src + r * oW, m));
                        }
                    }
                }
                SIMD_UNROLL
                for (int r = 0; r < SUM_ROWS; r++) {
                    if (h0 + r >= H)
                        break;
                    float *dst = dx_c + (d * H + h0 + r) * W + x0;
                    if (W - x0 >= VL)
                        V_STORE(dst, acc[r]);
                    else
                        V_STORE_N(dst, acc[r], (int)(W - x0));
                }
            }
}

/* backward_by_columns: per (image, group), dy copied into rows of whole vectors; per input channel
 * c, cols[t][p] = sum_o w[o][c][t] dy[o][p] over blocks of ROW_BLOCK_CH taps, then summed into dx
 * in tap order. */
static void backward_data_columns(float *dx, const float *dy, const float *w, const conv_sizes *sz,
                                  const backward_data_layout *ws, float *work) {
    const int64_t ld = column_ld(sz), P = sz->out_plane, Og = sz->Og, taps = sz->taps;
    int32_t *o_off = (int32_t *)(work + ws->o_off);
    float *w_taps = work + ws->w_taps, *dy_rows = work + ws->dy_rows, *cols = work + ws->cols;
    DPT_ASSERT(Og * ld < INT32_MAX);
    for (int64_t o = 0; o < Og; o++)
        o_off[o] = (int32_t)(o * ld);
    if (ld != P) /* dy is copied into rows of whole vectors, whose tails stay zero */
        memset(dy_rows, 0, (size_t)(Og * ld) * sizeof(float));
    /* taps in blocks of as even a size as ROW_BLOCK_CH allows (9 taps: 3 + 3 + 3, not
     * 4 + 4 + 1, whose last block would do one FMA per load) */
    const int64_t tap_blocks = (taps + ROW_BLOCK_CH - 1) / ROW_BLOCK_CH;
    for (int64_t gi = 0; gi < sz->groups; gi++) {
        for (int64_t c = 0; c < sz->Cg; c++) /* w_taps[c][t][o] = w[o][c][t] of this group */
            for (int64_t t = 0; t < taps; t++)
                for (int64_t o = 0; o < Og; o++)
                    w_taps[(c * taps + t) * Og + o] = w[((gi * Og + o) * sz->Cg + c) * taps + t];
        for (int64_t n = 0; n < sz->N; n++) {
            const float *dy_g = dy + (n * sz->O + gi * Og) * P, *rows = dy_g;
            if (ld != P) { /* rows of whole vectors, so that no load leaves dy */
                for (int64_t o = 0; o < Og; o++)
                    memcpy(dy_rows + o * ld, dy_g + o * P, (size_t)P * sizeof(float));
                rows = dy_rows;
            }
            for (int64_t c = 0; c < sz->Cg; c++) {
                for (int64_t t = 0, blk = 0; t < taps; blk++) {
                    const int OB = (int)((taps - t + tap_blocks - blk - 1) / (tap_blocks - blk));
                    for (int64_t p = 0; p < P; p += SHIFTED_VECS * VL) {
                        const int64_t rem = min64(P - p, SHIFTED_VECS * VL);
                        const int WV = (int)((rem + VL - 1) / VL);
                        dpt__shifted_kernel(OB, WV, cols + t * ld + p, ld,
                                            (int)(rem - (WV - 1) * VL), rows + p, o_off, Og,
                                            w_taps + (c * taps + t) * Og, NULL);
                    }
                    t += OB;
                }
                sum_columns(dx + ((n * sz->C + gi * sz->Cg + c) * sz->in_plane), cols, ld, sz);
            }
        }
    }
}

/* The layer's w: (O, C, 3, 3) as the transposed sizes' (C, O, 3, 3) Winograd kernel, flipped. */
static dpt__wino_weights wino_weights_flipped(const conv_sizes *sz) {
    return (dpt__wino_weights){.o_stride = 9, .c_stride = sz->C * 9, .flipped = 1};
}

/* Whether backward-data runs as a forward of dy through Winograd (then *t: its sizes), the one
 * route with weights to prepare (U of the flipped, transposed kernel); the others read w as it
 * is. */
static int as_forward_winograd(const conv_sizes *sz, conv_sizes *t) {
    if (backward_by_columns(sz) || !backward_as_forward(sz))
        return 0;
    dpt__sizes_transposed(t, sz);
    return dpt__wino_use(t);
}

void dpt__simd_backward_data(float *dx, const float *dy, const float *w, const conv_sizes *sz,
                             float *work) {
    backward_data_layout ws;
    backward_data_plan(sz, &ws);
    conv_sizes t;
    if (as_forward_winograd(sz, &t)) { /* reads w flipped in place */
        dpt__wino_forward(dx, dy, w, wino_weights_flipped(sz), NULL, &t, work + ws.forward);
        return;
    }
    if (backward_by_columns(sz)) {
        backward_data_columns(dx, dy, w, sz, &ws, work);
        return;
    }
    if (!backward_as_forward(sz)) {
        backward_data_scatter(dx, dy, w, sz, (int32_t *)(work + ws.o_off), work + ws.w_scatter,
                              work + ws.dx_cl);
        return;
    }
    dpt__sizes_transposed(&t, sz);
    /* w_flipped: (C, Og, kD, kH, kW), tap order reversed: [c][o][t] = w[o][c][taps-1-t] per
     * group. */
    float *wf = work + ws.w_flipped;
    for (int64_t gi = 0; gi < sz->groups; gi++)
        for (int64_t c = 0; c < sz->Cg; c++)
            for (int64_t o = 0; o < sz->Og; o++)
                for (int64_t tp = 0; tp < sz->taps; tp++)
                    wf[((gi * sz->Cg + c) * sz->Og + o) * sz->taps + tp] =
                        w[((gi * sz->Og + o) * sz->Cg + c) * sz->taps + sz->taps - 1 - tp];
    dpt__simd_forward(dx, dy, wf, NULL, &t, work + ws.forward);
}

int64_t dpt__simd_backward_data_prepared_floats(const conv_sizes *sz) {
    conv_sizes t;
    return as_forward_winograd(sz, &t) ? dpt__wino_prepared_floats(&t) : 0;
}

void dpt__simd_backward_data_prepare(float *p, const float *w, const conv_sizes *sz, int64_t c0,
                                     int64_t c1) {
    conv_sizes t;
    if (as_forward_winograd(sz, &t))
        dpt__wino_prepare(p, w, wino_weights_flipped(sz), &t, c0, c1);
}

void dpt__simd_backward_data_prepared(float *dx, const float *dy, const float *p,
                                      const conv_sizes *sz, float *work) {
    conv_sizes t;
    backward_data_layout ws;
    backward_data_plan(sz, &ws);
    DPT_ASSERT(as_forward_winograd(sz, &t));
    dpt__wino_forward_prepared(dx, dy, p, NULL, &t, work + ws.forward);
}
