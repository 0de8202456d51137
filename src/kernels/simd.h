/* Internal vector vocabulary: vf, VL, V_LOAD, V_ADD, V_FMA, ... in three flavors.
 * - AVX-512F (16 lanes, 32 registers) and AVX2+FMA (8 lanes, 16 registers), with the
 *   register-blocking sizes that fit each register file: the kernels that cmake/DptIsa.cmake
 *   compiles once per ISA. Their flags define DPT_ISA_AVX512 or DPT_ISA_AVX2, and ISA_NAME() gives
 *   their extern names the ISA as a suffix, so that both builds of one source link into one
 *   library.
 * - Portable (neither defined): 4 float lanes of GCC/Clang vector extensions, for code that every
 *   build runs on any CPU, the optimizer's torch-ordered rules. Each lane does exactly the float
 *   operations scalar code would (the build has -ffp-contract=off; this flavor has no V_FMA), so
 *   its results do not depend on the lane count. */
#ifndef DPT_KERNELS_SIMD_H
#define DPT_KERNELS_SIMD_H

#if !defined(DPT_ISA_AVX512) && !defined(DPT_ISA_AVX2)

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define SIMD_INLINE static inline __attribute__((always_inline))
typedef float vf __attribute__((vector_size(16)));
typedef double vd __attribute__((vector_size(16)));
#define VL 4
#define VD 2
#define V_ZERO() ((vf){0, 0, 0, 0})
#define V_SET1(s) ((vf){(s), (s), (s), (s)})
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define VD_ADD(a, b) ((a) + (b))
#define VD_MUL(a, b) ((a) * (b))

SIMD_INLINE vf v_sqrt(vf x) {
#if defined(__SSE2__)
    return _mm_sqrt_ps(x);
#else
    return (vf){sqrtf(x[0]), sqrtf(x[1]), sqrtf(x[2]), sqrtf(x[3])};
#endif
}
#define V_SQRT(x) v_sqrt(x)

/* max(a, b) per lane; a NaN in b propagates (as torch.maximum would). */
SIMD_INLINE vf v_max(vf a, vf b) {
#if defined(__SSE2__)
    return _mm_max_ps(a, b);
#else
    return (vf){a[0] > b[0] ? a[0] : b[0], a[1] > b[1] ? a[1] : b[1], a[2] > b[2] ? a[2] : b[2],
                a[3] > b[3] ? a[3] : b[3]};
#endif
}
#define V_MAX(a, b) v_max((a), (b))

/* The first n (0 < n <= VL) floats at p, the other lanes 0 / stored back. */
SIMD_INLINE vf v_load_n(const float *p, int n) {
    vf v = V_ZERO();
    memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}
SIMD_INLINE void v_store_n(float *p, vf v, int n) {
    memcpy(p, &v, (size_t)n * sizeof(float));
}
#define V_LOAD(p) v_load_n((p), VL)
#define V_STORE(p, v) v_store_n((p), (v), VL)
#define V_LOAD_N(p, n) v_load_n((p), (n))
#define V_STORE_N(p, v, n) v_store_n((p), (v), (n))

/* Lane masks (all-ones or all-zero int32 lanes) from comparisons, ordered: false where either
 * side is NaN; V_BLEND(m, a, b) takes b where m, else a. */
typedef int32_t vi __attribute__((vector_size(16)));
typedef vi vmask;
#define V_CMP_GT(a, b) ((vmask)((a) > (b)))
#define V_ISNAN(a) ((vmask)((a) != (a)))
#define V_MASK_OR(a, b) ((a) | (b))
#define V_BLEND(m, a, b) ((vf)(((vi)(b) & (m)) | ((vi)(a) & ~(m))))
#define VI_BLEND(m, a, b) (((b) & (m)) | ((a) & ~(m)))
#define VI_SET1(s) ((vi){(s), (s), (s), (s)})
#define VI_ADD(a, b) ((a) + (b))
#define VI_STORE(p, v) memcpy((p), &(v), sizeof(vi))

/* The even and the odd lanes of the 2*VL floats a, b (a's first). */
SIMD_INLINE void v_deinterleave(vf a, vf b, vf *even, vf *odd) {
    *even = __builtin_shufflevector(a, b, 0, 2, 4, 6);
    *odd = __builtin_shufflevector(a, b, 1, 3, 5, 7);
}

/* The four lanes of v as doubles: lanes 0-1 in *lo, 2-3 in *hi (exact). */
SIMD_INLINE void v_widen(vf v, vd *lo, vd *hi) {
#if defined(__SSE2__)
    *lo = _mm_cvtps_pd(v);
    *hi = _mm_cvtps_pd(_mm_movehl_ps(v, v));
#else
    *lo = (vd){v[0], v[1]};
    *hi = (vd){v[2], v[3]};
#endif
}

#else /* AVX-512 or AVX2 */

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Full unrolling of the register-block loops, so that accumulator arrays become registers
 * (clang 14 accepts the GCC spelling but then leaves the accumulators in memory). */
#if defined(__clang__)
#define SIMD_UNROLL _Pragma("clang loop unroll(full)")
#else
#define SIMD_UNROLL _Pragma("GCC unroll 32")
#endif
#define SIMD_INLINE static inline __attribute__((always_inline))
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define V_PREFETCH_L2(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
/* Keeps a loaded vector in a register: stops the compiler from folding the load into each of the
 * FMAs that share it, which would multiply the loads. */
#define V_PIN(v) __asm__("" : "+v"(v))

#define SIMD_PASTE_(name, isa) name##_##isa
#define SIMD_PASTE(name, isa) SIMD_PASTE_(name, isa)
#define ISA_NAME(name) SIMD_PASTE(name, SIMD_ISA)

#if defined(DPT_ISA_AVX512)

typedef __m512 vf;
#define VL 16
#define SIMD_ISA avx512
#define SIMD_NAME "avx512"
#define MM(op) _mm512_##op /* the intrinsic family; the common V_* below are built from it */
/* A lane mask for the first n lanes, 0 <= n <= VL; masked-off lanes read as 0 and are never
 * touched in memory. */
typedef __mmask16 vmask;
SIMD_INLINE vmask v_mask_first(int n) {
    return (vmask)((1u << n) - 1u);
}
#define V_LOAD_M(p, m) _mm512_maskz_loadu_ps((m), (p))
#define V_STORE_N(p, v, n) _mm512_mask_storeu_ps((p), v_mask_first(n), (v))
#define V_REDUCE(v) _mm512_reduce_add_ps(v)
/* Bit i of the result is lane i of the mask. */
SIMD_INLINE unsigned v_mask_bits(vmask m) {
    return m;
}
#define V_CMP(a, b, pred) _mm512_cmp_ps_mask((a), (b), (pred))
#define V_MASK_OR(a, b) ((vmask)((a) | (b)))
#define V_MASKZ(m, v) _mm512_maskz_mov_ps((m), (v))          /* v where m, else +0 */
#define V_BLEND(m, a, b) _mm512_mask_blend_ps((m), (a), (b)) /* b where m, else a */

typedef __m512i vi; /* VL int32 lanes */
#define VI_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define VI_STORE(p, v) _mm512_storeu_si512((void *)(p), (v))
#define VI_LOAD_M(p, m) _mm512_maskz_loadu_epi32((m), (p))
#define VI_STORE_N(p, v, n) _mm512_mask_storeu_epi32((p), v_mask_first(n), (v))
#define VI_CMPEQ(a, b) _mm512_cmpeq_epi32_mask((a), (b))
#define VI_BLEND(m, a, b) _mm512_mask_blend_epi32((m), (a), (b))
/* 0, 1, ..., VL - 1 */
SIMD_INLINE vi vi_lane_index(void) {
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

typedef __m512d vd; /* VD double lanes */
#define VD 8
typedef __mmask8 vdmask;
SIMD_INLINE vdmask vd_mask_first(int n) {
    return (vdmask)((1u << n) - 1u);
}
#define VD_MASKZ(m, v) _mm512_maskz_mov_pd((m), (v))
/* The lanes 0 .. VD-1 and VD .. VL-1 of a float vector, widened (exact). */
#define VD_WIDEN_LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define VD_WIDEN_HI(v)                                                                             \
    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
/* The sum of the lanes by halving: lane j + lane j + 4, then j + 2, then 0 + 1. */
SIMD_INLINE double vd_reduce_halves(vd v) {
    const __m256d u = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d w = _mm_add_pd(_mm256_castpd256_pd128(u), _mm256_extractf128_pd(u, 1));
    return _mm_cvtsd_f64(w) + _mm_cvtsd_f64(_mm_unpackhi_pd(w, w));
}

/* Last stage of v_transpose: s[4i+m] holds, in 128-bit group L, column 4L+m of rows 4i..4i+3;
 * a 4x4 transpose of 128-bit groups across s[m], s[4+m], s[8+m], s[12+m] finishes the job. */
SIMD_INLINE void v_transpose_groups(vf r[VL], const vf s[VL]) {
    SIMD_UNROLL
    for (int m = 0; m < 4; m++) {
        const vf p0 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0x44);
        const vf p1 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0xEE);
        const vf p2 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0x44);
        const vf p3 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0xEE);
        r[m] = _mm512_shuffle_f32x4(p0, p2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(p0, p2, 0xDD);
        r[8 + m] = _mm512_shuffle_f32x4(p1, p3, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(p1, p3, 0xDD);
    }
}

/* Even and odd lanes of the 2*VL floats a:b, in order: *ev = a0 a2 .. b0 b2 .., *od = a1 a3 ... */
SIMD_INLINE void v_deinterleave(vf a, vf b, vf *ev, vf *od) {
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    *ev = _mm512_permutex2var_ps(a, ie, b);
    *od = _mm512_permutex2var_ps(a, io, b);
}

/* The inverse: *lo = e0 o0 e1 o1 .., *hi = the same from lane VL/2 on. */
SIMD_INLINE void v_interleave(vf e, vf o, vf *lo, vf *hi) {
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ih =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    *lo = _mm512_permutex2var_ps(e, il, o);
    *hi = _mm512_permutex2var_ps(e, ih, o);
}

/* Channel micro-kernel (conv_simd_kernel.c): R positions x NV vectors of channels, R*NV <= 28
 * accumulators + NV weight vectors + 1 broadcast in 32 registers. */
#define CHANNEL_TILE_MAX2 14 /* positions per tile with two channel vectors */
#define CHANNEL_TILE_MAX1 28 /* ... with one */
#define CHANNEL_TILES2(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)
#define CHANNEL_TILES1(X)                                                                          \
    CHANNEL_TILES2(X)                                                                              \
    X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28)
/* Row micro-kernel (conv_simd_kernel.c), positions along a row in the lanes: ROW_BLOCK_CH
 * channels x ROW_BLOCK_ROWS rows x ROW_BLOCK_VECS vectors along the row. */
#define ROW_BLOCK_CH 4
/* shifted-row blocks of the channel counts between 1 and ROW_BLOCK_CH */
#define SHIFTED_BETWEEN(X) SHIFTED_WIDTHS(X, 2) SHIFTED_WIDTHS(X, 3)
#define ROW_BLOCK_ROWS 3
#define ROW_BLOCK_ROWS1 12 /* rows when there is a single output channel */
#define ROW_BLOCK_VECS 2
/* Weight gradient of few-channel layers: DOT_BLOCK_CH output channels x DOT_BLOCK_ROWS im2col
 * rows of dot products along positions (measured best of 2x10, 2x5, 3x6, 4x6, 5x5, 6x4, 8x3 on
 * conv1). */
#define DOT_BLOCK_CH 4
#define DOT_BLOCK_ROWS 5
#define DOT_BLOCKS(X) DOT_ROWS(X, 1) DOT_ROWS(X, 2) DOT_ROWS(X, 3) DOT_ROWS(X, 4)

#elif defined(DPT_ISA_AVX2)

typedef __m256 vf;
#define VL 8
#define SIMD_ISA avx2
#define SIMD_NAME "avx2"
#define MM(op) _mm256_##op
typedef __m256i vmask;
SIMD_INLINE vmask v_mask_first(int n) {
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}
#define V_LOAD_M(p, m) _mm256_maskload_ps((p), (m))
/* vmaskmovps stores are microcoded and slow on AMD cores: spill and copy the n lanes instead. */
SIMD_INLINE void v_store_n(float *p, __m256 v, int n) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < n; i++)
        p[i] = t[i];
}
#define V_STORE_N(p, v, n) v_store_n((p), (v), (n))

SIMD_INLINE float v_reduce(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define V_REDUCE(v) v_reduce(v)
/* A mask is a vector of all-ones or all-zero lanes; it selects in the float domain. */
#define V_PS(m) _mm256_castsi256_ps(m)
SIMD_INLINE unsigned v_mask_bits(vmask m) {
    return (unsigned)_mm256_movemask_ps(V_PS(m));
}
#define V_CMP(a, b, pred) _mm256_castps_si256(_mm256_cmp_ps((a), (b), (pred)))
#define V_MASK_OR(a, b) _mm256_castps_si256(_mm256_or_ps(V_PS(a), V_PS(b)))
#define V_MASKZ(m, v) _mm256_and_ps(V_PS(m), (v))
#define V_BLEND(m, a, b) _mm256_blendv_ps((a), (b), V_PS(m))

typedef __m256i vi;
#define VI_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define VI_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), (v))
#define VI_LOAD_M(p, m) _mm256_maskload_epi32((p), (m))
SIMD_INLINE void vi_store_n(int32_t *p, __m256i v, int n) { /* as v_store_n */
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)t, v);
    memcpy(p, t, (size_t)n * sizeof *t);
}
#define VI_STORE_N(p, v, n) vi_store_n((p), (v), (n))
#define VI_CMPEQ(a, b) _mm256_cmpeq_epi32((a), (b))
#define VI_BLEND(m, a, b) _mm256_castps_si256(V_BLEND((m), V_PS(a), V_PS(b)))
SIMD_INLINE vi vi_lane_index(void) {
    return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
}

typedef __m256d vd;
#define VD 4
typedef __m256d vdmask;
SIMD_INLINE vdmask vd_mask_first(int n) {
    static const int64_t m[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
    return _mm256_castsi256_pd(_mm256_loadu_si256((const __m256i *)(m + 4 - n)));
}
#define VD_MASKZ(m, v) _mm256_and_pd((m), (v))
#define VD_WIDEN_LO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define VD_WIDEN_HI(v) _mm256_cvtps_pd(_mm256_extractf128_ps((v), 1))
/* The sum of the lanes by halving: lane j + lane j + 2, then 0 + 1. */
SIMD_INLINE double vd_reduce_halves(vd v) {
    const __m128d w = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(w) + _mm_cvtsd_f64(_mm_unpackhi_pd(w, w));
}

/* Last stage of v_transpose: swap the 128-bit halves across s[m] and s[4+m]. */
SIMD_INLINE void v_transpose_groups(vf r[VL], const vf s[VL]) {
    SIMD_UNROLL
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2f128_ps(s[m], s[4 + m], 0x20);
        r[4 + m] = _mm256_permute2f128_ps(s[m], s[4 + m], 0x31);
    }
}

/* Even and odd lanes of the 2*VL floats a:b, in order: *ev = a0 a2 .. b0 b2 .., *od = a1 a3 ...
 * Within 128-bit halves a0 a2 b0 b2 | a4 a6 b4 b6; then the 64-bit pairs are put in order. */
SIMD_INLINE vf v_pairs_in_order(vf v) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}
SIMD_INLINE void v_deinterleave(vf a, vf b, vf *ev, vf *od) {
    *ev = v_pairs_in_order(_mm256_shuffle_ps(a, b, 0x88));
    *od = v_pairs_in_order(_mm256_shuffle_ps(a, b, 0xDD));
}

/* The inverse: *lo = e0 o0 e1 o1 .., *hi = the same from lane VL/2 on. */
SIMD_INLINE void v_interleave(vf e, vf o, vf *lo, vf *hi) {
    const vf l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}

#define CHANNEL_TILE_MAX2 6
#define CHANNEL_TILE_MAX1 12
#define CHANNEL_TILES2(X) X(1) X(2) X(3) X(4) X(5) X(6)
#define CHANNEL_TILES1(X) CHANNEL_TILES2(X) X(7) X(8) X(9) X(10) X(11) X(12)
#define ROW_BLOCK_CH 2
#define SHIFTED_BETWEEN(X)
#define ROW_BLOCK_ROWS 2
#define ROW_BLOCK_ROWS1 5
#define ROW_BLOCK_VECS 2
#define DOT_BLOCK_CH 2
#define DOT_BLOCK_ROWS 5
#define DOT_BLOCKS(X) DOT_ROWS(X, 1) DOT_ROWS(X, 2)

#endif

/* Forward of few-channel layers over shifted rows: ROW_BLOCK_CH channels x SHIFTED_VECS vectors
 * of positions, or one channel x SHIFTED_VECS1 vectors, in one row (RB = 1). */
#define SHIFTED_VECS 6
#define SHIFTED_VECS1 12

/* Register-block dispatch. A micro-kernel takes its block sizes as compile-time constants, so
 * each size is its own instance: in a function that defines BLOCK_CALL(a, b, c) as a call of
 * one instance, BLOCK_SWITCH(LIST, a, b, c) runs the instance for (a, b, c) and returns, or
 * falls through when LIST(X), which expands X(a, b, c) for each instance, has none. */
#define BLOCK_KEY(a, b, c) (((a)*16 + (b)) * 16 + (c))
#define BLOCK_CASE(a, b, c)                                                                        \
    case BLOCK_KEY(a, b, c):                                                                       \
        BLOCK_CALL(a, b, c);                                                                       \
        return;
#define BLOCK_SWITCH(LIST, a, b, c)                                                                \
    switch (BLOCK_KEY(a, b, c)) {                                                                  \
        LIST(BLOCK_CASE)                                                                           \
    default:                                                                                       \
        break;                                                                                     \
    }
/* The row micro-kernel's (channels, rows, vectors) blocks over rows, and over single shifted
 * rows. */
#define ROW_BLOCKS(X)                                                                              \
    ROW_WIDTHS(X, ROW_BLOCK_CH, ROW_BLOCK_ROWS)                                                    \
    ROW_WIDTHS(X, ROW_BLOCK_CH, 1) ROW_WIDTHS(X, 1, ROW_BLOCK_ROWS1) ROW_WIDTHS(X, 1, 1)
#define ROW_WIDTHS(X, OB, RB) X(OB, RB, 1) X(OB, RB, ROW_BLOCK_VECS)
#define SHIFTED_BLOCKS(X)                                                                          \
    SHIFTED_WIDTHS(X, ROW_BLOCK_CH)                                                                \
    SHIFTED_WIDTHS(X, 1) X(1, 1, 7) X(1, 1, 8) X(1, 1, 9) X(1, 1, 10) X(1, 1, 11) X(1, 1, 12)      \
    SHIFTED_BETWEEN(X)
#define SHIFTED_WIDTHS(X, OB)                                                                      \
    X(OB, 1, 1) X(OB, 1, 2) X(OB, 1, 3) X(OB, 1, 4) X(OB, 1, 5) X(OB, 1, 6)
/* The dot micro-kernel's (channels, rows) blocks. */
#define DOT_ROWS(X, OB) X(OB, 1, 1) X(OB, 2, 1) X(OB, 3, 1) X(OB, 4, 1) X(OB, 5, 1)

#define V_ZERO() MM(setzero_ps)()
#define V_LOAD(p) MM(loadu_ps)(p)
#define V_STORE(p, v) MM(storeu_ps)((p), (v))
#define V_SET1(s) MM(set1_ps)(s)
#define V_FMA(a, b, c) MM(fmadd_ps)((a), (b), (c))   /* a*b + c */
#define V_FNMA(a, b, c) MM(fnmadd_ps)((a), (b), (c)) /* c - a*b */
#define V_ADD(a, b) MM(add_ps)((a), (b))
#define V_SUB(a, b) MM(sub_ps)((a), (b))
#define V_MUL(a, b) MM(mul_ps)((a), (b))
/* Lane masks from comparisons (ordered: false where either side is NaN), and NaN lanes. */
#define V_CMP_GT(a, b) V_CMP((a), (b), _CMP_GT_OQ)
#define V_CMP_LT(a, b) V_CMP((a), (b), _CMP_LT_OQ)
#define V_ISNAN(a) V_CMP((a), (a), _CMP_UNORD_Q)
#define VI_SET1(s) MM(set1_epi32)(s)
#define VI_ADD(a, b) MM(add_epi32)((a), (b))
#define VD_ZERO() MM(setzero_pd)()
#define VD_SET1(s) MM(set1_pd)(s)
#define VD_ADD(a, b) MM(add_pd)((a), (b))
#define VD_SUB(a, b) MM(sub_pd)((a), (b))
#define VD_MUL(a, b) MM(mul_pd)((a), (b))
#define VD_FMA(a, b, c) MM(fmadd_pd)((a), (b), (c)) /* a*b + c, one rounding */
#define V_UNPACKLO(a, b) MM(unpacklo_ps)((a), (b))  /* interleave 32-bit lanes */
#define V_UNPACKHI(a, b) MM(unpackhi_ps)((a), (b))
#define V_PD(a) MM(castps_pd)(a)
#define V_UNPACKLO2(a, b) MM(castpd_ps)(MM(unpacklo_pd)(V_PD(a), V_PD(b))) /* 64-bit lanes */
#define V_UNPACKHI2(a, b) MM(castpd_ps)(MM(unpackhi_pd)(V_PD(a), V_PD(b)))
/* The first n (0 < n <= VL) lanes; the others read as 0 and are never written. */
#define V_LOAD_N(p, n) V_LOAD_M((p), v_mask_first(n))

/* A lane mask for the first n lanes (any n: none when n <= 0, all when n >= VL), made once and
 * used by many loads. */
SIMD_INLINE vmask v_mask_n(int64_t n) {
    return v_mask_first(n >= VL ? VL : n <= 0 ? 0 : (int)n);
}
/* The same for VD double lanes. */
SIMD_INLINE vdmask vd_mask_n(int64_t n) {
    return vd_mask_first(n >= VD ? VD : n <= 0 ? 0 : (int)n);
}

/* In-register transpose of a VL x VL block: r[i] lane j becomes r[j] lane i. Pairs of rows are
 * interleaved by 32 then 64 bits, so that s[4i+m] holds, per 128-bit group L, column 4L+m of rows
 * 4i..4i+3; v_transpose_groups moves the 128-bit groups. */
SIMD_INLINE void v_transpose(vf r[VL]) {
    vf t[VL], s[VL];
    SIMD_UNROLL
    for (int i = 0; i < VL / 2; i++) {
        t[2 * i] = V_UNPACKLO(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = V_UNPACKHI(r[2 * i], r[2 * i + 1]);
    }
    SIMD_UNROLL
    for (int i = 0; i < VL / 4; i++) {
        s[4 * i] = V_UNPACKLO2(t[4 * i], t[4 * i + 2]);
        s[4 * i + 1] = V_UNPACKHI2(t[4 * i], t[4 * i + 2]);
        s[4 * i + 2] = V_UNPACKLO2(t[4 * i + 1], t[4 * i + 3]);
        s[4 * i + 3] = V_UNPACKHI2(t[4 * i + 1], t[4 * i + 3]);
    }
    v_transpose_groups(r, s);
}

/* dst[0..n) = src[0..n): rows here are short (tens of floats), where a libc call costs more than
 * the copy; the tail is one masked vector (V_STORE_N is a scalar loop on AVX2). */
SIMD_INLINE void v_copy(float *dst, const float *src, int64_t n) {
    int64_t j = 0;
    for (; j + VL <= n; j += VL)
        V_STORE(dst + j, V_LOAD(src + j));
    if (j < n)
        V_STORE_N(dst + j, V_LOAD_N(src + j, (int)(n - j)), (int)(n - j));
}

SIMD_INLINE int64_t round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}
SIMD_INLINE int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}
SIMD_INLINE int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}
/* Splits n into the fewest tiles of at most max_len, of nearly equal size: tile t is
 * [*lo, *lo + *len). Inline, so that the divisions leave the loops over tiles. */
SIMD_INLINE int64_t tiles_count(int64_t n, int64_t max_len) {
    return (n + max_len - 1) / max_len;
}
SIMD_INLINE void tile_bounds(int64_t n, int64_t tiles, int64_t t, int64_t *lo, int *len) {
    const int64_t base = n / tiles, extra = n % tiles;
    *lo = t * base + min64(t, extra);
    *len = (int)(base + (t < extra));
}
#define SIMD_MAX2(a, b) ((a) > (b) ? (a) : (b))

/* Accumulators of the channel micro-kernel, and of the position micro-kernel over its row
 * blocks and shifted-row blocks. */
#define CHANNEL_ACC_MAX SIMD_MAX2(CHANNEL_TILE_MAX1, 2 * CHANNEL_TILE_MAX2)
#define ROW_ACC_MAX                                                                                \
    SIMD_MAX2(SIMD_MAX2(ROW_BLOCK_CH *ROW_BLOCK_ROWS, ROW_BLOCK_ROWS1) * ROW_BLOCK_VECS,           \
              SIMD_MAX2(ROW_BLOCK_CH * SHIFTED_VECS, SHIFTED_VECS1))

#endif /* the flavors */
#endif
