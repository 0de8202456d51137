/* Vector path of the batch-norm and pooling kernels (kernels, internal): the widest one this CPU,
 * OS and build run, chosen once; DPT_KERNEL=ref (or im2col) caps it at the portable scalar code
 * and DPT_KERNEL=avx2 at AVX2, as for the convolutions. Every path gives the same bits (sums run
 * in one fixed order), so the choice changes speed only; tests pin each path to compare them.
 * Knows no kernel. */
#ifndef DPT_KERNELS_LAYER_ISA_H
#define DPT_KERNELS_LAYER_ISA_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DPT_LAYER_X86 1
/* Per-function ISA regions: the default build stays x86-64 baseline (no CMake flags). */
#define DPT_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define DPT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#include <immintrin.h>
#include <stdint.h>

/* The n first floats of p (any n: none when n <= 0, all 8 when n >= 8); the others read +0 and
 * are not touched (maskload does not fault on them). */
DPT_TARGET_AVX2 static inline __m256 dpt__load8_n(const float *p, int64_t n) {
    static const int32_t ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    if (n >= 8)
        return _mm256_loadu_ps(p);
    if (n <= 0)
        return _mm256_setzero_ps();
    return _mm256_maskload_ps(p, _mm256_loadu_si256((const __m256i *)(ones + 8 - n)));
}
#endif

typedef enum { DPT__ISA_SCALAR, DPT__ISA_AVX2, DPT__ISA_AVX512 } dpt__isa;

/* The widest path this CPU, OS and build run (DPT_KERNEL not consulted). */
dpt__isa dpt__isa_best(void);
/* The path the kernels take now: the pinned one, else the best capped by DPT_KERNEL. */
dpt__isa dpt__isa_get(void);
/* Tests: pins `isa` (asserted <= dpt__isa_best()) for every later call; returns the previous
 * choice, which a second call restores. Not thread-safe against running kernels. */
dpt__isa dpt__isa_pin(dpt__isa isa);

#endif
