/* The convolution self-check (kernels): every implementation this CPU runs against the reference
 * on a few seeded random geometries (1-D, 2-D, 3-D, stride, dilation, groups, the Winograd shapes),
 * one report line per implementation. Uses only the public API, so it checks what callers get. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/conv.h"
#include "dpt/rng.h"
#include "dpt/tensor.h"

enum { N_PASSES = 3 };
static const char *const pass_names[N_PASSES] = {"forward", "backward_data", "backward_weight"};

/* clang-format off */
static const dpt_conv_geom cases[] = {
    {.dims = 1, .N = 2, .C = 3, .O = 5, .in = {1, 1, 37}, .k = {1, 1, 5}, .pad = {0, 0, 2},
     .has_bias = 1},
    {.dims = 1, .N = 1, .C = 4, .O = 6, .in = {1, 1, 29}, .k = {1, 1, 3}, .stride = {1, 1, 2},
     .dil = {1, 1, 3}, .groups = 2},
    {.dims = 2, .N = 2, .C = 3, .O = 8, .in = {1, 13, 11}, .k = {1, 3, 3}, .pad = {0, 1, 1},
     .has_bias = 1},
    {.dims = 2, .N = 3, .C = 5, .O = 7, .in = {1, 12, 15}, .k = {1, 3, 5}, .stride = {1, 2, 2},
     .pad = {0, 1, 2}, .dil = {1, 2, 1}, .has_bias = 1},
    {.dims = 2, .N = 2, .C = 6, .O = 6, .in = {1, 9, 10}, .k = {1, 3, 3}, .pad = {0, 1, 1},
     .groups = 6, .has_bias = 1},
    {.dims = 2, .N = 2, .C = 17, .O = 9, .in = {1, 7, 6}, .has_bias = 1},
    /* 3x3 stride 1: Winograd, unless DPT_WINOGRAD=0 */
    {.dims = 2, .N = 2, .C = 16, .O = 20, .in = {1, 10, 9}, .k = {1, 3, 3}, .pad = {0, 1, 1},
     .has_bias = 1},
    {.dims = 2, .N = 2, .C = 1, .O = 8, .in = {1, 11, 12}, .k = {1, 3, 3}, .pad = {0, 1, 1},
     .has_bias = 1},
    {.dims = 3, .N = 2, .C = 2, .O = 3, .in = {5, 6, 7}, .k = {3, 3, 3}, .pad = {1, 1, 1},
     .has_bias = 1},
    {.dims = 3, .N = 1, .C = 4, .O = 4, .in = {7, 6, 9}, .k = {2, 3, 3}, .stride = {2, 1, 2},
     .dil = {1, 2, 1}, .groups = 2},
};
/* clang-format on */
enum { N_CASES = sizeof cases / sizeof cases[0] };

/* Per implementation and pass: the largest |got - ref| and the largest fraction of the tolerance
 * used, over all cases. */
typedef struct {
    double max_abs[N_PASSES];
    double max_ratio[N_PASSES];
} impl_result;

static void fill(float *x, int64_t n, uint32_t seed, uint32_t stream) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_TEST, stream), 0, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = 2.0f * dpt_rng_uniformf(&r) - 1.0f;
}

/* The tolerance rule of the unit tests (STYLE.md, golden README §2): a K-term float sum may be
 * off by tol*s + tol*|ref| with tol = 8*FLT_EPSILON*sqrt(K) and s = max(1, max|ref|). */
static void compare(const float *got, const float *ref, int64_t n, double K, double *max_abs,
                    double *max_ratio) {
    double s = 1.0, tol = 8.0 * FLT_EPSILON * sqrt(K);
    for (int64_t i = 0; i < n; i++)
        if (fabs(ref[i]) > s)
            s = fabs(ref[i]);
    for (int64_t i = 0; i < n; i++) {
        double err = isfinite(got[i]) ? fabs((double)got[i] - (double)ref[i]) : INFINITY;
        double ratio = err / (tol * s + tol * fabs(ref[i]));
        if (err > *max_abs)
            *max_abs = err;
        if (ratio > *max_ratio)
            *max_ratio = ratio;
    }
}

static dpt_shape act_shape(const dpt_conv_geom *g, int64_t ch, const int64_t *sp) {
    dpt_shape s = {.ndim = g->dims + 2, .d = {g->N, ch}};
    for (int i = 0; i < g->dims; i++)
        s.d[2 + i] = sp[3 - g->dims + i];
    return s;
}

static dpt_shape weight_shape(const dpt_conv_geom *g) {
    dpt_shape s = {.ndim = g->dims + 2, .d = {g->O, g->C / g->groups}};
    for (int i = 0; i < g->dims; i++)
        s.d[2 + i] = g->k[3 - g->dims + i];
    return s;
}

/* Runs `impl` and ref on one case; accumulates into r. DPT_OK or the first API error. */
static dpt_status run_case(const dpt_conv_impl *impl, const dpt_conv_impl *ref,
                           const dpt_conv_geom *g0, uint32_t seed, impl_result *r) {
    dpt_conv_geom g = *g0;
    dpt_status st = dpt_conv_geom_check(&g);
    if (st != DPT_OK)
        return st;
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    size_t nwork = impl->workspace(&g);
    /* x w b dy y dx dw db, twice (impl and ref), and the scratch */
    const int64_t n_one = nx + nw + g.O + ny + ny + nx + nw + g.O;
    float *mem = dpt_alloc_aligned(dpt_size_mul((size_t)(2 * n_one) + nwork + 1, sizeof(float)));
    if (!mem)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the buffers");
    float *x = mem, *w = x + nx, *b = w + nw, *dy = b + g.O;
    float *out[2][4];
    float *p = dy + ny;
    for (int k = 0; k < 2; k++) {
        out[k][0] = p, p += ny;  /* y */
        out[k][1] = p, p += nx;  /* dx */
        out[k][2] = p, p += nw;  /* dw */
        out[k][3] = p, p += g.O; /* db */
    }
    float *work = p;
    fill(x, nx, seed, 1);
    fill(w, nw, seed, 2);
    fill(b, g.O, seed, 3);
    fill(dy, ny, seed, 4);
    dpt_tensor tx = dpt_tensor_view(x, act_shape(&g, g.C, g.in));
    dpt_tensor tw = dpt_tensor_view(w, weight_shape(&g));
    dpt_tensor tb = dpt_tensor_view(b, dpt_shape_make(1, &g.O));
    dpt_tensor tdy = dpt_tensor_view(dy, act_shape(&g, g.O, g.out));
    const dpt_conv_impl *run[2] = {impl, ref};
    for (int k = 0; k < 2 && st == DPT_OK; k++) {
        dpt_tensor ty = dpt_tensor_view(out[k][0], tdy.shape);
        dpt_tensor tdx = dpt_tensor_view(out[k][1], tx.shape);
        dpt_tensor tdw = dpt_tensor_view(out[k][2], tw.shape);
        dpt_tensor tdb = dpt_tensor_view(out[k][3], tb.shape);
        /* dw and db start from the same random values: backward_weight accumulates. */
        fill(out[k][2], nw, seed, 5);
        fill(out[k][3], g.O, seed, 6);
        st = dpt_conv_forward(run[k], ty, tx, tw, g.has_bias ? &tb : NULL, &g, work, nwork);
        if (st == DPT_OK)
            st = dpt_conv_backward_data(run[k], tdx, tdy, tw, &g, work, nwork);
        if (st == DPT_OK)
            st = dpt_conv_backward_weight(run[k], tdw, g.has_bias ? &tdb : NULL, tdy, tx, &g, work,
                                          nwork);
    }
    if (st == DPT_OK) {
        const double kvol = (double)(g.k[0] * g.k[1] * g.k[2]);
        const double npos = (double)(g.N * g.out[0] * g.out[1] * g.out[2]);
        compare(out[0][0], out[1][0], ny, (double)(g.C / g.groups) * kvol + 1, &r->max_abs[0],
                &r->max_ratio[0]);
        compare(out[0][1], out[1][1], nx, (double)(g.O / g.groups) * kvol, &r->max_abs[1],
                &r->max_ratio[1]);
        compare(out[0][2], out[1][2], nw, npos + 1, &r->max_abs[2], &r->max_ratio[2]);
        if (g.has_bias)
            compare(out[0][3], out[1][3], g.O, npos + 1, &r->max_abs[2], &r->max_ratio[2]);
    }
    dpt_free_aligned(mem);
    return st;
}

/* The geometry of case c as "conv2d N=2 C=3->8 ..." (checked first, for its output extents). */
static const char *case_name(int c, char *buf, size_t n) {
    dpt_conv_geom g = cases[c];
    (void)dpt_conv_geom_check(&g);
    dpt_conv_geom_format(&g, buf, n);
    return buf;
}

dpt_status dpt_conv_selfcheck(uint32_t seed, FILE *report) {
    const dpt_conv_impl *ref = dpt_conv_impl_get(DPT_CONV_REF);
    dpt_status worst_st = DPT_OK;
    if (report)
        fprintf(report, "conv selfcheck: seed %u, %d geometries, oracle ref, default %s\n",
                (unsigned)seed, (int)N_CASES, dpt_conv_default_description());
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl || impl == ref)
            continue;
        impl_result r = {{0}, {0}};
        dpt_status st = DPT_OK;
        char desc[160];
        for (int c = 0; c < N_CASES && st == DPT_OK; c++)
            if ((st = run_case(impl, ref, &cases[c], seed + (uint32_t)c, &r)) != DPT_OK)
                st = dpt_errorf(st, "selfcheck: %s on %s: %s", impl->name,
                                case_name(c, desc, sizeof desc), dpt_last_error());
        double worst = 0;
        for (int k = 0; k < N_PASSES; k++)
            worst = r.max_ratio[k] > worst ? r.max_ratio[k] : worst;
        const int ok = st == DPT_OK && worst <= 1.0;
        if (st == DPT_OK && !ok)
            st = dpt_errorf(DPT_EINVAL, "selfcheck: %s disagrees with ref (%.1f%% of tolerance)",
                            impl->name, 100.0 * worst);
        if (worst_st == DPT_OK)
            worst_st = st;
        if (!report)
            continue;
        fprintf(report, "%-8s", impl->name);
        for (int k = 0; k < N_PASSES; k++)
            fprintf(report, "  %s %.2e", pass_names[k], r.max_abs[k]);
        fprintf(report, "  (%.1f%% of tolerance)  %s\n", 100.0 * worst, ok ? "ok" : "FAIL");
    }
    return worst_st;
}
