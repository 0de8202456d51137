/* im2col convolution (kernels): vol2col/col2vol over the 3-D geometry (1-D and 2-D are unit
 * extents) plus one OpenBLAS sgemm per sample and group: the portable fast path. The scratch passed
 * in holds one group's column matrix of one sample, (C/groups*kD*kH*kW) x (oD*oH*oW) floats; 1x1
 * kernels with stride 1 and no padding read x directly and need none. Never allocates. */
#include <string.h>

#include "conv_impl.h"
#include "dpt/ops.h"

/* Sizes shared by the three passes, derived once per call from the checked geometry. */
typedef struct {
    int64_t Cg, Og; /* channels per group, in and out */
    int64_t Kc;     /* rows of the column matrix: Cg*kD*kH*kW */
    int64_t P;      /* output positions per sample: oD*oH*oW */
    int64_t V;      /* input positions per sample: D*H*W */
    int direct;     /* 1x1 kernel, stride 1, no padding: the column matrix is x itself */
} plan;

static plan plan_make(const dpt_conv_geom *g) {
    plan p = {.Cg = g->C / g->groups, .Og = g->O / g->groups};
    p.Kc = p.Cg * g->k[0] * g->k[1] * g->k[2];
    p.P = g->out[0] * g->out[1] * g->out[2];
    p.V = g->in[0] * g->in[1] * g->in[2];
    p.direct = 1;
    for (int i = 0; i < 3; i++)
        if (g->k[i] != 1 || g->stride[i] != 1 || g->pad[i] != 0)
            p.direct = 0;
    return p;
}

/* The range [lo, hi) of output columns ox whose input column ox*stride + off lies in [0, W). */
static void valid_range(int64_t off, int64_t stride, int64_t W, int64_t oW, int64_t *lo,
                        int64_t *hi) {
    int64_t l = off < 0 ? (-off + stride - 1) / stride : 0;
    int64_t h = W - off > 0 ? (W - off - 1) / stride + 1 : 0;
    if (l > oW)
        l = oW;
    if (h > oW)
        h = oW;
    if (h < l)
        h = l;
    *lo = l, *hi = h;
}

/* col: (Cg*kD*kH*kW, oD*oH*oW)  x: (Cg, D, H, W), one sample's channels of one group.
 * Row (c, kz, ky, kx) holds x at the positions that tap reads for every output, 0 in padding. */
static void vol2col(float *col, const float *x, const dpt_conv_geom *g, const plan *p) {
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t kD = g->k[0], kH = g->k[1], kW = g->k[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];
    const int64_t sz = g->stride[0], sy = g->stride[1], sx = g->stride[2];
    float *dst = col;
    for (int64_t c = 0; c < p->Cg; c++) {
        const float *xc = x + c * p->V;
        for (int64_t kz = 0; kz < kD; kz++)
            for (int64_t ky = 0; ky < kH; ky++)
                for (int64_t kx = 0; kx < kW; kx++, dst += p->P) {
                    const int64_t offz = kz * g->dil[0] - g->pad[0];
                    const int64_t offy = ky * g->dil[1] - g->pad[1];
                    const int64_t offx = kx * g->dil[2] - g->pad[2];
                    int64_t lo, hi;
                    valid_range(offx, sx, W, oW, &lo, &hi);
                    for (int64_t oz = 0; oz < oD; oz++) {
                        const int64_t iz = oz * sz + offz;
                        float *dz = dst + oz * oH * oW;
                        if (iz < 0 || iz >= D) {
                            memset(dz, 0, (size_t)(oH * oW) * sizeof(float));
                            continue;
                        }
                        for (int64_t oy = 0; oy < oH; oy++) {
                            const int64_t iy = oy * sy + offy;
                            float *d = dz + oy * oW;
                            if (iy < 0 || iy >= H) {
                                memset(d, 0, (size_t)oW * sizeof(float));
                                continue;
                            }
                            const float *xr = xc + (iz * H + iy) * W;
                            memset(d, 0, (size_t)lo * sizeof(float));
                            if (sx == 1) {
                                if (hi > lo)
                                    memcpy(d + lo, xr + lo + offx,
                                           (size_t)(hi - lo) * sizeof(float));
                            } else {
                                for (int64_t ox = lo; ox < hi; ox++)
                                    d[ox] = xr[ox * sx + offx];
                            }
                            memset(d + hi, 0, (size_t)(oW - hi) * sizeof(float));
                        }
                    }
                }
    }
}

/* dx: (Cg, D, H, W) = the sum of every column entry at the input position it was read from
 * (the adjoint of vol2col). Writes dx. */
static void col2vol(float *dx, const float *col, const dpt_conv_geom *g, const plan *p) {
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t kD = g->k[0], kH = g->k[1], kW = g->k[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];
    const int64_t sz = g->stride[0], sy = g->stride[1], sx = g->stride[2];
    memset(dx, 0, (size_t)(p->Cg * p->V) * sizeof(float));
    const float *src = col;
    for (int64_t c = 0; c < p->Cg; c++) {
        float *dxc = dx + c * p->V;
        for (int64_t kz = 0; kz < kD; kz++)
            for (int64_t ky = 0; ky < kH; ky++)
                for (int64_t kx = 0; kx < kW; kx++, src += p->P) {
                    const int64_t offz = kz * g->dil[0] - g->pad[0];
                    const int64_t offy = ky * g->dil[1] - g->pad[1];
                    const int64_t offx = kx * g->dil[2] - g->pad[2];
                    int64_t lo, hi;
                    valid_range(offx, sx, W, oW, &lo, &hi);
                    for (int64_t oz = 0; oz < oD; oz++) {
                        const int64_t iz = oz * sz + offz;
                        if (iz < 0 || iz >= D)
                            continue;
                        for (int64_t oy = 0; oy < oH; oy++) {
                            const int64_t iy = oy * sy + offy;
                            if (iy < 0 || iy >= H)
                                continue;
                            float *xr = dxc + (iz * H + iy) * W;
                            const float *s = src + (oz * oH + oy) * oW;
                            if (sx == 1) {
                                for (int64_t ox = lo; ox < hi; ox++)
                                    xr[ox + offx] += s[ox];
                            } else {
                                for (int64_t ox = lo; ox < hi; ox++)
                                    xr[ox * sx + offx] += s[ox];
                            }
                        }
                    }
                }
    }
}

static size_t im2col_workspace(const dpt_conv_geom *g) {
    plan p = plan_make(g);
    return p.direct ? 0 : (size_t)(p.Kc * p.P);
}

/* y: (N, O, oD, oH, oW) = W * col + b per sample and group
 * x: (N, C, D, H, W)  w: (O, C/groups, kD, kH, kW)  b: (O) or NULL  work: (Kc, P) */
static void im2col_forward(float *y, const float *x, const float *w, const float *b,
                           const dpt_conv_geom *g, float *work) {
    const plan p = plan_make(g);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t q = 0; q < g->groups; q++) {
            const float *xg = x + (n * g->C + q * p.Cg) * p.V;
            const float *wg = w + q * p.Og * p.Kc;
            float *yg = y + (n * g->O + q * p.Og) * p.P;
            const float *col = xg;
            if (!p.direct) {
                vol2col(work, xg, g, &p);
                col = work;
            }
            /* The bias goes in first and the GEMM accumulates onto it: one pass over y. */
            if (b)
                for (int64_t o = 0; o < p.Og; o++) {
                    const float bo = b[q * p.Og + o];
                    float *yo = yg + o * p.P;
                    for (int64_t i = 0; i < p.P; i++)
                        yo[i] = bo;
                }
            dpt_sgemm(DPT_GEMM_BLAS, 0, 0, p.Og, p.P, p.Kc, 1.0f, wg, p.Kc, col, p.P,
                      b ? 1.0f : 0.0f, yg, p.P);
        }
}

/* dx: (N, C, D, H, W) = col2vol(W^T * dy) per sample and group (writes)
 * dy: (N, O, oD, oH, oW)  w: (O, C/groups, kD, kH, kW)  work: (Kc, P) */
static void im2col_backward_data(float *dx, const float *dy, const float *w, const dpt_conv_geom *g,
                                 float *work) {
    const plan p = plan_make(g);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t q = 0; q < g->groups; q++) {
            const float *dyg = dy + (n * g->O + q * p.Og) * p.P;
            const float *wg = w + q * p.Og * p.Kc;
            float *dxg = dx + (n * g->C + q * p.Cg) * p.V;
            if (p.direct) {
                dpt_sgemm(DPT_GEMM_BLAS, 1, 0, p.Kc, p.P, p.Og, 1.0f, wg, p.Kc, dyg, p.P, 0.0f, dxg,
                          p.P);
            } else {
                dpt_sgemm(DPT_GEMM_BLAS, 1, 0, p.Kc, p.P, p.Og, 1.0f, wg, p.Kc, dyg, p.P, 0.0f,
                          work, p.P);
                col2vol(dxg, work, g, &p);
            }
        }
}

/* dw: (O, C/groups, kD, kH, kW) += dy * col^T per sample and group;  db: (O) += sums of dy, or NULL
 * dy: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  work: (Kc, P) */
static void im2col_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                   const dpt_conv_geom *g, float *work) {
    const plan p = plan_make(g);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t q = 0; q < g->groups; q++) {
            const float *xg = x + (n * g->C + q * p.Cg) * p.V;
            const float *dyg = dy + (n * g->O + q * p.Og) * p.P;
            float *dwg = dw + q * p.Og * p.Kc;
            const float *col = xg;
            if (!p.direct) {
                vol2col(work, xg, g, &p);
                col = work;
            }
            dpt_sgemm(DPT_GEMM_BLAS, 0, 1, p.Og, p.Kc, p.P, 1.0f, dyg, p.P, col, p.P, 1.0f, dwg,
                      p.Kc);
        }
    if (!db)
        return;
    /* One double sum per channel over the whole batch, added once: no float drift with N. */
    for (int64_t o = 0; o < g->O; o++) {
        double acc = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const float *dyo = dy + (n * g->O + o) * p.P;
            for (int64_t i = 0; i < p.P; i++)
                acc += (double)dyo[i];
        }
        db[o] = (float)((double)db[o] + acc);
    }
}

static const dpt_conv_impl im2col_impl = {
    .name = "im2col",
    .workspace = im2col_workspace,
    .forward = im2col_forward,
    .backward_data = im2col_backward_data,
    .backward_weight = im2col_backward_weight,
};

const dpt_conv_impl *dpt__conv_im2col_impl(void) {
    return &im2col_impl;
}
