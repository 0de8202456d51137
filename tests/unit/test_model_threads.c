/* Threads inside a rank (dpt/pool.h, dpt_model_cfg.threads). Oracles:
 *  - the same model on one thread, bit for bit (memcmp): outputs, input gradients, parameter
 *    gradients and batch-norm running statistics after a training forward and backward, and
 *    after an eval-mode pass, at 2 and 3 threads, for every convolution implementation this CPU
 *    runs (ref, im2col, avx2, avx512; the SIMD ones with and without Winograd), on batches not
 *    divisible by the thread count, smaller than it, and spanning several units of images;
 *  - for single layers on 3 threads, one whole-batch call of the kernel: convolutions within
 *    test_conv_impls' tolerance 8*FLT_EPSILON*sqrt(K) of conv_ref; batch norm and pooling bit for
 *    bit (threads split their channels and images without reordering any sum); dense within the
 *    same tolerance of the naive double GEMM;
 *  - the pool itself: every unit runs once, on one of its threads. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/conv.h"
#include "dpt/model.h"
#include "dpt/ops.h"
#include "dpt/pool.h"

/* The largest batch spans four blocks of a conv weight gradient (DPT__UNIT_IMAGES = 16): two
 * rounds of partials at 2 threads, an uneven last round at 3. */
enum { SEED = 20250114, MAX_BATCH = 53 };

/* ---- the pool ---------------------------------------------------------------------------------- */

typedef struct {
    int64_t units;
    int threads;
    int *ran;    /* per unit: times run */
    int *thread; /* per unit: the thread that ran it */
} pool_probe;

static void probe_unit(void *ctx, int64_t u, int t) {
    pool_probe *p = ctx;
    p->ran[u]++;
    p->thread[u] = t;
}

static void test_pool_runs_every_unit_once(void **state) {
    (void)state;
    for (int T = 1; T <= 4; T++) {
        dpt_pool *pool = NULL;
        assert_int_equal(dpt_pool_create(&pool, T), DPT_OK);
        assert_int_equal(dpt_pool_threads(pool), T);
        for (int64_t units = 0; units <= 9; units++)
            for (int rep = 0; rep < 50; rep++) {
                int ran[9] = {0}, thread[9] = {0};
                pool_probe p = {units, T, ran, thread};
                dpt_pool_run(pool, units, probe_unit, &p);
                for (int64_t u = 0; u < units; u++) {
                    assert_int_equal(ran[u], 1);
                    assert_true(thread[u] >= 0 && thread[u] < T);
                }
            }
        dpt_pool_destroy(pool);
    }
    dpt_pool *pool = NULL;
    assert_int_equal(dpt_pool_create(&pool, 0), DPT_EINVAL);
    assert_null(pool);
    assert_int_equal(dpt_pool_create(&pool, DPT_POOL_MAX_THREADS + 1), DPT_EINVAL);
    dpt_pool_destroy(NULL);
}

/* Share jobs: every block once, each thread one contiguous run of them, runs in thread order;
 * one call per thread without slack. */
typedef struct {
    int64_t blocks;
    int *ran;     /* per block: times run */
    int *thread;  /* per block: the thread that ran it */
    int *calls;   /* per thread: calls */
    double *cost; /* per thread: virtual seconds per block (NULL: no virtual clock) */
    int late;     /* >= 0: this thread sleeps 50 ms in its first call */
} share_probe;

static _Thread_local double virtual_seconds;

static double virtual_clock(int thread) {
    (void)thread;
    return virtual_seconds;
}

static void probe_share(void *ctx, int64_t b0, int64_t b1, int t) {
    share_probe *p = ctx;
    assert_true(0 <= b0 && b0 < b1 && b1 <= p->blocks);
    p->calls[t]++;
    for (int64_t b = b0; b < b1; b++) {
        p->ran[b]++;
        p->thread[b] = t;
    }
    if (p->cost)
        virtual_seconds += (double)(b1 - b0) * p->cost[t];
    if (t == p->late && p->calls[t] == 1) {
        const struct timespec pause = {0, 50000000};
        nanosleep(&pause, NULL);
    }
}

static void test_pool_shares_cover_in_thread_order(void **state) {
    (void)state;
    for (int T = 1; T <= 4; T++) {
        dpt_pool *pool = NULL;
        assert_int_equal(dpt_pool_create(&pool, T), DPT_OK);
        static const int64_t slacks[] = {0, 1, 3, 100};
        for (int s = 0; s < 4; s++)
            for (int64_t blocks = 0; blocks <= 17; blocks++)
                for (int rep = 0; rep < 30; rep++) {
                    int ran[17] = {0}, thread[17] = {0}, calls[4] = {0};
                    share_probe p = {blocks, ran, thread, calls, NULL, -1};
                    dpt_pool_run_shares(pool, &p, blocks, slacks[s], probe_share, &p);
                    for (int64_t b = 0; b < blocks; b++) {
                        assert_int_equal(ran[b], 1);
                        assert_true(thread[b] >= 0 && thread[b] < T);
                        if (b > 0)
                            assert_true(thread[b] >= thread[b - 1]);
                    }
                    for (int t = 0; t < T; t++)
                        assert_true(slacks[s] > 0 || calls[t] <= 1);
                }
        dpt_pool_destroy(pool);
    }
}

/* The cut after thread 0's share of 100 blocks of `kind`, after `jobs` jobs at these costs. */
static int64_t cut_after(dpt_pool *pool, const void *kind, int jobs, double cost0, double cost1) {
    int64_t cut = -1;
    for (int k = 0; k < jobs; k++) {
        int ran[100] = {0}, thread[100] = {0}, calls[2] = {0};
        double cost[2] = {cost0, cost1};
        share_probe p = {100, ran, thread, calls, cost, -1};
        dpt_pool_run_shares(pool, kind, 100, 0, probe_share, &p);
        cut = 0;
        while (cut < 100 && thread[cut] == 0)
            cut++;
    }
    return cut;
}

/* On a virtual clock: a thread three times slower gets a quarter of the blocks, learnt per kind;
 * a thread that stalls keeps a few blocks (its speed stays measured) and wins its share back. */
static void test_pool_shares_follow_speed(void **state) {
    (void)state;
    static const char kind_a, kind_b;
    dpt_pool_set_clock(virtual_clock);
    dpt_pool *pool = NULL;
    assert_int_equal(dpt_pool_create(&pool, 2), DPT_OK);
    assert_int_equal(cut_after(pool, &kind_a, 1, 1e-5, 3e-5), 50); /* a new kind: equal shares */
    const int64_t learnt = cut_after(pool, &kind_a, 40, 1e-5, 3e-5);
    assert_true(learnt >= 74 && learnt <= 76);
    assert_int_equal(cut_after(pool, &kind_b, 1, 1e-5, 1e-5), 50); /* kinds do not mix */
    const int64_t stalled = cut_after(pool, &kind_b, 40, 1e-5, 1.0);
    assert_true(stalled >= 97 && stalled <= 98);
    const int64_t recovered = cut_after(pool, &kind_b, 60, 1e-5, 1e-5);
    assert_true(recovered >= 49 && recovered <= 51);
    assert_int_equal(cut_after(pool, &kind_a, 1, 1e-5, 3e-5), learnt);
    dpt_pool_destroy(pool);
    dpt_pool_set_clock(NULL);
}

/* With slack, the region around a cut goes to the neighbour that gets there first: while one of
 * two threads sleeps in its bulk, the other runs its own bulk and then the whole region, in
 * pieces of a quarter of it (equal shares of 100 blocks, slack 10: region [40, 60), pieces of 5). */
static void test_pool_late_thread_loses_its_region(void **state) {
    (void)state;
    dpt_pool *pool = NULL;
    assert_int_equal(dpt_pool_create(&pool, 2), DPT_OK);
    for (int late = 0; late < 2; late++) {
        static const char kinds[2]; /* new to the pool: equal shares */
        int ran[100] = {0}, thread[100] = {0}, calls[2] = {0};
        share_probe p = {100, ran, thread, calls, NULL, late};
        dpt_pool_run_shares(pool, &kinds[late], 100, 10, probe_share, &p);
        int64_t cut = 0;
        while (cut < 100 && thread[cut] == 0)
            cut++;
        for (int64_t b = 0; b < 100; b++)
            assert_int_equal(ran[b], 1);
        assert_int_equal(cut, late == 1 ? 60 : 40);
        assert_int_equal(calls[late], 1);
        assert_int_equal(calls[1 - late], 1 + 4);
    }
    dpt_pool_destroy(pool);
}

/* For the models below: thread t's times count 1 + 2t times over, so that the learnt shares cut
 * the passes off the middle, at points that move from job to job. */
static double skewed_clock(int thread) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (1.0 + 2.0 * thread) * ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
}

/* ---- whole models at 1, 2 and 3 threads ------------------------------------------------------- */

typedef struct {
    const char *spec;
    int ndim;
    int64_t in[4];
    int64_t ghost; /* bn_ghost */
} model_case;

/* Winograd shapes (one input channel with >= 4 outputs; >= 16 in and out), direct 3x3 with
 * stride, 5x5, 1-D and 3-D convolutions, grouped convolution, every pooling, batch norm (fused
 * with ReLU and not), dropout, activations, dense layers. */
static const model_case models[] = {
    {"conv2d(17,3,pad=1) bn relu conv2d(16,3,pad=1,bias=0) bn relu maxpool(2) "
     "conv2d(6,3,stride=2,pad=1) bn sigmoid flatten dense(13) dropout(0.3) relu dense(5)",
     3, {1, 9, 11}, 0},
    {"conv2d(6,5,pad=2) relu maxpool(2) conv2d(16,5) relu maxpool(2) flatten dense(7) tanh "
     "dense(4)",
     3, {1, 16, 16}, 0},
    {"conv2d(18,3,pad=1) bn relu conv2d(18,3,pad=1,groups=3) bn avgpool(2,stride=1,pad=1) "
     "flatten dropout(0.5) dense(3)",
     3, {3, 7, 6}, 3},
    {"conv1d(5,5,pad=2) bn relu maxpool(2) conv1d(4,3,dilation=2) gelu flatten dense(3)",
     2, {2, 23}, 0},
    {"conv3d(4,3,pad=1) bn elu avgpool(2) conv3d(3,2) leaky_relu flatten dense(2)",
     4, {2, 5, 6, 7}, 0},
};

typedef struct {
    float *logits, *dx, *grads, *buffers, *eval_logits, *eval_dx, *eval_grads;
    int64_t n_out, n_in, n_params, n_buffers;
} model_result;

static void result_free(model_result *r) {
    free(r->logits), free(r->dx), free(r->grads), free(r->buffers);
    free(r->eval_logits), free(r->eval_dx), free(r->eval_grads);
    memset(r, 0, sizeof *r);
}

static float *copy_of(const float *x, int64_t n) {
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    assert_non_null(c);
    memcpy(c, x, (size_t)n * sizeof *c);
    return c;
}

/* The Winograd mode run_model switches to between building the model and running it; -1: none. */
static int winograd_after_build = -1;

/* A training forward and backward (twice, so gradients accumulate), then an eval-mode forward and
 * backward, of a model with fixed parameters on fixed data. */
static void run_model(model_result *r, const model_case *mc, const dpt_conv_impl *impl, int T,
                      int64_t N) {
    memset(r, 0, sizeof *r);
    dpt_model_cfg cfg = {.max_batch = MAX_BATCH, .bn_ghost = mc->ghost, .seed = 7, .input_grad = 1,
                         .threads = T, .conv = impl};
    dpt_model *m = NULL;
    dpt_shape in = dpt_shape_make(mc->ndim, mc->in);
    dpt_status st = dpt_model_create(&m, mc->spec, in, &cfg);
    if (st != DPT_OK)
        fail_msg("%s: %s", mc->spec, dpt_last_error());
    if (winograd_after_build >= 0)
        dpt_conv_set_winograd(winograd_after_build);
    const int64_t per_in = dpt_shape_count(&in);
    const dpt_shape os = dpt_model_output_shape(m);
    r->n_in = N * per_in;
    r->n_out = N * dpt_shape_count(&os);
    float *x = malloc((size_t)r->n_in * sizeof *x), *dl = malloc((size_t)r->n_out * sizeof *dl);
    assert_non_null(x);
    assert_non_null(dl);
    dpt_fill_uniform(x, r->n_in, -1.5f, 2.0f, SEED, 1);
    dpt_fill_uniform(dl, r->n_out, -1.0f, 1.0f, SEED, 2);
    int64_t samples[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH; i++)
        samples[i] = 1000 + 37 * i;
    dpt_model_rng rng = {.seed = 3, .member = 0, .step = 5, .sample = samples};

    dpt_model_zero_grad(m);
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(dpt_model_forward(m, x, N, 1, &rng), DPT_OK);
        assert_int_equal(dpt_model_backward(m, dl), DPT_OK);
    }
    r->logits = copy_of(dpt_model_logits(m), r->n_out);
    r->dx = copy_of(dpt_model_input_grad(m), r->n_in);
    const float *grads = dpt_model_grads(m, &r->n_params);
    const float *buffers = dpt_model_buffers(m, &r->n_buffers);
    r->grads = copy_of(grads, r->n_params);
    r->buffers = copy_of(buffers, r->n_buffers);

    dpt_model_zero_grad(m);
    assert_int_equal(dpt_model_forward(m, x, N, 0, NULL), DPT_OK);
    assert_int_equal(dpt_model_backward(m, dl), DPT_OK);
    r->eval_logits = copy_of(dpt_model_logits(m), r->n_out);
    r->eval_dx = copy_of(dpt_model_input_grad(m), r->n_in);
    r->eval_grads = copy_of(dpt_model_grads(m, &r->n_params), r->n_params); /* count known */
    free(x);
    free(dl);
    dpt_model_destroy(m);
}

static void assert_same(const char *what, const float *a, const float *b, int64_t n,
                        const char *impl, int T, int64_t N, int model) {
    if (memcmp(a, b, (size_t)n * sizeof *a) == 0)
        return;
    int64_t i = 0, last = n - 1;
    while (i < n && memcmp(a + i, b + i, sizeof *a) == 0)
        i++;
    while (last > i && memcmp(a + last, b + last, sizeof *a) == 0)
        last--;
    print_message("differences from element %lld to %lld\n", (long long)i, (long long)last);
    fail_msg("model %d, conv %s, batch %lld: %s at %d threads differs from 1 thread at element "
             "%lld of %lld (%.9g vs %.9g)",
             model, impl, (long long)N, what, T, (long long)i, (long long)n, (double)b[i],
             (double)a[i]);
}

static void check_models(const dpt_conv_impl *impl, const char *label) {
    static const int64_t batches[] = {1, 2, 5, 13, 19, MAX_BATCH};
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            const int64_t N = batches[b];
            if (models[k].ghost > 0 && N < 2)
                continue; /* training batch norm needs two values per channel */
            model_result one, many;
            run_model(&one, &models[k], impl, 1, N);
            for (int run = 0; run < 4; run++) {
                const int T = 2 + run % 2;
                dpt_pool_set_clock(run >= 2 ? skewed_clock : NULL);
                run_model(&many, &models[k], impl, T, N);
                dpt_pool_set_clock(NULL);
                assert_same("logits", many.logits, one.logits, one.n_out, label, T, N, (int)k);
                assert_same("input gradient", many.dx, one.dx, one.n_in, label, T, N, (int)k);
                assert_same("parameter gradients", many.grads, one.grads, one.n_params, label, T,
                            N, (int)k);
                assert_same("running statistics", many.buffers, one.buffers, one.n_buffers, label,
                            T, N, (int)k);
                assert_same("eval logits", many.eval_logits, one.eval_logits, one.n_out, label, T,
                            N, (int)k);
                assert_same("eval input gradient", many.eval_dx, one.eval_dx, one.n_in, label, T,
                            N, (int)k);
                assert_same("eval parameter gradients", many.eval_grads, one.eval_grads,
                            one.n_params, label, T, N, (int)k);
                result_free(&many);
            }
            result_free(&one);
        }
}

static void test_models_bit_identical_for_any_thread_count(void **state) {
    (void)state;
    int ran = 0;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl)
            continue;
        int simd = id == DPT_CONV_AVX2 || id == DPT_CONV_AVX512;
        for (int wino = simd ? 0 : 1; wino <= 1; wino++) {
            char label[64];
            snprintf(label, sizeof label, "%s%s", impl->name,
                     simd ? (wino ? " (Winograd)" : " (direct)") : "");
            dpt_conv_set_winograd(wino);
            check_models(impl, label);
            ran++;
        }
    }
    dpt_conv_set_winograd(1);
    print_message("checked %d convolution paths at 1, 2 and 3 threads\n", ran);
    assert_true(ran >= 2);
}

/* A model built in one Winograd mode and run in another gives the bits of one built in the mode
 * it runs in: built for F(2x2) and run as F(4x4), its prepared weights would not fit and the
 * layers call the kernels with w (the fallback); built for F(4x4) and run as F(2x2), they fit. */
static void test_winograd_switched_after_build(void **state) {
    (void)state;
    const dpt_conv_impl *impl = dpt_conv_impl_get(DPT_CONV_AVX512);
    if (!impl)
        impl = dpt_conv_impl_get(DPT_CONV_AVX2);
    if (!impl) {
        print_message("no SIMD path on this CPU/build: nothing to check\n");
        return;
    }
    const int modes[][2] = {{2, 4}, {4, 2}, {1, 0}}; /* built in, run in */
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        const int built = modes[i][0], run = modes[i][1];
        for (int T = 1; T <= 2; T++) {
            model_result want, got;
            dpt_conv_set_winograd(run);
            run_model(&want, &models[0], impl, T, 13);
            dpt_conv_set_winograd(built);
            winograd_after_build = run;
            run_model(&got, &models[0], impl, T, 13);
            winograd_after_build = -1;
            assert_same("logits", got.logits, want.logits, want.n_out, impl->name, T, 13, 0);
            assert_same("input gradient", got.dx, want.dx, want.n_in, impl->name, T, 13, 0);
            assert_same("parameter gradients", got.grads, want.grads, want.n_params, impl->name,
                        T, 13, 0);
            result_free(&want);
            result_free(&got);
        }
    }
    dpt_conv_set_winograd(1);
}

/* ---- single layers on 3 threads against one whole-batch kernel call --------------------------- */

static double conv_tol(double K) {
    return 8.0 * FLT_EPSILON * sqrt(K);
}

/* One layer "conv2d(O,3,pad=1)" (Winograd-sized, or a one-input-channel first layer) on 19 images
 * (three units) against conv_ref over the whole batch. */
static void check_conv_layer(const dpt_conv_impl *impl, int64_t C, int64_t O) {
    const int64_t N = 19, H = 9, W = 10;
    char spec[64];
    snprintf(spec, sizeof spec, "conv2d(%lld,3,pad=1)", (long long)O);
    dpt_model_cfg cfg = {.max_batch = N, .seed = 11, .input_grad = 1, .threads = 3, .conv = impl};
    dpt_model *m = NULL;
    assert_int_equal(dpt_model_create(&m, spec, dpt_shape_make(3, (int64_t[]){C, H, W}), &cfg),
                     DPT_OK);
    dpt_conv_geom g = {.dims = 2, .N = N, .C = C, .O = O, .in = {1, H, W}, .k = {1, 3, 3},
                       .pad = {0, 1, 1}, .has_bias = 1};
    assert_int_equal(dpt_conv_geom_check(&g), DPT_OK);
    const int64_t nx = dpt_conv_x_count(&g), ny = dpt_conv_y_count(&g), nw = dpt_conv_w_count(&g);
    float *x = malloc((size_t)nx * 4), *dy = malloc((size_t)ny * 4), *y = malloc((size_t)ny * 4);
    float *dx = malloc((size_t)nx * 4), *dw = calloc((size_t)(nw + O), 4);
    const dpt_conv_impl *ref = dpt_conv_impl_get(DPT_CONV_REF);
    float *work = malloc(ref->workspace(&g) * 4 + 4);
    assert_true(x && dy && y && dx && dw && work);
    dpt_fill_uniform(x, nx, -1.0f, 1.0f, SEED, 3);
    dpt_fill_uniform(dy, ny, -1.0f, 1.0f, SEED, 4);
    int64_t np;
    const float *params = dpt_model_params(m, &np);
    assert_int_equal(np, nw + O);
    ref->forward(y, x, params, params + nw, &g, work);
    ref->backward_data(dx, dy, params, &g, work);
    ref->backward_weight(dw, dw + nw, dy, x, &g, work);

    dpt_model_zero_grad(m);
    assert_int_equal(dpt_model_forward(m, x, N, 1, NULL), DPT_OK);
    assert_int_equal(dpt_model_backward(m, dy), DPT_OK);
    const double tf = conv_tol((double)(C * 9)), td = conv_tol((double)(O * 9));
    const double tw = conv_tol((double)(N * H * W));
    dpt_assert_close_f32("forward", dpt_model_logits(m), y, ny, tf, tf);
    dpt_assert_close_f32("backward data", dpt_model_input_grad(m), dx, nx, td, td);
    dpt_assert_close_f32("backward weight", dpt_model_grads(m, &np), dw, nw + O, tw, tw);
    free(x), free(dy), free(y), free(dx), free(dw), free(work);
    dpt_model_destroy(m);
}

static void test_conv_layer_matches_ref(void **state) {
    (void)state;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl)
            continue;
        check_conv_layer(impl, 1, 8);   /* a first layer (one-channel Winograd on SIMD) */
        check_conv_layer(impl, 17, 16); /* Winograd F(2x2,3x3) on SIMD */
        check_conv_layer(impl, 3, 5);   /* direct */
    }
}

/* A conv layer's weight gradient over more blocks than one round of partials holds (11 blocks of
 * 16 images; a round is 8 blocks at 2 threads, 9 at 3): several rounds, the last one short, give
 * the one-thread bits. Every implementation this CPU runs. */
static float *conv_grads_at(const dpt_conv_impl *impl, int T, int64_t N, int64_t *np) {
    dpt_model_cfg cfg = {.max_batch = N, .seed = 5, .threads = T, .conv = impl};
    dpt_model *m = NULL;
    const dpt_shape in = dpt_shape_make(3, (int64_t[]){17, 6, 5});
    assert_int_equal(dpt_model_create(&m, "conv2d(16,3,pad=1)", in, &cfg), DPT_OK);
    const int64_t nx = N * dpt_shape_count(&in), ny = N * 16 * 6 * 5;
    float *x = malloc((size_t)nx * sizeof *x), *dy = malloc((size_t)ny * sizeof *dy);
    assert_true(x && dy);
    dpt_fill_uniform(x, nx, -1.0f, 1.0f, SEED, 7);
    dpt_fill_uniform(dy, ny, -1.0f, 1.0f, SEED, 8);
    dpt_model_zero_grad(m);
    assert_int_equal(dpt_model_forward(m, x, N, 1, NULL), DPT_OK);
    assert_int_equal(dpt_model_backward(m, dy), DPT_OK);
    const float *grads = dpt_model_grads(m, np);
    float *g = copy_of(grads, *np);
    free(x), free(dy);
    dpt_model_destroy(m);
    return g;
}

static void test_conv_weight_gradient_rounds(void **state) {
    (void)state;
    const int64_t N = 11 * 16 - 5;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl)
            continue;
        int64_t n1, nt;
        float *one = conv_grads_at(impl, 1, N, &n1);
        for (int T = 2; T <= 3; T++) {
            float *many = conv_grads_at(impl, T, N, &nt);
            assert_int_equal(nt, n1);
            assert_same("conv weight gradient", many, one, n1, impl->name, T, N, 0);
            free(many);
        }
        free(one);
    }
}

/* Batch norm (fused with ReLU by default: the layer after it is a view), max and avg pooling: the
 * threaded layer gives exactly what the whole-batch kernels give. */
static void test_bn_and_pool_layers_match_kernels(void **state) {
    (void)state;
    const int64_t N = 19, C = 5, H = 6, W = 7, S = H * W, n = N * C * S;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4);
    float *dx = malloc((size_t)n * 4);
    assert_true(x && y && dy && dx);
    dpt_fill_uniform(x, n, -2.0f, 3.0f, SEED, 5);
    dpt_fill_uniform(dy, n, -1.0f, 1.0f, SEED, 6);
    dpt_shape in = dpt_shape_make(3, (int64_t[]){C, H, W});

    /* batch norm, affine weight 1 and bias 0 as initialized */
    dpt_model_cfg cfg = {.max_batch = N, .input_grad = 1, .threads = 3, .no_fusion = 1};
    dpt_model *m = NULL;
    assert_int_equal(dpt_model_create(&m, "bn", in, &cfg), DPT_OK);
    assert_int_equal(dpt_model_forward(m, x, N, 1, NULL), DPT_OK);
    dpt_model_zero_grad(m);
    assert_int_equal(dpt_model_backward(m, dy), DPT_OK);
    double sum[5], sumsq[5], var[5], dbeta[5], dgamma[5];
    float mean[5], invstd[5];
    dpt_bn_stats(sum, sumsq, x, N, C, S);
    dpt_bn_moments(mean, invstd, var, sum, sumsq, N * S, C, 1e-5);
    dpt_bn_apply(y, x, mean, invstd, NULL, NULL, N, C, S);
    dpt_bn_backward_sums(dbeta, dgamma, dy, x, mean, invstd, N, C, S);
    dpt_bn_backward_data(dx, dy, x, mean, invstd, NULL, dbeta, dgamma, N * S, N, C, S);
    assert_memory_equal(dpt_model_logits(m), y, (size_t)n * 4);
    assert_memory_equal(dpt_model_input_grad(m), dx, (size_t)n * 4);
    int64_t np;
    const float *g = dpt_model_grads(m, &np);
    for (int64_t c = 0; c < C; c++) {
        assert_true(g[c] == (float)dgamma[c]);
        assert_true(g[C + c] == (float)dbeta[c]);
    }
    dpt_model_destroy(m);

    /* pooling */
    for (int is_max = 0; is_max <= 1; is_max++) {
        dpt_pool_geom pg = {.dims = 2, .N = N, .C = C, .in = {1, H, W}, .k = {1, 3, 3},
                            .stride = {1, 2, 2}, .pad = {0, 1, 1}, .count_include_pad = 1};
        assert_int_equal(dpt_pool_geom_check(&pg), DPT_OK);
        const int64_t no = N * C * pg.out[1] * pg.out[2];
        int32_t *argmax = malloc((size_t)no * 4);
        assert_non_null(argmax);
        m = NULL;
        assert_int_equal(dpt_model_create(&m, is_max ? "maxpool(3,stride=2,pad=1)"
                                                     : "avgpool(3,stride=2,pad=1)",
                                          in, &cfg),
                         DPT_OK);
        assert_int_equal(dpt_model_forward(m, x, N, 1, NULL), DPT_OK);
        assert_int_equal(dpt_model_backward(m, dy), DPT_OK); /* dy: the first `no` values */
        if (is_max) {
            dpt_maxpool_forward(y, argmax, x, &pg);
            dpt_maxpool_backward(dx, dy, argmax, &pg);
        } else {
            dpt_avgpool_forward(y, x, &pg);
            dpt_avgpool_backward(dx, dy, &pg);
        }
        assert_memory_equal(dpt_model_logits(m), y, (size_t)no * 4);
        assert_memory_equal(dpt_model_input_grad(m), dx, (size_t)n * 4);
        free(argmax);
        dpt_model_destroy(m);
    }
    free(x), free(y), free(dy), free(dx);
}

/* dense(11) on 19 rows of 23 features against the naive double GEMM. */
static void test_dense_layer_matches_naive(void **state) {
    (void)state;
    const int64_t N = 19, K = 23, O = 11;
    dpt_model_cfg cfg = {.max_batch = N, .seed = 5, .input_grad = 1, .threads = 3};
    dpt_model *m = NULL;
    assert_int_equal(dpt_model_create(&m, "dense(11)", dpt_shape_make(1, &K), &cfg), DPT_OK);
    float *x = malloc((size_t)(N * K) * 4), *dy = malloc((size_t)(N * O) * 4);
    float *y = malloc((size_t)(N * O) * 4), *dx = malloc((size_t)(N * K) * 4);
    float *dw = calloc((size_t)(O * K + O), 4);
    assert_true(x && dy && y && dx && dw);
    dpt_fill_uniform(x, N * K, -1.0f, 1.0f, SEED, 7);
    dpt_fill_uniform(dy, N * O, -1.0f, 1.0f, SEED, 8);
    int64_t np;
    const float *w = dpt_model_params(m, &np);
    dpt_dense_forward(DPT_GEMM_NAIVE, y, x, w, w + O * K, N, K, O);
    dpt_dense_backward_data(DPT_GEMM_NAIVE, dx, dy, w, N, K, O);
    dpt_dense_backward_weight(DPT_GEMM_NAIVE, dw, dw + O * K, dy, x, N, K, O);
    dpt_model_zero_grad(m);
    assert_int_equal(dpt_model_forward(m, x, N, 1, NULL), DPT_OK);
    assert_int_equal(dpt_model_backward(m, dy), DPT_OK);
    dpt_assert_close_f32("forward", dpt_model_logits(m), y, N * O, conv_tol((double)K),
                         conv_tol((double)K));
    dpt_assert_close_f32("backward data", dpt_model_input_grad(m), dx, N * K,
                         conv_tol((double)O), conv_tol((double)O));
    dpt_assert_close_f32("backward weight", dpt_model_grads(m, &np), dw, O * K + O,
                         conv_tol((double)N), conv_tol((double)N));
    free(x), free(dy), free(y), free(dx), free(dw);
    dpt_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_every_unit_once),
        cmocka_unit_test(test_pool_shares_cover_in_thread_order),
        cmocka_unit_test(test_pool_shares_follow_speed),
        cmocka_unit_test(test_pool_late_thread_loses_its_region),
        cmocka_unit_test(test_models_bit_identical_for_any_thread_count),
        cmocka_unit_test(test_winograd_switched_after_build),
        cmocka_unit_test(test_conv_layer_matches_ref),
        cmocka_unit_test(test_conv_weight_gradient_rounds),
        cmocka_unit_test(test_bn_and_pool_layers_match_kernels),
        cmocka_unit_test(test_dense_layer_matches_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
