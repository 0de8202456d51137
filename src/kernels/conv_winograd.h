/* Internal to the Winograd sources (kernels, compiled once per ISA): what F(2x2, 3x3) in
 * conv_winograd.c and F(4x4, 3x3) in conv_winograd4.c share. A variant F(m x m, 3x3) takes
 * al x al input tiles (al = m + 2) to m x m output tiles through nxi = al^2 frequencies; the
 * layout, the blocking, the per-frequency products, the prefetch and the forward driver are
 * common (conv_winograd.c), and each variant brings its 1-D transforms, instantiated into the
 * skeletons below (SIMD_INLINE, with the 1-D transform a constant function pointer, so each
 * instance compiles to straight-line code), as a wino_variant. */
#ifndef DPT_KERNELS_CONV_WINOGRAD_H
#define DPT_KERNELS_CONV_WINOGRAD_H

#include "conv_simd.h"

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

/* ---- conv_winograd4.c: F(4x4, 3x3), and where it runs instead of F(2x2, 3x3) ---- */
#define dpt__wino4_variant ISA_NAME(dpt__wino4_variant)
#define dpt__wino4_pays ISA_NAME(dpt__wino4_pays)
extern const wino_variant dpt__wino4_variant;
/* Whether the forward of this (Winograd-eligible) shape runs F(4x4): per dpt_conv_winograd(). */
int dpt__wino4_pays(const conv_sizes *sz);

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

/* ---- conv_winograd.c ---- */
#define dpt__wino_forward_variant ISA_NAME(dpt__wino_forward_variant)
#define dpt__wino_forward_plan ISA_NAME(dpt__wino_forward_plan)

/* The forward (y, x, w, b as dpt__wino_forward) with variant v. */
void dpt__wino_forward_variant(float *y, const float *x, const float *w, const float *b,
                               const conv_sizes *sz, float *work, const wino_variant *v);
/* The forward's layout for tile side m; its floats. */
int64_t dpt__wino_forward_plan(const conv_sizes *sz, wino_layout *b, int m);

#endif
