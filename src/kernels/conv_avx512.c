/* AVX-512F convolution (kernels): conv_simd_kernels.h compiled with 16-lane vectors inside an
 * avx512f target region (per function, no CMake flags); the table is offered only when this CPU
 * and OS run AVX-512F. Other architectures and compilers get a path that reports NULL. */
#include "conv_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DPT_SIMD_AVX512 1
#define DPT_SIMD_TARGET "avx512f,avx2,fma"
#define DPT_SIMD_CPU_OK() __builtin_cpu_supports("avx512f")
#define DPT_SIMD_GETTER dpt__conv_avx512_impl
#include "conv_simd_kernels.h"
#else
const dpt_conv_impl *dpt__conv_avx512_impl(void) { return NULL; }
#endif
