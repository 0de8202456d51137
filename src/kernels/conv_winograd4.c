/* Winograd F(4x4, 3x3) forward (and backward-data, a forward of dy) on the simd.h vocabulary
 * (kernels, compiled once per ISA), on the layout, products and driver of conv_winograd.c. A 4x4
 * output tile comes from a 6x6 input tile through 36 frequencies: 2.25 multiplications per output
 * and channel pair instead of 4 with F(2x2) and 9 direct. The points 0, +-1, +-2 and infinity
 * (Lavin & Gray):
 *
 *   B^T = | 4  0 -5  0  1  0 |    G = |  1/4     0     0   |    A^T = | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
 *         | 0  4 -4 -1  1  0 |        | -1/6   1/6  -1/6  |          | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |        |  1/24  1/12  1/6  |          | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |        |  1/24 -1/12  1/6  |
 *         | 0  4  0 -5  0  1 |        |  0     0     1    |
 *
 * Its coefficients (up to 8 in A^T, 5 in B^T, 1/6 in G) round more than F(2x2)'s 0, +-1 and 1/2;
 * docs/kernels.md gives the error measured against the double reference. */
#include "conv_winograd.h"

/* B^T d along one dimension: the 6 transformed values of 6 inputs. */
static inline void wino4_in(vf *t, const vf *d) {
    const vf a = V_FNMA(V_SET1(4.0f), d[2], d[4]), p = V_FNMA(V_SET1(4.0f), d[1], d[3]);
    const vf e = V_SUB(d[4], d[2]), q = V_SUB(d[3], d[1]);
    t[0] = V_FMA(V_SET1(4.0f), d[0], V_FNMA(V_SET1(5.0f), d[2], d[4]));
    t[1] = V_ADD(a, p);
    t[2] = V_SUB(a, p);
    t[3] = V_FMA(V_SET1(2.0f), q, e);
    t[4] = V_FNMA(V_SET1(2.0f), q, e);
    t[5] = V_FMA(V_SET1(4.0f), d[1], V_FNMA(V_SET1(5.0f), d[3], d[5]));
}

/* A^T m along one dimension: the 4 outputs of 6 transformed values. */
static inline void wino4_out(vf *y, const vf *m) {
    const vf s12 = V_ADD(m[1], m[2]), d12 = V_SUB(m[1], m[2]);
    const vf s34 = V_ADD(m[3], m[4]), d34 = V_SUB(m[3], m[4]);
    y[0] = V_ADD(V_ADD(m[0], s12), s34);
    y[1] = V_FMA(V_SET1(2.0f), d34, d12);
    y[2] = V_FMA(V_SET1(4.0f), s34, s12);
    y[3] = V_ADD(V_FMA(V_SET1(8.0f), d34, d12), m[5]);
}

static const double wino4_G[6 * 3] = {
    1.0 / 4,  0.0,       0.0,      -1.0 / 6, -1.0 / 6, -1.0 / 6,
    -1.0 / 6, 1.0 / 6,   -1.0 / 6, 1.0 / 24, 1.0 / 12, 1.0 / 6,
    1.0 / 24, -1.0 / 12, 1.0 / 6,  0.0,      0.0,      1.0,
};

WINO_DEFINE_VARIANT(, dpt__wino4_variant, 4, wino4_in, wino4_out, wino4_G);

/* By default F(4x4) runs where its rounding was measured to keep a wide margin (test_conv_simd's
 * test_winograd_accuracy: the layers of fmnist-cnn, up to 64 channels each way, at most 39 % of
 * the tolerance, where F(2x2) uses 1-1.6 %) and where its tiles take at most 4/5 of the multiplications of F(2x2)'s (the
 * 14x14 and 28x28 layers of fmnist-cnn: 0.73 and 0.56, and faster in both ISAs, docs/kernels.md).
 */
#define WINO4_MAX_CH 64

int dpt__wino4_pays(const conv_sizes *sz) {
    const int mode = dpt_conv_winograd();
    if (mode == 4 || mode == 2)
        return mode == 4;
    const int64_t oH = sz->out[1], oW = sz->out[2];
    const int64_t mul4 = 36 * ((oH + 3) / 4) * ((oW + 3) / 4);
    const int64_t mul2 = 16 * ((oH + 1) / 2) * ((oW + 1) / 2);
    return sz->C <= WINO4_MAX_CH && sz->O <= WINO4_MAX_CH && 5 * mul4 <= 4 * mul2;
}
