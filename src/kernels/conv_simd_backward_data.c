/* Backward-data convolution on the simd.h vocabulary (kernels, compiled once per ISA). With stride
 * 1 and pad <= dil*(k-1) it is a forward convolution of dy, padded by dil*(k-1) - pad, with the
 * kernel flipped and the channel roles swapped; any other geometry scatters per-tap products of
 * the channel micro-kernel into a channel-last dx. */
#include <string.h>

#include "conv_simd.h"
#include "dpt/status.h"

static int backward_as_forward(const conv_sizes *sz) {
    for (int i = 0; i < 3; i++)
        if (sz->stride[i] != 1 || sz->pad[i] > sz->dil[i] * (sz->k[i] - 1))
            return 0;
    return 1;
}

typedef struct {                     /* offsets in floats */
    int64_t w_flipped, forward;      /* as a forward: flipped weights, the forward's workspace */
    int64_t o_off, w_scatter, dx_cl; /* scatter: o offsets, (taps, Og, CgPad) weights, dx */
    int64_t end;
} backward_data_layout;

static int64_t backward_data_plan(const conv_sizes *sz, backward_data_layout *b) {
    int64_t o = 0;
    memset(b, 0, sizeof *b);
    if (backward_as_forward(sz)) {
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

void dpt__simd_backward_data(float *dx, const float *dy, const float *w, const conv_sizes *sz,
                             float *work) {
    backward_data_layout ws;
    backward_data_plan(sz, &ws);
    if (!backward_as_forward(sz)) {
        backward_data_scatter(dx, dy, w, sz, (int32_t *)(work + ws.o_off), work + ws.w_scatter,
                              work + ws.dx_cl);
        return;
    }
    conv_sizes t;
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
