/* Forward convolution on the simd.h vocabulary (kernels, compiled once per ISA), for any
 * geometry, by one of three blockings: channels in the lanes (the channel micro-kernel), or, for
 * layers with few output channels, positions along a row in the lanes, over rows of the padded
 * image or over its shifted rows. 3x3 layers with enough channels go to conv_winograd.c. */
#include <string.h>

#include "conv_simd.h"
#include "dpt/status.h"

/* Positions in the lanes when the stride along W is 1 and channel lanes would be mostly empty or
 * the reduction too short to pay for the transposed tile store. */
static int forward_by_rows(const conv_sizes *sz) {
    return sz->stride[2] == 1 && (2 * sz->Og <= VL || sz->K < 32);
}

/* ... and of those, the ones with several output channels to share each input load run over the
 * shifted rows, vectorized along all positions at once. */
static int forward_by_shifted_rows(const conv_sizes *sz) {
    return forward_by_rows(sz) && dpt__shifted_rows_ok(sz) && sz->Og >= ROW_BLOCK_CH;
}

/* The channel blocking stores its tiles straight into (N, O, P) with in-register transposes when
 * a masked store is one instruction (AVX-512); AVX2 masked stores are scalar loops, so there
 * tiles go to a channel-last buffer that is transposed once per image. */
#define TILES_TO_OUTPUT (VL >= 16)

/* Whether the channel blocking computes two whole output rows per tile
 * (dpt__channel_kernel_two_rows): one channel vector, stride 1, rows that fit one tile each. */
static int forward_two_rows(const conv_sizes *sz, int NV) {
    return TILES_TO_OUTPUT && NV == 1 && sz->stride[2] == 1 && sz->out[2] <= CHANNEL_TILE_MAX2;
}

/* Positions per tile of the channel blocking for NV channel vectors. */
static int forward_tile_max(int NV) {
    return NV == 2 ? CHANNEL_TILE_MAX2
                   : (TILES_TO_OUTPUT && CHANNEL_TILE_MAX1 > VL ? VL : CHANNEL_TILE_MAX1);
}

typedef struct { /* offsets in floats */
    int64_t tap_off, packed_w, packed_b, y_cl, x_padded, x_shifted, end;
} forward_layout;

static int64_t forward_plan(const conv_sizes *sz, forward_layout *b) {
    int64_t o = 0;
    b->tap_off = o;
    o += round_up(sz->K, 16);
    b->packed_w = b->packed_b = b->y_cl = o;
    if (!forward_by_rows(sz)) {
        o += round_up(sz->groups * sz->K * sz->OgPad, 16);
        b->packed_b = o;
        o += round_up(sz->groups * sz->OgPad, 16);
        b->y_cl = o;
        if (!TILES_TO_OUTPUT)
            o += round_up(sz->out_plane * sz->OgPad, 16);
    }
    b->x_padded = o;
    o += round_up(sz->Cg * sz->padded_plane + SLACK, 16);
    b->x_shifted = o;
    if (forward_by_shifted_rows(sz))
        o += round_up(dpt__shifted_rows_floats(sz) + SLACK, 16);
    return b->end = o;
}

int64_t dpt__simd_forward_floats(const conv_sizes *sz) {
    forward_layout b; /* Winograd has its own layout from 0 */
    return max64(forward_plan(sz, &b), dpt__wino_forward_floats(sz));
}

/* Zeroes the padded image xp once (its borders stay zero across images), then copies in the
 * first image when x is given. */
static void forward_begin(float *xp, const float *x, const conv_sizes *sz) {
    memset(xp, 0, (size_t)(sz->Cg * sz->padded_plane + SLACK) * sizeof(float));
    if (x)
        dpt__fill_padded(xp, x, sz->Cg, sz);
}

/* packed_w: (G, OgPad/(2VL), K, 2VL) packed weights, one contiguous (K, 2VL) block per pair of
 * channel vectors (the last one (K, VL) when Og ends in a single vector), so that the
 * micro-kernel streams its weights sequentially  packed_b: (G, OgPad) bias, zero-padded (zeros
 * without bias)  xp: one padded image of Cg channels.
 * Tiles go straight to y (TILES_TO_OUTPUT), or to y_cl: (P, OgPad), transposed into y once per
 * image. While the micro-kernel runs, the next (image, group)'s input and this one's output are
 * prefetched into L2 a few lines per call, so the padded copy and the stores do not wait on L3. */
static void forward_channels(float *y, const float *x, const conv_sizes *sz, const float *packed_w,
                             const float *packed_b, const int32_t *tap_off, float *y_cl,
                             float *xp) {
    const int64_t rs = sz->stride[2], ld = sz->OgPad, P = sz->out_plane;
    const int64_t pH = sz->padded[1], pW = sz->padded[2];
    int64_t calls = 0; /* micro-kernel calls per (image, group) */
    for (int64_t ob = 0; ob < sz->Og; ob += 2 * VL) {
        const int NV = sz->Og - ob > VL ? 2 : 1;
        calls += forward_two_rows(sz, NV)
                     ? sz->out[0] * ((sz->out[1] + 1) / 2)
                     : sz->out[0] * sz->out[1] * tiles_count(sz->out[2], forward_tile_max(NV));
    }
    forward_begin(xp, x, sz);
    for (int64_t i = 0; i < sz->N * sz->groups; i++) { /* i = (image, group) */
        const int64_t n = i / sz->groups, gi = i % sz->groups;
        const float *xnext =
            i + 1 < sz->N * sz->groups ? x + (i + 1) * sz->Cg * sz->in_plane : NULL;
        float *yi = y + (n * sz->O + gi * sz->Og) * P;
        prefetch_stream ps;
        /* the next (image, group)'s input and output: its stores then hit L2 from the start */
        dpt__prefetch_init(&ps, xnext, sz->Cg * sz->in_plane, xnext ? yi + sz->Og * P : NULL,
                           sz->Og * P, calls);
        for (int64_t ob = 0; ob < sz->Og; ob += 2 * VL) {
            const int NV = sz->Og - ob > VL ? 2 : 1;
            const int nch = TILES_TO_OUTPUT ? (int)min64(NV * VL, sz->Og - ob) : 0;
            const int64_t nt = tiles_count(sz->out[2], forward_tile_max(NV));
            const float *B = packed_w + (gi * ld + ob) * sz->K; /* (K, NV*VL) block */
            const float *bias = packed_b + gi * ld + ob;
            const int two_rows = forward_two_rows(sz, NV);
            for (int64_t od = 0; od < sz->out[0]; od++)
                for (int64_t oh = 0; oh < sz->out[1]; oh++) {
                    const float *arow = xp + (od * sz->stride[0] * pH + oh * sz->stride[1]) * pW;
                    const int64_t p0 = (od * sz->out[1] + oh) * sz->out[2];
                    if (two_rows && oh + 1 < sz->out[1]) { /* rows oh, oh + 1: consecutive in y */
                        dpt__channel_kernel_two_rows(yi + ob * P + p0, P, bias, (int)sz->out[2],
                                                     arow, sz->stride[1] * pW, tap_off, sz->K, B,
                                                     nch, &ps);
                        oh++;
                        continue;
                    }
                    for (int64_t t = 0; t < nt; t++) {
                        int64_t ow0;
                        int R;
                        tile_bounds(sz->out[2], nt, t, &ow0, &R);
                        if (TILES_TO_OUTPUT)
                            dpt__channel_kernel(yi + ob * P + p0 + ow0, P, bias, R, NV, rs,
                                                arow + ow0 * rs, tap_off, sz->K, B, NV * VL, nch,
                                                &ps);
                        else
                            dpt__channel_kernel(y_cl + (p0 + ow0) * ld + ob, ld, bias, R, NV, rs,
                                                arow + ow0 * rs, tap_off, sz->K, B, NV * VL, 0,
                                                &ps);
                    }
                }
        }
        if (!TILES_TO_OUTPUT)
            dpt__transpose(yi, P, y_cl, ld, P, sz->Og);
        if (xnext)
            dpt__fill_padded(xp, xnext, sz->Cg, sz);
    }
}

/* Channels per row or shifted-row block from channel o on: ROW_BLOCK_CH while that many are
 * left, then one at a time. */
static int row_block_channels(const conv_sizes *sz, int64_t o) {
    return sz->Og - o >= ROW_BLOCK_CH ? ROW_BLOCK_CH : 1;
}

/* The output channels [o, o + OB) of one (image, group) that a row or shifted-row block
 * computes. */
typedef struct {
    int OB;
    const float *w; /* (OB, K) */
    const float *b; /* (OB), or NULL */
    float *y;       /* (OB, oD, oH, oW) */
} channel_block;

static channel_block channel_block_at(float *y, const float *w, const float *b, int64_t n,
                                      int64_t gi, int64_t o, const conv_sizes *sz) {
    const int64_t oc = gi * sz->Og + o; /* the first channel */
    return (channel_block){.OB = row_block_channels(sz, o),
                           .w = w + oc * sz->K,
                           .b = b ? b + oc : NULL,
                           .y = y + (n * sz->O + oc) * sz->out_plane};
}

/* Requires stride 1 along W. xp: one padded image of Cg channels. */
static void forward_rows(float *y, const float *x, const float *w, const float *b,
                         const conv_sizes *sz, const int32_t *tap_off, float *xp) {
    const int64_t oW = sz->out[2], asr = sz->stride[1] * sz->padded[2], P = sz->out_plane;
    const int64_t pH = sz->padded[1], pW = sz->padded[2];
    int64_t calls =
        0; /* dpt__row_kernel calls per (image, group), counted as the loops make them */
    for (int64_t o = 0; o < sz->Og;) {
        const int OB = row_block_channels(sz, o);
        const int RBmax = OB == 1 ? ROW_BLOCK_ROWS1 : ROW_BLOCK_ROWS;
        int64_t rb = 0;
        for (int64_t oh = 0; oh < sz->out[1]; rb++)
            oh += sz->out[1] - oh >= RBmax ? RBmax : 1;
        calls += sz->out[0] * rb * tiles_count(oW, ROW_BLOCK_VECS * VL);
        o += OB;
    }
    forward_begin(xp, NULL, sz);
    prefetch_stream ps;
    for (int64_t i = 0; i < sz->N * sz->groups; i++) { /* i = (image, group) */
        const int64_t n = i / sz->groups, gi = i % sz->groups, more = i + 1 < sz->N * sz->groups;
        /* the next (image, group)'s input and output, a few lines after each call */
        dpt__prefetch_init(&ps, more ? x + (i + 1) * sz->Cg * sz->in_plane : NULL,
                           sz->Cg * sz->in_plane, more ? y + (i + 1) * sz->Og * P : NULL,
                           sz->Og * P, calls);
        dpt__fill_padded(xp, x + (n * sz->C + gi * sz->Cg) * sz->in_plane, sz->Cg, sz);
        for (int64_t o = 0; o < sz->Og;) {
            const channel_block cb = channel_block_at(y, w, b, n, gi, o, sz);
            const int RBmax = cb.OB == 1 ? ROW_BLOCK_ROWS1 : ROW_BLOCK_ROWS;
            for (int64_t od = 0; od < sz->out[0]; od++)
                for (int64_t oh = 0; oh < sz->out[1];) {
                    const int RB = sz->out[1] - oh >= RBmax ? RBmax : 1;
                    const float *arow = xp + (od * sz->stride[0] * pH + oh * sz->stride[1]) * pW;
                    float *yrow = cb.y + (od * sz->out[1] + oh) * oW;
                    for (int64_t ow = 0; ow < oW; ow += ROW_BLOCK_VECS * VL) {
                        const int64_t rem = min64(oW - ow, ROW_BLOCK_VECS * VL);
                        const int WV = rem > VL ? ROW_BLOCK_VECS : 1;
                        const int nlast = (int)(rem - (WV - 1) * VL);
                        dpt__row_kernel(cb.OB, RB, WV, yrow + ow, P, oW, nlast, arow + ow, asr,
                                        tap_off, sz->K, cb.w, cb.b, &ps);
                    }
                    oh += RB;
                }
            o += cb.OB;
        }
    }
}

/* Requires forward_by_shifted_rows. Per image: the padded copy xp, its shifted rows xs, then
 * blocks of ROW_BLOCK_CH channels x SHIFTED_VECS vectors of flattened positions, stored straight
 * into y (whole vectors but the last one of each channel). */
static void forward_shifted(float *y, const float *x, const float *w, const float *b,
                            const conv_sizes *sz, int32_t *run_off, float *xp, float *xs) {
    const int64_t P = sz->out_plane;
    dpt__shifted_rows_offsets(run_off, sz);
    forward_begin(xp, NULL, sz);
    memset(xs + dpt__shifted_rows_floats(sz), 0, SLACK * sizeof(float)); /* the last tail vector */
    for (int64_t i = 0; i < sz->N * sz->groups; i++) {                   /* i = (image, group) */
        const int64_t n = i / sz->groups, gi = i % sz->groups;
        dpt__fill_padded(xp, x + (n * sz->C + gi * sz->Cg) * sz->in_plane, sz->Cg, sz);
        dpt__fill_shifted_rows(xs, xp, sz->Cg, sz);
        for (int64_t o = 0; o < sz->Og;) {
            const channel_block cb = channel_block_at(y, w, b, n, gi, o, sz);
            const int64_t vecs = cb.OB == 1 ? SHIFTED_VECS1 : SHIFTED_VECS;
            for (int64_t p = 0; p < P; p += vecs * VL) {
                const int64_t rem = min64(P - p, vecs * VL);
                const int WV = (int)((rem + VL - 1) / VL);
                dpt__shifted_kernel(cb.OB, WV, cb.y + p, P, (int)(rem - (WV - 1) * VL), xs + p,
                                    run_off, sz->K, cb.w, cb.b);
            }
            o += cb.OB;
        }
    }
}

/* Weights packed for forward_channels, and the bias zero-padded to whole vectors. */
static void pack_weights(float *packed_w, float *packed_b, const float *w, const float *b,
                         const conv_sizes *sz) {
    for (int64_t gi = 0; gi < sz->groups; gi++) {
        for (int64_t ob = 0; ob < sz->OgPad; ob += 2 * VL) {
            const int64_t nb = min64(2 * VL, sz->OgPad - ob);
            float *blk = packed_w + (gi * sz->OgPad + ob) * sz->K;
            for (int64_t k = 0; k < sz->K; k++)
                for (int64_t j = 0; j < nb; j++)
                    blk[k * nb + j] =
                        ob + j < sz->Og ? w[(gi * sz->Og + ob + j) * sz->K + k] : 0.0f;
        }
        for (int64_t o = 0; o < sz->OgPad; o++)
            packed_b[gi * sz->OgPad + o] = b && o < sz->Og ? b[gi * sz->Og + o] : 0.0f;
    }
}

/* w: (O, C, kD, kH, kW) as Winograd reads it (one group). */
static dpt__wino_weights wino_weights_of(const conv_sizes *sz) {
    return (dpt__wino_weights){.o_stride = sz->C * 9, .c_stride = 9, .flipped = 0};
}

int64_t dpt__simd_forward_prepared_floats(const conv_sizes *sz) {
    return dpt__wino_use(sz) ? dpt__wino_prepared_floats(sz) : 0;
}

void dpt__simd_forward_prepare(float *p, const float *w, const conv_sizes *sz, int64_t o0,
                               int64_t o1) {
    dpt__wino_prepare(p, w, wino_weights_of(sz), sz, o0, o1);
}

void dpt__simd_forward_prepared(float *y, const float *x, const float *p, const float *b,
                                const conv_sizes *sz, float *work) {
    DPT_ASSERT(dpt__wino_use(sz));
    dpt__wino_forward_prepared(y, x, p, b, sz, work);
}

void dpt__simd_forward(float *y, const float *x, const float *w, const float *b,
                       const conv_sizes *sz, float *work) {
    if (dpt__wino_use(sz)) {
        dpt__wino_forward(y, x, w, wino_weights_of(sz), b, sz, work);
        return;
    }
    forward_layout ws;
    forward_plan(sz, &ws);
    int32_t *tap_off = (int32_t *)(work + ws.tap_off);
    if (forward_by_shifted_rows(sz)) {
        forward_shifted(y, x, w, b, sz, tap_off, work + ws.x_padded, work + ws.x_shifted);
        return;
    }
    dpt__tap_offsets(tap_off, sz);
    if (forward_by_rows(sz)) {
        forward_rows(y, x, w, b, sz, tap_off, work + ws.x_padded);
        return;
    }
    pack_weights(work + ws.packed_w, work + ws.packed_b, w, b, sz);
    forward_channels(y, x, sz, work + ws.packed_w, work + ws.packed_b, tap_off, work + ws.y_cl,
                     work + ws.x_padded);
}
