/* Tolerance comparisons and seeded fills for the tests. */
#include "check.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#define DEFINE_CMP(fname, TG, TR)                                                                  \
    int fname(dpt_cmp *r, const TG *got, const TR *ref, int64_t n, double atol, double rtol) {     \
        double s = 1.0;                                                                            \
        for (int64_t i = 0; i < n; i++)                                                            \
            if (fabs((double)ref[i]) > s)                                                          \
                s = fabs((double)ref[i]);                                                          \
        *r = (dpt_cmp){.worst = -1};                                                               \
        for (int64_t i = 0; i < n; i++) {                                                          \
            double g = (double)got[i], e = (double)ref[i];                                         \
            if (!isfinite(g)) {                                                                    \
                r->nonfinite = 1;                                                                  \
                r->max_ratio = INFINITY;                                                           \
                r->worst = i, r->got = g, r->ref = e;                                              \
                break;                                                                             \
            }                                                                                      \
            double err = fabs(g - e);                                                              \
            double ratio = err / (atol * s + rtol * fabs(e));                                      \
            if (err > r->max_abs)                                                                  \
                r->max_abs = err;                                                                  \
            if (fabs(e) > atol && err / fabs(e) > r->max_rel)                                      \
                r->max_rel = err / fabs(e);                                                        \
            if (ratio > r->max_ratio || r->worst < 0) {                                            \
                r->max_ratio = ratio;                                                              \
                r->worst = i, r->got = g, r->ref = e;                                              \
            }                                                                                      \
        }                                                                                          \
        return r->max_ratio <= 1.0;                                                                \
    }

DEFINE_CMP(dpt_cmp_f32_f64, float, double)
DEFINE_CMP(dpt_cmp_f32_f32, float, float)
DEFINE_CMP(dpt_cmp_f64_f64, double, double)

static void report(const char *what, const dpt_cmp *r, int ok) {
    if (ok)
        return;
    print_error("%s: element %lld: got %.9g, want %.9g, |err| / tolerance = %.3g%s\n", what,
                (long long)r->worst, r->got, r->ref, r->max_ratio,
                r->nonfinite ? " (non-finite)" : "");
    fail_msg("%s differs from its reference", what);
}

void dpt_assert_close_f32(const char *what, const float *got, const float *ref, int64_t n,
                          double atol, double rtol) {
    dpt_cmp r;
    report(what, &r, dpt_cmp_f32_f32(&r, got, ref, n, atol, rtol));
}

void dpt_assert_close_f64(const char *what, const double *got, const double *ref, int64_t n,
                          double atol, double rtol) {
    dpt_cmp r;
    report(what, &r, dpt_cmp_f64_f64(&r, got, ref, n, atol, rtol));
}

void dpt_assert_close_f32_f64(const char *what, const float *got, const double *ref, int64_t n,
                              double atol, double rtol) {
    dpt_cmp r;
    report(what, &r, dpt_cmp_f32_f64(&r, got, ref, n, atol, rtol));
}

void dpt_fill_uniform(float *x, int64_t n, float lo, float hi, uint32_t seed, uint32_t stream) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_TEST, stream), 0, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * dpt_rng_uniformf(&r);
}

void dpt_fill_uniform_f64(double *x, int64_t n, double lo, double hi, uint32_t seed,
                          uint32_t stream) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_TEST, stream), 0, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * dpt_rng_uniform(&r);
}
