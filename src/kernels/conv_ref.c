/* Reference convolution (kernels): plain loops over the checked 3-D geometry, every sum accumulated
 * in double and rounded once. It is the oracle of every conv test, so it is written for obvious
 * correctness, not speed: each output element is a direct sum over its definition (backward_data
 * gathers instead of scattering). Needs no workspace. */
#include "conv_impl.h"

/* Input coordinate of output position p and tap t along one axis; -1 when it falls in padding. */
static int64_t in_coord(int64_t p, int64_t t, int64_t stride, int64_t pad, int64_t dil,
                        int64_t extent) {
    int64_t i = p * stride - pad + t * dil;
    return i >= 0 && i < extent ? i : -1;
}

/* Output coordinate whose tap t reads input coordinate i along one axis; -1 if there is none. */
static int64_t out_coord(int64_t i, int64_t t, int64_t stride, int64_t pad, int64_t dil,
                         int64_t extent) {
    int64_t s = i + pad - t * dil;
    if (s < 0 || s % stride != 0)
        return -1;
    s /= stride;
    return s < extent ? s : -1;
}

static size_t ref_workspace(const dpt_conv_geom *g) {
    return 0;
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, C/groups, kD, kH, kW)  b: (O) or NULL */
static void ref_forward(float *y, const float *x, const float *w, const float *b,
                        const dpt_conv_geom *g, float *work) {
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t kD = g->k[0], kH = g->k[1], kW = g->k[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t o = 0; o < g->O; o++) {
            const int64_t q = o / Og;
            float *yo = y + (n * g->O + o) * oD * oH * oW;
            for (int64_t oz = 0; oz < oD; oz++)
                for (int64_t oy = 0; oy < oH; oy++)
                    for (int64_t ox = 0; ox < oW; ox++) {
                        double acc = b ? (double)b[o] : 0.0;
                        for (int64_t c = 0; c < Cg; c++) {
                            const float *xc = x + (n * g->C + q * Cg + c) * D * H * W;
                            const float *wc = w + (o * Cg + c) * kD * kH * kW;
                            for (int64_t kz = 0; kz < kD; kz++) {
                                int64_t iz =
                                    in_coord(oz, kz, g->stride[0], g->pad[0], g->dil[0], D);
                                if (iz < 0)
                                    continue;
                                for (int64_t ky = 0; ky < kH; ky++) {
                                    int64_t iy =
                                        in_coord(oy, ky, g->stride[1], g->pad[1], g->dil[1], H);
                                    if (iy < 0)
                                        continue;
                                    for (int64_t kx = 0; kx < kW; kx++) {
                                        int64_t ix =
                                            in_coord(ox, kx, g->stride[2], g->pad[2], g->dil[2], W);
                                        if (ix < 0)
                                            continue;
                                        acc += (double)wc[(kz * kH + ky) * kW + kx] *
                                               (double)xc[(iz * H + iy) * W + ix];
                                    }
                                }
                            }
                        }
                        yo[(oz * oH + oy) * oW + ox] = (float)acc;
                    }
        }
}

/* dx: (N, C, D, H, W)  dy: (N, O, oD, oH, oW)  w: (O, C/groups, kD, kH, kW); writes dx */
static void ref_backward_data(float *dx, const float *dy, const float *w, const dpt_conv_geom *g,
                              float *work) {
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t kD = g->k[0], kH = g->k[1], kW = g->k[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t ci = 0; ci < g->C; ci++) {
            const int64_t q = ci / Cg, c = ci % Cg;
            float *dxc = dx + (n * g->C + ci) * D * H * W;
            for (int64_t iz = 0; iz < D; iz++)
                for (int64_t iy = 0; iy < H; iy++)
                    for (int64_t ix = 0; ix < W; ix++) {
                        double acc = 0.0;
                        for (int64_t o = q * Og; o < (q + 1) * Og; o++) {
                            const float *dyo = dy + (n * g->O + o) * oD * oH * oW;
                            const float *wc = w + (o * Cg + c) * kD * kH * kW;
                            for (int64_t kz = 0; kz < kD; kz++) {
                                int64_t oz =
                                    out_coord(iz, kz, g->stride[0], g->pad[0], g->dil[0], oD);
                                if (oz < 0)
                                    continue;
                                for (int64_t ky = 0; ky < kH; ky++) {
                                    int64_t oy =
                                        out_coord(iy, ky, g->stride[1], g->pad[1], g->dil[1], oH);
                                    if (oy < 0)
                                        continue;
                                    for (int64_t kx = 0; kx < kW; kx++) {
                                        int64_t ox = out_coord(ix, kx, g->stride[2], g->pad[2],
                                                               g->dil[2], oW);
                                        if (ox < 0)
                                            continue;
                                        acc += (double)wc[(kz * kH + ky) * kW + kx] *
                                               (double)dyo[(oz * oH + oy) * oW + ox];
                                    }
                                }
                            }
                        }
                        dxc[(iz * H + iy) * W + ix] = (float)acc;
                    }
        }
}

/* dw: (O, C/groups, kD, kH, kW) += ...  db: (O) += ... or NULL
 * dy: (N, O, oD, oH, oW)  x: (N, C, D, H, W) */
static void ref_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                const dpt_conv_geom *g, float *work) {
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t kD = g->k[0], kH = g->k[1], kW = g->k[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];
    for (int64_t o = 0; o < g->O; o++) {
        const int64_t q = o / Og;
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t kz = 0; kz < kD; kz++)
                for (int64_t ky = 0; ky < kH; ky++)
                    for (int64_t kx = 0; kx < kW; kx++) {
                        double acc = 0.0;
                        for (int64_t n = 0; n < g->N; n++) {
                            const float *dyo = dy + (n * g->O + o) * oD * oH * oW;
                            const float *xc = x + (n * g->C + q * Cg + c) * D * H * W;
                            for (int64_t oz = 0; oz < oD; oz++) {
                                int64_t iz =
                                    in_coord(oz, kz, g->stride[0], g->pad[0], g->dil[0], D);
                                if (iz < 0)
                                    continue;
                                for (int64_t oy = 0; oy < oH; oy++) {
                                    int64_t iy =
                                        in_coord(oy, ky, g->stride[1], g->pad[1], g->dil[1], H);
                                    if (iy < 0)
                                        continue;
                                    for (int64_t ox = 0; ox < oW; ox++) {
                                        int64_t ix =
                                            in_coord(ox, kx, g->stride[2], g->pad[2], g->dil[2], W);
                                        if (ix < 0)
                                            continue;
                                        acc += (double)dyo[(oz * oH + oy) * oW + ox] *
                                               (double)xc[(iz * H + iy) * W + ix];
                                    }
                                }
                            }
                        }
                        float *d = dw + (((o * Cg + c) * kD + kz) * kH + ky) * kW + kx;
                        *d = (float)((double)*d + acc);
                    }
    }
    if (!db)
        return;
    const int64_t P = oD * oH * oW;
    for (int64_t o = 0; o < g->O; o++) {
        double acc = 0.0;
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t p = 0; p < P; p++)
                acc += (double)dy[(n * g->O + o) * P + p];
        db[o] = (float)((double)db[o] + acc);
    }
}

static const dpt_conv_impl ref_impl = {
    .name = "ref",
    .workspace = ref_workspace,
    .forward = ref_forward,
    .backward_data = ref_backward_data,
    .backward_weight = ref_backward_weight,
};

const dpt_conv_impl *dpt__conv_ref_impl(void) {
    return &ref_impl;
}
