/* The SIMD convolution's dpt_conv_impl (kernels, compiled once per ISA as dpt__conv_simd_avx2
 * and dpt__conv_simd_avx512): derives the sizes and runs the pass. kernel_table.c offers it only
 * on a CPU that runs the ISA; nothing here may run before that check. */
#include "conv_simd.h"
#include "conv_impl.h"

static size_t simd_workspace(const dpt_conv_geom *g) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    return (size_t)max64(max64(dpt__simd_forward_floats(&sz), dpt__simd_backward_data_floats(&sz)),
                         dpt__simd_backward_weight_floats(&sz));
}

/* b is used when given, as the other implementations do; dpt_conv_forward checks has_bias. */
static void simd_forward(float *y, const float *x, const float *w, const float *b,
                         const dpt_conv_geom *g, float *work) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    dpt__simd_forward(y, x, w, b, &sz, work);
}

static void simd_backward_data(float *dx, const float *dy, const float *w, const dpt_conv_geom *g,
                               float *work) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    dpt__simd_backward_data(dx, dy, w, &sz, work);
}

static void simd_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                 const dpt_conv_geom *g, float *work) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    dpt__simd_backward_weight(dw, db, dy, x, &sz, work);
}

static size_t simd_prepared_floats(const dpt_conv_geom *g, dpt_conv_pass pass) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    return (size_t)(pass == DPT_CONV_PASS_FORWARD ? dpt__simd_forward_prepared_floats(&sz)
                                                  : dpt__simd_backward_data_prepared_floats(&sz));
}

/* Part k of `parts`: a range of the channels the pass writes (backward-data: the layer's input
 * channels). */
static void simd_prepare(float *p, const float *w, const dpt_conv_geom *g, dpt_conv_pass pass,
                         int64_t part, int64_t parts) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    const int64_t n = pass == DPT_CONV_PASS_FORWARD ? sz.O : sz.C;
    const int64_t lo = n * part / parts, hi = n * (part + 1) / parts;
    if (pass == DPT_CONV_PASS_FORWARD)
        dpt__simd_forward_prepare(p, w, &sz, lo, hi);
    else
        dpt__simd_backward_data_prepare(p, w, &sz, lo, hi);
}

static void simd_forward_prepared(float *y, const float *x, const float *p, const float *b,
                                  const dpt_conv_geom *g, float *work) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    dpt__simd_forward_prepared(y, x, p, b, &sz, work);
}

static void simd_backward_data_prepared(float *dx, const float *dy, const float *p,
                                        const dpt_conv_geom *g, float *work) {
    conv_sizes sz;
    dpt__sizes_from_geom(&sz, g);
    dpt__simd_backward_data_prepared(dx, dy, p, &sz, work);
}

const dpt_conv_impl dpt__conv_simd = {.name = SIMD_NAME,
                                      .workspace = simd_workspace,
                                      .forward = simd_forward,
                                      .backward_data = simd_backward_data,
                                      .backward_weight = simd_backward_weight,
                                      .prepared_floats = simd_prepared_floats,
                                      .prepare = simd_prepare,
                                      .forward_prepared = simd_forward_prepared,
                                      .backward_data_prepared = simd_backward_data_prepared};
