/* Internal vector macro layer (kernels): one vocabulary (vf, VL, V_LOAD, V_FMA, ...) over AVX-512F
 * (16 lanes, 32 registers) or AVX2+FMA (8 lanes, 16 registers), plus the register-blocking sizes
 * that fit each register file. The including file defines DPT_SIMD_AVX512 or DPT_SIMD_AVX2 and
 * opens the matching target-attribute region first; only conv_avx512.c and conv_avx2.c include it. */
#ifndef DPT_KERNELS_SIMD_H
#define DPT_KERNELS_SIMD_H

#include <immintrin.h>
#include <stdint.h>

/* Full unrolling of the register-block loops, so that accumulator arrays become registers
 * (clang 14 accepts the GCC spelling but then leaves the accumulators in memory). */
#if defined(__clang__)
#define SIMD_UNROLL _Pragma("clang loop unroll(full)")
#else
#define SIMD_UNROLL _Pragma("GCC unroll 32")
#endif
#define SIMD_INLINE static inline __attribute__((always_inline))
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
/* Keeps a loaded vector in a register: stops the compiler from folding the load into each of the
 * FMAs that share it, which would multiply the loads. */
#define V_PIN(v) __asm__("" : "+v"(v))

#if defined(DPT_SIMD_AVX512)

typedef __m512 vf;
#define VL 16
#define SIMD_NAME "avx512"
#define MM(op) _mm512_##op /* the intrinsic family; the common V_* below are built from it */
/* The first n (0 < n <= VL) lanes; the others read as 0 and are never written. */
#define V_LOAD_N(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), (p))
#define V_STORE_N(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (v))
#define V_REDUCE(v) _mm512_reduce_add_ps(v)
/* A lane mask for the first n lanes (any n: none when n <= 0, all when n >= VL), made once and
 * used by many loads; masked-off lanes read as 0 and are not touched in memory. */
typedef __mmask16 vmask;
SIMD_INLINE vmask v_mask_n(int64_t n) {
    return n >= VL ? (vmask)0xFFFF : n <= 0 ? (vmask)0 : (vmask)((1u << n) - 1u);
}
#define V_LOAD_M(p, m) _mm512_maskz_loadu_ps((m), (p))

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
    const __m512i ih = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    *lo = _mm512_permutex2var_ps(e, il, o);
    *hi = _mm512_permutex2var_ps(e, ih, o);
}

/* Channel-vectorized micro-kernel: R positions x NV vectors of channels, R*NV <= 28 accumulators
 * + NV weight vectors + 1 broadcast in 32 registers. */
#define MK_RMAX2 14
#define MK_RMAX1 28
#define MK_R2_LIST(X)                                                                              \
    X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)
#define MK_R1_LIST(X)                                                                              \
    MK_R2_LIST(X) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27)  \
    X(28)
/* Position-vectorized forward: OB channels x RB rows x WV vectors along the row. */
#define PV_OB 4
#define PV_RB 3
#define PV_RB1 12 /* rows when there is a single output channel */
#define PV_WV 2
/* Forward of few-channel layers over shifted rows: PV_OB channels x SH_WV vectors of positions,
 * or one channel x SH_WV1 vectors. */
#define SH_WV 6
#define SH_WV1 12
#define SH_WV_LIST(X, OB) X(OB, 1) X(OB, 2) X(OB, 3) X(OB, 4) X(OB, 5) X(OB, 6)
#define SH_CASES(X)                                                                                \
    SH_WV_LIST(X, PV_OB) SH_WV_LIST(X, 1) X(1, 7) X(1, 8) X(1, 9) X(1, 10) X(1, 11) X(1, 12)
/* Weight gradient of few-channel layers: DW_OB output channels x DW_KB im2col rows of dot
 * products along positions (measured best of 2x10, 2x5, 3x6, 4x6, 5x5, 6x4, 8x3 on conv1). */
#define DW_OB 4
#define DW_KB 5
#define DW_KB_LIST(X, OB) X(OB, 1) X(OB, 2) X(OB, 3) X(OB, 4) X(OB, 5)
#define DW_CASES(X) DW_KB_LIST(X, 1) DW_KB_LIST(X, 2) DW_KB_LIST(X, 3) DW_KB_LIST(X, 4)

#elif defined(DPT_SIMD_AVX2)

typedef __m256 vf;
#define VL 8
#define SIMD_NAME "avx2"
#define MM(op) _mm256_##op
#define V_LOAD_N(p, n) _mm256_maskload_ps((p), simd_tail_mask(n))
/* vmaskmovps stores are microcoded and slow on AMD cores: spill and copy the n lanes instead. */
#define V_STORE_N(p, v, n) simd_store_n((p), (v), (n))
#define V_REDUCE(v) simd_reduce(v)

SIMD_INLINE __m256i simd_tail_mask(int n) {
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

/* A lane mask for the first n lanes (any n: none when n <= 0, all when n >= VL), made once and
 * used by many loads; masked-off lanes read as 0 and are not touched in memory. */
typedef __m256i vmask;
SIMD_INLINE vmask v_mask_n(int64_t n) {
    return simd_tail_mask(n >= VL ? VL : n <= 0 ? 0 : (int)n);
}
#define V_LOAD_M(p, m) _mm256_maskload_ps((p), (m))

SIMD_INLINE void simd_store_n(float *p, __m256 v, int n) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < n; i++)
        p[i] = t[i];
}

SIMD_INLINE float simd_reduce(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Last stage of v_transpose: swap the 128-bit halves across s[m] and s[4+m]. */
SIMD_INLINE void v_transpose_groups(vf r[VL], const vf s[VL]) {
    SIMD_UNROLL
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2f128_ps(s[m], s[4 + m], 0x20);
        r[4 + m] = _mm256_permute2f128_ps(s[m], s[4 + m], 0x31);
    }
}

/* Even and odd lanes of the 2*VL floats a:b, in order: *ev = a0 a2 .. b0 b2 .., *od = a1 a3 ... */
SIMD_INLINE void v_deinterleave(vf a, vf b, vf *ev, vf *od) {
    /* within 128-bit halves: a0 a2 b0 b2 | a4 a6 b4 b6; then put the 64-bit pairs in order */
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/* The inverse: *lo = e0 o0 e1 o1 .., *hi = the same from lane VL/2 on. */
SIMD_INLINE void v_interleave(vf e, vf o, vf *lo, vf *hi) {
    const vf l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}

#define MK_RMAX2 6
#define MK_RMAX1 12
#define MK_R2_LIST(X) X(1) X(2) X(3) X(4) X(5) X(6)
#define MK_R1_LIST(X) MK_R2_LIST(X) X(7) X(8) X(9) X(10) X(11) X(12)
#define PV_OB 2
#define PV_RB 2
#define PV_RB1 5
#define PV_WV 2
#define SH_WV 6
#define SH_WV1 12
#define SH_WV_LIST(X, OB) X(OB, 1) X(OB, 2) X(OB, 3) X(OB, 4) X(OB, 5) X(OB, 6)
#define SH_CASES(X)                                                                                \
    SH_WV_LIST(X, PV_OB) SH_WV_LIST(X, 1) X(1, 7) X(1, 8) X(1, 9) X(1, 10) X(1, 11) X(1, 12)
#define DW_OB 2
#define DW_KB 5
#define DW_KB_LIST(X, OB) X(OB, 1) X(OB, 2) X(OB, 3) X(OB, 4) X(OB, 5)
#define DW_CASES(X) DW_KB_LIST(X, 1) DW_KB_LIST(X, 2)

#else
#error "define DPT_SIMD_AVX512 or DPT_SIMD_AVX2 before including simd.h"
#endif

#define V_ZERO() MM(setzero_ps)()
#define V_LOAD(p) MM(loadu_ps)(p)
#define V_STORE(p, v) MM(storeu_ps)((p), (v))
#define V_SET1(s) MM(set1_ps)(s)
#define V_FMA(a, b, c) MM(fmadd_ps)((a), (b), (c)) /* a*b + c */
#define V_FNMA(a, b, c) MM(fnmadd_ps)((a), (b), (c)) /* c - a*b */
#define V_ADD(a, b) MM(add_ps)((a), (b))
#define V_SUB(a, b) MM(sub_ps)((a), (b))
#define V_UNPACKLO(a, b) MM(unpacklo_ps)((a), (b)) /* interleave 32-bit lanes */
#define V_UNPACKHI(a, b) MM(unpackhi_ps)((a), (b))
#define V_PD(a) MM(castps_pd)(a)
#define V_UNPACKLO2(a, b) MM(castpd_ps)(MM(unpacklo_pd)(V_PD(a), V_PD(b))) /* 64-bit lanes */
#define V_UNPACKHI2(a, b) MM(castpd_ps)(MM(unpackhi_pd)(V_PD(a), V_PD(b)))

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

#define MK_ACC_MAX (MK_RMAX1 > 2 * MK_RMAX2 ? MK_RMAX1 : 2 * MK_RMAX2)
#define SIMD_MAX2(a, b) ((a) > (b) ? (a) : (b))
/* Accumulators of pv_mk: its row blocks and the shifted-row blocks. */
#define PV_ACC_MAX                                                                                 \
    SIMD_MAX2(SIMD_MAX2(PV_OB * PV_RB, PV_RB1) * PV_WV, SIMD_MAX2(PV_OB * SH_WV, SH_WV1))

#endif
