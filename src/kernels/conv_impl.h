/* Internal: how conv_dispatch.c finds the implementations. Each returns its table, or NULL when
 * this CPU (or compiler) cannot run it. */
#ifndef DPT_KERNELS_CONV_IMPL_H
#define DPT_KERNELS_CONV_IMPL_H

#include "dpt/conv.h"

const dpt_conv_impl *dpt__conv_ref_impl(void);
const dpt_conv_impl *dpt__conv_im2col_impl(void);
const dpt_conv_impl *dpt__conv_avx2_impl(void);
const dpt_conv_impl *dpt__conv_avx512_impl(void);

#endif
