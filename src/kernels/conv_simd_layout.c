/* Sizes and internal layouts of the SIMD convolution (kernels, compiled once per ISA): padded,
 * shifted and channel-last copies of the input, in-register transposes and offset tables.
 * Knows no pass and no dispatch. */
#include <string.h>

#include "conv_simd.h"
#include "dpt/status.h"

static int64_t at_least_1(int64_t v) {
    return v > 0 ? v : 1;
}

static void sizes_derive(conv_sizes *sz) {
    sz->Cg = sz->C / sz->groups;
    sz->Og = sz->O / sz->groups;
    sz->taps = sz->k[0] * sz->k[1] * sz->k[2];
    sz->K = sz->Cg * sz->taps;
    sz->out_plane = sz->out[0] * sz->out[1] * sz->out[2];
    sz->in_plane = sz->in[0] * sz->in[1] * sz->in[2];
    for (int i = 0; i < 3; i++)
        sz->padded[i] = sz->in[i] + 2 * sz->pad[i];
    sz->padded_plane = sz->padded[0] * sz->padded[1] * sz->padded[2];
    sz->OgPad = round_up(sz->Og, VL);
    sz->CgPad = round_up(sz->Cg, VL);
}

void dpt__sizes_from_geom(conv_sizes *sz, const dpt_conv_geom *g) {
    memset(sz, 0, sizeof *sz);
    sz->N = g->N;
    sz->C = g->C;
    sz->O = g->O;
    sz->groups = at_least_1(g->groups);
    for (int i = 0; i < 3; i++) {
        sz->in[i] = at_least_1(g->in[i]);
        sz->out[i] = at_least_1(g->out[i]);
        sz->k[i] = at_least_1(g->k[i]);
        sz->stride[i] = at_least_1(g->stride[i]);
        sz->pad[i] = g->pad[i];
        sz->dil[i] = at_least_1(g->dil[i]);
    }
    sizes_derive(sz);
}

void dpt__sizes_transposed(conv_sizes *t, const conv_sizes *sz) {
    *t = *sz;
    t->C = sz->O;
    t->O = sz->C;
    for (int i = 0; i < 3; i++) {
        t->in[i] = sz->out[i];
        t->out[i] = sz->in[i];
        t->pad[i] = sz->dil[i] * (sz->k[i] - 1) - sz->pad[i];
    }
    sizes_derive(t);
}

int dpt__shifted_rows_ok(const conv_sizes *sz) {
    return sz->in[0] == 1 && sz->k[0] == 1 && sz->stride[1] == 1 && sz->stride[2] == 1;
}

int64_t dpt__shifted_rows_floats(const conv_sizes *sz) {
    return sz->Cg * sz->k[2] * sz->padded[1] * sz->out[2];
}

void dpt__shifted_rows_offsets(int32_t *run_off, const conv_sizes *sz) {
    DPT_ASSERT(dpt__shifted_rows_floats(sz) + SLACK < INT32_MAX);
    int64_t k = 0;
    for (int64_t c = 0; c < sz->Cg; c++)
        for (int64_t kh = 0; kh < sz->k[1]; kh++)
            for (int64_t kw = 0; kw < sz->k[2]; kw++)
                run_off[k++] =
                    (int32_t)(((c * sz->k[2] + kw) * sz->padded[1] + kh * sz->dil[1]) * sz->out[2]);
}

void dpt__tap_offsets(int32_t *tap_off, const conv_sizes *sz) {
    DPT_ASSERT(sz->Cg * sz->padded_plane + SLACK < INT32_MAX);
    const int64_t pH = sz->padded[1], pW = sz->padded[2];
    int64_t k = 0;
    for (int64_t c = 0; c < sz->Cg; c++)
        for (int64_t kd = 0; kd < sz->k[0]; kd++)
            for (int64_t kh = 0; kh < sz->k[1]; kh++)
                for (int64_t kw = 0; kw < sz->k[2]; kw++)
                    tap_off[k++] =
                        (int32_t)(c * sz->padded_plane +
                                  (kd * sz->dil[0] * pH + kh * sz->dil[1]) * pW + kw * sz->dil[2]);
}

void dpt__fill_padded(float *xp, const float *x, int64_t nch, const conv_sizes *sz) {
    const int64_t H = sz->in[1], W = sz->in[2], pH = sz->padded[1], pW = sz->padded[2];
    for (int64_t c = 0; c < nch; c++)
        for (int64_t d = 0; d < sz->in[0]; d++) {
            float *dst =
                xp + c * sz->padded_plane + ((d + sz->pad[0]) * pH + sz->pad[1]) * pW + sz->pad[2];
            const float *src = x + (c * sz->in[0] + d) * H * W;
            if (W < VL) /* short rows (the small images of a CNN): one masked vector each */
                for (int64_t h = 0; h < H; h++)
                    V_STORE_N(dst + h * pW, V_LOAD_N(src + h * W, (int)W), (int)W);
            else
                for (int64_t h = 0; h < H; h++)
                    v_copy(dst + h * pW, src + h * W, W);
        }
}

void dpt__fill_shifted_rows(float *xs, const float *xp, int64_t nch, const conv_sizes *sz) {
    const int64_t kW = sz->k[2], pH = sz->padded[1], oW = sz->out[2];
    for (int64_t c = 0; c < nch; c++)
        for (int64_t kw = 0; kw < kW; kw++)
            for (int64_t h = 0; h < pH; h++)
                v_copy(xs + ((c * kW + kw) * pH + h) * oW,
                       xp + c * sz->padded_plane + h * sz->padded[2] + kw * sz->dil[2], oW);
}

/* VL x VL blocks in registers (the last block along j read with masked loads), then a scalar
 * tail along i. Blocks are visited along i first, so that at most VL destination rows are being
 * written (store streams miss in cache). */
void dpt__transpose(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t ni,
                    int64_t nj) {
    const int64_t nib = ni / VL * VL;
    for (int64_t j = 0; j < nj; j += VL) {
        const int nl = (int)min64(VL, nj - j);
        for (int64_t i = 0; i < nib; i += VL) {
            vf r[VL];
            SIMD_UNROLL
            for (int a = 0; a < VL; a++) { /* VL concurrent streams: too many for the hardware */
                const float *row = src + (i + a) * lds + j;
                V_PREFETCH(row + 4 * VL);
                r[a] = nl == VL ? V_LOAD(row) : V_LOAD_N(row, nl);
            }
            v_transpose(r);
            for (int b = 0; b < nl; b++)
                V_STORE(dst + (j + b) * ldd + i, r[b]);
        }
    }
    for (int64_t i = nib; i < ni; i++)
        for (int64_t j = 0; j < nj; j++)
            dst[j * ldd + i] = src[i * lds + j];
}

void dpt__fill_padded_channel_last(float *xcl, int64_t ld, const float *x, int64_t nch,
                                   const conv_sizes *sz) {
    const int64_t H = sz->in[1], W = sz->in[2], pH = sz->padded[1], pW = sz->padded[2];
    for (int64_t d = 0; d < sz->in[0]; d++)
        for (int64_t h = 0; h < H; h++)
            dpt__transpose(xcl + (((d + sz->pad[0]) * pH + h + sz->pad[1]) * pW + sz->pad[2]) * ld,
                           ld, x + (d * H + h) * W, sz->in_plane, nch, W);
}
