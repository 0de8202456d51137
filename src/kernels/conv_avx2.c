/* AVX2+FMA convolution (kernels): conv_simd_kernels.h compiled with 8-lane vectors inside an
 * avx2,fma target region (per function, no CMake flags); the table is offered only when this CPU
 * and OS run AVX2 and FMA. Other architectures and compilers get a path that reports NULL. */
#include "conv_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DPT_SIMD_AVX2 1
#define DPT_SIMD_TARGET "avx2,fma"
#define DPT_SIMD_CPU_OK() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#define DPT_SIMD_GETTER dpt__conv_avx2_impl
#include "conv_simd_kernels.h"
#else
const dpt_conv_impl *dpt__conv_avx2_impl(void) { return NULL; }
#endif
