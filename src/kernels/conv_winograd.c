/* Winograd F(2x2, 3x3) convolution on the simd.h vocabulary (kernels, compiled once per ISA):
 * forward and weight gradient of 2-D 3x3 layers with unit stride and dilation and one group; and
 * F(4x4, 3x3) for the forward (and backward-data) of the layers where it pays, sharing the layout,
 * the blocking, the products, the prefetch and the driver, for a tile side m of 2 or 4.
 *
 * Each 2x2 output tile comes from a 4x4 input tile d:  Y = A^T [ (G g G^T) . (B^T d B) ] A,
 * with . the elementwise product of 16 "frequencies" xi, so a tile costs 16 multiplications per
 * (input, output) channel pair instead of 36. Per xi the products summed over input channels are
 * a matrix product  M[xi] (O x tiles) = U[xi] (O x C) * V[xi] (C x tiles),  run by the channel
 * micro-kernel with the tiles in the vector lanes and the output channels in registers.
 *
 *   B^T = | 1  0 -1  0 |    G = | 1    0    0   |    A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
 *         | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |        | 0    0    1   |
 *
 * Tiles are numbered image by image, row by row, and taken in blocks whose V and M stay in L2.
 * All transforms run with VL consecutive tiles in the lanes, across tile rows, so that small
 * images (7 tiles per row at 14x14) do not leave half the lanes idle: B^T along each input row
 * writes m planes by row residue, so that input row m*ty+a of every tile row ty is one run along
 * the tiles (row a/m of plane a%m), which B^T along the columns then reads VL tiles at a time. */
#include <string.h>

#include "conv_simd.h"

/* ---- the variants' shared pieces --------------------------------------------------------------
 * A variant F(m x m, 3x3) takes al x al input tiles (al = m + 2) to m x m output tiles through
 * nxi = al^2 frequencies; the layout, the blocking, the per-frequency products, the prefetch and
 * the forward driver are common, and each variant brings its 1-D transforms, instantiated into the
 * skeletons below (SIMD_INLINE, with the 1-D transform a constant function pointer, so each
 * instance compiles to straight-line code), as a wino_variant. */
/* The largest tile side of any variant: F(4x4, 3x3) has 6x6 input tiles. */
#define WINO_AL_MAX 6

typedef struct {
    int64_t m, al, nxi; /* output tile side, input tile side m + 2, frequencies al^2 */
    int64_t TH, TW, T;  /* tile rows, tile columns and tiles per image */
    int64_t total;      /* tiles of the batch */
    int64_t tb;         /* tiles per block */
    int64_t ldv;        /* floats per row of V, M and Z: a block's tiles, plus spill room */
    int64_t vs, ms;     /* floats from one xi to the next in V and in M */
    int64_t bh, bw;     /* zero-bordered channel planes: m*TH+2 rows, with vector-load slack */
    int64_t xp;         /* floats per row-residue plane of the bordered input: TH+1 rows of m*TW,
                           and VL of room */
    int64_t rp;         /* floats per row-residue plane of R: TH+1 rows of TW, plus spill room */
    int64_t opad;       /* output channels rounded up to whole vectors (weight gradient) */
    int64_t nch;        /* vectors per tile row (one-channel weight gradient) */
    int64_t ys;         /* floats from one xi to the next in Yt (weight gradient) */
    /* offsets in floats; forward: u, m, z; weight gradient: du, yt, dycl */
    int64_t u, v, mo, z, xb, r, seq_off, du, yt, dycl, end;
} wino_layout;

/* 1-D transforms over vectors (lanes: tiles): al inputs to al (input side) or m (output side)
 * outputs. */
typedef void (*wino_1d)(vf *out, const vf *in);

/* One variant: its tile side, G (al x 3, row-major, applied in double to the weights), and the
 * per-image row transform, per-run column transform and per-block output transform (see the
 * skeletons). */
typedef struct {
    int m;
    const double *G;
    void (*rows)(float *r, float *xb, const float *x, const conv_sizes *sz, const wino_layout *b);
    void (*columns)(float *v, const float *r, int64_t t, int64_t run, const conv_sizes *sz,
                    const wino_layout *b);
    void (*output)(float *z, const float *mm, const float *bias, int64_t cols, const conv_sizes *sz,
                   const wino_layout *b);
} wino_variant;

/* Columns m*l + j (j < m) of the m*VL floats at p, in lane l of out[j]: rounds of even/odd
 * splits. */
SIMD_INLINE void wino_split(vf out[4], const float *p, const int m) {
    if (m == 2) {
        v_deinterleave(V_LOAD(p), V_LOAD(p + VL), &out[0], &out[1]);
        return;
    }
    vf e01, o01, e23, o23;
    v_deinterleave(V_LOAD(p), V_LOAD(p + VL), &e01, &o01);
    v_deinterleave(V_LOAD(p + 2 * VL), V_LOAD(p + 3 * VL), &e23, &o23);
    v_deinterleave(e01, e23, &out[0], &out[2]);
    v_deinterleave(o01, o23, &out[1], &out[3]);
}

/* dst[0..n) = src[0..n), then zeros up to the end of the last vector: no masked store (slow on
 * some cores), for rows followed by room that is zero or written later. */
SIMD_INLINE void wino_copy_row(float *dst, const float *src, int64_t n) {
    int64_t j = 0;
    for (; j + VL <= n; j += VL)
        V_STORE(dst + j, V_LOAD(src + j));
    if (j < n)
        V_STORE(dst + j, V_LOAD_N(src + j, (int)(n - j)));
}

/* One channel x: (H, W) copied, zero-bordered, into xb by row residue: bordered row rr is row rr/m
 * of plane (0, rr%m), columns 0 .. m*TW-1, and of plane (1, rr%m), columns m .. m*TW+m-1; each
 * plane's rows (TH+1 of m*TW floats) back to back, then VL floats of room, so tile column tx of
 * row i starts at m*(i*TW + tx) in both. The rows are copied in order, each with zeros past its
 * end up to a whole vector: they land in the next row of the plane, before it is copied, or in
 * the room; the borders stay zero. */
SIMD_INLINE void wino_copy_channel(float *xb, const float *x, const conv_sizes *sz,
                                   const wino_layout *b, const int m) {
    const int64_t H = sz->in[1], W = sz->in[2], xw = m * b->TW, xp = b->xp, pad = sz->pad[2];
    const int64_t n0 = min64(W, xw - pad), c1 = max64(pad, m), n1 = pad + W - c1;
    for (int64_t h = 0; h < H; h++) {
        const int64_t rr = h + sz->pad[1];
        float *d = xb + rr % m * xp + rr / m * xw;
        if (n0 > 0)
            wino_copy_row(d + pad, x + h * W, n0);
        if (n1 > 0)
            wino_copy_row(d + m * xp + c1 - m, x + h * W + c1 - pad, n1);
    }
}

/* R for image x: (C, H, W), one channel at a time through two buffers of wino_copy_channel in xb
 * (a channel is copied while the one before it is transformed, so that no load waits for a store
 * of the copy to reach L1, and the buffers stay in L1). One run of VL tiles along a plane, whatever
 * the rows, splits into columns j < m of each tile (first plane) and columns m and m+1 (second
 * plane), and B^T along the row gives R[c][k][rr%m]: from (rr/m)*TW on, value k of bordered row
 * rr for every tile column. Input row m*ty + a of tile (ty, tx) is then at ty*TW + tx of plane
 * (k, a % m), from (a / m)*TW on: one run along the tiles, for a < al <= 2m. */
SIMD_INLINE void wino_rows_skeleton(float *r, float *xb, const float *x, const conv_sizes *sz,
                                    const wino_layout *b, const int m, const int al,
                                    wino_1d in_fn) {
    const int64_t xp = b->xp, lanes = (b->TH + 1) * b->TW;
    wino_copy_channel(xb, x, sz, b, m);
    for (int64_t c = 0; c < sz->C; c++) {
        const float *buf = xb + c % 2 * 2 * m * xp;
        if (c + 1 < sz->C)
            wino_copy_channel(xb + (c + 1) % 2 * 2 * m * xp, x + (c + 1) * sz->in_plane, sz, b, m);
        for (int p = 0; p < m; p++) {
            const float *s0 = buf + p * xp, *s1 = s0 + m * xp;
            float *dst = r + (c * al * m + p) * b->rp;
            for (int64_t l0 = 0; l0 < lanes; l0 += VL) {
                vf d[WINO_AL_MAX], e[4], t[WINO_AL_MAX];
                wino_split(d, s0 + m * l0, m);
                wino_split(e, s1 + m * l0, m);
                SIMD_UNROLL
                for (int j = m; j < al; j++)
                    d[j] = e[j - m];
                in_fn(t, d);
                /* whole vectors: the lanes past the plane land in its spill room */
                SIMD_UNROLL
                for (int k = 0; k < al; k++)
                    V_STORE(dst + k * m * b->rp + l0, t[k]);
            }
        }
    }
}

/* V[xi][c][t - t0 ..] for the run of tiles [t, t + run) of one image (t counted in the image, v
 * at the run's first column): the column transform of each value k of the rows, VL tiles at a
 * time, xi = al*a + k. The lanes past the image or the block spill into columns written later,
 * or into the spill room. */
SIMD_INLINE void wino_columns_skeleton(float *v, const float *r, int64_t t, int64_t run,
                                       const conv_sizes *sz, const wino_layout *b, const int m,
                                       const int al, wino_1d col_fn) {
    const int64_t rp = b->rp, TW = b->TW;
    for (int64_t s = 0; s < run; s += VL)
        for (int64_t c = 0; c < sz->C; c++) {
            const float *rc = r + c * al * m * rp + t + s;
            float *vc = v + c * b->ldv + s;
            SIMD_UNROLL
            for (int k = 0; k < al; k++) {
                vf d[WINO_AL_MAX], o[WINO_AL_MAX];
                SIMD_UNROLL
                for (int a = 0; a < al; a++)
                    d[a] = V_LOAD(rc + (k * m + a % m) * rp + a / m * TW);
                col_fn(o, d);
                SIMD_UNROLL
                for (int a = 0; a < al; a++)
                    V_STORE(vc + (a * al + k) * b->vs, o[a]);
            }
        }
}

/* Z[o][m*i + j][col ..] = output (i, j) of the block's tiles: A^T M A + bias, from
 * M[xi][o][col ..], for the `cols` columns (whole vectors) of every output channel. */
SIMD_INLINE void wino_output_skeleton(float *z, const float *mm, const float *bias, int64_t cols,
                                      const conv_sizes *sz, const wino_layout *b, const int m,
                                      const int al, wino_1d out_fn) {
    const int64_t ldv = b->ldv, ms = b->ms;
    for (int64_t o = 0; o < sz->O; o++) {
        const vf bv = V_SET1(bias ? bias[o] : 0.0f);
        for (int64_t t = 0; t < cols; t += VL) {
            const float *mo = mm + o * ldv + t;
            float *zo = z + o * m * m * ldv + t;
            vf s[WINO_AL_MAX - 2][WINO_AL_MAX];
            SIMD_UNROLL
            for (int k = 0; k < al; k++) { /* along the rows of the tile */
                vf d[WINO_AL_MAX], y[WINO_AL_MAX - 2];
                SIMD_UNROLL
                for (int a = 0; a < al; a++)
                    d[a] = V_LOAD(mo + (a * al + k) * ms);
                out_fn(y, d);
                SIMD_UNROLL
                for (int i = 0; i < m; i++)
                    s[i][k] = y[i];
            }
            SIMD_UNROLL
            for (int i = 0; i < m; i++) { /* ... and along the columns */
                vf y[WINO_AL_MAX - 2];
                out_fn(y, s[i]);
                SIMD_UNROLL
                for (int j = 0; j < m; j++)
                    V_STORE(zo + (m * i + j) * ldv, V_ADD(y[j], bv));
            }
        }
    }
}

/* Defines `name`, the wino_variant of tile side M with 1-D transforms in_fn (B^T, rows and
 * columns) and out_fn (A^T), and weight transform G: the skeletons instantiated for them. */
#define WINO_DEFINE_VARIANT(storage, name, M, in_fn, out_fn, G)                                    \
    static void name##_rows(float *r, float *xb, const float *x, const conv_sizes *sz,             \
                            const wino_layout *b) {                                                \
        wino_rows_skeleton(r, xb, x, sz, b, M, M + 2, in_fn);                                      \
    }                                                                                              \
    static void name##_columns(float *v, const float *r, int64_t t, int64_t run,                   \
                               const conv_sizes *sz, const wino_layout *b) {                       \
        wino_columns_skeleton(v, r, t, run, sz, b, M, M + 2, in_fn);                               \
    }                                                                                              \
    static void name##_output(float *z, const float *mm, const float *bias, int64_t cols,          \
                              const conv_sizes *sz, const wino_layout *b) {                        \
        wino_output_skeleton(z, mm, bias, cols, sz, b, M, M + 2, out_fn);                          \
    }                                                                                              \
    storage const wino_variant name = {M, G, name##_rows, name##_columns, name##_output}

/* Forward and backward-data of layers with fewer channels are cheaper direct (the transforms are
 * paid per channel, the savings per channel pair). */
#define WINO_MIN_CH 16

/* 2-D, 3x3, unit stride and dilation, one group, at least one whole tile. */
static int wino_tiling_ok(const conv_sizes *sz) {
    return sz->in[0] == 1 && sz->k[0] == 1 && sz->k[1] == 3 && sz->k[2] == 3 &&
           sz->stride[1] == 1 && sz->stride[2] == 1 && sz->dil[1] == 1 && sz->dil[2] == 1 &&
           sz->groups == 1 && sz->out[1] >= 2 && sz->out[2] >= 2;
}

static int wino_shape_ok(const conv_sizes *sz) {
    return wino_tiling_ok(sz) && sz->C >= WINO_MIN_CH && sz->O >= WINO_MIN_CH;
}

int dpt__wino_use(const conv_sizes *sz) {
    return wino_shape_ok(sz) && dpt_conv_winograd();
}

/* Distance between the planes of V (or M) for planes of n floats: whole cache lines, an odd
 * multiple of 4 of them, so that the vectors a transform stores (or loads) at once, one per
 * plane, fall into different L1 sets (a multiple of 4 KB would put them all in one 8-way set).
 */
static int64_t plane_stride(int64_t n) {
    int64_t lines = (n + 15) / 16;
    lines = round_up(lines, 4);
    if (lines % 8 == 0)
        lines += 4;
    return lines * 16;
}

/* The tiling, the block and the strides shared by both passes, for tile side m. */
static void wino_tiling(const conv_sizes *sz, wino_layout *b, int m) {
    memset(b, 0, sizeof *b);
    b->m = m;
    b->al = m + 2;
    b->nxi = b->al * b->al;
    b->TH = (sz->out[1] + m - 1) / m;
    b->TW = (sz->out[2] + m - 1) / m;
    b->T = b->TH * b->TW;
    b->total = sz->N * b->T;
    /* V and M of a block in about 512 KB of L2, in whole pairs of vectors. */
    const int64_t fit = 8192 * 16 / b->nxi / (sz->C + sz->O) / (2 * VL) * (2 * VL);
    b->tb = min64(fit > 2 * VL ? fit : 2 * VL, round_up(sz->N * b->T, VL));
    b->ldv = b->tb + VL;
    b->vs = plane_stride(sz->C * b->ldv);
    b->ms = plane_stride(sz->O * b->ldv);
    b->bh = m * b->TH + 2;
    b->bw = m * round_up(b->TW, VL) + 2;
    /* whole cache lines, so that the row transform's loads and stores are aligned */
    b->rp = round_up((b->TH + 1) * b->TW + VL, 16);
    b->xp = round_up((b->TH + 1) * m * b->TW + VL, 16);
    b->opad = round_up(sz->O, VL);
    b->ys = plane_stride(b->tb * b->opad);
}

/* The bordered input planes of two channels, and the slack the last vectors of a run read. */
static int64_t wino_xb_floats(const conv_sizes *sz, const wino_layout *b) {
    (void)sz;
    return 2 * 2 * b->m * b->xp + b->m * VL + SLACK;
}

/* The input side both passes share, from offset o on: V, the bordered planes, R, seq_off. */
static int64_t wino_input_plan(const conv_sizes *sz, wino_layout *b, int64_t o) {
    b->v = o;
    o += b->nxi * b->vs;
    b->xb = o;
    o += round_up(wino_xb_floats(sz, b), 16);
    b->r = o;
    o += round_up(b->al * b->m * sz->C * b->rp, 16);
    b->seq_off = o;
    o += round_up(b->tb > sz->C ? b->tb : sz->C, 16);
    return o;
}

/* The floats of one pass's own regions from offset 0 (forward: U, M, Z; weight gradient, which
 * is F(2x2) only: dU, Yt, dY channel-last), then the input side; the end of the layout. */
static int64_t wino_plan(const conv_sizes *sz, wino_layout *b, int m, int weight_grad) {
    wino_tiling(sz, b, m);
    int64_t o = 0;
    if (!weight_grad) {
        b->u = o;
        o += round_up(b->nxi * sz->O * sz->C, 16);
        b->mo = o;
        o += b->nxi * b->ms;
        b->z = o;
        o += round_up(m * m * sz->O * b->ldv + SLACK, 16);
    } else {
        b->du = o;
        o += round_up(16 * sz->C * b->opad, 16);
        b->yt = o;
        o += 16 * b->ys;
        b->dycl = o;
        o += round_up(sz->out_plane * b->opad, 16);
    }
    b->end = o = wino_input_plan(sz, b, o);
    return o;
}

/* u: (nxi, O, C), xi = al*row + column of G g G^T with G (al x 3), for output channels [o0, o1);
 * g of (o, c) read as w[o*ws.o_stride + c*ws.c_stride + tap], the taps reversed when ws.flipped.
 * In double, rounded once. Sixteen input channels at a time, in the innermost loops (vectorized),
 * and each xi's sixteen written as one run: u's planes are O*C floats apart, often a multiple of
 * 4 KB, so one store per plane and pair would keep evicting lines of one L1 set. */
static void wino_weight_transform(float *u, const float *w, dpt__wino_weights ws,
                                  const conv_sizes *sz, const double *G, int al, int64_t o0,
                                  int64_t o1) {
    enum { CB = 16 };
    for (int64_t o = o0; o < o1; o++)
        for (int64_t c0 = 0; c0 < sz->C; c0 += CB) {
            const int64_t nc = min64(CB, sz->C - c0);
            double g[9][CB] = {{0}}, t[WINO_AL_MAX][3][CB];
            float r[WINO_AL_MAX * WINO_AL_MAX][CB];
            for (int64_t cc = 0; cc < nc; cc++) {
                const float *gw = w + o * ws.o_stride + (c0 + cc) * ws.c_stride;
                for (int j = 0; j < 9; j++)
                    g[j][cc] = gw[ws.flipped ? 8 - j : j];
            }
            for (int i = 0; i < al; i++) /* G g: along the kernel rows */
                for (int j = 0; j < 3; j++)
                    for (int cc = 0; cc < CB; cc++)
                        t[i][j][cc] = G[3 * i] * g[j][cc] + G[3 * i + 1] * g[3 + j][cc] +
                                      G[3 * i + 2] * g[6 + j][cc];
            for (int i = 0; i < al; i++) /* (G g) G^T: along the kernel columns */
                for (int k = 0; k < al; k++)
                    for (int cc = 0; cc < CB; cc++)
                        r[i * al + k][cc] =
                            (float)(t[i][0][cc] * G[3 * k] + t[i][1][cc] * G[3 * k + 1] +
                                    t[i][2][cc] * G[3 * k + 2]);
            for (int xi = 0; xi < al * al; xi++)
                memcpy(u + (xi * sz->O + o) * sz->C + c0, r[xi], (size_t)nc * sizeof(float));
        }
}

/* B^T d along one dimension: the 4 transformed values of 4 inputs. */
SIMD_INLINE void wino_input_transform(vf out[4], vf d0, vf d1, vf d2, vf d3) {
    out[0] = V_SUB(d0, d2);
    out[1] = V_ADD(d1, d2);
    out[2] = V_SUB(d2, d1);
    out[3] = V_SUB(d1, d3);
}

static inline void wino2_in(vf *out, const vf *d) {
    wino_input_transform(out, d[0], d[1], d[2], d[3]);
}

/* B^T along input row `row` (bordered) for the VL tiles whose columns start at row[0]: the even
 * and odd columns of two vectors are columns 2tx .. 2tx+3 of each tile. */
SIMD_INLINE void wino_input_transform_row(vf t[4], const float *row) {
    vf e0, o0, e1, o1;
    v_deinterleave(V_LOAD(row), V_LOAD(row + VL), &e0, &o0);
    v_deinterleave(V_LOAD(row + 2), V_LOAD(row + 2 + VL), &e1, &o1);
    wino_input_transform(t, e0, o0, e1, o1);
}

/* A^T m along one dimension: the 2 outputs of 4 transformed values. */
static inline void wino2_out(vf *y, const vf *d) {
    y[0] = V_ADD(V_ADD(d[0], d[1]), d[2]);
    y[1] = V_SUB(V_SUB(d[1], d[2]), d[3]);
}

/* B^T along the columns of VL tiles whose rows are transformed (d[a][k]: value k of row a), each
 * of the 16 results xi = 4*a + k stored at out + xi*stride. */
SIMD_INLINE void wino_store_columns(float *out, int64_t stride, vf d[4][4]) {
    SIMD_UNROLL
    for (int k = 0; k < 4; k++) {
        vf o[4];
        wino_input_transform(o, d[0][k], d[1][k], d[2][k], d[3][k]);
        SIMD_UNROLL
        for (int a = 0; a < 4; a++)
            V_STORE(out + (a * 4 + k) * stride, o[a]);
    }
}

static const double wino2_G[4 * 3] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};

WINO_DEFINE_VARIANT(static, wino2_variant, 2, wino2_in, wino2_out, wino2_G);

/* ---- F(4x4, 3x3): forward (and backward-data, a forward of dy), on the same layout, products
 * and driver. A 4x4
 * output tile comes from a 6x6 input tile through 36 frequencies: 2.25 multiplications per output
 * and channel pair instead of 4 with F(2x2) and 9 direct. The points 0, +-1, +-2 and infinity
 * (Lavin & Gray):
 *
 *   B^T = | 4  0 -5  0  1  0 |    G = |  1/4     0     0   |    A^T = | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
 *         | 0  4 -4 -1  1  0 |        | -1/6   1/6  -1/6  |          | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |        |  1/24  1/12  1/6  |          | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |        |  1/24 -1/12  1/6  |
 *         | 0  4  0 -5  0  1 |        |  0     0     1    |
 *
 * Its coefficients (up to 8 in A^T, 5 in B^T, 1/6 in G) round more than F(2x2)'s 0, +-1 and 1/2;
 * docs/kernels.md gives the error measured against the double reference. */

/* B^T d along one dimension: the 6 transformed values of 6 inputs. */
static inline void wino4_in(vf *t, const vf *d) {
    const vf a = V_FNMA(V_SET1(4.0f), d[2], d[4]), p = V_FNMA(V_SET1(4.0f), d[1], d[3]);
    const vf e = V_SUB(d[4], d[2]), q = V_SUB(d[3], d[1]);
    t[0] = V_FMA(V_SET1(4.0f), d[0], V_FNMA(V_SET1(5.0f), d[2], d[4]));
    t[1] = V_ADD(a, p);
    t[2] = V_SUB(a, p);
    t[3] = V_FMA(V_SET1(2.0f), q, e);
    t[4] = V_FNMA(V_SET1(2.0f), q, e);
    t[5] = V_FMA(V_SET1(4.0f), d[1], V_FNMA(V_SET1(5.0f), d[3], d[5]));
}

/* A^T m along one dimension: the 4 outputs of 6 transformed values. */
static inline void wino4_out(vf *y, const vf *m) {
    const vf s12 = V_ADD(m[1], m[2]), d12 = V_SUB(m[1], m[2]);
    const vf s34 = V_ADD(m[3], m[4]), d34 = V_SUB(m[3], m[4]);
    y[0] = V_ADD(V_ADD(m[0], s12), s34);
    y[1] = V_FMA(V_SET1(2.0f), d34, d12);
    y[2] = V_FMA(V_SET1(4.0f), s34, s12);
    y[3] = V_ADD(V_FMA(V_SET1(8.0f), d34, d12), m[5]);
}

static const double wino4_G[6 * 3] = {
    1.0 / 4,  0.0,      0.0,     -1.0 / 6, -1.0 / 6,  -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
    1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6,  0.0,      0.0,     1.0,
};

WINO_DEFINE_VARIANT(static, wino4_variant, 4, wino4_in, wino4_out, wino4_G);

/* By default F(4x4) runs where its rounding was measured to keep a wide margin (test_conv_simd's
 * test_winograd_accuracy: the layers of fmnist-cnn, up to 64 channels each way, at most 39 % of
 * the tolerance, where F(2x2) uses 1-1.6 %) and where its tiles take at most 4/5 of the
 * multiplications of F(2x2)'s (the 14x14 and 28x28 layers of fmnist-cnn: 0.73 and 0.56, and faster
 * in both ISAs, docs/kernels.md).
 */
#define WINO4_MAX_CH 64

static int wino4_pays(const conv_sizes *sz) {
    const int mode = dpt_conv_winograd();
    if (mode == 4 || mode == 2)
        return mode == 4;
    const int64_t oH = sz->out[1], oW = sz->out[2];
    const int64_t mul4 = 36 * ((oH + 3) / 4) * ((oW + 3) / 4);
    const int64_t mul2 = 16 * ((oH + 1) / 2) * ((oW + 1) / 2);
    return sz->C <= WINO4_MAX_CH && sz->O <= WINO4_MAX_CH && 5 * mul4 <= 4 * mul2;
}

/* The m vectors of one output row of VL tiles, from the m vectors z[j*ldz] of its columns j:
 * interleaved, column j of tile l at lane m*l + j of the row. */
SIMD_INLINE void wino_interleave_row(vf out[4], const float *z, int64_t ldz, int m) {
    if (m == 2) {
        v_interleave(V_LOAD(z), V_LOAD(z + ldz), &out[0], &out[1]);
        return;
    }
    vf p0, p1, q0, q1;
    v_interleave(V_LOAD(z), V_LOAD(z + 2 * ldz), &p0, &p1);
    v_interleave(V_LOAD(z + ldz), V_LOAD(z + 3 * ldz), &q0, &q1);
    v_interleave(p0, q0, &out[0], &out[1]);
    v_interleave(p1, q1, &out[2], &out[3]);
}

/* Output rows m*ty .. m*ty+m-1 of tiles [txa, txb) of one channel yo: (oH, oW), from
 * z: (m*m, ldz) whose column 0 is tile txa. */
static void wino_store_rows(float *yo, const float *z, int64_t ldz, int64_t ty, int64_t txa,
                            int64_t txb, const conv_sizes *sz, int m) {
    const int64_t oW = sz->out[2];
    for (int64_t i = 0; i < m && m * ty + i < sz->out[1]; i++)
        for (int64_t tx0 = txa; tx0 < txb; tx0 += VL) {
            vf row[4];
            wino_interleave_row(row, z + m * i * ldz + tx0 - txa, ldz, m);
            float *dst = yo + (m * ty + i) * oW + m * tx0;
            int64_t n = min64(m * (txb - tx0), oW - m * tx0);
            for (int q = 0; q < m && n > 0; q++, n -= VL) {
                if (n >= VL)
                    V_STORE(dst + q * VL, row[q]);
                else
                    V_STORE_N(dst + q * VL, row[q], (int)n);
            }
        }
}

/* Lays out the workspace of one pass and prepares its input side: zero borders of the bordered
 * planes, no stale NaN in the lanes of R and V past the last tile (the transforms and the
 * micro-kernel read them), and the offsets 0, 1, 2, ... along which the micro-kernel reduces
 * (input channels in the forward, a block's tiles in the weight gradient), which it returns. */
static const int32_t *wino_begin(wino_layout *b, float *work, const conv_sizes *sz, int m,
                                 int weight_grad) {
    wino_plan(sz, b, m, weight_grad);
    int32_t *seq_off = (int32_t *)(work + b->seq_off);
    const int64_t n = weight_grad ? b->tb : sz->C;
    for (int64_t i = 0; i < n; i++)
        seq_off[i] = (int32_t)i;
    memset(work + b->xb, 0, (size_t)wino_xb_floats(sz, b) * sizeof(float));
    memset(work + b->r, 0, (size_t)(b->al * b->m * sz->C * b->rp) * sizeof(float));
    memset(work + b->v, 0, (size_t)(b->nxi * b->vs) * sizeof(float));
    return seq_off;
}

/* V (in work) of the block of nb tiles from global tile t0 on; *in_r: the image whose rows R
 * holds. */
static void wino_input_block(float *work, const float *x, int64_t t0, int64_t nb, int64_t *in_r,
                             const conv_sizes *sz, const wino_layout *b, const wino_variant *var) {
    const int64_t T = b->T;
    for (int64_t g = t0; g < t0 + nb;) { /* one image's run of the block at a time */
        const int64_t n = g / T, t = g % T, run = min64(T - t, t0 + nb - g);
        if (n != *in_r) {
            var->rows(work + b->r, work + b->xb, x + n * sz->C * sz->in_plane, sz, b);
            *in_r = n;
        }
        var->columns(work + b->v + g - t0, work + b->r, t, run, sz, b);
        g += run;
    }
}

/* Lines pulled into L2 a few at a time between the micro-kernel calls of a block (the products
 * leave the load ports idle): the output rows the block will write, one range per (image run,
 * channel), then the input of the first image the next block reaches. Without them the copy into
 * R and the stores into y wait on L3 for a quarter of the time. */
typedef struct {
    const char *p, *end; /* the current range */
    const float *y;
    int64_t g, g_end, o;     /* the run being walked, the block's end, the channel */
    const char *x, *x_end;   /* then the next image's input */
    const char *x2, *x2_end; /* and another range after it, or NULL */
} wino_prefetch;

static void wino_prefetch_range(wino_prefetch *s, const conv_sizes *sz, const wino_layout *b) {
    const int64_t T = b->T, m = b->m, n = s->g / T, last = min64((n + 1) * T, s->g_end) - 1;
    const int64_t r0 = s->g % T / b->TW * m, r1 = min64(last % T / b->TW * m + m, sz->out[1]);
    const float *plane = s->y + (n * sz->O + s->o) * sz->out_plane;
    s->p = (const char *)(plane + r0 * sz->out[2]);
    s->end = (const char *)(plane + r1 * sz->out[2]);
}

static void wino_prefetch_init(wino_prefetch *s, const float *y, const float *x, int64_t t0,
                               int64_t nb, const conv_sizes *sz, const wino_layout *b) {
    s->y = y;
    s->g = t0;
    s->g_end = t0 + nb;
    s->o = 0;
    const int64_t next = (t0 + nb - 1) / b->T + 1; /* the first image no block has reached */
    const int reached = next < sz->N && next * b->T < t0 + 2 * nb;
    s->x = reached ? (const char *)(x + next * sz->C * sz->in_plane) : NULL;
    s->x_end = reached ? s->x + sz->C * sz->in_plane * (int64_t)sizeof(float) : NULL;
    s->x2 = s->x2_end = NULL;
    if (y)
        wino_prefetch_range(s, sz, b);
    else /* the input only */
        s->g_end = t0, s->p = s->end = NULL;
}

/* The next run of at most k lines within one range, as a one-region prefetch_stream for
 * dpt__channel_kernel, which issues one prefetch per step of its reduction (a burst would stall on
 * full miss queues). */
static prefetch_stream wino_prefetch_take(wino_prefetch *s, int64_t k, const conv_sizes *sz,
                                          const wino_layout *b) {
    prefetch_stream r = {.step = 0};
    while (s->p >= s->end) {
        if (s->g < s->g_end) { /* next channel, or the next image run */
            if (++s->o == sz->O) {
                s->o = 0;
                s->g = min64((s->g / b->T + 1) * b->T, s->g_end);
            }
            if (s->g < s->g_end)
                wino_prefetch_range(s, sz, b);
        } else if (s->x) {
            s->p = s->x;
            s->end = s->x_end;
            s->x = s->x2;
            s->x_end = s->x2_end;
            s->x2 = NULL;
        } else {
            return r;
        }
    }
    const int64_t n = min64(k, (s->end - s->p + 63) / 64);
    r.p[0] = s->p;
    r.end[0] = s->p + n * 64;
    r.p[1] = r.end[1] = NULL;
    r.step = n;
    s->p += n * 64;
    return r;
}

/* out (rows x cols, rows ldo apart) = A B, or += A B when `accumulate`: A (rows x K, rows lda
 * apart, read along seq_off), B (K x cols, rows ldb apart), cols whole vectors. Rows go to the
 * micro-kernel's registers in tiles, columns to its lanes in blocks of one or two vectors; with
 * pf, each call also prefetches K lines of what pf walks. */
static void wino_product(float *out, int64_t ldo, int accumulate, int64_t rows, int64_t cols,
                         const float *A, int64_t lda, const int32_t *seq_off, int64_t K,
                         const float *B, int64_t ldb, wino_prefetch *pf, const conv_sizes *sz,
                         const wino_layout *ws) {
    for (int64_t j = 0; j < cols; j += 2 * VL) {
        const int NV = cols - j >= 2 * VL ? 2 : 1;
        const int64_t nt = tiles_count(rows, NV == 2 ? CHANNEL_TILE_MAX2 : CHANNEL_TILE_MAX1);
        for (int64_t t = 0; t < nt; t++) {
            int64_t i0;
            int R;
            tile_bounds(rows, nt, t, &i0, &R);
            float *o = out + i0 * ldo + j;
            prefetch_stream ps;
            if (pf)
                ps = wino_prefetch_take(pf, K, sz, ws);
            dpt__channel_kernel(o, ldo, accumulate ? o : NULL, R, NV, lda, A + i0 * lda, seq_off, K,
                                B + j, ldb, 0, pf ? &ps : NULL);
        }
    }
}

static void wino_forward_variant(float *y, const float *x, const float *u, const float *b,
                                 const conv_sizes *sz, float *work, const wino_variant *var) {
    wino_layout ws;
    const int m = var->m;
    const int32_t *seq_off = wino_begin(&ws, work, sz, m, 0);
    float *v = work + ws.v, *mm = work + ws.mo, *z = work + ws.z;
    const int64_t C = sz->C, O = sz->O, T = ws.T, TW = ws.TW, ldv = ws.ldv, total = ws.total;
    int64_t in_r = -1; /* the image whose rows are in R */
    for (int64_t t0 = 0; t0 < total; t0 += ws.tb) {
        const int64_t nb = min64(ws.tb, total - t0);
        const int64_t cols = round_up(nb, VL);
        wino_input_block(work, x, t0, nb, &in_r, sz, &ws, var);
        wino_prefetch pf;
        wino_prefetch_init(&pf, y, x, t0, nb, sz, &ws);
        for (int64_t xi = 0; xi < ws.nxi; xi++) /* M[xi] = U[xi] V[xi] */
            wino_product(mm + xi * ws.ms, ldv, 0, O, cols, u + xi * O * C, C, seq_off, C,
                         v + xi * ws.vs, ldv, &pf, sz, &ws);
        var->output(z, mm, b, cols, sz, &ws);
        for (int64_t g = t0; g < t0 + nb;) { /* one tile row's run of the block at a time */
            const int64_t n = g / T, ty = g % T / TW, tx = g % TW;
            const int64_t txb = min64(TW, tx + t0 + nb - g);
            for (int64_t o = 0; o < O; o++)
                wino_store_rows(y + (n * O + o) * sz->out_plane, z + o * m * m * ldv + g - t0, ldv,
                                ty, tx, txb, sz, m);
            g += txb - tx;
        }
    }
}

static const wino_variant *forward_variant(const conv_sizes *sz) {
    return wino4_pays(sz) ? &wino4_variant : &wino2_variant;
}

int64_t dpt__wino_prepared_floats(const conv_sizes *sz) {
    const int64_t al = forward_variant(sz)->m + 2;
    return al * al * sz->O * sz->C;
}

/* Output channel o's part of U does not depend on the others': any cut gives the same bits. */
void dpt__wino_prepare(float *u, const float *w, dpt__wino_weights ws, const conv_sizes *sz,
                       int64_t o0, int64_t o1) {
    const wino_variant *var = forward_variant(sz);
    wino_weight_transform(u, w, ws, sz, var->G, var->m + 2, o0, o1);
}

void dpt__wino_forward_prepared(float *y, const float *x, const float *u, const float *b,
                                const conv_sizes *sz, float *work) {
    wino_forward_variant(y, x, u, b, sz, work, forward_variant(sz));
}

void dpt__wino_forward(float *y, const float *x, const float *w, dpt__wino_weights ws,
                       const float *b, const conv_sizes *sz, float *work) {
    wino_layout layout;
    wino_plan(sz, &layout, forward_variant(sz)->m, 0);
    dpt__wino_prepare(work + layout.u, w, ws, sz, 0, sz->O);
    dpt__wino_forward_prepared(y, x, work + layout.u, b, sz, work);
}

/* ---------------------------------------------------------------------------------------------
 * Weight gradient. The forward is linear in U = G g G^T, so over all tiles
 *   dL/dU[xi] = sum_tiles (A dY A^T)[xi] * V[xi]   and   dL/dg = G^T (dL/dU) G,
 * per xi a product  dU[xi] (C x O) += V[xi] (C x tiles) * Yt[xi] (tiles x O): dpt__channel_kernel
 * with the output channels in the lanes, input channels in registers and the block's tiles as the
 * reduction. */

/* Yt[xi][.][o ..] of tile (ty, tx): A dY A^T, dY the tile's 2x2 of dycl: (oH*oW, opad), channel
 * last; outputs past the bottom or right edge do not exist and count as zero. */
static void wino_dy_transform(float *yt, int64_t ys, const float *dycl, int64_t opad, int64_t ty,
                              int64_t tx, const conv_sizes *sz) {
    const int64_t oH = sz->out[1], oW = sz->out[2];
    const int down = 2 * ty + 1 < oH, right = 2 * tx + 1 < oW;
    const float *p = dycl + (2 * ty * oW + 2 * tx) * opad;
    for (int64_t o = 0; o < opad; o += VL) {
        const vf d00 = V_LOAD(p + o), d01 = right ? V_LOAD(p + opad + o) : V_ZERO();
        const vf d10 = down ? V_LOAD(p + oW * opad + o) : V_ZERO();
        const vf d11 = down && right ? V_LOAD(p + (oW + 1) * opad + o) : V_ZERO();
        /* A (d0, d1) = (d0, d0 + d1, d0 - d1, -d1), down the rows, then along them */
        const vf c[4][2] = {{d00, d01},
                            {V_ADD(d00, d10), V_ADD(d01, d11)},
                            {V_SUB(d00, d10), V_SUB(d01, d11)},
                            {V_SUB(V_ZERO(), d10), V_SUB(V_ZERO(), d11)}};
        SIMD_UNROLL
        for (int a = 0; a < 4; a++) {
            V_STORE(yt + (a * 4) * ys + o, c[a][0]);
            V_STORE(yt + (a * 4 + 1) * ys + o, V_ADD(c[a][0], c[a][1]));
            V_STORE(yt + (a * 4 + 2) * ys + o, V_SUB(c[a][0], c[a][1]));
            V_STORE(yt + (a * 4 + 3) * ys + o, V_SUB(V_ZERO(), c[a][1]));
        }
    }
}

/* g: one 3x3 kernel += G^T m G, in double. */
static void wino_weight_add(float *g, const double m[4][4]) {
    double t[3][4];
    for (int j = 0; j < 4; j++) { /* G^T along the rows */
        t[0][j] = m[0][j] + 0.5 * (m[1][j] + m[2][j]);
        t[1][j] = 0.5 * (m[1][j] - m[2][j]);
        t[2][j] = 0.5 * (m[1][j] + m[2][j]) + m[3][j];
    }
    for (int i = 0; i < 3; i++) { /* ... and G along the columns */
        g[3 * i] += (float)(t[i][0] + 0.5 * (t[i][1] + t[i][2]));
        g[3 * i + 1] += (float)(0.5 * (t[i][1] - t[i][2]));
        g[3 * i + 2] += (float)(0.5 * (t[i][1] + t[i][2]) + t[i][3]);
    }
}

/* dw[o][c] += G^T dU[.][c][o] G. */
static void wino_weight_finish(float *dw, const float *du, const conv_sizes *sz, int64_t opad) {
    for (int64_t o = 0; o < sz->O; o++)
        for (int64_t c = 0; c < sz->C; c++) {
            double m[4][4];
            for (int xi = 0; xi < 16; xi++)
                m[xi / 4][xi % 4] = du[(xi * sz->C + c) * opad + o];
            wino_weight_add(dw + (o * sz->C + c) * 9, m);
        }
}

void dpt__wino_backward_weight(float *dw, const float *dy, const float *x, const conv_sizes *sz,
                               float *work) {
    wino_layout ws;
    const int32_t *seq_off = wino_begin(&ws, work, sz, 2, 1);
    float *v = work + ws.v, *du = work + ws.du, *yt = work + ws.yt, *dycl = work + ws.dycl;
    const int64_t C = sz->C, O = sz->O, opad = ws.opad, T = ws.T, TW = ws.TW, total = ws.total;
    memset(du, 0, (size_t)(16 * C * opad) * sizeof(float));
    memset(dycl, 0, (size_t)(sz->out_plane * opad) * sizeof(float)); /* lanes past O stay zero */
    int64_t in_r = -1, in_dy = -1;
    for (int64_t t0 = 0; t0 < total; t0 += ws.tb) {
        const int64_t nb = min64(ws.tb, total - t0);
        wino_input_block(work, x, t0, nb, &in_r, sz, &ws, &wino2_variant);
        for (int64_t g = t0; g < t0 + nb; g++) {
            const int64_t n = g / T, t = g % T;
            if (n != in_dy) {
                dpt__transpose(dycl, opad, dy + n * O * sz->out_plane, sz->out_plane, O,
                               sz->out_plane);
                in_dy = n;
            }
            wino_dy_transform(yt + (g - t0) * opad, ws.ys, dycl, opad, t / TW, t % TW, sz);
        }
        wino_prefetch pf;
        wino_prefetch_init(&pf, NULL, x, t0, nb, sz, &ws);
        if (pf.x) { /* and that image's dy */
            const int64_t next = ((const float *)pf.x - x) / (C * sz->in_plane);
            const float *dyn = dy + next * O * sz->out_plane;
            pf.x2 = (const char *)dyn;
            pf.x2_end = (const char *)(dyn + O * sz->out_plane);
        }
        for (int64_t xi = 0; xi < 16; xi++) /* dU[xi] += V[xi] Yt[xi] */
            wino_product(du + xi * C * opad, opad, 1, C, opad, v + xi * ws.vs, ws.ldv, seq_off, nb,
                         yt + xi * ws.ys, opad, &pf, sz, &ws);
    }
    wino_weight_finish(dw, du, sz, opad);
}

/* ---------------------------------------------------------------------------------------------
 * Weight gradient of a first layer (one input channel): the same identity with C = 1, where the
 * products would have a single row. An image's V (lanes along a tile row) stays in L1 while each
 * output channel's A dY A^T is formed in registers from its rows of dy and multiplied into 16
 * accumulators. Element (1, 1) of A dY A^T is the sum of the tile's dY, so the bias gradient
 * comes from the same single read of dy. */

static int wino_one_channel_shape_ok(const conv_sizes *sz) {
    return wino_tiling_ok(sz) && sz->C == 1 && sz->O >= 4;
}

int dpt__wino_one_channel_use(const conv_sizes *sz) {
    return wino_one_channel_shape_ok(sz) && dpt_conv_winograd();
}

static int64_t wino_one_channel_plan(const conv_sizes *sz, wino_layout *b) {
    wino_tiling(sz, b, 2);
    b->nch = (b->TW + VL - 1) / VL;
    int64_t o = 0;
    b->xb = o;
    o += round_up(b->bh * b->bw + SLACK, 16);
    b->v = o;
    o += round_up(b->TH * b->nch * 16 * VL, 16);
    b->du = o; /* per output channel: 16 vectors of partial dU sums, then one of bias sums */
    o += round_up(sz->O * 17 * VL, 16);
    b->end = o;
    return o;
}

int64_t dpt__wino_forward_floats(const conv_sizes *sz) {
    wino_layout b;
    if (!wino_shape_ok(sz))
        return 0;
    /* both variants, whichever runs */
    const int64_t f2 = wino_plan(sz, &b, 2, 0);
    return max64(f2, wino_plan(sz, &b, 4, 0));
}

int64_t dpt__wino_weight_grad_floats(const conv_sizes *sz) {
    wino_layout b;
    const int64_t many = wino_shape_ok(sz) ? wino_plan(sz, &b, 2, 1) : 0;
    const int64_t one = wino_one_channel_shape_ok(sz) ? wino_one_channel_plan(sz, &b) : 0;
    return max64(many, one);
}

/* One tile row (VL tiles) of one output channel into the 16 accumulators: dY from rows r0 and
 * r1 of dy (r1 only when `down`; the lanes past the right edge are masked off and read as 0, so
 * they add nothing), A dY A^T with A (d0, d1) = (d0, d0 + d1, d0 - d1, -d1) and the negations
 * folded into the multiply-adds, times V of the same tiles (vt). accb gathers element (1, 1),
 * the sum of each tile: the bias gradient. */
SIMD_INLINE void wino_one_channel_step(vf acc[16], vf *accb, const float *r0, const float *r1,
                                       vmask m0, vmask m1, const float *vt, const int down) {
    vf d00, d01, d10 = V_ZERO(), d11 = V_ZERO();
    v_deinterleave(V_LOAD_M(r0, m0), V_LOAD_M(r0 + VL, m1), &d00, &d01);
    if (down)
        v_deinterleave(V_LOAD_M(r1, m0), V_LOAD_M(r1 + VL, m1), &d10, &d11);
#define WINO_ACC(xi, yv) acc[xi] = V_FMA((yv), V_LOAD(vt + (xi)*VL), acc[xi])
#define WINO_NACC(xi, yv) acc[xi] = V_FNMA((yv), V_LOAD(vt + (xi)*VL), acc[xi])
    WINO_ACC(0, d00);
    WINO_ACC(1, V_ADD(d00, d01));
    WINO_ACC(2, V_SUB(d00, d01));
    WINO_NACC(3, d01);
    if (down) {
        const vf s0 = V_ADD(d00, d10), s1 = V_ADD(d01, d11), s01 = V_ADD(s0, s1);
        const vf t0 = V_SUB(d00, d10), t1 = V_SUB(d01, d11);
        *accb = V_ADD(*accb, s01);
        WINO_ACC(4, s0);
        WINO_ACC(5, s01);
        WINO_ACC(6, V_SUB(s0, s1));
        WINO_NACC(7, s1);
        WINO_ACC(8, t0);
        WINO_ACC(9, V_ADD(t0, t1));
        WINO_ACC(10, V_SUB(t0, t1));
        WINO_NACC(11, t1);
        WINO_NACC(12, d10);
        WINO_NACC(13, V_ADD(d10, d11));
        WINO_ACC(14, V_SUB(d11, d10));
        WINO_ACC(15, d11);
    } else { /* row 2ty+1 is past the bottom: rows 1 and 2 of A dY are row 0, row 3 is zero */
        const vf s01 = V_ADD(d00, d01);
        *accb = V_ADD(*accb, s01);
        WINO_ACC(4, d00);
        WINO_ACC(5, s01);
        WINO_ACC(6, V_SUB(d00, d01));
        WINO_NACC(7, d01);
        WINO_ACC(8, d00);
        WINO_ACC(9, s01);
        WINO_ACC(10, V_SUB(d00, d01));
        WINO_NACC(11, d01);
    }
#undef WINO_ACC
#undef WINO_NACC
}

void dpt__wino_one_channel_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                           const conv_sizes *sz, float *work) {
    wino_layout ws;
    wino_one_channel_plan(sz, &ws);
    float *xb = work + ws.xb, *vimg = work + ws.v, *du = work + ws.du;
    const int64_t O = sz->O, oH = sz->out[1], oW = sz->out[2], bw = ws.bw, nch = ws.nch;
    memset(xb, 0, (size_t)(ws.bh * bw + SLACK) * sizeof(float));
    memset(du, 0, (size_t)(O * 17 * VL) * sizeof(float));
    for (int64_t n = 0; n < sz->N; n++) {
        for (int64_t h = 0; h < sz->in[1]; h++)
            v_copy(xb + (h + sz->pad[1]) * bw + sz->pad[2], x + (n * sz->in[1] + h) * sz->in[2],
                   sz->in[2]);
        for (int64_t ty = 0; ty < ws.TH; ty++) /* V, tile row by tile row */
            for (int64_t ch = 0; ch < nch; ch++) {
                vf r[4][4];
                SIMD_UNROLL
                for (int a = 0; a < 4; a++)
                    wino_input_transform_row(r[a], xb + (2 * ty + a) * bw + 2 * ch * VL);
                wino_store_columns(vimg + (ty * nch + ch) * 16 * VL, VL, r);
            }
        for (int64_t o = 0; o < O; o++) {
            const float *dyo = dy + (n * O + o) * sz->out_plane;
            vf acc[16], accb = V_ZERO();
            SIMD_UNROLL
            for (int xi = 0; xi < 16; xi++)
                acc[xi] = V_ZERO();
            for (int64_t ch = 0; ch < nch; ch++) {
                const int64_t x0 = 2 * ch * VL;
                const vmask m0 = v_mask_n(oW - x0), m1 = v_mask_n(oW - x0 - VL);
                int64_t ty = 0;
                for (; 2 * ty + 1 < oH; ty++) {
                    const float *r0 = dyo + 2 * ty * oW + x0;
                    /* the next channel's rows, a few lines per step, ahead of their use */
                    V_PREFETCH(r0 + sz->out_plane);
                    V_PREFETCH(r0 + sz->out_plane + 16);
                    V_PREFETCH(r0 + sz->out_plane + oW);
                    V_PREFETCH(r0 + sz->out_plane + oW + 16);
                    wino_one_channel_step(acc, &accb, r0, r0 + oW, m0, m1,
                                          vimg + (ty * nch + ch) * 16 * VL, 1);
                }
                if (ty < ws.TH) /* odd oH: the last tile row has no second row */
                    wino_one_channel_step(acc, &accb, dyo + 2 * ty * oW + x0, NULL, m0, m1,
                                          vimg + (ty * nch + ch) * 16 * VL, 0);
            }
            float *d = du + o * 17 * VL;
            SIMD_UNROLL
            for (int xi = 0; xi < 16; xi++)
                V_STORE(d + xi * VL, V_ADD(V_LOAD(d + xi * VL), acc[xi]));
            V_STORE(d + 16 * VL, V_ADD(V_LOAD(d + 16 * VL), accb));
        }
    }
    for (int64_t o = 0; o < O; o++) {
        const float *d = du + o * 17 * VL;
        double m[4][4];
        for (int xi = 0; xi < 16; xi++) {
            double s = 0.0;
            for (int l = 0; l < VL; l++)
                s += d[xi * VL + l];
            m[xi / 4][xi % 4] = s;
        }
        wino_weight_add(dw + o * 9, m);
        if (db) {
            double s = 0.0;
            for (int l = 0; l < VL; l++)
                s += d[16 * VL + l];
            db[o] += (float)s;
        }
    }
}
