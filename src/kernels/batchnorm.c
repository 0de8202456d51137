/* Batch normalisation kernels (kernels) over (N, C, S), statistics per channel, as
 * torch.nn.functional.batch_norm computes them. Split into sums / moments / apply steps so that
 * ghost BN and synced BN (sums allreduced between the steps) reuse them; knows no layers and no
 * MPI; never allocates. https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html */
#include <math.h>
#include <string.h>

#include "dpt/ops.h"
#include "kernel_table.h"

#define DPT_INLINE static inline __attribute__((always_inline))

/* ---- the order of the sums ------------------------------------------------------------------
 * Every per-channel sum (statistics and backward sums) is built run by run: the contiguous run of
 * S values of one (n, c) is summed in double over SL = 16 lanes, lane j taking elements j, j + 16,
 * j + 32, ... in order; the lanes are folded pairwise (j + 8 onto j, then j + 4, j + 2, j + 1) and
 * the run's total is added to the channel's sum in n order. The scalar code and each vector path
 * follow exactly this order (16 lanes are one AVX-512 register pair or four AVX2 registers), so
 * all give the same bits, and a sample's contribution does not depend on which rank or batch row
 * it sits in. Products of floats are exact in double, so the only roundings are the additions
 * (~16x fewer in each chain than one running sum); a float x, x*x and dy*(x - mean) in double
 * never lose the digits a large mean would cancel (E[x^2] - mean^2 in dpt_bn_moments). */
enum { SL = 16 };

static double fold16(const double p[SL]) {
    double t[8], u[4];
    for (int j = 0; j < 8; j++)
        t[j] = p[j] + p[j + 8];
    for (int j = 0; j < 4; j++)
        u[j] = t[j] + t[j + 4];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

/* dy, or +0 where the ReLU after the batch norm was inactive (relu = 1). A bit mask, not a
 * branch or a multiply: the mask is data-random (a branch mispredicts half the time), and 0*Inf
 * would be NaN where ReLU's backward gives 0. */
DPT_INLINE float masked(int relu, const float *dy, const float *y, int64_t i) {
    if (!relu)
        return dy[i];
    uint32_t bits;
    memcpy(&bits, &dy[i], sizeof bits);
    bits &= -(uint32_t)(y[i] > 0.0f);
    float g;
    memcpy(&g, &bits, sizeof g);
    return g;
}

/* The fused batch norm + ReLU variants (relu = 1) are the plain ones with ReLU's own operations
 * inserted: forward u < 0 ? 0 : u (a NaN passes, as dpt_act_forward), backward dy where the
 * ReLU output y > 0 (as dpt_act_backward, since y > 0 exactly where its input is). `relu` is a
 * constant at every call, so the compiler emits two specialized loops from one source. */
DPT_INLINE float relu_if(int relu, float u) {
    return relu && u < 0.0f ? 0.0f : u;
}

/* The elementwise maps, one element; every path computes exactly these operations (no FMA: the
 * build has no FP contraction, and the vector code spells out the same mul and add). (x - mu) is
 * formed first: it is exact-ish when x is near a large mean, where x*scale + shift would cancel. */
DPT_INLINE float affine_one(int relu, float x, float mu, float scale, float shift) {
    return relu_if(relu, (x - mu) * scale + shift);
}

DPT_INLINE float grad_one(float g, float x, float a, float b, float k, float mu) {
    return a * (g - b - k * (x - mu));
}

/* ---- portable scalar runs -------------------------------------------------------------------- */

static dpt__bn_sums stats_run_scalar(const float *a, int64_t n) {
    double p[SL] = {0}, q[SL] = {0};
    for (int64_t i = 0; i < n; i += SL)
        for (int j = 0; j < SL && i + j < n; j++) {
            const double v = a[i + j];
            p[j] += v;
            q[j] += v * v;
        }
    return (dpt__bn_sums){fold16(p), fold16(q)};
}

/* sum g and sum g*(x - mu), g = dy masked by the ReLU output y when relu = 1. */
DPT_INLINE dpt__bn_sums gsums_run_scalar(int relu, const float *dy, const float *y, const float *x,
                                         float mu, int64_t n) {
    double p[SL] = {0}, q[SL] = {0};
    for (int64_t i = 0; i < n; i += SL)
        for (int j = 0; j < SL && i + j < n; j++) {
            const double g = masked(relu, dy, y, i + j);
            p[j] += g;
            q[j] += g * ((double)x[i + j] - mu);
        }
    return (dpt__bn_sums){fold16(p), fold16(q)};
}

/* Elementwise runs go in blocks of VB with a scalar tail: GCC's default -O2 cost model vectorizes
 * a loop of fixed trip count but not one that needs an epilogue. A block is read into locals
 * before it is written, so in-place calls (y = x, dx = dy) are safe without run-time alias
 * checks. */
enum { VB = 8 };

DPT_INLINE void affine_run_scalar(int relu, float *y, const float *x, float mu, float scale,
                                  float shift, int64_t n) {
    int64_t i = 0;
    for (; i + VB <= n; i += VB) {
        float t[VB];
        for (int j = 0; j < VB; j++)
            t[j] = x[i + j];
        for (int j = 0; j < VB; j++)
            y[i + j] = affine_one(relu, t[j], mu, scale, shift);
    }
    for (; i < n; i++)
        y[i] = affine_one(relu, x[i], mu, scale, shift);
}

/* dx = a*(g - b - k*(x - mu)) over one run. */
DPT_INLINE void grad_run_scalar(int relu, float *dx, const float *dy, const float *y,
                                const float *x, float a, float b, float k, float mu, int64_t n) {
    int64_t i = 0;
    for (; i + VB <= n; i += VB) {
        float g[VB], t[VB];
        for (int j = 0; j < VB; j++)
            g[j] = masked(relu, dy, y, i + j), t[j] = x[i + j];
        for (int j = 0; j < VB; j++)
            dx[i + j] = grad_one(g[j], t[j], a, b, k, mu);
    }
    for (; i < n; i++)
        dx[i] = grad_one(masked(relu, dy, y, i), x[i], a, b, k, mu);
}

#ifdef DPT_KERNELS_X86
/* ---- AVX-512F runs: 16 floats, or two 8-double halves of the 16 sum lanes, per step; tails
 * with masked loads and stores. ---------------------------------------------------------------- */
#define AVX512_INLINE DPT_INLINE DPT_TARGET_AVX512

AVX512_INLINE __mmask16 mask16(int64_t n) {
    return (__mmask16)((1u << n) - 1u);
}

AVX512_INLINE __m512d lo8_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

AVX512_INLINE __m512d hi8_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* fold16 of lanes 0..7 in lo and 8..15 in hi, in fold16's order. */
AVX512_INLINE double fold16_avx512(__m512d lo, __m512d hi) {
    const __m512d t = _mm512_add_pd(lo, hi);
    const __m256d u = _mm256_add_pd(_mm512_castpd512_pd256(t), _mm512_extractf64x4_pd(t, 1));
    const __m128d w = _mm_add_pd(_mm256_castpd256_pd128(u), _mm256_extractf128_pd(u, 1));
    return _mm_cvtsd_f64(w) + _mm_cvtsd_f64(_mm_unpackhi_pd(w, w));
}

DPT_TARGET_AVX512 static dpt__bn_sums stats_run_avx512(const float *a, int64_t n) {
    __m512d p0 = _mm512_setzero_pd(), p1 = p0, q0 = p0, q1 = p0;
    for (int64_t i = 0; i < n; i += SL) {
        /* padding lanes read +0: adding +0 leaves a partial sum unchanged (it is never -0) */
        const __m512 v =
            n - i >= SL ? _mm512_loadu_ps(a + i) : _mm512_maskz_loadu_ps(mask16(n - i), a + i);
        const __m512d lo = lo8_pd(v), hi = hi8_pd(v);
        p0 = _mm512_add_pd(p0, lo), p1 = _mm512_add_pd(p1, hi);
        q0 = _mm512_fmadd_pd(lo, lo, q0), q1 = _mm512_fmadd_pd(hi, hi, q1); /* v*v is exact */
    }
    return (dpt__bn_sums){fold16_avx512(p0, p1), fold16_avx512(q0, q1)};
}

AVX512_INLINE dpt__bn_sums gsums_run_avx512(int relu, const float *dy, const float *y,
                                            const float *x, float mu, int64_t n) {
    const __m512d vmu = _mm512_set1_pd(mu);
    __m512d p0 = _mm512_setzero_pd(), p1 = p0, q0 = p0, q1 = p0;
    for (int64_t i = 0; i < n; i += SL) {
        const __mmask16 m = n - i >= SL ? (__mmask16)0xFFFF : mask16(n - i);
        __m512 g = _mm512_maskz_loadu_ps(m, dy + i);
        if (relu)
            g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i),
                                                       _mm512_setzero_ps(), _CMP_GT_OQ),
                                    g);
        const __m512 t = _mm512_maskz_loadu_ps(m, x + i);
        const __m512d g0 = lo8_pd(g), g1 = hi8_pd(g);
        /* g*(x - mu) rounds (unlike x*x): a separate mul and add, as the scalar code; padding
         * lanes are left out by the write mask (0*(0 - mu) is NaN for an infinite mu) */
        const __m512d r0 = _mm512_mul_pd(g0, _mm512_sub_pd(lo8_pd(t), vmu));
        const __m512d r1 = _mm512_mul_pd(g1, _mm512_sub_pd(hi8_pd(t), vmu));
        p0 = _mm512_add_pd(p0, g0), p1 = _mm512_add_pd(p1, g1);
        q0 = _mm512_mask_add_pd(q0, (__mmask8)m, q0, r0);
        q1 = _mm512_mask_add_pd(q1, (__mmask8)(m >> 8), q1, r1);
    }
    return (dpt__bn_sums){fold16_avx512(p0, p1), fold16_avx512(q0, q1)};
}

AVX512_INLINE __m512 relu_if_avx512(int relu, __m512 u) {
    if (!relu)
        return u;
    const __m512 z = _mm512_setzero_ps();
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, z, _CMP_LT_OQ), u, z);
}

AVX512_INLINE void affine_run_avx512(int relu, float *y, const float *x, float mu, float scale,
                                     float shift, int64_t n) {
    const __m512 vmu = _mm512_set1_ps(mu), vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 u =
            _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmu), vs), vb);
        _mm512_storeu_ps(y + i, relu_if_avx512(relu, u));
    }
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        const __m512 u = _mm512_add_ps(
            _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmu), vs), vb);
        _mm512_mask_storeu_ps(y + i, m, relu_if_avx512(relu, u));
    }
}

AVX512_INLINE __m512 grad_avx512(int relu, __m512 g, __m512 yv, __m512 t, __m512 va, __m512 vb,
                                 __m512 vk, __m512 vmu) {
    if (relu)
        g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ), g);
    const __m512 kd = _mm512_mul_ps(vk, _mm512_sub_ps(t, vmu));
    return _mm512_mul_ps(va, _mm512_sub_ps(_mm512_sub_ps(g, vb), kd));
}

AVX512_INLINE void grad_run_avx512(int relu, float *dx, const float *dy, const float *y,
                                   const float *x, float a, float b, float k, float mu, int64_t n) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vk = _mm512_set1_ps(k);
    const __m512 vmu = _mm512_set1_ps(mu), z = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 yv = relu ? _mm512_loadu_ps(y + i) : z;
        _mm512_storeu_ps(dx + i, grad_avx512(relu, _mm512_loadu_ps(dy + i), yv,
                                             _mm512_loadu_ps(x + i), va, vb, vk, vmu));
    }
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        const __m512 yv = relu ? _mm512_maskz_loadu_ps(m, y + i) : z;
        _mm512_mask_storeu_ps(dx + i, m,
                              grad_avx512(relu, _mm512_maskz_loadu_ps(m, dy + i), yv,
                                          _mm512_maskz_loadu_ps(m, x + i), va, vb, vk, vmu));
    }
}

/* ---- AVX2 runs: the 16 sum lanes in four 4-double registers; elementwise tails are scalar. --- */
#define AVX2_INLINE DPT_INLINE DPT_TARGET_AVX2

AVX2_INLINE double fold16_avx2(const __m256d a[4]) {
    const __m256d u = _mm256_add_pd(_mm256_add_pd(a[0], a[2]), _mm256_add_pd(a[1], a[3]));
    const __m128d w = _mm_add_pd(_mm256_castpd256_pd128(u), _mm256_extractf128_pd(u, 1));
    return _mm_cvtsd_f64(w) + _mm_cvtsd_f64(_mm_unpackhi_pd(w, w));
}

/* The four 4-double quarters of 16 floats held as two 8-float registers. */
AVX2_INLINE void quarters(__m256d d[4], __m256 v0, __m256 v1) {
    d[0] = _mm256_cvtps_pd(_mm256_castps256_ps128(v0));
    d[1] = _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1));
    d[2] = _mm256_cvtps_pd(_mm256_castps256_ps128(v1));
    d[3] = _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1));
}

DPT_TARGET_AVX2 static dpt__bn_sums stats_run_avx2(const float *a, int64_t n) {
    __m256d p[4], q[4];
    for (int j = 0; j < 4; j++)
        p[j] = q[j] = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += SL) {
        __m256d d[4];
        quarters(d, dpt__load8_n(a + i, n - i), dpt__load8_n(a + i + 8, n - i - 8));
        for (int j = 0; j < 4; j++) {
            p[j] = _mm256_add_pd(p[j], d[j]);
            q[j] = _mm256_fmadd_pd(d[j], d[j], q[j]);
        }
    }
    return (dpt__bn_sums){fold16_avx2(p), fold16_avx2(q)};
}

AVX2_INLINE dpt__bn_sums gsums_run_avx2(int relu, const float *dy, const float *y, const float *x,
                                        float mu, int64_t n) {
    const __m256d vmu = _mm256_set1_pd(mu);
    __m256d p[4], q[4];
    for (int j = 0; j < 4; j++)
        p[j] = q[j] = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += SL) {
        __m256 g0 = dpt__load8_n(dy + i, n - i), g1 = dpt__load8_n(dy + i + 8, n - i - 8);
        if (relu) {
            const __m256 z = _mm256_setzero_ps();
            g0 = _mm256_and_ps(g0, _mm256_cmp_ps(dpt__load8_n(y + i, n - i), z, _CMP_GT_OQ));
            g1 =
                _mm256_and_ps(g1, _mm256_cmp_ps(dpt__load8_n(y + i + 8, n - i - 8), z, _CMP_GT_OQ));
        }
        __m256d g[4], t[4];
        quarters(g, g0, g1);
        quarters(t, dpt__load8_n(x + i, n - i), dpt__load8_n(x + i + 8, n - i - 8));
        for (int j = 0; j < 4; j++) {
            __m256d r = _mm256_mul_pd(g[j], _mm256_sub_pd(t[j], vmu));
            if (n - i < SL) { /* padding lanes add exactly +0, as in the AVX-512 path */
                const __m256d lane = _mm256_set_pd(3, 2, 1, 0);
                const __m256d live =
                    _mm256_cmp_pd(lane, _mm256_set1_pd((double)(n - i - 4 * j)), _CMP_LT_OQ);
                r = _mm256_and_pd(r, live);
            }
            p[j] = _mm256_add_pd(p[j], g[j]);
            q[j] = _mm256_add_pd(q[j], r);
        }
    }
    return (dpt__bn_sums){fold16_avx2(p), fold16_avx2(q)};
}

AVX2_INLINE void affine_run_avx2(int relu, float *y, const float *x, float mu, float scale,
                                 float shift, int64_t n) {
    const __m256 vmu = _mm256_set1_ps(mu), vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(shift);
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 u = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmu), vs), vb);
        if (relu)
            u = _mm256_blendv_ps(u, z, _mm256_cmp_ps(u, z, _CMP_LT_OQ));
        _mm256_storeu_ps(y + i, u);
    }
    for (; i < n; i++)
        y[i] = affine_one(relu, x[i], mu, scale, shift);
}

AVX2_INLINE void grad_run_avx2(int relu, float *dx, const float *dy, const float *y, const float *x,
                               float a, float b, float k, float mu, int64_t n) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vk = _mm256_set1_ps(k);
    const __m256 vmu = _mm256_set1_ps(mu);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(dy + i);
        if (relu)
            g = _mm256_and_ps(
                g, _mm256_cmp_ps(_mm256_loadu_ps(y + i), _mm256_setzero_ps(), _CMP_GT_OQ));
        const __m256 kd = _mm256_mul_ps(vk, _mm256_sub_ps(_mm256_loadu_ps(x + i), vmu));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(va, _mm256_sub_ps(_mm256_sub_ps(g, vb), kd)));
    }
    for (; i < n; i++)
        dx[i] = grad_one(masked(relu, dy, y, i), x[i], a, b, k, mu);
}
#endif /* DPT_KERNELS_X86 */

/* ---- one function per (path, op, relu): the entries of the dispatch table ------------------ */
#define BN_RUN_FNS(isa, ATTR)                                                                      \
    ATTR static dpt__bn_sums gsums0_##isa(const float *dy, const float *y, const float *x,         \
                                          float mu, int64_t n) {                                   \
        return gsums_run_##isa(0, dy, y, x, mu, n);                                                \
    }                                                                                              \
    ATTR static dpt__bn_sums gsums1_##isa(const float *dy, const float *y, const float *x,         \
                                          float mu, int64_t n) {                                   \
        return gsums_run_##isa(1, dy, y, x, mu, n);                                                \
    }                                                                                              \
    ATTR static void affine0_##isa(float *y, const float *x, float mu, float scale, float shift,   \
                                   int64_t n) {                                                    \
        affine_run_##isa(0, y, x, mu, scale, shift, n);                                            \
    }                                                                                              \
    ATTR static void affine1_##isa(float *y, const float *x, float mu, float scale, float shift,   \
                                   int64_t n) {                                                    \
        affine_run_##isa(1, y, x, mu, scale, shift, n);                                            \
    }                                                                                              \
    ATTR static void grad0_##isa(float *dx, const float *dy, const float *y, const float *x,       \
                                 float a, float b, float k, float mu, int64_t n) {                 \
        grad_run_##isa(0, dx, dy, y, x, a, b, k, mu, n);                                           \
    }                                                                                              \
    ATTR static void grad1_##isa(float *dx, const float *dy, const float *y, const float *x,       \
                                 float a, float b, float k, float mu, int64_t n) {                 \
        grad_run_##isa(1, dx, dy, y, x, a, b, k, mu, n);                                           \
    }                                                                                              \
    static void fill_##isa(dpt__kernel_table *t) {                                                 \
        t->bn_stats = stats_run_##isa;                                                             \
        t->bn_grad_sums[0] = gsums0_##isa;                                                         \
        t->bn_grad_sums[1] = gsums1_##isa;                                                         \
        t->bn_affine[0] = affine0_##isa;                                                           \
        t->bn_affine[1] = affine1_##isa;                                                           \
        t->bn_grad[0] = grad0_##isa;                                                               \
        t->bn_grad[1] = grad1_##isa;                                                               \
    }

BN_RUN_FNS(scalar, )
#ifdef DPT_KERNELS_X86
BN_RUN_FNS(avx2, DPT_TARGET_AVX2)
BN_RUN_FNS(avx512, DPT_TARGET_AVX512)
#endif

void dpt__bn_fill_table(dpt__kernel_table *t, dpt__isa isa) {
    switch (isa) {
#ifdef DPT_KERNELS_X86
    case DPT__ISA_AVX512:
        fill_avx512(t);
        return;
    case DPT__ISA_AVX2:
        fill_avx2(t);
        return;
#endif
    default:
        fill_scalar(t);
        return;
    }
}

/* ---- entry points -----------------------------------------------------------------------------
 */

/* s1, s2: (C), entries [c0, c1) written: per channel, the sums of its runs in n order; of x
 * (relu = -1), or of g and g*(x - mean) with g = dy masked by y when relu = 1. A channel's sum
 * does not depend on the range it is computed in. */
static void channel_sums(double *s1, double *s2, const float *dy, const float *y, const float *x,
                         const float *mean, int64_t N, int64_t C, int64_t S, int relu, int64_t c0,
                         int64_t c1) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1 && 0 <= c0 && c0 <= c1 && c1 <= C);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t c = c0; c < c1; c++)
        s1[c] = s2[c] = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = c0; c < c1; c++) {
            const int64_t off = (n * C + c) * S;
            const dpt__bn_sums t = relu < 0 ? kt->bn_stats(x + off, S)
                                            : kt->bn_grad_sums[relu](dy + off, y ? y + off : NULL,
                                                                     x + off, mean[c], S);
            s1[c] += t.s1;
            s2[c] += t.s2;
        }
}

/* x: (N, C, S)  sum, sumsq: (C), written. */
void dpt_bn_stats(double *sum, double *sumsq, const float *x, int64_t N, int64_t C, int64_t S) {
    channel_sums(sum, sumsq, NULL, NULL, x, NULL, N, C, S, -1, 0, C);
}

void dpt_bn_stats_channels(double *sum, double *sumsq, const float *x, int64_t N, int64_t C,
                           int64_t S, int64_t c0, int64_t c1) {
    channel_sums(sum, sumsq, NULL, NULL, x, NULL, N, C, S, -1, c0, c1);
}

/* sum, sumsq: (C) over m elements per channel  mean, invstd: (C) float  var: (C) double (biased;
 * may be NULL). The variance E[x^2] - mean^2 is formed in double and clamped at 0 against
 * rounding. */
void dpt_bn_moments(float *mean, float *invstd, double *var, const double *sum, const double *sumsq,
                    int64_t m, int64_t C, double eps) {
    DPT_ASSERT(m >= 1 && C >= 1 && eps >= 0.0);
    for (int64_t c = 0; c < C; c++) {
        double mu = sum[c] / (double)m;
        double v = sumsq[c] / (double)m - mu * mu;
        if (v < 0.0)
            v = 0.0;
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(v + eps));
        if (var)
            var[c] = v;
    }
}

/* running_mean, running_var: (C) updated in place  mean: (C)  var: (C) biased batch variance.
 * torch's momentum convention: the weight of the new batch statistic. */
void dpt_bn_update_running(float *running_mean, float *running_var, const float *mean,
                           const double *var, int64_t m, int64_t C, double momentum) {
    DPT_ASSERT(m >= 2 && C >= 1);
    const double unbias = (double)m / (double)(m - 1);
    for (int64_t c = 0; c < C; c++) {
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var[c] * unbias);
    }
}

/* x, y: (N, C, S) (y may alias x)  mean, invstd, gamma, beta: (C). gamma NULL means 1 and beta
 * NULL means 0 (affine=False). */
static void apply(float *y, const float *x, const float *mean, const float *invstd,
                  const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S,
                  int relu) {
    DPT_ASSERT(N >= 0 && C >= 1 && S >= 1);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float scale = gamma ? gamma[c] * invstd[c] : invstd[c];
            const float shift = beta ? beta[c] : 0.0f;
            const int64_t off = (n * C + c) * S;
            kt->bn_affine[relu](y + off, x + off, mean[c], scale, shift, S);
        }
}

void dpt_bn_apply(float *y, const float *x, const float *mean, const float *invstd,
                  const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S) {
    apply(y, x, mean, invstd, gamma, beta, N, C, S, 0);
}

void dpt_bn_apply_relu(float *y, const float *x, const float *mean, const float *invstd,
                       const float *gamma, const float *beta, int64_t N, int64_t C, int64_t S) {
    apply(y, x, mean, invstd, gamma, beta, N, C, S, 1);
}

/* running_var, invstd: (C). */
void dpt_bn_eval_invstd(float *invstd, const float *running_var, int64_t C, double eps) {
    DPT_ASSERT(C >= 1 && eps >= 0.0);
    for (int64_t c = 0; c < C; c++)
        invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
}

static void backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy, const float *y,
                          const float *x, const float *mean, const float *invstd, int64_t N,
                          int64_t C, int64_t S, int relu, int64_t c0, int64_t c1) {
    channel_sums(dbeta_sum, dgamma_sum, dy, y, x, mean, N, C, S, relu, c0, c1);
    for (int64_t c = c0; c < c1; c++)
        dgamma_sum[c] *= invstd[c];
}

void dpt_bn_backward_sums_channels(double *dbeta_sum, double *dgamma_sum, const float *dy,
                                   const float *y, const float *x, const float *mean,
                                   const float *invstd, int64_t N, int64_t C, int64_t S,
                                   int64_t c0, int64_t c1) {
    backward_sums(dbeta_sum, dgamma_sum, dy, y, x, mean, invstd, N, C, S, y ? 1 : 0, c0, c1);
}

/* dy, x: (N, C, S)  mean, invstd: (C)  dbeta_sum, dgamma_sum: (C), written.
 * xhat = (x - mean)*invstd with the same float mean/invstd as the forward pass. */
void dpt_bn_backward_sums(double *dbeta_sum, double *dgamma_sum, const float *dy, const float *x,
                          const float *mean, const float *invstd, int64_t N, int64_t C, int64_t S) {
    backward_sums(dbeta_sum, dgamma_sum, dy, NULL, x, mean, invstd, N, C, S, 0, 0, C);
}

void dpt_bn_backward_sums_relu(double *dbeta_sum, double *dgamma_sum, const float *dy,
                               const float *y, const float *x, const float *mean,
                               const float *invstd, int64_t N, int64_t C, int64_t S) {
    backward_sums(dbeta_sum, dgamma_sum, dy, y, x, mean, invstd, N, C, S, 1, 0, C);
}

/* The coefficients of dx = a*(g - b - k*(x - mean)) for channel c, formed in double. */
typedef struct {
    float a, b, k;
} grad_coeffs;

static grad_coeffs coeffs_of(int64_t c, const float *invstd, const float *gamma,
                             const double *dbeta_sum, const double *dgamma_sum, int64_t m) {
    const double is = invstd[c];
    return (grad_coeffs){(float)((gamma ? gamma[c] : 1.0) * is), (float)(dbeta_sum[c] / (double)m),
                         (float)(dgamma_sum[c] / (double)m * is)};
}

static void backward_data(float *dx, const float *dy, const float *y, const float *x,
                          const float *mean, const float *invstd, const float *gamma,
                          const double *dbeta_sum, const double *dgamma_sum, int64_t m, int64_t N,
                          int64_t C, int64_t S, int relu) {
    DPT_ASSERT(m >= 1 && N >= 0 && C >= 1 && S >= 1);
    const dpt__kernel_table *kt = dpt__kernels();
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const grad_coeffs k = coeffs_of(c, invstd, gamma, dbeta_sum, dgamma_sum, m);
            const int64_t off = (n * C + c) * S;
            kt->bn_grad[relu](dx + off, dy + off, y ? y + off : NULL, x + off, k.a, k.b, k.k,
                              mean[c], S);
        }
}

/* dy, x, dx: (N, C, S) (dx may alias dy)  mean, invstd, gamma: (C) (gamma NULL means 1)
 * dbeta_sum, dgamma_sum: (C), summed over the m elements of the (possibly global) batch.
 * dx = gamma*invstd*(dy - dbeta_sum/m - xhat*dgamma_sum/m), coefficients formed in double. */
void dpt_bn_backward_data(float *dx, const float *dy, const float *x, const float *mean,
                          const float *invstd, const float *gamma, const double *dbeta_sum,
                          const double *dgamma_sum, int64_t m, int64_t N, int64_t C, int64_t S) {
    backward_data(dx, dy, NULL, x, mean, invstd, gamma, dbeta_sum, dgamma_sum, m, N, C, S, 0);
}

void dpt_bn_backward_data_relu(float *dx, const float *dy, const float *y, const float *x,
                               const float *mean, const float *invstd, const float *gamma,
                               const double *dbeta_sum, const double *dgamma_sum, int64_t m,
                               int64_t N, int64_t C, int64_t S) {
    backward_data(dx, dy, y, x, mean, invstd, gamma, dbeta_sum, dgamma_sum, m, N, C, S, 1);
}
