/* Direct / implicit-GEMM convolution on the simd.h vocabulary (kernels), compiled once per ISA by
 * conv_avx512.c and conv_avx2.c inside their target regions. Owns the blocking, the internal
 * layouts (padded input, channel-last copies, packed weights) and the micro-kernels of forward,
 * backward-data and backward-weight for any geometry; knows nothing of dispatch or the CPU.
 *
 * Two micro-kernel families:
 *  - channel-vectorized (mk): acc[r][v] += x[r] * w[v], channels in the lanes, R positions in
 *    registers, reduction over a table of offsets. Forward (over c,taps), scattered
 *    backward-data (over o) and backward-weight (over positions) are all this one loop.
 *  - position-vectorized (pv, dw): positions along a row in the lanes, for layers with few
 *    channels (the first layer, depthwise), where channel lanes would sit mostly empty. With
 *    unit strides they run over shifted copies of the image (shifted_ok), where the positions of
 *    a whole image are one contiguous run per tap.
 * Tensors stream from L3 at batch 64; each (image, group) prefetches the next one's input and
 * output into L2 while its FMAs run, and the channel-vectorized forward transposes its tiles in
 * registers and stores them straight into the (N, O, P) output. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "conv_impl.h"
#include "dpt/status.h"

/* Everything below, down to the pop, is compiled for DPT_SIMD_TARGET. */
#define SIMD_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define SIMD_TARGET_PUSH(t) SIMD_PRAGMA(clang attribute push(__attribute__((target(t))), \
                                                             apply_to = function))
SIMD_TARGET_PUSH(DPT_SIMD_TARGET)
#else
#define SIMD_TARGET_PUSH(t) SIMD_PRAGMA(GCC target(t))
#pragma GCC push_options
SIMD_TARGET_PUSH(DPT_SIMD_TARGET)
#endif

#include "simd.h"

/* Floats of zeroed slack after a padded buffer: vector loads of the last row may run past it. */
#define SLACK (2 * VL)

typedef struct {
    int64_t N, C, O, G, Cg, Og;
    int64_t in[3], out[3], k[3], s[3], p[3], d[3]; /* (D, H, W) */
    int64_t pin[3];     /* padded input extents */
    int64_t ps;         /* padded positions per channel */
    int64_t kvol, K;    /* taps; Cg * taps: the forward reduction length */
    int64_t P, X;       /* output and input positions per image and channel */
    int64_t OgPad, CgPad; /* channel counts rounded up to whole vectors */
} geo;

static int64_t at_least_1(int64_t v) { return v > 0 ? v : 1; }
static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void geo_derive(geo *q) {
    q->Cg = q->C / q->G;
    q->Og = q->O / q->G;
    q->kvol = q->k[0] * q->k[1] * q->k[2];
    q->K = q->Cg * q->kvol;
    q->P = q->out[0] * q->out[1] * q->out[2];
    q->X = q->in[0] * q->in[1] * q->in[2];
    for (int i = 0; i < 3; i++)
        q->pin[i] = q->in[i] + 2 * q->p[i];
    q->ps = q->pin[0] * q->pin[1] * q->pin[2];
    q->OgPad = round_up(q->Og, VL);
    q->CgPad = round_up(q->Cg, VL);
}

static void geo_from(geo *q, const dpt_conv_geom *g) {
    memset(q, 0, sizeof *q);
    q->N = g->N;
    q->C = g->C;
    q->O = g->O;
    q->G = at_least_1(g->groups);
    for (int i = 0; i < 3; i++) {
        q->in[i] = at_least_1(g->in[i]);
        q->out[i] = at_least_1(g->out[i]);
        q->k[i] = at_least_1(g->k[i]);
        q->s[i] = at_least_1(g->stride[i]);
        q->p[i] = g->pad[i];
        q->d[i] = at_least_1(g->dil[i]);
    }
    geo_derive(q);
}

/* Shifted rows: with unit strides on a 2-D image, the input under tap (c, kh, kw) along all P
 * output positions (flattened) is a contiguous run of one of Cg*kW shifted copies of the padded
 * image, each (pH, oW): xs[c][kw][h][ow] = xpad[c][h][ow + kw*dW], from row kh*dH on. Few-channel
 * kernels then vectorize over all P positions with no lanes lost at row ends, and build kW
 * instead of kH*kW rows per output row (an im2col). */
static int shifted_ok(const geo *q) {
    return q->in[0] == 1 && q->k[0] == 1 && q->s[1] == 1 && q->s[2] == 1;
}

static int64_t shifted_floats(const geo *q) { return q->Cg * q->k[2] * q->pin[1] * q->out[2]; }

/* roff[k] for k = (c, kh, kw): where the run of tap k starts in xs. */
static void shifted_offsets(int32_t *roff, const geo *q) {
    DPT_ASSERT(shifted_floats(q) + SLACK < INT32_MAX);
    int64_t k = 0;
    for (int64_t c = 0; c < q->Cg; c++)
        for (int64_t kh = 0; kh < q->k[1]; kh++)
            for (int64_t kw = 0; kw < q->k[2]; kw++)
                roff[k++] = (int32_t)(((c * q->k[2] + kw) * q->pin[1] + kh * q->d[1]) * q->out[2]);
}

/* ---------------------------------------------------------------------------------------------
 * Layout transforms. */

/* dst[0..n) = src[0..n): rows here are short (tens of floats), where a libc call costs more than
 * the copy; the tail is one masked vector (V_STORE_N is a scalar loop on AVX2). */
SIMD_INLINE void copy_row(float *dst, const float *src, int64_t n) {
    int64_t j = 0;
    for (; j + VL <= n; j += VL)
        V_STORE(dst + j, V_LOAD(src + j));
    if (j < n)
        V_STORE_N(dst + j, V_LOAD_N(src + j, (int)(n - j)), (int)(n - j));
}

/* xp: (nch, pD, pH, pW) + SLACK, zero borders; x: (nch, D, H, W). Only the interior is written,
 * so the borders zeroed once by the caller stay zero across images. */
static void pad_fill(float *xp, const float *x, int64_t nch, const geo *q) {
    const int64_t H = q->in[1], W = q->in[2], pW = q->pin[2];
    for (int64_t c = 0; c < nch; c++)
        for (int64_t d = 0; d < q->in[0]; d++) {
            float *dst = xp + c * q->ps + ((d + q->p[0]) * q->pin[1] + q->p[1]) * pW + q->p[2];
            const float *src = x + (c * q->in[0] + d) * H * W;
            if (W < VL) /* short rows (the small images of a CNN): one masked vector each */
                for (int64_t h = 0; h < H; h++)
                    V_STORE_N(dst + h * pW, V_LOAD_N(src + h * W, (int)W), (int)W);
            else
                for (int64_t h = 0; h < H; h++)
                    copy_row(dst + h * pW, src + h * W, W);
        }
}

/* xs: (nch, kW, pH, oW) shifted copies of xp: (nch, pH, pW) (see shifted_ok). */
static void shifted_fill(float *xs, const float *xp, int64_t nch, const geo *q) {
    const int64_t kW = q->k[2], pH = q->pin[1], oW = q->out[2];
    for (int64_t c = 0; c < nch; c++)
        for (int64_t kw = 0; kw < kW; kw++)
            for (int64_t h = 0; h < pH; h++)
                copy_row(xs + ((c * kW + kw) * pH + h) * oW, xp + c * q->ps + h * q->pin[2] + kw * q->d[2],
                         oW);
}

/* dst[j*ldd + i] = src[i*lds + j] for i < ni, j < nj: VL x VL blocks in registers (the last
 * block along j read with masked loads), then a scalar tail along i. Blocks are visited along i
 * first, so that at most VL destination rows are being written (store streams miss in cache). */
static void transpose(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t ni,
                      int64_t nj) {
    const int64_t nib = ni / VL * VL;
    for (int64_t j = 0; j < nj; j += VL) {
        const int nl = (int)min64(VL, nj - j);
        for (int64_t i = 0; i < nib; i += VL) {
            vf r[VL];
            SIMD_UNROLL
            for (int a = 0; a < VL; a++) { /* VL concurrent streams: too many to leave to hardware */
                V_PREFETCH(src + (i + a) * lds + j + 4 * VL);
                r[a] = nl == VL ? V_LOAD(src + (i + a) * lds + j) : V_LOAD_N(src + (i + a) * lds + j, nl);
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

/* xcl: (pD, pH, pW, ld) channel-last with zero borders; x: (nch, D, H, W). */
static void pad_fill_cl(float *xcl, int64_t ld, const float *x, int64_t nch, const geo *q) {
    const int64_t H = q->in[1], W = q->in[2];
    for (int64_t d = 0; d < q->in[0]; d++)
        for (int64_t h = 0; h < H; h++)
            transpose(xcl + (((d + q->p[0]) * q->pin[1] + h + q->p[1]) * q->pin[2] + q->p[2]) * ld,
                      ld, x + (d * H + h) * W, q->X, nch, W);
}

/* ---------------------------------------------------------------------------------------------
 * Software prefetch of a tensor region into L2, spread over the micro-kernel calls of one image:
 * the next image's input and this image's output are pulled in from L3 while the FMAs run, so the
 * layout passes before and after the compute (padding, transposes) hit L2 instead of stalling. */
typedef struct {
    const char *p[2], *end[2]; /* two regions, prefetched one after the other */
    int64_t step;              /* lines per micro-kernel call */
} pf_stream;

/* Regions a (na floats) and b (nb floats), either may be NULL, spread over `calls` calls. */
SIMD_INLINE void pf_init(pf_stream *s, const float *a, int64_t na, const float *b, int64_t nb,
                         int64_t calls) {
    s->p[0] = (const char *)a;
    s->end[0] = s->p[0] + (a ? na : 0) * (int64_t)sizeof(float);
    s->p[1] = (const char *)b;
    s->end[1] = s->p[1] + (b ? nb : 0) * (int64_t)sizeof(float);
    const int64_t lines = ((a ? na : 0) + (b ? nb : 0)) * (int64_t)sizeof(float) / 64 + 2;
    s->step = calls > 0 ? (lines + calls - 1) / calls + 1 : 0;
}

/* The next run of at most step lines (within one region): *p and the count; 0 when done. */
SIMD_INLINE int64_t pf_take(pf_stream *s, const char **p) {
    const int i = s->p[0] < s->end[0] ? 0 : 1;
    const int64_t left = (s->end[i] - s->p[i] + 63) / 64;
    const int64_t n = left < s->step ? (left > 0 ? left : 0) : s->step;
    *p = s->p[i];
    s->p[i] += n * 64;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Channel-vectorized micro-kernel.
 * out[r*ldo + (0 .. NV*VL)] = init + sum_k a[koff[k] + r*rs] * B[k*ldb + (0 .. NV*VL)], for
 * r < R, where init is what `out` holds when `init == out` (accumulation: the sum is formed
 * from zero and added to `out` at the end, so a weight gradient adds one partial sum per image,
 * not one running chain over the batch), otherwise the NV vectors at `init` (the same for every
 * r), or zero when it is NULL.
 * With nch > 0 (and R <= VL) the result is stored channel-major instead, transposed in registers:
 * out[j*ldo + r] for channels j < nch and r < R, so that a forward pass writes its (N, O, P) output
 * straight from the accumulators (no channel-last buffer, no transpose pass). */
SIMD_INLINE void mk(float *out, int64_t ldo, const float *init, const int R, const int NV,
                    const int64_t rs, const float *a, const int32_t *koff, int64_t K, const float *B,
                    int64_t ldb, int nch, const char *pf, int64_t npf) {
    vf c[MK_ACC_MAX];
    const int accum = init == out;
    SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        SIMD_UNROLL
        for (int v = 0; v < NV; v++)
            c[r * NV + v] = init && !accum ? V_LOAD(init + v * VL) : V_ZERO();
    }
    /* The first npf steps also prefetch one line each of another tensor into L2: a steady
     * trickle hidden under the FMAs, where a burst between calls would stall on full miss
     * queues. */
    const int64_t kpf = npf < K ? npf : K;
    int64_t k = 0;
#define MK_STEP(k)                                                                                 \
    do {                                                                                           \
        const float *ap = a + koff[k];                                                             \
        const float *bp = B + (k) * ldb;                                                           \
        const vf b0 = V_LOAD(bp);                                                                  \
        const vf b1 = NV > 1 ? V_LOAD(bp + VL) : b0;                                               \
        SIMD_UNROLL                                                                                \
        for (int r = 0; r < R; r++) {                                                              \
            const vf xa = V_SET1(ap[r * rs]);                                                      \
            c[r * NV] = V_FMA(xa, b0, c[r * NV]);                                                  \
            if (NV > 1)                                                                            \
                c[r * NV + 1] = V_FMA(xa, b1, c[r * NV + 1]);                                      \
        }                                                                                          \
    } while (0)
    for (; k < kpf; k++) {
        _mm_prefetch(pf + 64 * k, _MM_HINT_T1);
        MK_STEP(k);
    }
    for (; k < K; k++)
        MK_STEP(k);
#undef MK_STEP
    if (R <= VL && nch > 0) {
        SIMD_UNROLL
        for (int v = 0; v < NV; v++) {
            vf t[VL];
            SIMD_UNROLL
            for (int r = 0; r < VL; r++)
                t[r] = r < R ? c[r * NV + v] : V_ZERO();
            v_transpose(t);
            const int nj = nch - v * VL < VL ? nch - v * VL : VL;
            for (int j = 0; j < nj; j++) {
                if (R == VL)
                    V_STORE(out + (v * VL + j) * ldo, t[j]);
                else
                    V_STORE_N(out + (v * VL + j) * ldo, t[j], R);
            }
        }
        return;
    }
    SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        SIMD_UNROLL
        for (int v = 0; v < NV; v++)
            V_STORE(out + r * ldo + v * VL,
                    accum ? V_ADD(V_LOAD(out + r * ldo + v * VL), c[r * NV + v]) : c[r * NV + v]);
    }
}

/* mk with R, NV and (for rs == 1) the row stride as compile-time constants. */
/* ps: a prefetch stream that advances by one call's share, or NULL. */
static void mk_run(float *out, int64_t ldo, const float *init, int R, int NV, int64_t rs,
                   const float *a, const int32_t *koff, int64_t K, const float *B, int64_t ldb,
                   int nch, pf_stream *ps) {
    DPT_ASSERT(nch == 0 || (R <= VL && nch <= NV * VL));
    const char *pf = NULL;
    const int64_t npf = ps ? pf_take(ps, &pf) : 0;
#define MK_CASE(r, nv)                                                                             \
    case r:                                                                                        \
        if (rs == 1)                                                                               \
            mk(out, ldo, init, r, nv, 1, a, koff, K, B, ldb, nch, pf, npf);                        \
        else                                                                                       \
            mk(out, ldo, init, r, nv, rs, a, koff, K, B, ldb, nch, pf, npf);                       \
        return;
#define MK_CASE2(r) MK_CASE(r, 2)
#define MK_CASE1(r) MK_CASE(r, 1)
    if (NV == 2) {
        switch (R) {
            MK_R2_LIST(MK_CASE2)
        default:
            break;
        }
    } else {
        switch (R) {
            MK_R1_LIST(MK_CASE1)
        default:
            break;
        }
    }
#undef MK_CASE2
#undef MK_CASE1
#undef MK_CASE
    DPT_ASSERT(!"mk_run: register block out of range");
}

/* Splits n into the fewest tiles of at most rmax, of nearly equal size: tile t is [*lo, *lo+*len). */
static int64_t tiles_count(int64_t n, int64_t rmax) { return (n + rmax - 1) / rmax; }
static void tile_bounds(int64_t n, int64_t nt, int64_t t, int64_t *lo, int *len) {
    const int64_t base = n / nt, extra = n % nt;
    *lo = t * base + min64(t, extra);
    *len = (int)(base + (t < extra));
}

#include "conv_winograd.h"

/* ---------------------------------------------------------------------------------------------
 * Forward. */

/* Position-vectorized when the stride along W is 1 and channel lanes would be mostly empty or
 * the reduction too short to pay for the transposed tile store. */
static int fwd_uses_pv(const geo *q) { return q->s[2] == 1 && (2 * q->Og <= VL || q->K < 32); }

/* ... and of those, the ones with several output channels to share each input load run over the
 * shifted rows, vectorized along all positions at once. */
static int fwd_uses_sh(const geo *q) { return fwd_uses_pv(q) && shifted_ok(q) && q->Og >= PV_OB; }

/* The channel-vectorized forward stores its tiles straight into (N, O, P) with in-register
 * transposes when a masked store is one instruction (AVX-512); AVX2 masked stores are scalar
 * loops, so there tiles go to a channel-last buffer that is transposed once per image. */
#define FWD_DIRECT (VL >= 16)

/* Positions per tile of the channel-vectorized forward for NV channel vectors. */
static int fwd_rmax(int NV) {
    return NV == 2 ? MK_RMAX2 : (FWD_DIRECT && MK_RMAX1 > VL ? VL : MK_RMAX1);
}

typedef struct {
    int64_t koff, wp, bp, ycl, xp, xs, end; /* offsets in floats */
} fwd_ws;

static int64_t fwd_plan(const geo *q, fwd_ws *b) {
    int64_t o = 0;
    b->koff = o;
    o += round_up(q->K, 16);
    b->wp = b->bp = b->ycl = o;
    if (!fwd_uses_pv(q)) {
        o += round_up(q->G * q->K * q->OgPad, 16);
        b->bp = o;
        o += round_up(q->G * q->OgPad, 16);
        b->ycl = o;
        if (!FWD_DIRECT)
            o += round_up(q->P * q->OgPad, 16);
    }
    b->xp = o;
    o += round_up(q->Cg * q->ps + SLACK, 16);
    b->xs = o;
    if (fwd_uses_sh(q))
        o += round_up(shifted_floats(q) + SLACK, 16);
    b->end = o;
    if (wino_shape_ok(q)) { /* its own layout from 0, whether or not it is switched on */
        wino_ws w;
        o = o > wino_plan(q, &w) ? o : w.end;
    }
    return o;
}

/* koff[k] for k = (c, kd, kh, kw): offset of tap k in the padded input xp. */
static void fwd_koff(int32_t *koff, const geo *q) {
    DPT_ASSERT(q->Cg * q->ps + SLACK < INT32_MAX);
    int64_t k = 0;
    for (int64_t c = 0; c < q->Cg; c++)
        for (int64_t kd = 0; kd < q->k[0]; kd++)
            for (int64_t kh = 0; kh < q->k[1]; kh++)
                for (int64_t kw = 0; kw < q->k[2]; kw++)
                    koff[k++] = (int32_t)(c * q->ps +
                                          (kd * q->d[0] * q->pin[1] + kh * q->d[1]) * q->pin[2] +
                                          kw * q->d[2]);
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  wp: (G, OgPad/(2VL), K, 2VL) packed weights, one
 * contiguous (K, 2VL) block per pair of channel vectors (the last one (K, VL) when Og ends in a
 * single vector), so that the micro-kernel streams its weights sequentially  bp: (G, OgPad)
 * bias, zero-padded (zeros without bias)  xp: one padded image of Cg channels.
 * Tiles go straight to y (FWD_DIRECT), or to ycl: (P, OgPad), transposed into y once per image.
 * While the micro-kernel runs, the next (image, group)'s input and this one's output are
 * prefetched into L2 a few lines per call, so the padded copy and the stores do not wait on L3. */
static void fwd_cv(float *y, const float *x, const geo *q, const float *wp, const float *bp,
                   const int32_t *koff, float *ycl, float *xp) {
    const int64_t rs = q->s[2], ld = q->OgPad;
    int64_t calls = 0; /* micro-kernel calls per (image, group) */
    for (int64_t ob = 0; ob < q->Og; ob += 2 * VL)
        calls += q->out[0] * q->out[1] * tiles_count(q->out[2], fwd_rmax(q->Og - ob > VL ? 2 : 1));
    memset(xp, 0, (size_t)(q->Cg * q->ps + SLACK) * sizeof(float));
    pad_fill(xp, x, q->Cg, q);
    for (int64_t i = 0; i < q->N * q->G; i++) { /* i = (image, group) */
        const int64_t n = i / q->G, gi = i % q->G;
        const float *xnext = i + 1 < q->N * q->G ? x + (i + 1) * q->Cg * q->X : NULL;
        float *yi = y + (n * q->O + gi * q->Og) * q->P;
        pf_stream ps;
        /* the next (image, group)'s input and output: its stores then hit L2 from the start */
        pf_init(&ps, xnext, q->Cg * q->X, xnext ? yi + q->Og * q->P : NULL, q->Og * q->P, calls);
        for (int64_t ob = 0; ob < q->Og; ob += 2 * VL) {
            const int NV = q->Og - ob > VL ? 2 : 1;
            const int nch = FWD_DIRECT ? (int)min64(NV * VL, q->Og - ob) : 0;
            const int64_t nt = tiles_count(q->out[2], fwd_rmax(NV));
            const float *B = wp + (gi * ld + ob) * q->K; /* (K, NV*VL) block */
            for (int64_t od = 0; od < q->out[0]; od++)
                for (int64_t oh = 0; oh < q->out[1]; oh++) {
                    const float *arow = xp + (od * q->s[0] * q->pin[1] + oh * q->s[1]) * q->pin[2];
                    const int64_t p0 = (od * q->out[1] + oh) * q->out[2];
                    for (int64_t t = 0; t < nt; t++) {
                        int64_t ow0;
                        int R;
                        tile_bounds(q->out[2], nt, t, &ow0, &R);
                        if (FWD_DIRECT)
                            mk_run(yi + ob * q->P + p0 + ow0, q->P, bp + gi * ld + ob, R, NV, rs,
                                   arow + ow0 * rs, koff, q->K, B, NV * VL, nch, &ps);
                        else
                            mk_run(ycl + (p0 + ow0) * ld + ob, ld, bp + gi * ld + ob, R, NV, rs,
                                   arow + ow0 * rs, koff, q->K, B, NV * VL, 0, &ps);
                    }
                }
        }
        if (!FWD_DIRECT)
            transpose(yi, q->P, ycl, ld, q->P, q->Og);
        if (xnext)
            pad_fill(xp, xnext, q->Cg, q);
    }
}

/* Position-vectorized block: OB channels x RB rows x WV vectors along a row.
 * y: rows of the block, y[o*yso + r*ysr + j]; a: padded input at the block origin, rows asr apart;
 * w: (OB, K) natural weights; nlast: valid lanes of the last vector. */
SIMD_INLINE void pv_mk(float *y, int64_t yso, int64_t ysr, int nlast, const int OB, const int RB,
                       const int WV, const float *a, int64_t asr, const int32_t *koff, int64_t K,
                       const float *w, const float *bias) {
    vf c[PV_ACC_MAX];
    SIMD_UNROLL
    for (int o = 0; o < OB; o++) {
        const vf bo = bias ? V_SET1(bias[o]) : V_ZERO();
        SIMD_UNROLL
        for (int i = 0; i < RB * WV; i++)
            c[o * RB * WV + i] = bo;
    }
    for (int64_t k = 0; k < K; k++) {
        const float *ap = a + koff[k];
        vf wv[PV_OB];
        SIMD_UNROLL
        for (int o = 0; o < OB; o++)
            wv[o] = V_SET1(w[o * K + k]);
        SIMD_UNROLL
        for (int r = 0; r < RB; r++) {
            SIMD_UNROLL
            for (int v = 0; v < WV; v++) {
                const vf xv = V_LOAD(ap + r * asr + v * VL);
                SIMD_UNROLL
                for (int o = 0; o < OB; o++)
                    c[(o * RB + r) * WV + v] = V_FMA(wv[o], xv, c[(o * RB + r) * WV + v]);
            }
        }
    }
    SIMD_UNROLL
    for (int o = 0; o < OB; o++) {
        SIMD_UNROLL
        for (int r = 0; r < RB; r++) {
            SIMD_UNROLL
            for (int v = 0; v < WV - 1; v++)
                V_STORE(y + o * yso + r * ysr + v * VL, c[(o * RB + r) * WV + v]);
            float *yl = y + o * yso + r * ysr + (WV - 1) * VL;
            if (nlast == VL)
                V_STORE(yl, c[(o * RB + r) * WV + WV - 1]);
            else
                V_STORE_N(yl, c[(o * RB + r) * WV + WV - 1], nlast);
        }
    }
}

static void pv_run(int OB, int RB, int WV, float *y, int64_t yso, int64_t ysr, int nlast,
                   const float *a, int64_t asr, const int32_t *koff, int64_t K, const float *w,
                   const float *bias) {
#define PV_CALL(ob, rb, wv) pv_mk(y, yso, ysr, nlast, ob, rb, wv, a, asr, koff, K, w, bias)
#define PV_WVS(ob, rb)                                                                             \
    do {                                                                                           \
        if (WV == 1)                                                                               \
            PV_CALL(ob, rb, 1);                                                                    \
        else                                                                                       \
            PV_CALL(ob, rb, PV_WV);                                                                \
    } while (0)
    DPT_ASSERT(WV == 1 || WV == PV_WV);
    if (OB == PV_OB && RB == PV_RB)
        PV_WVS(PV_OB, PV_RB);
    else if (OB == PV_OB && RB == 1)
        PV_WVS(PV_OB, 1);
    else if (OB == 1 && RB == PV_RB1)
        PV_WVS(1, PV_RB1);
    else if (OB == 1 && RB == 1)
        PV_WVS(1, 1);
    else
        DPT_ASSERT(!"pv_run: register block out of range");
#undef PV_WVS
#undef PV_CALL
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, Cg, kD, kH, kW)  b: (O) or NULL.
 * Requires stride 1 along W. */
static void fwd_pv(float *y, const float *x, const float *w, const float *b, const geo *q,
                   const int32_t *koff, float *xp) {
    const int64_t oW = q->out[2], asr = q->s[1] * q->pin[2];
    int64_t calls = 0; /* pv_run calls per (image, group), counted as the loops below make them */
    for (int64_t o = 0; o < q->Og;) {
        const int OB = q->Og - o >= PV_OB ? PV_OB : 1;
        const int RBmax = OB == 1 ? PV_RB1 : PV_RB;
        int64_t rb = 0;
        for (int64_t oh = 0; oh < q->out[1]; rb++)
            oh += q->out[1] - oh >= RBmax ? RBmax : 1;
        calls += q->out[0] * rb * tiles_count(oW, PV_WV * VL);
        o += OB;
    }
    memset(xp, 0, (size_t)(q->Cg * q->ps + SLACK) * sizeof(float));
    pf_stream ps;
    for (int64_t n = 0; n < q->N; n++)
        for (int64_t gi = 0; gi < q->G; gi++) {
            const int64_t i = n * q->G + gi, more = i + 1 < q->N * q->G;
            /* the next (image, group)'s input and output, a few lines after each call */
            pf_init(&ps, more ? x + (i + 1) * q->Cg * q->X : NULL, q->Cg * q->X,
                    more ? y + (i + 1) * q->Og * q->P : NULL, q->Og * q->P, calls);
            pad_fill(xp, x + (n * q->C + gi * q->Cg) * q->X, q->Cg, q);
            for (int64_t o = 0; o < q->Og;) {
                const int OB = q->Og - o >= PV_OB ? PV_OB : 1;
                const int RBmax = OB == 1 ? PV_RB1 : PV_RB;
                const float *wo = w + (gi * q->Og + o) * q->K;
                const float *bo = b ? b + gi * q->Og + o : NULL;
                float *yo = y + (n * q->O + gi * q->Og + o) * q->P;
                for (int64_t od = 0; od < q->out[0]; od++)
                    for (int64_t oh = 0; oh < q->out[1];) {
                        const int RB = q->out[1] - oh >= RBmax ? RBmax : 1;
                        const float *arow = xp + (od * q->s[0] * q->pin[1] + oh * q->s[1]) * q->pin[2];
                        float *yrow = yo + (od * q->out[1] + oh) * oW;
                        for (int64_t ow = 0; ow < oW; ow += PV_WV * VL) {
                            const int64_t rem = min64(oW - ow, PV_WV * VL);
                            const int WV = rem > VL ? PV_WV : 1;
                            const int nlast = (int)(rem - (WV - 1) * VL);
                            pv_run(OB, RB, WV, yrow + ow, q->P, oW, nlast, arow + ow, asr, koff,
                                   q->K, wo, bo);
                            const char *pf;
                            for (int64_t l = pf_take(&ps, &pf); l > 0; l--, pf += 64)
                                _mm_prefetch(pf, _MM_HINT_T1);
                        }
                        oh += RB;
                    }
                o += OB;
            }
        }
}

/* pv_mk over shifted rows: OB channels x WV vectors of consecutive positions. */
static void sh_run(int OB, int WV, float *y, int64_t yso, int nlast, const float *a,
                   const int32_t *roff, int64_t K, const float *w, const float *bias) {
#define SH_CASE(ob, wv)                                                                            \
    case (ob) * 64 + (wv):                                                                         \
        pv_mk(y, yso, 0, nlast, ob, 1, wv, a, 0, roff, K, w, bias);                                \
        return;
    switch (OB * 64 + WV) {
        SH_CASES(SH_CASE)
    default:
        break;
    }
#undef SH_CASE
    DPT_ASSERT(!"sh_run: register block out of range");
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, Cg, kD, kH, kW)  b: (O) or NULL.
 * Requires fwd_uses_sh. Per image: the padded copy xp, its shifted rows xs, then blocks of PV_OB
 * channels x SH_WV vectors of flattened positions, stored straight into y (whole vectors but
 * the last one of each channel). */
static void fwd_sh(float *y, const float *x, const float *w, const float *b, const geo *q,
                   int32_t *roff, float *xp, float *xs) {
    shifted_offsets(roff, q);
    memset(xp, 0, (size_t)(q->Cg * q->ps + SLACK) * sizeof(float));
    memset(xs + shifted_floats(q), 0, SLACK * sizeof(float)); /* the last run's tail vector */
    for (int64_t n = 0; n < q->N; n++)
        for (int64_t gi = 0; gi < q->G; gi++) {
            pad_fill(xp, x + (n * q->C + gi * q->Cg) * q->X, q->Cg, q);
            shifted_fill(xs, xp, q->Cg, q);
            for (int64_t o = 0; o < q->Og;) {
                const int OB = q->Og - o >= PV_OB ? PV_OB : 1;
                const int64_t wvmax = OB == 1 ? SH_WV1 : SH_WV;
                const float *wo = w + (gi * q->Og + o) * q->K;
                const float *bo = b ? b + gi * q->Og + o : NULL;
                float *yo = y + (n * q->O + gi * q->Og + o) * q->P;
                for (int64_t p = 0; p < q->P; p += wvmax * VL) {
                    const int64_t rem = min64(q->P - p, wvmax * VL);
                    const int WV = (int)((rem + VL - 1) / VL);
                    sh_run(OB, WV, yo + p, q->P, (int)(rem - (WV - 1) * VL), xs + p, roff, q->K,
                           wo, bo);
                }
                o += OB;
            }
        }
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, Cg, kD, kH, kW)  b: (O) or NULL;
 * work: fwd_plan(q) floats. */
static void fwd_core(float *y, const float *x, const float *w, const float *b, const geo *q,
                     float *work) {
    if (wino_use(q)) {
        wino_forward(y, x, w, b, q, work);
        return;
    }
    fwd_ws ws;
    fwd_plan(q, &ws);
    int32_t *koff = (int32_t *)(work + ws.koff);
    if (fwd_uses_sh(q)) {
        fwd_sh(y, x, w, b, q, koff, work + ws.xp, work + ws.xs);
        return;
    }
    fwd_koff(koff, q);
    if (fwd_uses_pv(q)) {
        fwd_pv(y, x, w, b, q, koff, work + ws.xp);
        return;
    }
    float *wp = work + ws.wp, *bp = work + ws.bp;
    for (int64_t gi = 0; gi < q->G; gi++) {
        for (int64_t ob = 0; ob < q->OgPad; ob += 2 * VL) {
            const int64_t nb = min64(2 * VL, q->OgPad - ob);
            float *blk = wp + (gi * q->OgPad + ob) * q->K;
            for (int64_t k = 0; k < q->K; k++)
                for (int64_t j = 0; j < nb; j++)
                    blk[k * nb + j] = ob + j < q->Og ? w[(gi * q->Og + ob + j) * q->K + k] : 0.0f;
        }
        for (int64_t o = 0; o < q->OgPad; o++)
            bp[gi * q->OgPad + o] = b && o < q->Og ? b[gi * q->Og + o] : 0.0f;
    }
    fwd_cv(y, x, q, wp, bp, koff, work + ws.ycl, work + ws.xp);
}

/* ---------------------------------------------------------------------------------------------
 * Backward-data. With stride 1 and pad <= dil*(k-1) it is a forward convolution of dy, padded by
 * dil*(k-1) - pad, with the kernel flipped and the channel roles swapped; any other geometry
 * scatters per-tap products into a channel-last dx. */

static int bwd_is_fwd(const geo *q) {
    for (int i = 0; i < 3; i++)
        if (q->s[i] != 1 || q->p[i] > q->d[i] * (q->k[i] - 1))
            return 0;
    return 1;
}

static void geo_transposed(geo *t, const geo *q) {
    *t = *q;
    t->C = q->O;
    t->O = q->C;
    for (int i = 0; i < 3; i++) {
        t->in[i] = q->out[i];
        t->out[i] = q->in[i];
        t->p[i] = q->d[i] * (q->k[i] - 1) - q->p[i];
    }
    geo_derive(t);
}

typedef struct {
    int64_t wf, fwd;                /* via forward: flipped weights, forward workspace */
    int64_t koff, wb, dxcl;         /* scatter: o offsets, (taps, Og, CgPad) weights, dx */
    int64_t end;
} bwd_ws;

static int64_t bwd_plan(const geo *q, bwd_ws *b) {
    int64_t o = 0;
    memset(b, 0, sizeof *b);
    if (bwd_is_fwd(q)) {
        geo t;
        fwd_ws f;
        geo_transposed(&t, q);
        b->wf = o;
        o += round_up(q->C * q->Og * q->kvol, 16);
        b->fwd = o;
        o += fwd_plan(&t, &f);
    } else {
        b->koff = o;
        o += round_up(q->Og, 16);
        b->wb = o;
        o += round_up(q->kvol * q->Og * q->CgPad, 16);
        b->dxcl = o;
        o += round_up(q->ps * q->CgPad, 16);
    }
    b->end = o;
    return o;
}

/* dx: (N, C, D, H, W)  dy: (N, O, oD, oH, oW)  w: (O, Cg, kD, kH, kW) */
static void bwd_scatter(float *dx, const float *dy, const float *w, const geo *q, int32_t *koff,
                        float *wb, float *dxcl) {
    float out[MK_ACC_MAX * VL];
    const int64_t ld = q->CgPad;
    DPT_ASSERT(q->Og * q->P < INT32_MAX);
    for (int64_t o = 0; o < q->Og; o++)
        koff[o] = (int32_t)(o * q->P);
    for (int64_t gi = 0; gi < q->G; gi++) {
        for (int64_t t = 0; t < q->kvol; t++)
            for (int64_t o = 0; o < q->Og; o++)
                for (int64_t c = 0; c < ld; c++)
                    wb[(t * q->Og + o) * ld + c] =
                        c < q->Cg ? w[((gi * q->Og + o) * q->Cg + c) * q->kvol + t] : 0.0f;
        for (int64_t n = 0; n < q->N; n++) {
            const float *dyg = dy + (n * q->O + gi * q->Og) * q->P;
            memset(dxcl, 0, (size_t)(q->ps * ld) * sizeof(float));
            for (int64_t kd = 0; kd < q->k[0]; kd++)
                for (int64_t kh = 0; kh < q->k[1]; kh++)
                    for (int64_t kw = 0; kw < q->k[2]; kw++) {
                        const int64_t t = (kd * q->k[1] + kh) * q->k[2] + kw;
                        for (int64_t cb = 0; cb < q->Cg; cb += 2 * VL) {
                            const int NV = q->Cg - cb > VL ? 2 : 1;
                            const int64_t nt =
                                tiles_count(q->out[2], NV == 2 ? MK_RMAX2 : MK_RMAX1);
                            const float *B = wb + t * q->Og * ld + cb;
                            for (int64_t od = 0; od < q->out[0]; od++)
                                for (int64_t oh = 0; oh < q->out[1]; oh++) {
                                    const float *arow = dyg + (od * q->out[1] + oh) * q->out[2];
                                    const int64_t irow =
                                        ((od * q->s[0] + kd * q->d[0]) * q->pin[1] +
                                         oh * q->s[1] + kh * q->d[1]) * q->pin[2] +
                                        kw * q->d[2];
                                    for (int64_t ti = 0; ti < nt; ti++) {
                                        int64_t ow0;
                                        int R;
                                        tile_bounds(q->out[2], nt, ti, &ow0, &R);
                                        mk_run(out, NV * VL, NULL, R, NV, 1, arow + ow0, koff, q->Og, B, ld, 0, NULL);
                                        for (int r = 0; r < R; r++) {
                                            float *dst = dxcl + (irow + (ow0 + r) * q->s[2]) * ld + cb;
                                            for (int v = 0; v < NV; v++)
                                                V_STORE(dst + v * VL,
                                                        V_ADD(V_LOAD(dst + v * VL),
                                                              V_LOAD(out + (r * NV + v) * VL)));
                                        }
                                    }
                                }
                        }
                    }
            for (int64_t c = 0; c < q->Cg; c++)
                for (int64_t d = 0; d < q->in[0]; d++)
                    for (int64_t h = 0; h < q->in[1]; h++) {
                        float *dxr = dx + (((n * q->C + gi * q->Cg + c) * q->in[0] + d) * q->in[1] +
                                           h) * q->in[2];
                        const float *src =
                            dxcl + (((d + q->p[0]) * q->pin[1] + h + q->p[1]) * q->pin[2] + q->p[2]) *
                                       ld + c;
                        for (int64_t w2 = 0; w2 < q->in[2]; w2++)
                            dxr[w2] = src[w2 * ld];
                    }
        }
    }
}

/* dx: (N, C, D, H, W)  dy: (N, O, oD, oH, oW)  w: (O, Cg, kD, kH, kW) */
static void bwd_data_core(float *dx, const float *dy, const float *w, const geo *q, float *work) {
    bwd_ws ws;
    bwd_plan(q, &ws);
    if (!bwd_is_fwd(q)) {
        bwd_scatter(dx, dy, w, q, (int32_t *)(work + ws.koff), work + ws.wb, work + ws.dxcl);
        return;
    }
    geo t;
    geo_transposed(&t, q);
    /* wf: (C, Og, kD, kH, kW), tap order reversed: wf[c][o][t] = w[o][c][kvol-1-t] per group. */
    float *wf = work + ws.wf;
    for (int64_t gi = 0; gi < q->G; gi++)
        for (int64_t c = 0; c < q->Cg; c++)
            for (int64_t o = 0; o < q->Og; o++)
                for (int64_t tp = 0; tp < q->kvol; tp++)
                    wf[((gi * q->Cg + c) * q->Og + o) * q->kvol + tp] =
                        w[((gi * q->Og + o) * q->Cg + c) * q->kvol + q->kvol - 1 - tp];
    fwd_core(dx, dy, wf, NULL, &t, work + ws.fwd);
}

/* ---------------------------------------------------------------------------------------------
 * Backward-weight. */

/* Weight-gradient strategies; both reduce over positions. */
typedef enum {
    DW_CV,  /* channel-vectorized, rows = runs of the channel-last input (many input channels) */
    DW_COL, /* dot products along positions of dy and an im2col of the image (few channels) */
} dw_kind;

static dw_kind dw_choose(const geo *q) { return q->Cg * q->k[2] >= MK_RMAX2 ? DW_CV : DW_COL; }


typedef struct {
    int64_t koff, toff, roff, xp, col, dwv; /* col: position, tap and col-row offsets, padded x,
                                             * im2col or shifted rows, partials */
    int64_t xcl, dyt, dwt;            /* cv: koff, channel-last x, dy^T, dw^T */
    int64_t end;
} dw_ws;

static int64_t dw_plan(const geo *q, dw_ws *b) {
    int64_t o = 0;
    memset(b, 0, sizeof *b);
    b->koff = o;
    o += round_up(q->P, 16);
    if (dw_choose(q) == DW_COL) {
        b->toff = o;
        o += round_up(q->K, 16);
        b->roff = o;
        o += round_up(q->K + 1, 16);
        b->xp = o;
        o += round_up(q->Cg * q->ps + SLACK, 16);
        b->col = o; /* the im2col matrix, or the shifted rows (shifted_ok) plus a ones row */
        o += round_up(shifted_ok(q) ? q->Cg * q->k[2] * q->pin[1] * q->out[2] + q->P
                                        : (q->K + 1) * round_up(q->P, VL),
                      16);
        b->dwv = o;
        o += round_up(q->Og * (q->K + 1) * VL, 16);
    } else {
        b->xcl = o;
        o += round_up(q->ps * q->Cg, 16);
        b->dyt = o;
        o += round_up(q->P * q->OgPad, 16);
        b->dwt = o;
        o += round_up(q->kvol * q->Cg * q->OgPad, 16);
    }
    b->end = o;
    wino_ws w; /* Winograd layouts from 0, whether or not it is switched on */
    if (wino_shape_ok(q))
        o = o > wino_dw_plan(q, &w) ? o : w.end;
    if (wino_c1_shape_ok(q))
        o = o > wino_c1_plan(q, &w) ? o : w.end;
    return o;
}

/* acc: (OB, KB, VL) running vector sums, row o at acc + o*accso; dy: OB rows of P positions,
 * dyso apart; col: KB rows of P floats at col + ro[j]; next: the OB rows of dy used next
 * (streamed from outside L2: prefetched one line per row and step). */
SIMD_INLINE void dw_mk(const int OB, const int KB, float *acc, int64_t accso, const float *dy,
                       int64_t dyso, const float *col, const int32_t *ro, int64_t P,
                       const float *next) {
    vf c[DW_OB * DW_KB], g[DW_OB];
    const float *cr[DW_KB];
    SIMD_UNROLL
    for (int j = 0; j < KB; j++)
        cr[j] = col + ro[j];
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

static void dw_run(int OB, int KB, float *acc, int64_t accso, const float *dy, int64_t dyso,
                   const float *col, const int32_t *ro, int64_t P, const float *next) {
#define DW_CASE(ob, kb)                                                                            \
    case (ob) * 64 + (kb):                                                                         \
        dw_mk(ob, kb, acc, accso, dy, dyso, col, ro, P, next);                                     \
        return;
    switch (OB * 64 + KB) {
        DW_CASES(DW_CASE)
    default:
        break;
    }
#undef DW_CASE
    DPT_ASSERT(!"dw_run: register block out of range");
}

/* koff[p]: offset of output position p's window origin in an input padded to pin, times `scale`. */
static void position_offsets(int32_t *koff, const geo *q, int64_t scale) {
    DPT_ASSERT(q->ps * scale < INT32_MAX);
    int64_t p = 0;
    for (int64_t od = 0; od < q->out[0]; od++)
        for (int64_t oh = 0; oh < q->out[1]; oh++)
            for (int64_t ow = 0; ow < q->out[2]; ow++)
                koff[p++] = (int32_t)(((od * q->s[0] * q->pin[1] + oh * q->s[1]) * q->pin[2] +
                                       ow * q->s[2]) * scale);
}

/* dw: (O, Cg, kD, kH, kW) +=  db: (O) += or NULL  dy: (N, O, oD, oH, oW)  x: (N, C, D, H, W).
 * Per image: col = im2col of the padded input, (K + 1, ldc) with a last row of ones whose dot
 * product with dy is the bias gradient; then dot products of dy rows with col rows along the
 * positions, where both are contiguous: no transposes and, with aligned tensors, no split loads. */
static void dw_col(float *dw, float *db, const float *dy, const float *x, const geo *q,
                   int32_t *koff, int32_t *toff, int32_t *roff, float *xp, float *col,
                   float *dwv) {
    const int64_t K1 = q->K + 1, oW = q->out[2], pH = q->pin[1], kW = q->k[2];
    const int shifted = shifted_ok(q);
    /* roff[k]: col row k = (c, kd, kh, kw), or the ones row for k = K, starts at col + roff[k] */
    int64_t ones;
    DPT_ASSERT(K1 * round_up(q->P, VL) + q->Cg * kW * pH * oW < INT32_MAX);
    if (shifted) {
        shifted_offsets(roff, q);
        ones = shifted_floats(q);
    } else {
        for (int64_t k = 0; k < q->K; k++)
            roff[k] = (int32_t)(k * round_up(q->P, VL));
        ones = q->K * round_up(q->P, VL);
        position_offsets(koff, q, 1);
        fwd_koff(toff, q);
    }
    roff[q->K] = (int32_t)ones;
    memset(xp, 0, (size_t)(q->Cg * q->ps + SLACK) * sizeof(float));
    memset(col, 0, (size_t)ones * sizeof(float));
    for (int64_t p = 0; p < q->P; p++)
        col[ones + p] = 1.0f;
    for (int64_t gi = 0; gi < q->G; gi++) {
        memset(dwv, 0, (size_t)(q->Og * K1 * VL) * sizeof(float));
        for (int64_t n = 0; n < q->N; n++) {
            pad_fill(xp, x + (n * q->C + gi * q->Cg) * q->X, q->Cg, q);
            if (shifted)
                shifted_fill(col, xp, q->Cg, q);
            else
                for (int64_t k = 0; k < q->K; k++) {
                    float *ck = col + roff[k];
                    const float *xk = xp + toff[k];
                    if (q->s[2] == 1) { /* each output row reads a contiguous input run */
                        for (int64_t p = 0; p < q->P; p += oW)
                            copy_row(ck + p, xk + koff[p], oW);
                    } else
                        for (int64_t p = 0; p < q->P; p++)
                            ck[p] = xk[koff[p]];
                }
            const float *dyg = dy + (n * q->O + gi * q->Og) * q->P;
            for (int64_t o = 0; o < q->Og; o += DW_OB) {
                const int OB = (int)min64(DW_OB, q->Og - o);
                for (int64_t k = 0; k < K1; k += DW_KB) {
                    const int KB = (int)min64(DW_KB, K1 - k);
                    /* the next rows: same rows while k advances, then the next block of o */
                    const float *next = dyg + (k + DW_KB < K1 ? o : min64(o + OB, q->Og - OB)) * q->P;
                    dw_run(OB, KB, dwv + (o * K1 + k) * VL, K1 * VL, dyg + o * q->P, q->P, col,
                           roff + k, q->P, next);
                }
            }
        }
        for (int64_t o = 0; o < q->Og; o++) {
            for (int64_t k = 0; k < q->K; k++)
                dw[(gi * q->Og + o) * q->K + k] += V_REDUCE(V_LOAD(dwv + (o * K1 + k) * VL));
            if (db)
                db[gi * q->Og + o] += V_REDUCE(V_LOAD(dwv + (o * K1 + q->K) * VL));
        }
    }
}

/* dw: (O, Cg, kD, kH, kW) +=  dy: (N, O, oD, oH, oW)  x: (N, C, D, H, W). Rows of the micro-kernel
 * are consecutive entries of the channel-last input: (kw, c) runs when dilation along W is 1.
 * dyt: per block of NV channel vectors at ob, a contiguous (P, NV*VL) transpose of dy, so the
 * micro-kernel streams it sequentially; dwt: (kvol*Cg, OgPad), accumulated in place by the
 * micro-kernel. The next image's x and dy are prefetched into L2 during this image's calls. */
static void dw_cv(float *dw, const float *dy, const float *x, const geo *q, int32_t *koff,
                  float *xcl, float *dyt, float *dwt) {
    const int64_t Cg = q->Cg, ld = q->OgPad;
    const int runs_kw = q->d[2] == 1;
    const int64_t L = runs_kw ? q->k[2] * Cg : Cg; /* rows per run */
    int64_t calls = 0;                             /* micro-kernel calls per (image, group) */
    for (int64_t ob = 0; ob < q->Og; ob += 2 * VL)
        calls += q->kvol / (runs_kw ? q->k[2] : 1) *
                 tiles_count(L, q->Og - ob > VL ? MK_RMAX2 : MK_RMAX1);
    position_offsets(koff, q, Cg);
    memset(xcl, 0, (size_t)(q->ps * Cg) * sizeof(float));
    memset(dyt, 0, (size_t)(q->P * ld) * sizeof(float));
    for (int64_t gi = 0; gi < q->G; gi++) {
        memset(dwt, 0, (size_t)(q->kvol * Cg * ld) * sizeof(float));
        for (int64_t n = 0; n < q->N; n++) {
            pad_fill_cl(xcl, Cg, x + (n * q->C + gi * Cg) * q->X, Cg, q);
            const float *dyg = dy + (n * q->O + gi * q->Og) * q->P;
            for (int64_t ob = 0; ob < q->Og; ob += 2 * VL)
                transpose(dyt + ob * q->P, (q->Og - ob > VL ? 2 : 1) * VL, dyg + ob * q->P, q->P,
                          min64(2 * VL, q->Og - ob), q->P);
            pf_stream ps;
            const int more = n + 1 < q->N;
            pf_init(&ps, more ? x + ((n + 1) * q->C + gi * Cg) * q->X : NULL, Cg * q->X,
                    more ? dyg + q->O * q->P : NULL, q->Og * q->P, calls);
            for (int64_t ob = 0; ob < q->Og; ob += 2 * VL) {
                const int NV = q->Og - ob > VL ? 2 : 1;
                const int64_t nt = tiles_count(L, NV == 2 ? MK_RMAX2 : MK_RMAX1);
                for (int64_t kd = 0; kd < q->k[0]; kd++)
                    for (int64_t kh = 0; kh < q->k[1]; kh++)
                        for (int64_t kw = 0; kw < (runs_kw ? 1 : q->k[2]); kw++) {
                            const int64_t base =
                                ((kd * q->d[0] * q->pin[1] + kh * q->d[1]) * q->pin[2] +
                                 kw * q->d[2]) * Cg;
                            const int64_t row0 = ((kd * q->k[1] + kh) * q->k[2] + kw) * Cg;
                            for (int64_t t = 0; t < nt; t++) {
                                int64_t j0;
                                int R;
                                tile_bounds(L, nt, t, &j0, &R);
                                float *acc = dwt + (row0 + j0) * ld + ob;
                                mk_run(acc, ld, acc, R, NV, 1, xcl + base + j0, koff, q->P,
                                       dyt + ob * q->P, NV * VL, 0, &ps);
                            }
                        }
            }
        }
        for (int64_t o = 0; o < q->Og; o++)
            for (int64_t c = 0; c < Cg; c++)
                for (int64_t t = 0; t < q->kvol; t++)
                    dw[((gi * q->Og + o) * Cg + c) * q->kvol + t] += dwt[(t * Cg + c) * ld + o];
    }
}

/* db: (O) += sum over n and positions of dy: (N, O, oD, oH, oW). Four independent vector sums
 * per row, so the adds are not one latency chain; the per-row totals add up in double. */
static void bias_grad(float *db, const float *dy, const geo *q) {
    for (int64_t o = 0; o < q->O; o++) {
        double s = 0.0;
        for (int64_t n = 0; n < q->N; n++) {
            const float *r = dy + (n * q->O + o) * q->P;
            vf a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
            int64_t i = 0;
            for (; i + 4 * VL <= q->P; i += 4 * VL) {
                a0 = V_ADD(a0, V_LOAD(r + i));
                a1 = V_ADD(a1, V_LOAD(r + i + VL));
                a2 = V_ADD(a2, V_LOAD(r + i + 2 * VL));
                a3 = V_ADD(a3, V_LOAD(r + i + 3 * VL));
            }
            for (; i + VL <= q->P; i += VL)
                a0 = V_ADD(a0, V_LOAD(r + i));
            float t = V_REDUCE(V_ADD(V_ADD(a0, a1), V_ADD(a2, a3)));
            for (; i < q->P; i++)
                t += r[i];
            s += t;
        }
        db[o] += (float)s;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The table. */

static size_t simd_workspace(const dpt_conv_geom *g) {
    geo q;
    fwd_ws f;
    bwd_ws b;
    dw_ws d;
    geo_from(&q, g);
    int64_t n = fwd_plan(&q, &f);
    int64_t m = bwd_plan(&q, &b);
    if (m > n)
        n = m;
    m = dw_plan(&q, &d);
    if (m > n)
        n = m;
    return (size_t)n;
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, C/groups, kD, kH, kW)  b: (O) or NULL
 * (used when given, as the other implementations do; dpt_conv_forward checks has_bias) */
static void simd_forward(float *y, const float *x, const float *w, const float *b,
                         const dpt_conv_geom *g, float *work) {
    geo q;
    geo_from(&q, g);
    fwd_core(y, x, w, b, &q, work);
}

/* dx: (N, C, D, H, W)  dy: (N, O, oD, oH, oW)  w: (O, C/groups, kD, kH, kW) */
static void simd_backward_data(float *dx, const float *dy, const float *w, const dpt_conv_geom *g,
                               float *work) {
    geo q;
    geo_from(&q, g);
    bwd_data_core(dx, dy, w, &q, work);
}

/* dw: (O, C/groups, kD, kH, kW) +=  db: (O) += or NULL  dy: (N, O, oD, oH, oW)  x: (N, C, D, H, W) */
static void simd_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                 const dpt_conv_geom *g, float *work) {
    geo q;
    dw_ws ws;
    geo_from(&q, g);
    if (wino_c1_use(&q)) {
        wino_c1_backward_weight(dw, db, dy, x, &q, work);
        return;
    }
    if (wino_use(&q)) {
        wino_backward_weight(dw, dy, x, &q, work);
        if (db)
            bias_grad(db, dy, &q);
        return;
    }
    dw_plan(&q, &ws);
    if (dw_choose(&q) == DW_COL) {
        dw_col(dw, db, dy, x, &q, (int32_t *)(work + ws.koff), (int32_t *)(work + ws.toff),
               (int32_t *)(work + ws.roff), work + ws.xp, work + ws.col, work + ws.dwv);
        return;
    }
    dw_cv(dw, dy, x, &q, (int32_t *)(work + ws.koff), work + ws.xcl, work + ws.dyt, work + ws.dwt);
    if (db)
        bias_grad(db, dy, &q);
}

static const dpt_conv_impl simd_impl = {
    .name = SIMD_NAME,
    .workspace = simd_workspace,
    .forward = simd_forward,
    .backward_data = simd_backward_data,
    .backward_weight = simd_backward_weight,
};

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* Outside the target region: runs on any x86-64 and asks the CPU (and OS) once. */
const dpt_conv_impl *DPT_SIMD_GETTER(void) {
    __builtin_cpu_init();
    return DPT_SIMD_CPU_OK() ? &simd_impl : NULL;
}
