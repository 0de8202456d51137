/* The kernels' one dispatch table (kernels, internal): every kernel that exists once per
 * instruction set, chosen once for this CPU and read by the convolution, batch-norm and pooling
 * entry points. Batch norm and pooling give the same bits on every path (sums run in one fixed
 * order), so their path changes speed only; tests pin each one to compare them. */
#ifndef DPT_KERNELS_KERNEL_TABLE_H
#define DPT_KERNELS_KERNEL_TABLE_H

#include <stdint.h>

#include "dpt/conv.h"

typedef enum { DPT__ISA_SCALAR, DPT__ISA_AVX2, DPT__ISA_AVX512 } dpt__isa;

/* The sums of one run of batch norm: sum x and sum x^2, or sum g and sum g*(x - mu). */
typedef struct {
    double s1, s2;
} dpt__bn_sums;

/* 2x2 stride-2 max pooling of one plane x (W wide), and its backward (pool.c): output row k (oW
 * values at y + k*oW, argmax + k*oW, the argmax an offset into the plane) is taken from the input
 * rows 2k and 2k+1. One call per plane: a call per row cost as much as the row itself on 14- and
 * 7-wide rows. */
typedef void dpt__maxpool_plane_fn(float *y, int32_t *argmax, const float *x, int32_t W,
                                   int64_t oW, int64_t oH);
/* dx rows 2k and 2k+1, columns [0, 2*oW), from dy and argmax row k. */
typedef void dpt__maxunpool_plane_fn(float *dx, const float *dy, const int32_t *argmax, int32_t W,
                                     int64_t oW, int64_t oH);

typedef struct {
    const char *name; /* the DPT_KERNEL value that selects it: ref, im2col, avx2 or avx512 */
    dpt__isa isa;     /* the vector path of batch norm and pooling */
    const dpt_conv_impl *conv;
    /* Batch norm over one contiguous run of n values (batchnorm.c); relu = 1 with a fused ReLU,
     * whose output y masks dy (y is not read when relu = 0). */
    dpt__bn_sums (*bn_stats)(const float *x, int64_t n);
    dpt__bn_sums (*bn_grad_sums)(int relu, const float *dy, const float *y, const float *x,
                                 float mu, int64_t n);
    void (*bn_affine)(int relu, float *y, const float *x, float mu, float scale, float shift,
                      int64_t n);
    void (*bn_grad)(int relu, float *dx, const float *dy, const float *y, const float *x, float a,
                    float b, float k, float mu, int64_t n);
    dpt__maxpool_plane_fn *maxpool2x2_plane;
    dpt__maxunpool_plane_fn *maxunpool2x2_plane;
} dpt__kernel_table;

/* The table in use: the fastest this CPU runs, or the one DPT_KERNEL names, chosen on the first
 * call; dpt_conv_select_from_env and dpt__isa_pin replace it. */
const dpt__kernel_table *dpt__kernels(void);

/* Fill in the batch-norm (batchnorm.c) and pooling (pool.c) entries of path `isa`. */
void dpt__bn_fill_table(dpt__kernel_table *t, dpt__isa isa);
void dpt__pool_fill_table(dpt__kernel_table *t, dpt__isa isa);

/* The widest path this CPU, OS and build run (DPT_KERNEL not consulted). */
dpt__isa dpt__isa_best(void);
/* Tests: batch norm and pooling take path `isa` (asserted <= dpt__isa_best()) from now on, the
 * convolution stays; returns the previous path, which a second call restores. Not thread-safe
 * against running kernels. */
dpt__isa dpt__isa_pin(dpt__isa isa);

/* The vector paths of batch norm (batchnorm_simd.c) and pooling (pool_simd.c), built once per ISA
 * where the SIMD convolutions are (cmake/DptIsa.cmake); only a CPU that runs the ISA may call them.
 */
#if defined(DPT_HAVE_AVX2) && defined(DPT_HAVE_AVX512)
#define DPT_KERNELS_X86 1
void dpt__bn_fill_avx2(dpt__kernel_table *t);
void dpt__bn_fill_avx512(dpt__kernel_table *t);
void dpt__pool_fill_avx2(dpt__kernel_table *t);
void dpt__pool_fill_avx512(dpt__kernel_table *t);
#endif

#endif
