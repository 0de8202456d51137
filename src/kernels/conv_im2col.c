/* im2col convolution (kernels): vol2col/col2vol over the 3-D geometry (1-D and 2-D are unit
 * extents) plus one OpenBLAS sgemm per sample and group: the portable fast path. The scratch passed
 * in holds one group's column matrix of one sample, (C/groups*kD*kH*kW) x (oD*oH*oW) floats; 1x1
 * kernels with stride 1 and no padding read x directly and need none. Never allocates. */
#include <string.h>

#include "conv_impl.h"
#include "dpt/ops.h"
#include "simd.h" /* the portable flavor: this file is compiled once, for any CPU */

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

/* dst[i] += src[i], a vector of simd.h's portable flavor at a time: the same float add per
 * element as a scalar loop. */
static void add_floats(float *restrict d, const float *restrict s, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        V_STORE(d + i, V_ADD(V_LOAD(d + i), V_LOAD(s + i)));
    for (; i < n; i++)
        d[i] += s[i];
}

/* d[i] = v for n floats (a vector store per four floats; a scalar loop would be the bottleneck of
 * a layer with few input channels, where the GEMM per output is short). */
static void fill_floats(float *d, float v, int64_t n) {
    const vf vv = V_SET1(v);
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        V_STORE(d + i, vv);
    for (; i < n; i++)
        d[i] = v;
}

/* The sum of n floats in double, in eight interleaved partial sums combined in a fixed order: the
 * result depends only on the data, and no single chain of dependent adds sets the speed. */
static double sum_floats(const float *s, int64_t n) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 += (double)s[i], a1 += (double)s[i + 1], a2 += (double)s[i + 2];
        a3 += (double)s[i + 3], a4 += (double)s[i + 4], a5 += (double)s[i + 5];
        a6 += (double)s[i + 6], a7 += (double)s[i + 7];
    }
    double sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    for (; i < n; i++)
        sum += (double)s[i];
    return sum;
}

/* Zeroes n floats; the gaps it is used for are a few floats wide, where a libc call per row
 * would cost more than the stores. */
static inline void zero_floats(float *z, int64_t n) {
    switch (n) {
    case 4:
        z[3] = 0.0f;
        /* fall through */
    case 3:
        z[2] = 0.0f;
        /* fall through */
    case 2:
        z[1] = 0.0f;
        /* fall through */
    case 1:
        z[0] = 0.0f;
        /* fall through */
    case 0:
        break;
    default:
        memset(z, 0, (size_t)n * sizeof(float));
    }
}

/* One tap (kz, ky, kx) of the kernel: per axis, the input coordinate of output o is
 * o*stride + off, and outputs [lo, hi) read inside the volume rather than in the padding. */
typedef struct {
    int64_t off[3], lo[3], hi[3];
    int64_t n_valid; /* lo..hi is empty along some axis when 0 */
    /* Rows of a plane stream: with unit strides and oW == W (or a single valid row), the
     * inside of an (oH, oW) plane of the column matrix is one contiguous run [begin, end) of the
     * input plane shifted by `shift`, apart from `gap` floats between consecutive rows that
     * must read as padding. */
    int stream;
    int64_t begin, end, shift, gap;
} tap;

static tap tap_make(const dpt_conv_geom *g, int64_t kz, int64_t ky, int64_t kx) {
    const int64_t t[3] = {kz, ky, kx};
    tap r = {.n_valid = 1};
    for (int a = 0; a < 3; a++) {
        r.off[a] = t[a] * g->dil[a] - g->pad[a];
        valid_range(r.off[a], g->stride[a], g->in[a], g->out[a], &r.lo[a], &r.hi[a]);
        r.n_valid *= r.hi[a] - r.lo[a];
    }
    const int64_t W = g->in[2], oW = g->out[2], rows = r.hi[1] - r.lo[1];
    r.stream = g->stride[2] == 1 && (rows <= 1 || (g->stride[1] == 1 && oW == W));
    if (r.stream && r.n_valid > 0) {
        r.begin = r.lo[1] * oW + r.lo[2];
        r.end = (r.hi[1] - 1) * oW + r.hi[2];
        r.shift = r.off[1] * W + r.off[2];
        r.gap = oW - (r.hi[2] - r.lo[2]);
    }
    return r;
}

/* col: (Cg*kD*kH*kW, oD*oH*oW)  x: (Cg, D, H, W), one sample's channels of one group.
 * Row (c, kz, ky, kx) holds x at the positions that tap reads for every output, 0 in padding. */
static void vol2col(float *col, const float *x, const dpt_conv_geom *g, const plan *p) {
    const int64_t H = g->in[1], W = g->in[2], oH = g->out[1], oW = g->out[2];
    const int64_t plane = oH * oW;
    const int64_t sz = g->stride[0], sy = g->stride[1], sx = g->stride[2];
    float *dst = col;
    for (int64_t c = 0; c < p->Cg; c++) {
        const float *xc = x + c * p->V;
        for (int64_t kz = 0; kz < g->k[0]; kz++)
            for (int64_t ky = 0; ky < g->k[1]; ky++)
                for (int64_t kx = 0; kx < g->k[2]; kx++, dst += p->P) {
                    const tap t = tap_make(g, kz, ky, kx);
                    if (t.n_valid == 0) {
                        memset(dst, 0, (size_t)p->P * sizeof(float));
                        continue;
                    }
                    for (int64_t oz = 0; oz < g->out[0]; oz++) {
                        float *dp = dst + oz * plane;
                        if (oz < t.lo[0] || oz >= t.hi[0]) {
                            memset(dp, 0, (size_t)plane * sizeof(float));
                            continue;
                        }
                        const float *xp = xc + (oz * sz + t.off[0]) * H * W;
                        if (t.stream) {
                            memset(dp, 0, (size_t)t.begin * sizeof(float));
                            memcpy(dp + t.begin, xp + t.begin + t.shift,
                                   (size_t)(t.end - t.begin) * sizeof(float));
                            memset(dp + t.end, 0, (size_t)(plane - t.end) * sizeof(float));
                            for (int64_t oy = t.lo[1]; oy + 1 < t.hi[1]; oy++)
                                zero_floats(dp + oy * oW + t.hi[2], t.gap);
                            continue;
                        }
                        /* general rows: strided, or output and input widths differ */
                        memset(dp, 0, (size_t)plane * sizeof(float));
                        for (int64_t oy = t.lo[1]; oy < t.hi[1]; oy++) {
                            const int64_t row = (oy * sy + t.off[1]) * W + t.off[2];
                            float *d = dp + oy * oW;
                            for (int64_t ox = t.lo[2]; ox < t.hi[2]; ox++)
                                d[ox] = xp[row + ox * sx];
                        }
                    }
                }
    }
}

/* dx: (Cg, D, H, W) = the sum of every column entry at the input position it was read from
 * (the adjoint of vol2col). Writes dx. col is scratch: the entries that stand for padding are
 * zeroed on the way, so that whole runs can be added at once. */
static void col2vol(float *dx, float *col, const dpt_conv_geom *g, const plan *p) {
    const int64_t H = g->in[1], W = g->in[2], oH = g->out[1], oW = g->out[2];
    const int64_t plane = oH * oW;
    const int64_t sz = g->stride[0], sy = g->stride[1], sx = g->stride[2];
    memset(dx, 0, (size_t)(p->Cg * p->V) * sizeof(float));
    float *src = col;
    for (int64_t c = 0; c < p->Cg; c++) {
        float *dxc = dx + c * p->V;
        for (int64_t kz = 0; kz < g->k[0]; kz++)
            for (int64_t ky = 0; ky < g->k[1]; ky++)
                for (int64_t kx = 0; kx < g->k[2]; kx++, src += p->P) {
                    const tap t = tap_make(g, kz, ky, kx);
                    if (t.n_valid == 0)
                        continue;
                    for (int64_t oz = t.lo[0]; oz < t.hi[0]; oz++) {
                        float *sp = src + oz * plane;
                        float *xp = dxc + (oz * sz + t.off[0]) * H * W;
                        if (t.stream) {
                            for (int64_t oy = t.lo[1]; oy + 1 < t.hi[1]; oy++)
                                zero_floats(sp + oy * oW + t.hi[2], t.gap);
                            add_floats(xp + t.begin + t.shift, sp + t.begin, t.end - t.begin);
                            continue;
                        }
                        for (int64_t oy = t.lo[1]; oy < t.hi[1]; oy++) {
                            const int64_t row = (oy * sy + t.off[1]) * W + t.off[2];
                            const float *s = sp + oy * oW;
                            for (int64_t ox = t.lo[2]; ox < t.hi[2]; ox++)
                                xp[row + ox * sx] += s[ox];
                        }
                    }
                }
    }
}

/* The column matrix (Kc, P) of one sample and group xg: built in work, or xg itself when the
 * convolution is a plain product (p->direct). */
static const float *columns(float *work, const float *xg, const dpt_conv_geom *g, const plan *p) {
    if (p->direct)
        return xg;
    vol2col(work, xg, g, p);
    return work;
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
            const float *col = columns(work, x + (n * g->C + q * p.Cg) * p.V, g, &p);
            const float *wg = w + q * p.Og * p.Kc;
            float *yg = y + (n * g->O + q * p.Og) * p.P;
            /* The bias goes in first and the GEMM accumulates onto it: one pass over y. */
            if (b)
                for (int64_t o = 0; o < p.Og; o++)
                    fill_floats(yg + o * p.P, b[q * p.Og + o], p.P);
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
            const float *col = columns(work, x + (n * g->C + q * p.Cg) * p.V, g, &p);
            const float *dyg = dy + (n * g->O + q * p.Og) * p.P;
            float *dwg = dw + q * p.Og * p.Kc;
            dpt_sgemm(DPT_GEMM_BLAS, 0, 1, p.Og, p.Kc, p.P, 1.0f, dyg, p.P, col, p.P, 1.0f, dwg,
                      p.Kc);
            /* The bias sums read dy while the GEMM has just left it in cache: a separate pass
             * would stream all of dy from memory again. One double sum per sample and channel,
             * added to db like the GEMM adds to dw: one float rounding per sample. */
            if (db)
                for (int64_t o = 0; o < p.Og; o++) {
                    float *d = db + q * p.Og + o;
                    *d = (float)((double)*d + sum_floats(dyg + o * p.P, p.P));
                }
        }
}

const dpt_conv_impl dpt__conv_im2col = {.name = "im2col",
                                        .workspace = im2col_workspace,
                                        .forward = im2col_forward,
                                        .backward_data = im2col_backward_data,
                                        .backward_weight = im2col_backward_weight};
