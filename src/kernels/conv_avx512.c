/* avx512 direct convolution (kernels). Placeholder until issue #6 lands: reports the path as
 * unavailable, so dispatch falls back to im2col. */
#include "conv_impl.h"

const dpt_conv_impl *dpt__conv_avx512_impl(void) { return NULL; }
