/* Oracle: central finite differences in double of L = <y, dy> with respect to x, w and b, checked
 * against conv_ref's backward_data and backward_weight on small 1-D, 2-D and 3-D geometries
 * (stride, padding, dilation, groups, depthwise). Every other implementation this CPU runs is
 * then compared with ref's gradients on the same data. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/conv.h"

/* Unit roundoff of float and double. */
static const double U32 = 0x1p-24, U64 = 0x1p-53;

/* clang-format off */
static const dpt_conv_geom cases[] = {
    {.dims = 1, .N = 2, .C = 3, .O = 2, .in = {1, 1, 11}, .k = {1, 1, 3}, .pad = {0, 0, 1},
     .has_bias = 1},
    {.dims = 1, .N = 1, .C = 2, .O = 3, .in = {1, 1, 13}, .k = {1, 1, 3}, .stride = {1, 1, 2},
     .pad = {0, 0, 2}, .dil = {1, 1, 2}},
    {.dims = 2, .N = 2, .C = 2, .O = 3, .in = {1, 6, 5}, .k = {1, 3, 3}, .pad = {0, 1, 1},
     .has_bias = 1},
    {.dims = 2, .N = 1, .C = 3, .O = 2, .in = {1, 7, 8}, .k = {1, 3, 2}, .stride = {1, 2, 2},
     .pad = {0, 1, 0}, .has_bias = 1},
    {.dims = 2, .N = 1, .C = 2, .O = 2, .in = {1, 7, 7}, .k = {1, 3, 3}, .pad = {0, 2, 1},
     .dil = {1, 2, 2}},
    {.dims = 2, .N = 2, .C = 4, .O = 4, .in = {1, 5, 6}, .k = {1, 3, 3}, .pad = {0, 1, 1},
     .groups = 2, .has_bias = 1},
    {.dims = 2, .N = 1, .C = 3, .O = 3, .in = {1, 6, 6}, .k = {1, 3, 3}, .stride = {1, 2, 2},
     .pad = {0, 1, 1}, .groups = 3, .has_bias = 1},
    {.dims = 3, .N = 1, .C = 2, .O = 2, .in = {4, 4, 5}, .k = {3, 2, 3}, .pad = {1, 0, 1},
     .has_bias = 1},
    {.dims = 3, .N = 1, .C = 2, .O = 2, .in = {5, 5, 5}, .k = {2, 2, 2}, .stride = {2, 1, 2},
     .dil = {1, 2, 1}, .groups = 2},
};
/* clang-format on */
enum { N_CASES = sizeof cases / sizeof cases[0] };

typedef struct {
    dpt_conv_geom g;
    char desc[200];
    int64_t nx, nw, ny;
    float *x, *w, *b, *dy, *y;
    double K; /* terms of the longest sum inside ref (forward or a gradient) */
} problem;

static void problem_init(problem *p, const dpt_conv_geom *g0, uint32_t seed) {
    memset(p, 0, sizeof *p);
    p->g = *g0;
    if (dpt_conv_geom_check(&p->g) != DPT_OK)
        fail_msg("geometry rejected: %s", dpt_last_error());
    char geom[160];
    dpt_conv_geom_format(&p->g, geom, sizeof geom);
    snprintf(p->desc, sizeof p->desc, "seed %u: %s bias=%d", (unsigned)seed, geom, p->g.has_bias);
    p->nx = dpt_conv_x_count(&p->g);
    p->nw = dpt_conv_w_count(&p->g);
    p->ny = dpt_conv_y_count(&p->g);
    p->x = malloc((size_t)p->nx * sizeof(float));
    p->w = malloc((size_t)p->nw * sizeof(float));
    p->b = malloc((size_t)p->g.O * sizeof(float));
    p->dy = malloc((size_t)p->ny * sizeof(float));
    p->y = malloc((size_t)p->ny * sizeof(float));
    assert_true(p->x && p->w && p->b && p->dy && p->y);
    dpt_fill_uniform(p->x, p->nx, -1, 1, seed, 1);
    dpt_fill_uniform(p->w, p->nw, -1, 1, seed, 2);
    dpt_fill_uniform(p->b, p->g.O, -1, 1, seed, 3);
    dpt_fill_uniform(p->dy, p->ny, -1, 1, seed, sizeof(float));
    const dpt_conv_geom *g = &p->g;
    const double kvol = (double)(g->k[0] * g->k[1] * g->k[2]);
    p->K = fmax((double)(g->C / g->groups) * kvol + 1,
                fmax((double)(g->O / g->groups) * kvol,
                     (double)(g->N * g->out[0] * g->out[1] * g->out[2])));
}

static void problem_free(problem *p) {
    free(p->x), free(p->w), free(p->b), free(p->dy), free(p->y);
}

/* L = <ref forward, dy> in double, and the bound on its error: ref rounds each y once
 * (|y - exact| <= U32*|y| + its own double-accumulation error) and the sum here is in double. */
static double loss(problem *p, double *err_bound) {
    dpt_conv_impl_get(DPT_CONV_REF)
        ->forward(p->y, p->x, p->w, p->g.has_bias ? p->b : NULL, &p->g, NULL);
    double s = 0, a = 0;
    for (int64_t i = 0; i < p->ny; i++) {
        s += (double)p->y[i] * (double)p->dy[i];
        a += fabs((double)p->y[i] * (double)p->dy[i]);
    }
    /* |x|, |w|, |b|, |dy| <= 2 here, so each y sums at most K terms of size <= 4 */
    const double ref_acc = p->K * U64 * (4.0 * p->K);
    *err_bound = a * (U32 + (double)p->ny * U64) + (double)p->ny * 2.0 * ref_acc;
    return s;
}

/* Central difference of L in one float variable *v. L is affine in each of x, w and b (the
 * convolution is linear), so there is no truncation error whatever the step: the only error is
 * the rounding bounded by loss(). The step is the exact float difference of the two points. */
static double central_diff(problem *p, float *v, double *bound) {
    const float v0 = *v, h = 0.5f;
    double ep, em;
    *v = v0 + h;
    const double vp = *v, lp = loss(p, &ep);
    *v = v0 - h;
    const double vm = *v, lm = loss(p, &em);
    *v = v0;
    *bound = (ep + em) / (vp - vm);
    return (lp - lm) / (vp - vm);
}

/* got[i] against the finite difference in vars[i]; the tolerance is the finite-difference error
 * bound plus the float rounding of got (U32*|got|) and ref's double accumulation. */
static void check_fd(problem *p, const char *what, float *vars, const float *got, int64_t n) {
    const double ref_acc = p->K * U64 * (4.0 * p->K);
    for (int64_t i = 0; i < n; i++) {
        double bound;
        const double fd = central_diff(p, &vars[i], &bound);
        const double tol = bound + U32 * fabs((double)got[i]) + ref_acc;
        if (!(fabs((double)got[i] - fd) <= tol))
            fail_msg("ref %s[%lld] on %s: got %.9g, finite difference %.9g (|err| %.3g > bound "
                     "%.3g)",
                     what, (long long)i, p->desc, got[i], fd, fabs((double)got[i] - fd), tol);
    }
}

static void expect_close(const char *impl, const char *what, const char *desc, const float *got,
                         const float *ref, int64_t n, double K) {
    dpt_cmp c;
    const double tol = 8.0 * FLT_EPSILON * sqrt(K); /* STYLE.md: K-term float sums */
    if (!dpt_cmp_f32_f32(&c, got, ref, n, tol, tol))
        fail_msg("%s %s differs from ref on %s: element %lld got %.9g want %.9g, |err|/tol %.3g",
                 impl, what, desc, (long long)c.worst, c.got, c.ref, c.max_ratio);
}

static void test_ref_gradients_match_finite_differences(void **state) {
    (void)state;
    const dpt_conv_impl *ref = dpt_conv_impl_get(DPT_CONV_REF);
    for (int c = 0; c < N_CASES; c++) {
        problem p;
        problem_init(&p, &cases[c], 1000 + (uint32_t)c);
        float *dx = malloc((size_t)p.nx * sizeof(float));
        float *dw = calloc((size_t)p.nw, sizeof(float)), *db = calloc((size_t)p.g.O, sizeof(float));
        assert_true(dx && dw && db);
        ref->backward_data(dx, p.dy, p.w, &p.g, NULL);
        ref->backward_weight(dw, p.g.has_bias ? db : NULL, p.dy, p.x, &p.g, NULL);
        check_fd(&p, "dx", p.x, dx, p.nx);
        check_fd(&p, "dw", p.w, dw, p.nw);
        if (p.g.has_bias)
            check_fd(&p, "db", p.b, db, p.g.O);
        free(dx), free(dw), free(db);
        problem_free(&p);
    }
}

/* Every other implementation: the same gradients as ref, within the K-term float tolerance. */
static void test_impl_gradients_match_ref(void **state) {
    (void)state;
    const dpt_conv_impl *ref = dpt_conv_impl_get(DPT_CONV_REF);
    int compared = 0;
    for (int c = 0; c < N_CASES; c++) {
        problem p;
        problem_init(&p, &cases[c], 1000 + (uint32_t)c);
        const dpt_conv_geom *g = &p.g;
        float *dx_ref = malloc((size_t)p.nx * sizeof(float)),
              *dx = malloc((size_t)p.nx * sizeof(float));
        float *dw_ref = calloc((size_t)p.nw, sizeof(float)),
              *dw = calloc((size_t)p.nw, sizeof(float));
        float *db_ref = calloc((size_t)g->O, sizeof(float)),
              *db = calloc((size_t)g->O, sizeof(float));
        float *y_ref = malloc((size_t)p.ny * sizeof(float));
        assert_true(dx_ref && dx && dw_ref && dw && db_ref && db && y_ref);
        const float *bias = g->has_bias ? p.b : NULL;
        ref->forward(y_ref, p.x, p.w, bias, g, NULL);
        ref->backward_data(dx_ref, p.dy, p.w, g, NULL);
        ref->backward_weight(dw_ref, g->has_bias ? db_ref : NULL, p.dy, p.x, g, NULL);
        const double kvol = (double)(g->k[0] * g->k[1] * g->k[2]);
        for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
            const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
            if (!impl || impl == ref)
                continue;
            size_t nwork = impl->workspace(g);
            float *work = nwork ? malloc(nwork * sizeof(float)) : NULL;
            assert_true(!nwork || work);
            memset(dw, 0, (size_t)p.nw * sizeof(float));
            memset(db, 0, (size_t)g->O * sizeof(float));
            impl->forward(p.y, p.x, p.w, bias, g, work);
            impl->backward_data(dx, p.dy, p.w, g, work);
            impl->backward_weight(dw, g->has_bias ? db : NULL, p.dy, p.x, g, work);
            expect_close(impl->name, "y", p.desc, p.y, y_ref, p.ny,
                         (double)(g->C / g->groups) * kvol + 1);
            expect_close(impl->name, "dx", p.desc, dx, dx_ref, p.nx,
                         (double)(g->O / g->groups) * kvol);
            expect_close(impl->name, "dw", p.desc, dw, dw_ref, p.nw,
                         (double)(g->N * g->out[0] * g->out[1] * g->out[2]));
            expect_close(impl->name, "db", p.desc, db, db_ref, g->O,
                         (double)(g->N * g->out[0] * g->out[1] * g->out[2]));
            free(work);
            compared++;
        }
        free(dx_ref), free(dx), free(dw_ref), free(dw), free(db_ref), free(db), free(y_ref);
        problem_free(&p);
    }
    print_message("compared %d (implementation, geometry) pairs against ref\n", compared);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_gradients_match_finite_differences),
        cmocka_unit_test(test_impl_gradients_match_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
