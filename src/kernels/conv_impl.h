/* Internal: the convolution implementations kernel_table.c chooses from. */
#ifndef DPT_KERNELS_CONV_IMPL_H
#define DPT_KERNELS_CONV_IMPL_H

#include "dpt/conv.h"

/* conv_ref.c and conv_im2col.c; the AVX2 and AVX-512 builds of conv_simd.c (cmake/DptIsa.cmake),
 * which only kernel_table.c touches, after asking the CPU. */
extern const dpt_conv_impl dpt__conv_ref, dpt__conv_im2col;
extern const dpt_conv_impl dpt__conv_simd_avx2, dpt__conv_simd_avx512;
/* The SIMD implementations when this CPU (and build) runs them, else NULL. */
const dpt_conv_impl *dpt__conv_avx2_impl(void);
const dpt_conv_impl *dpt__conv_avx512_impl(void);

#endif
