/* Internal: how kernel_table.c finds the implementations. Each getter returns its table, or NULL
 * when this CPU (or build) cannot run it. */
#ifndef DPT_KERNELS_CONV_IMPL_H
#define DPT_KERNELS_CONV_IMPL_H

#include "dpt/conv.h"

const dpt_conv_impl *dpt__conv_ref_impl(void);
const dpt_conv_impl *dpt__conv_im2col_impl(void);
const dpt_conv_impl *dpt__conv_avx2_impl(void);
const dpt_conv_impl *dpt__conv_avx512_impl(void);
/* The AVX2 and AVX-512 builds of conv_simd.c (cmake/DptIsa.cmake): only the getters above touch
 * them, after asking the CPU. */
extern const dpt_conv_impl dpt__conv_simd_avx2, dpt__conv_simd_avx512;

#endif
