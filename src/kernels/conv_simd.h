/* The SIMD convolution's internal interface (kernels): the sizes every pass derives from a
 * geometry, and the functions the conv_simd*.c and conv_winograd.c files share. Each of these
 * files is compiled once per ISA (cmake/DptIsa.cmake), so every name below carries the ISA as a
 * suffix (ISA_NAME, simd.h); only the table in conv_simd.c leaves the set, through
 * kernel_table.c. Declarations only. */
#ifndef DPT_KERNELS_CONV_SIMD_H
#define DPT_KERNELS_CONV_SIMD_H

#include <stdint.h>

#include "dpt/conv.h"
#include "simd.h"

/* Floats of zeroed slack after a padded buffer: vector loads of the last row may run past it. */
#define SLACK (2 * VL)

/* A checked dpt_conv_geom with defaults filled, and the sizes derived from it. Spatial arrays
 * are (D, H, W). Kernels see one group at a time: Cg input and Og output channels. */
typedef struct {
    int64_t N, C, O, groups, Cg, Og;
    int64_t in[3], out[3], k[3], stride[3], pad[3], dil[3];
    int64_t padded[3];           /* input extents with the padding on both sides */
    int64_t padded_plane;        /* positions of one padded input channel */
    int64_t taps, K;             /* kernel positions; Cg * taps: the forward reduction length */
    int64_t in_plane, out_plane; /* positions of one input and one output channel */
    int64_t OgPad, CgPad;        /* channel counts rounded up to whole vectors */
} conv_sizes;

/* ---- conv_simd_layout.c: sizes, padded and shifted copies, transposes, offsets, tiles ---- */
#define dpt__sizes_from_geom ISA_NAME(dpt__sizes_from_geom)
#define dpt__sizes_transposed ISA_NAME(dpt__sizes_transposed)
#define dpt__shifted_rows_ok ISA_NAME(dpt__shifted_rows_ok)
#define dpt__shifted_rows_floats ISA_NAME(dpt__shifted_rows_floats)
#define dpt__shifted_rows_offsets ISA_NAME(dpt__shifted_rows_offsets)
#define dpt__tap_offsets ISA_NAME(dpt__tap_offsets)
#define dpt__fill_padded ISA_NAME(dpt__fill_padded)
#define dpt__fill_shifted_rows ISA_NAME(dpt__fill_shifted_rows)
#define dpt__fill_padded_channel_last ISA_NAME(dpt__fill_padded_channel_last)
#define dpt__transpose ISA_NAME(dpt__transpose)

void dpt__sizes_from_geom(conv_sizes *sz, const dpt_conv_geom *g);
/* The sizes of backward-data as a forward convolution: dy is the input, padded by
 * dil*(k-1) - pad, and the channel roles are swapped. */
void dpt__sizes_transposed(conv_sizes *t, const conv_sizes *sz);

/* Shifted rows: with unit strides on a 2-D image, the input under tap (c, kh, kw) along all
 * output positions (flattened) is a contiguous run of one of Cg*kW shifted copies of the padded
 * image, each (pH, oW): xs[c][kw][h][ow] = xpad[c][h][ow + kw*dW], from row kh*dH on. Few-channel
 * kernels then vectorize over all positions with no lanes lost at row ends, and build kW instead
 * of kH*kW rows per output row (an im2col). */
int dpt__shifted_rows_ok(const conv_sizes *sz);
int64_t dpt__shifted_rows_floats(const conv_sizes *sz);
/* run_off[k] for tap k = (c, kh, kw): where the run of tap k starts in the shifted rows. */
void dpt__shifted_rows_offsets(int32_t *run_off, const conv_sizes *sz);
/* tap_off[k] for tap k = (c, kd, kh, kw): its offset in a padded input of Cg channels. */
void dpt__tap_offsets(int32_t *tap_off, const conv_sizes *sz);

/* xp: (nch, pD, pH, pW) + SLACK, zero borders; x: (nch, D, H, W). Only the interior is written,
 * so the borders zeroed once by the caller stay zero across images. */
void dpt__fill_padded(float *xp, const float *x, int64_t nch, const conv_sizes *sz);
/* xs: (nch, kW, pH, oW) shifted copies of xp: (nch, pH, pW). */
void dpt__fill_shifted_rows(float *xs, const float *xp, int64_t nch, const conv_sizes *sz);
/* xcl: (pD, pH, pW, ld) channel-last with zero borders; x: (nch, D, H, W). */
void dpt__fill_padded_channel_last(float *xcl, int64_t ld, const float *x, int64_t nch,
                                   const conv_sizes *sz);
/* dst[j*ldd + i] = src[i*lds + j] for i < ni, j < nj. */
void dpt__transpose(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t ni, int64_t nj);

/* ---- conv_simd_kernel.c: the micro-kernels and the L2 prefetch streams ---- */

/* Software prefetch of up to two tensor regions into L2, spread over the micro-kernel calls of
 * one image: the next image's input and this image's output are pulled in from L3 while the
 * FMAs run, so the layout passes before and after the compute hit L2 instead of stalling. */
typedef struct {
    const char *p[2], *end[2]; /* two regions, prefetched one after the other */
    int64_t step;              /* lines per micro-kernel call */
} prefetch_stream;

#define dpt__prefetch_init ISA_NAME(dpt__prefetch_init)
#define dpt__channel_kernel ISA_NAME(dpt__channel_kernel)
#define dpt__channel_kernel_two_rows ISA_NAME(dpt__channel_kernel_two_rows)
#define dpt__row_kernel ISA_NAME(dpt__row_kernel)
#define dpt__shifted_kernel ISA_NAME(dpt__shifted_kernel)

/* Regions a (na floats) and b (nb floats), either may be NULL, spread over `calls` calls. */
void dpt__prefetch_init(prefetch_stream *s, const float *a, int64_t na, const float *b, int64_t nb,
                        int64_t calls);

/* out[r*ldo + (0 .. NV*VL)] = init + sum_k a[a_off[k] + r*rs] * B[k*ldb + (0 .. NV*VL)] for the
 * R positions r of a tile, with channels in the lanes: R <= CHANNEL_TILE_MAX<NV>, NV 1 or 2.
 * `init` is what `out` holds when init == out (accumulation: the sum is formed from zero and
 * added to `out` at the end, so a weight gradient adds one partial sum per image, not one running
 * chain over the batch), otherwise the NV vectors at `init` (the same for every r), or zero when
 * it is NULL.
 * With nch > 0 (and R <= VL) the result is stored channel-major instead, transposed in registers:
 * out[j*ldo + r] for channels j < nch and r < R, so that a forward pass writes its (N, O, P)
 * output straight from the accumulators.
 * ps: a prefetch stream that advances by one call's share, or NULL. */
void dpt__channel_kernel(float *out, int64_t ldo, const float *init, int R, int NV, int64_t rs,
                         const float *a, const int32_t *a_off, int64_t K, const float *B,
                         int64_t ldb, int nch, prefetch_stream *ps);

/* The same with NV = 1 and rs = 1 over two runs of `run` positions (run <= CHANNEL_TILE_MAX2),
 * the first at a, the second at a + a_row, stored channel-major (nch > 0) as 2*run consecutive
 * positions: a forward tile of two whole output rows. One weight load then feeds twice the
 * FMAs, for layers whose rows are short and whose channels fill one vector (lenet5 conv2). */
void dpt__channel_kernel_two_rows(float *out, int64_t ldo, const float *init, int run,
                                  const float *a, int64_t a_row, const int32_t *a_off, int64_t K,
                                  const float *B, int nch, prefetch_stream *ps);

/* Row micro-kernel: y[o*yso + r*ysr + j] = bias[o] + sum_k w[o*K + k] * a[a_off[k] + r*asr + j]
 * for OB channels o x RB rows r x the positions j of WV vectors along a row (nlast valid lanes in
 * the last one), positions in the lanes; blocks of ROW_BLOCKS (simd.h). bias may be NULL (zero).
 * Then prefetches ps's share of lines. */
void dpt__row_kernel(int OB, int RB, int WV, float *y, int64_t yso, int64_t ysr, int nlast,
                     const float *a, int64_t asr, const int32_t *a_off, int64_t K, const float *w,
                     const float *bias, prefetch_stream *ps);
/* The same over one shifted row (RB = 1): OB channels x WV vectors of consecutive positions;
 * blocks of SHIFTED_BLOCKS. */
void dpt__shifted_kernel(int OB, int WV, float *y, int64_t yso, int nlast, const float *a,
                         const int32_t *run_off, int64_t K, const float *w, const float *bias);

/* ---- the passes: y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, Cg, kD, kH, kW)  b: (O) or
 * NULL; work: dpt__simd_<pass>_floats(sz) floats ---- */
#define dpt__simd_forward_floats ISA_NAME(dpt__simd_forward_floats)
#define dpt__simd_forward ISA_NAME(dpt__simd_forward)
#define dpt__simd_backward_data_floats ISA_NAME(dpt__simd_backward_data_floats)
#define dpt__simd_backward_data ISA_NAME(dpt__simd_backward_data)
#define dpt__simd_forward_prepared_floats ISA_NAME(dpt__simd_forward_prepared_floats)
#define dpt__simd_forward_prepare ISA_NAME(dpt__simd_forward_prepare)
#define dpt__simd_forward_prepared ISA_NAME(dpt__simd_forward_prepared)
#define dpt__simd_backward_data_prepared_floats ISA_NAME(dpt__simd_backward_data_prepared_floats)
#define dpt__simd_backward_data_prepare ISA_NAME(dpt__simd_backward_data_prepare)
#define dpt__simd_backward_data_prepared ISA_NAME(dpt__simd_backward_data_prepared)
#define dpt__simd_backward_weight_floats ISA_NAME(dpt__simd_backward_weight_floats)
#define dpt__simd_backward_weight ISA_NAME(dpt__simd_backward_weight)

/* conv_simd_forward.c */
int64_t dpt__simd_forward_floats(const conv_sizes *sz);
/* Weights made once for all the calls of a pass (Winograd's U), in prepared_floats floats (0:
 * this geometry reads w as it is); prepare makes output channels [o0, o1) (of the transposed
 * sizes, the layer's input channels, for backward-data), prepared reads them instead of w. */
int64_t dpt__simd_forward_prepared_floats(const conv_sizes *sz);
void dpt__simd_forward_prepare(float *p, const float *w, const conv_sizes *sz, int64_t o0,
                               int64_t o1);
void dpt__simd_forward_prepared(float *y, const float *x, const float *p, const float *b,
                                const conv_sizes *sz, float *work);
void dpt__simd_forward(float *y, const float *x, const float *w, const float *b,
                       const conv_sizes *sz, float *work);
/* conv_simd_backward_data.c */
int64_t dpt__simd_backward_data_floats(const conv_sizes *sz);
int64_t dpt__simd_backward_data_prepared_floats(const conv_sizes *sz);
void dpt__simd_backward_data_prepare(float *p, const float *w, const conv_sizes *sz, int64_t c0,
                                     int64_t c1);
void dpt__simd_backward_data_prepared(float *dx, const float *dy, const float *p,
                                      const conv_sizes *sz, float *work);
void dpt__simd_backward_data(float *dx, const float *dy, const float *w, const conv_sizes *sz,
                             float *work);
/* conv_simd_backward_weight.c: dw +=, db += (db may be NULL) */
int64_t dpt__simd_backward_weight_floats(const conv_sizes *sz);
void dpt__simd_backward_weight(float *dw, float *db, const float *dy, const float *x,
                               const conv_sizes *sz, float *work);

/* conv_simd.c: the dpt_conv_impl of this ISA (conv_impl.h names both builds). */
#define dpt__conv_simd ISA_NAME(dpt__conv_simd)
extern const dpt_conv_impl dpt__conv_simd;

/* ---- conv_winograd.c: Winograd F(2x2, 3x3), and F(4x4, 3x3) for the forward where it pays,
 * for 2-D 3x3 layers, unit stride and dilation, one group ---- */
#define dpt__wino_use ISA_NAME(dpt__wino_use)
#define dpt__wino_one_channel_use ISA_NAME(dpt__wino_one_channel_use)
#define dpt__wino_forward_floats ISA_NAME(dpt__wino_forward_floats)
#define dpt__wino_weight_grad_floats ISA_NAME(dpt__wino_weight_grad_floats)
#define dpt__wino_forward ISA_NAME(dpt__wino_forward)
#define dpt__wino_prepared_floats ISA_NAME(dpt__wino_prepared_floats)
#define dpt__wino_prepare ISA_NAME(dpt__wino_prepare)
#define dpt__wino_forward_prepared ISA_NAME(dpt__wino_forward_prepared)
#define dpt__wino_backward_weight ISA_NAME(dpt__wino_backward_weight)
#define dpt__wino_one_channel_backward_weight ISA_NAME(dpt__wino_one_channel_backward_weight)

/* Whether the forward and weight gradient (at least 16 channels each way), or the weight
 * gradient of a one-input-channel layer, run as Winograd: the shape fits and it is switched on
 * (dpt_conv_winograd). */
int dpt__wino_use(const conv_sizes *sz);
int dpt__wino_one_channel_use(const conv_sizes *sz);
/* Workspace of the forward, and of the weight gradient (either kind), when the shape fits;
 * 0 when it does not. Independent of the switch. */
int64_t dpt__wino_forward_floats(const conv_sizes *sz);
int64_t dpt__wino_weight_grad_floats(const conv_sizes *sz);
/* Where the forward finds the (O, C, 3, 3) weights of its sizes: (o, c, tap) at
 * w[o*o_stride + c*c_stride + tap], tap reversed when flipped (a backward-data's transposed
 * sizes read the layer's (C, O, 3, 3) weights so). */
typedef struct {
    int64_t o_stride, c_stride;
    int flipped;
} dpt__wino_weights;
/* y: (N, O, oH, oW)  x: (N, C, H, W)  b: (O) or NULL. */
void dpt__wino_forward(float *y, const float *x, const float *w, dpt__wino_weights ws,
                       const float *b, const conv_sizes *sz, float *work);
/* The same in two steps, so that the calls of one pass over many image ranges transform the
 * weights once: U (dpt__wino_prepared_floats(sz) floats) of output channels [o0, o1), then
 * forwards reading it (any N; U depends only on the weights and the channels). */
int64_t dpt__wino_prepared_floats(const conv_sizes *sz);
void dpt__wino_prepare(float *u, const float *w, dpt__wino_weights ws, const conv_sizes *sz,
                       int64_t o0, int64_t o1);
void dpt__wino_forward_prepared(float *y, const float *x, const float *u, const float *b,
                                const conv_sizes *sz, float *work);
/* dw: (O, C, 3, 3) +=  dy: (N, O, oH, oW)  x: (N, C, H, W). The bias gradient is the caller's. */
void dpt__wino_backward_weight(float *dw, const float *dy, const float *x, const conv_sizes *sz,
                               float *work);
/* dw: (O, 1, 3, 3) +=  db: (O) += or NULL  dy: (N, O, oH, oW)  x: (N, 1, H, W). */
void dpt__wino_one_channel_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                           const conv_sizes *sz, float *work);

#endif
