/* Test helpers: tolerance comparisons that report the worst element, and seeded fills. Every
 * comparison follows the golden README §2 rule: |got - ref| <= atol*s + rtol*|ref|, with
 * s = max(1, max|ref|). */
#ifndef DPT_TEST_CHECK_H
#define DPT_TEST_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "dpt/rng.h"

typedef struct {
    double max_abs;   /* max |got - ref| */
    double max_rel;   /* max |got - ref| / max(|ref|, tiny) over elements with |ref| > atol */
    double max_ratio; /* max |got - ref| / (atol*s + rtol*|ref|): <= 1 passes */
    int64_t worst;    /* index of the element with max_ratio */
    double got, ref;  /* values at `worst` */
    int nonfinite;    /* got had NaN/Inf */
} dpt_cmp;

/* Compares n elements of float `got` with double `ref`. Returns 1 when all pass. */
int dpt_cmp_f32_f64(dpt_cmp *r, const float *got, const double *ref, int64_t n, double atol,
                    double rtol);
int dpt_cmp_f32_f32(dpt_cmp *r, const float *got, const float *ref, int64_t n, double atol,
                    double rtol);
int dpt_cmp_f64_f64(dpt_cmp *r, const double *got, const double *ref, int64_t n, double atol,
                    double rtol);

/* cmocka assertion: fails with what, index, got, ref, ratio. */
void dpt_assert_close_f32(const char *what, const float *got, const float *ref, int64_t n,
                          double atol, double rtol);
void dpt_assert_close_f64(const char *what, const double *got, const double *ref, int64_t n,
                          double atol, double rtol);
void dpt_assert_close_f32_f64(const char *what, const float *got, const double *ref, int64_t n,
                              double atol, double rtol);

/* x[i] = uniform in [lo, hi) from the stream (seed, DPT_RNG_TEST, stream). */
void dpt_fill_uniform(float *x, int64_t n, float lo, float hi, uint32_t seed, uint32_t stream);
void dpt_fill_uniform_f64(double *x, int64_t n, double lo, double hi, uint32_t seed,
                          uint32_t stream);

#endif
