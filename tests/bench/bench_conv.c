/* Convolution benchmark (tests/bench, built but never run by ctest): GFLOP/s of each available conv
 * implementation, each pass timed alone, on the conv layers of the fmnist-cnn (or lenet5) preset,
 * one thread, median of --reps runs; beside it, OpenBLAS sgemm on a GEMM the size of the layer's
 * im2col forward GEMM, measured in the same run, so the ratio shows what im2col adds to the GEMM.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timing.h"
#include "dpt/conv.h"
#include "dpt/ops.h"
#include "dpt/rng.h"
#include "dpt/tensor.h"
#include "dpt/timer.h"

typedef struct {
    const char *name;
    int64_t C, O, S, k, pad; /* 2-D, square input S x S, square kernel, stride 1 */
} layer;

/* fmnist-cnn: conv(32,3,pad=1) x2 at 28x28, maxpool, conv(64,3,pad=1) x2 at 14x14. */
static const layer fmnist_layers[] = {
    {"fmnist.conv1", 1, 32, 28, 3, 1},
    {"fmnist.conv2", 32, 32, 28, 3, 1},
    {"fmnist.conv3", 32, 64, 14, 3, 1},
    {"fmnist.conv4", 64, 64, 14, 3, 1},
};
/* lenet5: conv(6,5,pad=2) at 28x28, pool, conv(16,5) at 14x14. */
static const layer lenet5_layers[] = {
    {"lenet5.conv1", 1, 6, 28, 5, 2},
    {"lenet5.conv2", 6, 16, 14, 5, 0},
};

enum { N_PASSES = 3, MAX_REPS = 1000 };
static const char *const pass_names[N_PASSES] = {"forward", "bwd_data", "bwd_weight"};

static int use_wall_clock;

/* Thread CPU time by default: the machine's cores are shared, and time spent descheduled is not
 * the kernel's (OpenBLAS is pinned to one thread, so all work runs on this thread). */
static double now(void) {
    if (use_wall_clock)
        return dpt_now();
    return dpt_bench_thread_time();
}


typedef struct {
    dpt_conv_geom g;
    float *x, *w, *b, *dy, *y, *dx, *dw, *db, *work;
    float *ga, *gb, *gc; /* operands of the stand-alone GEMM */
} buffers;

static void fill(float *p, int64_t n, uint32_t stream) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(7, DPT_RNG_TEST, stream), 0, 0);
    for (int64_t i = 0; i < n; i++)
        p[i] = 2.0f * dpt_rng_uniformf(&r) - 1.0f;
}

static float *alloc_floats(int64_t n) {
    float *p = dpt_alloc_aligned(dpt_size_mul((size_t)(n > 0 ? n : 1), sizeof(float)));
    if (!p) {
        fprintf(stderr, "bench_conv: %s\n", dpt_last_error());
        exit(1);
    }
    return p;
}

/* Seconds of one run of pass `p` of `impl`. */
static double time_pass(const dpt_conv_impl *impl, int p, buffers *B) {
    double t0 = now();
    switch (p) {
    case 0:
        impl->forward(B->y, B->x, B->w, B->b, &B->g, B->work);
        break;
    case 1:
        impl->backward_data(B->dx, B->dy, B->w, &B->g, B->work);
        break;
    default:
        impl->backward_weight(B->dw, B->db, B->dy, B->x, &B->g, B->work);
    }
    return now() - t0;
}

/* Seconds of N calls of the im2col forward GEMM of one sample: (O x C*k*k) * (C*k*k x P). */
static double time_gemm(buffers *B, int64_t M, int64_t Nn, int64_t K) {
    double t0 = now();
    for (int64_t n = 0; n < B->g.N; n++)
        dpt_sgemm(DPT_GEMM_BLAS, 0, 0, M, Nn, K, 1.0f, B->ga, K, B->gb, Nn, 0.0f, B->gc, Nn);
    return now() - t0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_conv [--reps N] [--batch N] [--layers fmnist|lenet5|all]\n"
               "                  [--impl NAME] [--wall]\n"
               "GFLOP/s of each conv implementation on the preset's conv layers, one thread,\n"
               "median of N runs (default 7); ref only when asked for with --impl ref.\n"
               "--wall times with the wall clock instead of this thread's CPU time.\n");
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_conv: %s: '%s' is not an integer in [%d, %d]\n", opt, s, lo, hi);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv) {
    int reps = 7, batch = 64;
    const char *which = "fmnist", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            if (!parse_int("--reps", argv[++i], 1, MAX_REPS, &reps))
                return 2;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (!parse_int("--batch", argv[++i], 1, 1 << 16, &batch))
                return 2;
        } else if (!strcmp(argv[i], "--layers") && i + 1 < argc) {
            which = argv[++i];
            if (strcmp(which, "fmnist") && strcmp(which, "fmnist-cnn") && strcmp(which, "lenet5") &&
                strcmp(which, "all")) {
                fprintf(stderr, "bench_conv: --layers: '%s' is not fmnist, lenet5 or all\n", which);
                return 2;
            }
        } else if (!strcmp(argv[i], "--impl") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--wall")) {
            use_wall_clock = 1;
        } else {
            fprintf(stderr, "bench_conv: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    dpt_gemm_init();

    const dpt_conv_impl *impls[DPT_CONV_IMPL_COUNT];
    int n_impls = 0;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++) {
        const dpt_conv_impl *impl = dpt_conv_impl_get((dpt_conv_impl_id)id);
        if (!impl || (only ? strcmp(impl->name, only) != 0 : id == DPT_CONV_REF))
            continue;
        impls[n_impls++] = impl;
    }
    if (n_impls == 0) {
        fprintf(stderr, "bench_conv: --impl %s: no such implementation on this CPU\n", only);
        return 2;
    }

    const layer *list[8];
    int n_layers = 0;
    if (strcmp(which, "lenet5"))
        for (size_t i = 0; i < sizeof fmnist_layers / sizeof fmnist_layers[0]; i++)
            list[n_layers++] = &fmnist_layers[i];
    if (!strcmp(which, "lenet5") || !strcmp(which, "all"))
        for (size_t i = 0; i < sizeof lenet5_layers / sizeof lenet5_layers[0]; i++)
            list[n_layers++] = &lenet5_layers[i];

    printf("# bench_conv: batch %d, median of %d runs, one thread (OpenBLAS pinned to 1), %s\n",
           batch, reps, use_wall_clock ? "wall clock" : "thread CPU time");
    printf("# GFLOP/s = 2*N*O*oH*oW*C*kH*kW / time for every pass; sgemm = the im2col forward "
           "GEMM\n# (O x C*k*k)*(C*k*k x oH*oW) called N times; default kernel: %s\n",
           dpt_conv_default()->name);
    printf("%-13s %-10s", "layer", "pass");
    for (int i = 0; i < n_impls; i++)
        printf(" %9s", impls[i]->name);
    printf(" %9s", "sgemm");
    if (n_impls > 1 && !only)
        printf("   best/im2col");
    printf("\n");

    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!t)
        return 1;
    for (int l = 0; l < n_layers; l++) {
        const layer *L = list[l];
        buffers B = {.g = {.dims = 2,
                           .N = batch,
                           .C = L->C,
                           .O = L->O,
                           .in = {1, L->S, L->S},
                           .k = {1, L->k, L->k},
                           .pad = {0, L->pad, L->pad},
                           .has_bias = 1}};
        if (dpt_conv_geom_check(&B.g) != DPT_OK) {
            fprintf(stderr, "bench_conv: %s: %s\n", L->name, dpt_last_error());
            return 1;
        }
        const int64_t nx = dpt_conv_x_count(&B.g), nw = dpt_conv_w_count(&B.g);
        const int64_t ny = dpt_conv_y_count(&B.g);
        size_t nwork = 0;
        for (int i = 0; i < n_impls; i++)
            if (impls[i]->workspace(&B.g) > nwork)
                nwork = impls[i]->workspace(&B.g);
        const int64_t M = L->O, K = L->C * L->k * L->k, P = B.g.out[1] * B.g.out[2];
        B.x = alloc_floats(nx), B.w = alloc_floats(nw), B.b = alloc_floats(L->O);
        B.dy = alloc_floats(ny), B.y = alloc_floats(ny), B.dx = alloc_floats(nx);
        B.dw = alloc_floats(nw), B.db = alloc_floats(L->O), B.work = alloc_floats((int64_t)nwork);
        B.ga = alloc_floats(M * K), B.gb = alloc_floats(K * P), B.gc = alloc_floats(M * P);
        fill(B.x, nx, 1), fill(B.w, nw, 2), fill(B.b, L->O, 3), fill(B.dy, ny, 4);
        fill(B.ga, M * K, 5), fill(B.gb, K * P, 6);
        const double flops = dpt_conv_flops(&B.g);

        (void)time_gemm(&B, M, P, K); /* warm-up */
        for (int r = 0; r < reps; r++)
            t[r] = time_gemm(&B, M, P, K);
        const double gemm_gflops =
            2.0 * (double)batch * (double)(M * P * K) / dpt_bench_median(t, reps) / 1e9;

        for (int p = 0; p < N_PASSES; p++) {
            printf("%-13s %-10s", L->name, pass_names[p]);
            double im2col = 0, best = 0;
            for (int i = 0; i < n_impls; i++) {
                (void)time_pass(impls[i], p, &B); /* warm-up: page faults, caches */
                for (int r = 0; r < reps; r++)
                    t[r] = time_pass(impls[i], p, &B);
                const double gf = flops / dpt_bench_median(t, reps) / 1e9;
                printf(" %9.2f", gf);
                fflush(stdout);
                if (!strcmp(impls[i]->name, "im2col"))
                    im2col = gf;
                if (gf > best)
                    best = gf;
            }
            printf(" %9.2f", gemm_gflops);
            if (n_impls > 1 && !only && im2col > 0)
                printf("   %10.2fx", best / im2col);
            printf("\n");
        }
        dpt_free_aligned(B.x), dpt_free_aligned(B.w), dpt_free_aligned(B.b);
        dpt_free_aligned(B.dy), dpt_free_aligned(B.y), dpt_free_aligned(B.dx);
        dpt_free_aligned(B.dw), dpt_free_aligned(B.db), dpt_free_aligned(B.work);
        dpt_free_aligned(B.ga), dpt_free_aligned(B.gb), dpt_free_aligned(B.gc);
    }
    free(t);
    return 0;
}
