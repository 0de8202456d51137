/* Oracle: the contract of conv.h for bad input. Impossible geometries and mismatched tensors
 * through dpt_conv_geom_check and the tensor-level entry points must return an error status with a
 * message that names the culprit, and leave every buffer untouched (checked with canary values).
 * Also the DPT_KERNEL override. */
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

static void expect_error(dpt_status got, dpt_status want, const char *needle, const char *ctx) {
    if (got != want)
        fail_msg("%s: status %s, want %s (message: %s)", ctx, dpt_status_name(got),
                 dpt_status_name(want), dpt_last_error());
    if (needle && !strstr(dpt_last_error(), needle))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", ctx, dpt_last_error(), needle);
}

/* ---- dpt_conv_geom_check ----------------------------------------------------------------------
 */

static dpt_conv_geom base2d(void) {
    return (dpt_conv_geom){.dims = 2,
                           .N = 2,
                           .C = 4,
                           .O = 6,
                           .in = {1, 7, 6},
                           .k = {1, 3, 3},
                           .pad = {0, 1, 1},
                           .groups = 2,
                           .has_bias = 1};
}

/* Applies `edit` to a valid geometry; the check must fail with `needle` in the message and leave
 * the struct exactly as it was given. */
#define BAD_GEOM(edit, needle)                                                                     \
    do {                                                                                           \
        dpt_conv_geom g_ = base2d();                                                               \
        edit;                                                                                      \
        dpt_conv_geom before_ = g_;                                                                \
        dpt_error_clear();                                                                         \
        expect_error(dpt_conv_geom_check(&g_), DPT_EINVAL, needle, #edit);                         \
        assert_memory_equal(&g_, &before_, sizeof g_);                                             \
    } while (0)

static void test_geom_check_rejects_impossible_geometries(void **state) {
    (void)state;
    dpt_conv_geom ok = base2d();
    assert_int_equal(dpt_conv_geom_check(&ok), DPT_OK);
    assert_int_equal(dpt_conv_geom_check(NULL), DPT_EINVAL);

    BAD_GEOM(g_.dims = 0, "dims");
    BAD_GEOM(g_.dims = 4, "dims");
    /* zero and negative sizes (0 means "default 1" only for extents, strides, dilations, groups) */
    BAD_GEOM(g_.N = 0, "N = 0");
    BAD_GEOM(g_.C = -4, "C = -4");
    BAD_GEOM(g_.O = 0, "O = 0");
    BAD_GEOM(g_.in[1] = -7, "in[1] (H)");
    BAD_GEOM(g_.k[2] = -3, "k[2] (W)");
    BAD_GEOM(g_.stride[1] = -1, "stride[1] (H)");
    BAD_GEOM(g_.dil[2] = -2, "dil[2] (W)");
    BAD_GEOM(g_.pad[2] = -1, "pad[2] (W)");
    BAD_GEOM(g_.groups = -2, "groups");
    /* groups must divide both channel counts */
    BAD_GEOM(g_.groups = 3, "does not divide C = 4");
    BAD_GEOM((g_.C = 6, g_.O = 4, g_.groups = 3), "does not divide O = 4");
    BAD_GEOM((g_.C = 4, g_.O = 6, g_.groups = 4), "does not divide O = 6");
    /* the window must fit in the padded input */
    BAD_GEOM((g_.in[2] = 3, g_.k[2] = 5, g_.pad[2] = 0), "larger than the padded input");
    BAD_GEOM((g_.in[1] = 5, g_.k[1] = 3, g_.dil[1] = 3, g_.pad[1] = 0), "along H");
    /* unit dimensions beyond `dims` carry no kernel, padding or extent */
    BAD_GEOM(g_.k[0] = 3, "dimension 0 (D)");
    BAD_GEOM(g_.pad[0] = 1, "dimension 0 (D)");
    BAD_GEOM(g_.in[0] = 4, "dimension 0 (D)");
    BAD_GEOM((g_.dims = 1, g_.in[2] = 9, g_.k[1] = 1, g_.pad[1] = 1), "dimension 1 (H)");
    /* int64 overflow of a tensor size or of an extent computation */
    BAD_GEOM(g_.N = INT64_MAX / 2, "overflows");
    BAD_GEOM((g_.in[2] = INT64_MAX / 4, g_.in[1] = 1000), "overflows");
    BAD_GEOM(g_.pad[2] = INT64_MAX / 2 + 1, "overflows");
    BAD_GEOM(g_.dil[2] = INT64_MAX / 2 + 1, "overflows");
    BAD_GEOM((g_.O = INT64_MAX / 4 * 2, g_.k[1] = 1, g_.k[2] = 1), "overflows");

    /* the window exactly fills the padded input: one output, accepted */
    dpt_conv_geom edge = base2d();
    edge.in[2] = 3, edge.k[2] = 5, edge.pad[2] = 1;
    assert_int_equal(dpt_conv_geom_check(&edge), DPT_OK);
    assert_int_equal(edge.out[2], 1);
}

/* ---- tensor-level API -------------------------------------------------------------------------
 */

#define CANARY 12345.0f

typedef struct {
    dpt_conv_geom g;
    const dpt_conv_impl *impl;
    int64_t nx, nw, ny;
    size_t nwork;
    float *x, *w, *b, *dy;          /* inputs */
    float *x0, *w0, *b0, *dy0;      /* their saved copies */
    float *y, *dx, *dw, *db, *work; /* outputs and scratch, filled with CANARY */
    dpt_shape xs, ws, ys, bs;
} fixture;

static float *canary_buf(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = CANARY;
    return p;
}

static float *copy_buf(const float *src, int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    assert_non_null(p);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static void fixture_init(fixture *f, const dpt_conv_impl *impl) {
    memset(f, 0, sizeof *f);
    f->g = base2d();
    assert_int_equal(dpt_conv_geom_check(&f->g), DPT_OK);
    f->impl = impl;
    f->nx = dpt_conv_x_count(&f->g);
    f->nw = dpt_conv_w_count(&f->g);
    f->ny = dpt_conv_y_count(&f->g);
    f->nwork = impl->workspace(&f->g);
    f->x = canary_buf(f->nx), f->w = canary_buf(f->nw), f->b = canary_buf(f->g.O);
    f->dy = canary_buf(f->ny);
    dpt_fill_uniform(f->x, f->nx, -1, 1, 3, 1);
    dpt_fill_uniform(f->w, f->nw, -1, 1, 3, 2);
    dpt_fill_uniform(f->b, f->g.O, -1, 1, 3, 3);
    dpt_fill_uniform(f->dy, f->ny, -1, 1, 3, 4);
    f->x0 = copy_buf(f->x, f->nx), f->w0 = copy_buf(f->w, f->nw);
    f->b0 = copy_buf(f->b, f->g.O), f->dy0 = copy_buf(f->dy, f->ny);
    f->y = canary_buf(f->ny), f->dx = canary_buf(f->nx), f->dw = canary_buf(f->nw);
    f->db = canary_buf(f->g.O), f->work = canary_buf((int64_t)f->nwork + 1);
    f->xs = (dpt_shape){.ndim = 4, .d = {2, 4, 7, 6}};
    f->ws = (dpt_shape){.ndim = 4, .d = {6, 2, 3, 3}};
    f->ys = (dpt_shape){.ndim = 4, .d = {2, 6, 7, 6}};
    f->bs = (dpt_shape){.ndim = 1, .d = {6}};
}

static void fixture_free(fixture *f) {
    free(f->x), free(f->w), free(f->b), free(f->dy);
    free(f->x0), free(f->w0), free(f->b0), free(f->dy0);
    free(f->y), free(f->dx), free(f->dw), free(f->db), free(f->work);
}

static void expect_all(const float *p, int64_t n, float v, const char *what, const char *ctx) {
    for (int64_t i = 0; i < n; i++)
        if (!(p[i] == v))
            fail_msg("%s: %s[%lld] was touched (%.9g)", ctx, what, (long long)i, p[i]);
}

/* After a refused call nothing may have changed: outputs, scratch and inputs. */
static void expect_untouched(const fixture *f, const char *ctx) {
    expect_all(f->y, f->ny, CANARY, "y", ctx);
    expect_all(f->dx, f->nx, CANARY, "dx", ctx);
    expect_all(f->dw, f->nw, CANARY, "dw", ctx);
    expect_all(f->db, f->g.O, CANARY, "db", ctx);
    expect_all(f->work, (int64_t)f->nwork + 1, CANARY, "work", ctx);
    assert_memory_equal(f->x, f->x0, (size_t)f->nx * sizeof(float));
    assert_memory_equal(f->w, f->w0, (size_t)f->nw * sizeof(float));
    assert_memory_equal(f->b, f->b0, (size_t)f->g.O * sizeof(float));
    assert_memory_equal(f->dy, f->dy0, (size_t)f->ny * sizeof(float));
}

static dpt_shape with(dpt_shape s, int axis, int64_t v) {
    s.d[axis] = v;
    return s;
}

#define T(data, shape) dpt_tensor_view((data), (shape))

/* Runs a call that must fail with `want` and `needle`, then checks every buffer. */
#define REFUSED(call, want, needle)                                                                \
    do {                                                                                           \
        dpt_error_clear();                                                                         \
        expect_error((call), (want), (needle), #call);                                             \
        expect_untouched(f, #call);                                                                \
    } while (0)

static void forward_cases(fixture *f) {
    const dpt_conv_impl *im = f->impl;
    dpt_tensor tb = T(f->b, f->bs);
    const size_t nw = f->nwork;
    /* wrong rank: a 1-D shaped x for a 2-D geometry */
    dpt_shape x3 = {.ndim = 3, .d = {2, 4, 42}};
    REFUSED(
        dpt_conv_forward(im, T(f->y, f->ys), T(f->x, x3), T(f->w, f->ws), &tb, &f->g, f->work, nw),
        DPT_ESHAPE, "x has rank 3");
    /* wrong extents */
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, with(f->xs, 1, 3)), T(f->w, f->ws), &tb,
                             &f->g, f->work, nw),
            DPT_ESHAPE, "x has shape (2, 3, 7, 6), expected (2, 4, 7, 6)");
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, with(f->ws, 1, 4)), &tb,
                             &f->g, f->work, nw),
            DPT_ESHAPE, "w has shape (6, 4, 3, 3), expected (6, 2, 3, 3)");
    REFUSED(dpt_conv_forward(im, T(f->y, with(f->ys, 3, 5)), T(f->x, f->xs), T(f->w, f->ws), &tb,
                             &f->g, f->work, nw),
            DPT_ESHAPE, "y has shape");
    dpt_tensor b5 = T(f->b, with(f->bs, 0, 5));
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &b5, &f->g,
                             f->work, nw),
            DPT_ESHAPE, "b has shape (5)");
    /* bias presence must match the geometry */
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), NULL, &f->g,
                             f->work, nw),
            DPT_EINVAL, "b is NULL");
    dpt_conv_geom nob = f->g;
    nob.has_bias = 0;
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &nob, f->work,
                             nw),
            DPT_EINVAL, "no bias");
    /* missing data */
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(NULL, f->xs), T(f->w, f->ws), &tb, &f->g,
                             f->work, nw),
            DPT_EINVAL, "x has no data");
    /* the output may not alias an input */
    REFUSED(dpt_conv_forward(im, T(f->x, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &f->g,
                             f->work, nw),
            DPT_EINVAL, "overlaps");
    /* bad geometries through the API: the geometry check names the field */
    dpt_conv_geom bad = f->g;
    bad.groups = 3;
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &bad, f->work,
                             nw),
            DPT_EINVAL, "groups = 3 does not divide C = 4");
    bad = f->g;
    bad.N = 0;
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &bad, f->work,
                             nw),
            DPT_EINVAL, "N = 0");
    bad = f->g;
    bad.pad[2] = 0, bad.k[2] = 7;
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &bad, f->work,
                             nw),
            DPT_EINVAL, "larger than the padded input");
    REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, NULL, f->work,
                             nw),
            DPT_EINVAL, "geometry is NULL");
    if (nw > 0) {
        REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &f->g,
                                 f->work, nw - 1),
                DPT_EINVAL, "too small");
        REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &f->g,
                                 NULL, nw),
                DPT_EINVAL, "workspace is NULL");
        /* the scratch may not be one of the operands */
        REFUSED(dpt_conv_forward(im, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb, &f->g,
                                 f->y, nw),
                DPT_EINVAL, "workspace overlaps");
    }
}

static void backward_cases(fixture *f) {
    const dpt_conv_impl *im = f->impl;
    dpt_tensor tdb = T(f->db, f->bs);
    const size_t nw = f->nwork;
    REFUSED(dpt_conv_backward_data(im, T(f->dx, with(f->xs, 0, 1)), T(f->dy, f->ys), T(f->w, f->ws),
                                   &f->g, f->work, nw),
            DPT_ESHAPE, "dx has shape (1, 4, 7, 6)");
    REFUSED(dpt_conv_backward_data(im, T(f->dx, f->xs), T(f->dy, with(f->ys, 1, 3)), T(f->w, f->ws),
                                   &f->g, f->work, nw),
            DPT_ESHAPE, "dy has shape");
    REFUSED(dpt_conv_backward_data(im, T(f->dy, f->xs), T(f->dy, f->ys), T(f->w, f->ws), &f->g,
                                   f->work, nw),
            DPT_EINVAL, "overlaps");
    REFUSED(dpt_conv_backward_weight(im, T(f->dw, with(f->ws, 2, 5)), &tdb, T(f->dy, f->ys),
                                     T(f->x, f->xs), &f->g, f->work, nw),
            DPT_ESHAPE, "dw has shape (6, 2, 5, 3)");
    dpt_tensor db7 = T(f->db, with(f->bs, 0, 7));
    REFUSED(dpt_conv_backward_weight(im, T(f->dw, f->ws), &db7, T(f->dy, f->ys), T(f->x, f->xs),
                                     &f->g, f->work, nw),
            DPT_ESHAPE, "db has shape (7)");
    dpt_conv_geom nob = f->g;
    nob.has_bias = 0;
    REFUSED(dpt_conv_backward_weight(im, T(f->dw, f->ws), &tdb, T(f->dy, f->ys), T(f->x, f->xs),
                                     &nob, f->work, nw),
            DPT_EINVAL, "no bias");
    REFUSED(dpt_conv_backward_weight(im, T(f->dw, f->ws), &tdb, T(f->dy, f->ys),
                                     T(f->x, with(f->xs, 2, 8)), &f->g, f->work, nw),
            DPT_ESHAPE, "x has shape");
    dpt_conv_geom bad = f->g;
    bad.O = 5;
    REFUSED(dpt_conv_backward_weight(im, T(f->dw, f->ws), &tdb, T(f->dy, f->ys), T(f->x, f->xs),
                                     &bad, f->work, nw),
            DPT_EINVAL, "does not divide O = 5");
    if (nw > 0) {
        REFUSED(dpt_conv_backward_data(im, T(f->dx, f->xs), T(f->dy, f->ys), T(f->w, f->ws), &f->g,
                                       f->work, nw - 1),
                DPT_EINVAL, "too small");
        REFUSED(dpt_conv_backward_weight(im, T(f->dw, f->ws), &tdb, T(f->dy, f->ys), T(f->x, f->xs),
                                         &f->g, f->work, 0),
                DPT_EINVAL, "too small");
    }
}

/* Every available implementation behind the same validation; then a valid call goes through. */
static void test_tensor_api_refuses_bad_arguments(void **state) {
    (void)state;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl)
            continue;
        fixture fx, *f = &fx;
        fixture_init(f, impl);
        forward_cases(f);
        backward_cases(f);
        dpt_tensor tb = T(f->b, f->bs), tdb = T(f->db, f->bs);
        assert_int_equal(dpt_conv_forward(impl, T(f->y, f->ys), T(f->x, f->xs), T(f->w, f->ws), &tb,
                                          &f->g, f->work, f->nwork),
                         DPT_OK);
        assert_int_equal(dpt_conv_backward_data(impl, T(f->dx, f->xs), T(f->dy, f->ys),
                                                T(f->w, f->ws), &f->g, f->work, f->nwork),
                         DPT_OK);
        memset(f->dw, 0, (size_t)f->nw * sizeof(float));
        memset(f->db, 0, (size_t)f->g.O * sizeof(float));
        assert_int_equal(dpt_conv_backward_weight(impl, T(f->dw, f->ws), &tdb, T(f->dy, f->ys),
                                                  T(f->x, f->xs), &f->g, f->work, f->nwork),
                         DPT_OK);
        /* db may be NULL even with a bias; the scratch's last float is beyond what was asked */
        assert_int_equal(dpt_conv_backward_weight(impl, T(f->dw, f->ws), NULL, T(f->dy, f->ys),
                                                  T(f->x, f->xs), &f->g, f->work, f->nwork),
                         DPT_OK);
        assert_true(f->work[f->nwork] == CANARY);
        for (int64_t i = 0; i < f->ny; i++)
            assert_true(f->y[i] != CANARY);
        fixture_free(f);
    }
    /* NULL impl means the default one */
    fixture fx;
    fixture_init(&fx, dpt_conv_default());
    dpt_tensor tb = T(fx.b, fx.bs);
    assert_int_equal(dpt_conv_forward(NULL, T(fx.y, fx.ys), T(fx.x, fx.xs), T(fx.w, fx.ws), &tb,
                                      &fx.g, fx.work, fx.nwork),
                     DPT_OK);
    fixture_free(&fx);
}

/* DPT_KERNEL: a known name selects that kernel; an unknown or unsupported one is an error naming
 * the value, and the previous choice is kept. */
static void test_kernel_env_override(void **state) {
    (void)state;
    const dpt_conv_impl *fastest = dpt_conv_default(); /* DPT_KERNEL is unset (see main) */
    setenv("DPT_KERNEL", "ref", 1);
    assert_int_equal(dpt_conv_select_from_env(), DPT_OK);
    assert_ptr_equal(dpt_conv_default(), dpt_conv_impl_get(DPT_CONV_REF));
    setenv("DPT_KERNEL", "fast-please", 1);
    expect_error(dpt_conv_select_from_env(), DPT_EINVAL, "DPT_KERNEL=fast-please", "unknown");
    assert_ptr_equal(dpt_conv_default(), dpt_conv_impl_get(DPT_CONV_REF));
    setenv("DPT_KERNEL", "im2col", 1);
    assert_int_equal(dpt_conv_select_from_env(), DPT_OK);
    assert_ptr_equal(dpt_conv_default(), dpt_conv_impl_get(DPT_CONV_IM2COL));
    static const char *const names[] = {"ref", "im2col", "avx2", "avx512"};
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++)
        if (!dpt_conv_impl_get((dpt_conv_impl_id)id)) {
            setenv("DPT_KERNEL", names[id], 1);
            expect_error(dpt_conv_select_from_env(), DPT_EINVAL, "cannot run", names[id]);
            assert_ptr_equal(dpt_conv_default(), dpt_conv_impl_get(DPT_CONV_IM2COL));
        }
    unsetenv("DPT_KERNEL");
    assert_int_equal(dpt_conv_select_from_env(), DPT_OK);
    assert_ptr_equal(dpt_conv_default(), fastest);
}

int main(void) {
    unsetenv("DPT_KERNEL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geom_check_rejects_impossible_geometries),
        cmocka_unit_test(test_tensor_api_refuses_bad_arguments),
        cmocka_unit_test(test_kernel_env_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
