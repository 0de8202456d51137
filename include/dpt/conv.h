/* Convolution kernels (kernels): 1-D, 2-D and 3-D cross-correlation as torch.nn.functional.conv*d
 * computes it (the kernel is not flipped), with per-dimension stride, padding and dilation, groups
 * and an optional bias. 1-D and 2-D are 3-D with unit leading extents: every per-dimension array
 * is in (D, H, W) order, and a 2-D geometry has in[0] = k[0] = 1, pad[0] = 0.
 *
 * Layouts (row-major, as PyTorch):
 *   x: (N, C, D, H, W)   w: (O, C/groups, kD, kH, kW)   b: (O)   y: (N, O, oD, oH, oW)
 *
 * Kernels never allocate: scratch of impl->workspace(g) floats is passed in.
 * forward and backward_data WRITE their output; backward_weight ACCUMULATES into dw and db (+=),
 * so the trainer zeroes the flat gradient buffer once per step. */
#ifndef DPT_CONV_H
#define DPT_CONV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dpt/status.h"
#include "dpt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int dims;          /* 1, 2 or 3: the number of spatial dimensions the user sees */
    int64_t N, C, O;   /* batch, input channels, output channels */
    int64_t in[3];     /* input extent (D, H, W); 0 means 1 */
    int64_t k[3];      /* kernel extent; 0 means 1 */
    int64_t stride[3]; /* 0 means 1 */
    int64_t pad[3];    /* zeros on both sides */
    int64_t dil[3];    /* 0 means 1 */
    int64_t groups;    /* 0 means 1 */
    int has_bias;
    int64_t out[3];    /* filled by dpt_conv_geom_check */
} dpt_conv_geom;

/* Fills defaults (0 -> 1) and `out`; DPT_EINVAL with a message naming the field when the geometry
 * is impossible (non-positive sizes, groups not dividing C or O, window larger than the padded
 * input, a unit dimension carrying a kernel or padding, int64 overflow of a tensor size). */
dpt_status dpt_conv_geom_check(dpt_conv_geom *g);
/* Tensor sizes of a checked geometry, in elements. */
int64_t dpt_conv_x_count(const dpt_conv_geom *g);
int64_t dpt_conv_w_count(const dpt_conv_geom *g);
int64_t dpt_conv_y_count(const dpt_conv_geom *g);
/* Multiply-adds of one forward pass times two (each backward pass costs the same). */
double dpt_conv_flops(const dpt_conv_geom *g);
/* "conv2d N=2 C=3->8 in=8x8 k=3x3 s=1x1 p=1x1 d=1x1 g=1" */
int dpt_conv_geom_format(const dpt_conv_geom *g, char *buf, size_t n);

typedef enum { DPT_CONV_PASS_FORWARD, DPT_CONV_PASS_BACKWARD_DATA } dpt_conv_pass;

/* One implementation: raw pointers, geometry already checked, scratch of workspace() floats. */
typedef struct {
    const char *name; /* "ref", "im2col", "avx2", "avx512" */
    size_t (*workspace)(const dpt_conv_geom *g);
    void (*forward)(float *y, const float *x, const float *w, const float *b,
                    const dpt_conv_geom *g, float *work);
    void (*backward_data)(float *dx, const float *dy, const float *w, const dpt_conv_geom *g,
                          float *work);
    /* db may be NULL (then no bias gradient); accumulates. */
    void (*backward_weight)(float *dw, float *db, const float *dy, const float *x,
                            const dpt_conv_geom *g, float *work);
    /* Optional (NULL: every call reads w as it is). The weights as one pass reads them (the
     * Winograd transform), made once for all the calls that split the pass's images instead of
     * once per call: prepared_floats(g, pass) floats, 0 when this geometry has nothing to make;
     * prepare fills part `part` of `parts` (independent: any thread, any order; g.N does not
     * matter); forward_prepared and backward_data_prepared read them in place of w and give
     * the bits of forward and backward_data. */
    size_t (*prepared_floats)(const dpt_conv_geom *g, dpt_conv_pass pass);
    void (*prepare)(float *p, const float *w, const dpt_conv_geom *g, dpt_conv_pass pass,
                    int64_t part, int64_t parts);
    void (*forward_prepared)(float *y, const float *x, const float *p, const float *b,
                             const dpt_conv_geom *g, float *work);
    void (*backward_data_prepared)(float *dx, const float *dy, const float *p,
                                   const dpt_conv_geom *g, float *work);
} dpt_conv_impl;

typedef enum {
    DPT_CONV_REF,    /* plain loops in double: the oracle */
    DPT_CONV_IM2COL, /* vol2col/col2vol + sgemm: the portable fast path */
    DPT_CONV_AVX2,   /* AVX2+FMA direct convolution */
    DPT_CONV_AVX512, /* AVX-512F direct convolution */
    DPT_CONV_IMPL_COUNT
} dpt_conv_impl_id;

/* The implementation `id`, or NULL if this CPU (or this build) cannot run it. */
const dpt_conv_impl *dpt_conv_impl_get(dpt_conv_impl_id id);
/* The fastest implementation this CPU runs, chosen once; the environment variable
 * DPT_KERNEL=ref|im2col|avx2|avx512 forces one (an unsupported or unknown value is reported by
 * dpt_conv_select_from_env and the default choice is kept). */
const dpt_conv_impl *dpt_conv_default(void);
/* Reads DPT_KERNEL; DPT_EINVAL naming the value if it is unknown or unsupported here. */
dpt_status dpt_conv_select_from_env(void);

/* Winograd in the SIMD paths, for 2-D 3x3 layers with unit stride and dilation and enough
 * channels: F(2x2, 3x3) (2.25x fewer multiplications than direct convolution) for the weight
 * gradient, and for the forward and backward-data (a forward of dy) F(4x4, 3x3) (4x fewer) where
 * it pays and rounds well within the tests' tolerance, F(2x2, 3x3) elsewhere; at a slightly
 * different rounding than direct. On by default (1); dpt_conv_set_winograd(0) or DPT_WINOGRAD=0
 * in the environment selects direct convolution, 2 keeps F(2x2) everywhere, 4 takes F(4x4)
 * wherever it fits (tests). dpt_conv_winograd() returns the mode. The workspace size does not
 * depend on this choice. */
void dpt_conv_set_winograd(int on);
int dpt_conv_winograd(void);
/* What runs by default, for logs and --version: "avx512, Winograd F(4x4)/F(2x2) for 3x3 stride
 * 1" or "im2col"; the name alone when the path has no Winograd or it is switched off. */
const char *dpt_conv_default_description(void);

/* Runs every implementation this CPU runs against ref on a fixed set of geometries (1-D, 2-D,
 * 3-D, stride, dilation, groups, the Winograd shapes) seeded by `seed`, all three passes, with the
 * tolerance of the unit tests; writes a header line and one line per implementation to `report`
 * (NULL: nothing). DPT_OK when all agree, else the status naming the first implementation that
 * does not (or the error it met). Allocates its own buffers; not for use while training. */
dpt_status dpt_conv_selfcheck(uint32_t seed, FILE *report);

/* Tensor-level entry points: validate shapes against the geometry and the scratch size, then run
 * `impl` (the default one when NULL). y/dx/dw must not alias their inputs. */
dpt_status dpt_conv_forward(const dpt_conv_impl *impl, dpt_tensor y, dpt_tensor x, dpt_tensor w,
                            const dpt_tensor *b, const dpt_conv_geom *g, float *work,
                            size_t work_floats);
dpt_status dpt_conv_backward_data(const dpt_conv_impl *impl, dpt_tensor dx, dpt_tensor dy,
                                  dpt_tensor w, const dpt_conv_geom *g, float *work,
                                  size_t work_floats);
dpt_status dpt_conv_backward_weight(const dpt_conv_impl *impl, dpt_tensor dw, dpt_tensor *db,
                                    dpt_tensor dy, dpt_tensor x, const dpt_conv_geom *g,
                                    float *work, size_t work_floats);

#ifdef __cplusplus
}
#endif
#endif
