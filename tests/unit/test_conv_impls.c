/* Oracle: conv_ref. A seeded randomized differential test: every implementation dpt_conv_impl_get
 * returns on this CPU must agree with the reference on a few hundred random geometries
 * (1-D/2-D/3-D, odd sizes, channels off multiples of 8 and 16, stride, padding, dilation, groups,
 * depthwise, batch 1) in all three passes. Also checks the implementation table and the GEMM
 * wrapper it uses. */
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
#include "dpt/ops.h"
#include "dpt/rng.h"

enum { N_CASES = 300, BASE_SEED = 20240601 };

/* Tolerance for a float sum of K terms against the double-accumulated reference (STYLE.md):
 * |got - ref| <= tol*s + tol*|ref| with tol = 8*FLT_EPSILON*sqrt(K), s = max(1, max|ref|). */
static double conv_tol(double K) {
    return 8.0 * FLT_EPSILON * sqrt(K);
}

static int64_t draw(dpt_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)dpt_rng_below(r, (uint32_t)(hi - lo + 1));
}

/* A random valid geometry from the stream of `seed`; small enough that ref stays fast. */
static dpt_conv_geom random_geom(uint32_t seed) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(seed, DPT_RNG_TEST, 99), 0, 0);
    for (;;) {
        dpt_conv_geom g = {.dims = (int)draw(&r, 1, 3)};
        g.N = draw(&r, 0, 2) == 0 ? 1 : draw(&r, 1, 3);
        int64_t Cg = draw(&r, 1, 7), Og = draw(&r, 1, 7);
        switch (draw(&r, 0, 7)) {
        case 0: /* depthwise, channel multiplier 1 or 2 */
            g.groups = draw(&r, 2, 9);
            Cg = 1;
            Og = draw(&r, 1, 2);
            break;
        case 1:
        case 2: /* grouped */
            g.groups = draw(&r, 2, 4);
            break;
        case 3: /* wide channels, not multiples of 8 or 16 */
            Cg = draw(&r, 9, 37);
            Og = draw(&r, 9, 37);
            g.groups = 1;
            break;
        default:
            g.groups = 1;
        }
        g.C = Cg * g.groups;
        g.O = Og * g.groups;
        g.has_bias = (int)draw(&r, 0, 1);
        const int64_t max_k = g.dims == 3 ? 3 : 5;
        const int64_t max_extra = g.dims == 1 ? 100 : g.dims == 2 ? 28 : 10;
        for (int a = 3 - g.dims; a < 3; a++) {
            g.k[a] = draw(&r, 1, max_k);
            g.stride[a] = draw(&r, 0, 3) == 0 ? draw(&r, 2, 3) : 1;
            g.dil[a] = draw(&r, 0, 4) == 0 ? draw(&r, 2, 3) : 1;
            const int64_t span = g.dil[a] * (g.k[a] - 1) + 1;
            /* mostly "same"-style padding up to half the window; sometimes up to the window */
            g.pad[a] = draw(&r, 0, 2) == 0 ? 0 : draw(&r, 0, draw(&r, 0, 4) ? span / 2 : g.k[a]);
            if (draw(&r, 0, 9) == 0) /* an input smaller than the window, held up by padding */
                g.in[a] = draw(&r, 1, span);
            else
                g.in[a] = span + draw(&r, 0, max_extra);
        }
        if (dpt_conv_geom_check(&g) != DPT_OK)
            continue; /* e.g. padding alone cannot hold the window: draw again */
        if (dpt_conv_flops(&g) > 8e6)
            continue;
        return g;
    }
}

static float *alloc_f(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static void fill_nan(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = NAN;
}

static void describe(char *buf, size_t n, const dpt_conv_geom *g, uint32_t seed) {
    char geom[200];
    dpt_conv_geom_format(g, geom, sizeof geom);
    snprintf(buf, n, "seed %u: %s bias=%d", (unsigned)seed, geom, g->has_bias);
}

static void expect_close(const char *impl, const char *pass, const char *desc, const float *got,
                         const float *ref, int64_t n, double K) {
    dpt_cmp c;
    double tol = conv_tol(K);
    if (!dpt_cmp_f32_f32(&c, got, ref, n, tol, tol))
        fail_msg("%s %s differs from ref on %s (K=%.0f, tol=%.3g): element %lld got %.9g want "
                 "%.9g, |err|/tolerance = %.3g%s",
                 impl, pass, desc, K, tol, (long long)c.worst, c.got, c.ref, c.max_ratio,
                 c.nonfinite ? " (non-finite)" : "");
}

/* One geometry: ref once, then each other implementation through raw pointers (and, for every
 * fourth case, through the tensor-level API). Outputs start as NaN so unwritten elements fail. */
static void run_case(uint32_t seed, int *n_compared) {
    dpt_conv_geom g = random_geom(seed);
    char desc[300];
    describe(desc, sizeof desc, &g, seed);
    const int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    float *x = alloc_f(nx), *w = alloc_f(nw), *b = alloc_f(g.O), *dy = alloc_f(ny);
    float *dw0 = alloc_f(nw), *db0 = alloc_f(g.O);
    float *y_ref = alloc_f(ny), *dx_ref = alloc_f(nx), *dw_ref = alloc_f(nw),
          *db_ref = alloc_f(g.O);
    float *y = alloc_f(ny), *dx = alloc_f(nx), *dwv = alloc_f(nw), *db = alloc_f(g.O);
    dpt_fill_uniform(x, nx, -1, 1, seed, 1);
    dpt_fill_uniform(w, nw, -1, 1, seed, 2);
    dpt_fill_uniform(b, g.O, -1, 1, seed, 3);
    dpt_fill_uniform(dy, ny, -1, 1, seed, 4);
    dpt_fill_uniform(dw0, nw, -1, 1, seed, 5); /* backward_weight accumulates onto these */
    dpt_fill_uniform(db0, g.O, -1, 1, seed, 6);
    const float *bias = g.has_bias ? b : NULL;

    const dpt_conv_impl *ref = dpt_conv_impl_get(DPT_CONV_REF);
    assert_non_null(ref);
    fill_nan(y_ref, ny);
    fill_nan(dx_ref, nx);
    memcpy(dw_ref, dw0, (size_t)nw * sizeof(float));
    memcpy(db_ref, db0, (size_t)g.O * sizeof(float));
    ref->forward(y_ref, x, w, bias, &g, NULL);
    ref->backward_data(dx_ref, dy, w, &g, NULL);
    ref->backward_weight(dw_ref, g.has_bias ? db_ref : NULL, dy, x, &g, NULL);

    const double kvol = (double)(g.k[0] * g.k[1] * g.k[2]);
    const double npos = (double)(g.N * g.out[0] * g.out[1] * g.out[2]);
    const double K_fwd = (double)(g.C / g.groups) * kvol + (g.has_bias ? 1 : 0);
    const double K_bwd = (double)(g.O / g.groups) * kvol;
    const double K_wgt = npos + 1;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl || impl == ref)
            continue;
        const size_t nwork = impl->workspace(&g);
        /* exactly the advertised size, so AddressSanitizer catches any overrun */
        float *work = nwork ? alloc_f((int64_t)nwork) : NULL;
        fill_nan(y, ny);
        fill_nan(dx, nx);
        memcpy(dwv, dw0, (size_t)nw * sizeof(float));
        memcpy(db, db0, (size_t)g.O * sizeof(float));
        if (seed % 4 == 0) {
            dpt_shape xs = {.ndim = g.dims + 2, .d = {g.N, g.C}};
            dpt_shape ws = {.ndim = g.dims + 2, .d = {g.O, g.C / g.groups}};
            dpt_shape ys = {.ndim = g.dims + 2, .d = {g.N, g.O}};
            for (int a = 0; a < g.dims; a++) {
                xs.d[2 + a] = g.in[3 - g.dims + a];
                ws.d[2 + a] = g.k[3 - g.dims + a];
                ys.d[2 + a] = g.out[3 - g.dims + a];
            }
            dpt_shape bs = {.ndim = 1, .d = {g.O}};
            dpt_tensor tb = dpt_tensor_view(b, bs), tdb = dpt_tensor_view(db, bs);
            dpt_status st =
                dpt_conv_forward(impl, dpt_tensor_view(y, ys), dpt_tensor_view(x, xs),
                                 dpt_tensor_view(w, ws), g.has_bias ? &tb : NULL, &g, work, nwork);
            if (st == DPT_OK)
                st = dpt_conv_backward_data(impl, dpt_tensor_view(dx, xs), dpt_tensor_view(dy, ys),
                                            dpt_tensor_view(w, ws), &g, work, nwork);
            if (st == DPT_OK)
                st = dpt_conv_backward_weight(impl, dpt_tensor_view(dwv, ws),
                                              g.has_bias ? &tdb : NULL, dpt_tensor_view(dy, ys),
                                              dpt_tensor_view(x, xs), &g, work, nwork);
            if (st != DPT_OK)
                fail_msg("%s on %s: tensor API refused: %s", impl->name, desc, dpt_last_error());
        } else {
            impl->forward(y, x, w, bias, &g, work);
            impl->backward_data(dx, dy, w, &g, work);
            impl->backward_weight(dwv, g.has_bias ? db : NULL, dy, x, &g, work);
        }
        expect_close(impl->name, "forward", desc, y, y_ref, ny, K_fwd);
        expect_close(impl->name, "backward_data", desc, dx, dx_ref, nx, K_bwd);
        expect_close(impl->name, "backward_weight dw", desc, dwv, dw_ref, nw, K_wgt);
        expect_close(impl->name, "backward_weight db", desc, db, db_ref, g.O, K_wgt);
        free(work);
        (*n_compared)++;
    }
    free(x), free(w), free(b), free(dy), free(dw0), free(db0);
    free(y_ref), free(dx_ref), free(dw_ref), free(db_ref);
    free(y), free(dx), free(dwv), free(db);
}

static void test_random_geometries_match_ref(void **state) {
    (void)state;
    int compared = 0;
    for (uint32_t i = 0; i < N_CASES; i++)
        run_case(BASE_SEED + i, &compared);
    print_message("compared %d (implementation, geometry) pairs against ref\n", compared);
}

/* The generator must actually reach the cases it claims to cover. */
static void test_generator_covers_the_space(void **state) {
    (void)state;
    int dims[4] = {0}, stride2 = 0, dil = 0, grouped = 0, depthwise = 0, batch1 = 0, odd_c = 0;
    int pad = 0, wide = 0;
    for (uint32_t i = 0; i < N_CASES; i++) {
        dpt_conv_geom g = random_geom(BASE_SEED + i);
        dims[g.dims]++;
        for (int a = 0; a < 3; a++) {
            stride2 += g.stride[a] > 1;
            dil += g.dil[a] > 1;
            pad += g.pad[a] > 0;
        }
        grouped += g.groups > 1 && g.groups < g.C;
        depthwise += g.groups == g.C && g.C > 1;
        batch1 += g.N == 1;
        odd_c += g.C % 8 != 0 && g.C > 8;
        wide += g.C / g.groups > 16;
    }
    assert_true(dims[1] > 30 && dims[2] > 30 && dims[3] > 30);
    assert_true(stride2 > 20 && dil > 20 && pad > 20);
    assert_true(grouped > 20 && depthwise > 10 && batch1 > 30 && odd_c > 20 && wide > 10);
}

/* The table: ref and im2col always exist; unknown ids give NULL; names are the documented ones;
 * the default is the fastest available (avx512 > avx2 > im2col) unless DPT_KERNEL says otherwise.
 */
static void test_impl_table(void **state) {
    (void)state;
    static const char *const names[] = {"ref", "im2col", "avx2", "avx512"};
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (id <= DPT_CONV_IM2COL)
            assert_non_null(impl);
        if (impl) {
            assert_string_equal(impl->name, names[id]);
            assert_true(impl->workspace && impl->forward && impl->backward_data &&
                        impl->backward_weight);
            assert_ptr_equal(impl, dpt_conv_impl_get((dpt_conv_impl_id)id)); /* stable */
        }
    }
    assert_null(dpt_conv_impl_get(DPT_CONV_IMPL_COUNT));
    assert_null(dpt_conv_impl_get((dpt_conv_impl_id)-1));
    const char *env = getenv("DPT_KERNEL");
    if (!env || !*env) {
        const dpt_conv_impl *want = dpt_conv_impl_get(DPT_CONV_AVX512);
        if (!want)
            want = dpt_conv_impl_get(DPT_CONV_AVX2);
        if (!want)
            want = dpt_conv_impl_get(DPT_CONV_IM2COL);
        assert_ptr_equal(dpt_conv_default(), want);
    }
    /* im2col needs one group's column matrix, except for 1x1 stride-1 unpadded kernels */
    dpt_conv_geom g = {.dims = 2,
                       .N = 4,
                       .C = 6,
                       .O = 4,
                       .in = {1, 9, 8},
                       .k = {1, 3, 2},
                       .stride = {1, 2, 1},
                       .groups = 2};
    assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
    const dpt_conv_impl *im2col = dpt_conv_impl_get(DPT_CONV_IM2COL);
    assert_int_equal(im2col->workspace(&g), 3 * 3 * 2 * (4 * 7));
    dpt_conv_geom one = {.dims = 2, .N = 4, .C = 6, .O = 4, .in = {1, 9, 8}};
    assert_int_equal(dpt_conv_geom_check(&one), DPT_OK);
    assert_int_equal(im2col->workspace(&one), 0);
}

/* dpt_sgemm: the naive backend against a hand-computed product in all four transpose cases,
 * with leading dimensions larger than the rows; then BLAS against naive on odd sizes. */
static void test_sgemm(void **state) {
    (void)state;
    /* A = [1 2 3; 4 5 6] (2x3), B = [1 0; -1 2; 3 1] (3x2): A*B = [8 7; 17 16] */
    const float A[2][4] = {{1, 2, 3, 99}, {4, 5, 6, 99}};        /* lda 4 */
    const float At[3][3] = {{1, 4, 99}, {2, 5, 99}, {3, 6, 99}}; /* A^T stored, lda 3 */
    const float B[3][3] = {{1, 0, 99}, {-1, 2, 99}, {3, 1, 99}}; /* ldb 3 */
    const float Bt[2][4] = {{1, -1, 3, 99}, {0, 2, 1, 99}};      /* B^T stored, ldb 4 */
    const float want[2][2] = {{8, 7}, {17, 16}};
    for (int be = 0; be < 2; be++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                float C[2][3] = {{1, 1, 42}, {1, 1, 42}}; /* ldc 3; column 2 must stay 42 */
                dpt_sgemm(be ? DPT_GEMM_NAIVE : DPT_GEMM_BLAS, ta, tb, 2, 2, 3, 2.0f,
                          ta ? &At[0][0] : &A[0][0], ta ? 3 : 4, tb ? &Bt[0][0] : &B[0][0],
                          tb ? 4 : 3, 0.5f, &C[0][0], 3);
                for (int i = 0; i < 2; i++) {
                    for (int j = 0; j < 2; j++)
                        assert_true(C[i][j] == 2.0f * want[i][j] + 0.5f);
                    assert_true(C[i][2] == 42.0f);
                }
            }
    /* beta = 0 ignores NaN in C (BLAS semantics); K = 0 only scales */
    float C[4] = {NAN, NAN, NAN, NAN};
    dpt_sgemm(DPT_GEMM_NAIVE, 0, 0, 2, 2, 3, 1.0f, &A[0][0], 4, &B[0][0], 3, 0.0f, C, 2);
    assert_true(C[0] == 8 && C[1] == 7 && C[2] == 17 && C[3] == 16);
    dpt_sgemm(DPT_GEMM_BLAS, 0, 0, 2, 2, 0, 1.0f, &A[0][0], 4, &B[0][0], 3, 0.5f, C, 2);
    assert_true(C[0] == 4 && C[1] == 3.5f && C[2] == 8.5f && C[3] == 8);
    /* BLAS vs naive (double-accumulated) on odd sizes: K-term float sums */
    enum { M = 37, N = 29, K = 53 };
    float *a = alloc_f(M * K), *bb = alloc_f(K * N), *c1 = alloc_f(M * N), *c2 = alloc_f(M * N);
    dpt_fill_uniform(a, M * K, -1, 1, 5, 1);
    dpt_fill_uniform(bb, K * N, -1, 1, 5, 2);
    dpt_fill_uniform(c1, M * N, -1, 1, 5, 3);
    memcpy(c2, c1, sizeof(float) * M * N);
    dpt_sgemm(DPT_GEMM_BLAS, 1, 1, M, N, K, 1.0f, a, M, bb, K, 1.0f, c1, N);
    dpt_sgemm(DPT_GEMM_NAIVE, 1, 1, M, N, K, 1.0f, a, M, bb, K, 1.0f, c2, N);
    dpt_assert_close_f32("sgemm blas vs naive", c1, c2, M * N, conv_tol(K + 1), conv_tol(K + 1));
    free(a), free(bb), free(c1), free(c2);
}

int main(void) {
    dpt_gemm_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impl_table),
        cmocka_unit_test(test_sgemm),
        cmocka_unit_test(test_generator_covers_the_space),
        cmocka_unit_test(test_random_geometries_match_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
