/* Batch norm (+ fused ReLU) and max-pool benchmark (tests/bench, built but never run by ctest): on
 * the fmnist-cnn shapes (batch 64; 32 channels at 28x28, 64 at 14x14), the time of each kernel
 * and of the whole layer pass (a model "batchnorm2d relu" or "maxpool2d(2)", forward and backward
 * timed apart), next to a memcpy of one activation tensor measured in the same run (these passes
 * are memory-bound: the copy is the yardstick). Medians of several runs, thread CPU time
 * (DPT_BENCH_WALL=1 for wall time): the cores are shared, and time spent descheduled belongs to
 * no kernel. Uses only the public API, so the same source builds against an older libdpt.
 * Usage: bench_layers [runs]   (default 15) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/model.h"
#include "dpt/ops.h"
#include "dpt/rng.h"
#include "dpt/status.h"
#include "dpt/tensor.h"
#include "dpt/timer.h"
#include "timing.h"

enum { MAX_RUNS = 101, BATCH = 64 };

static int use_wall_clock;

static double now(void) {
    if (use_wall_clock)
        return dpt_now();
    return dpt_bench_thread_time();
}

static void fill(float *p, int64_t n, float lo, float hi, uint32_t stream) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(11, DPT_RNG_TEST, stream), 0, 0);
    for (int64_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * dpt_rng_uniformf(&r);
}

static float *alloc_floats(int64_t n) {
    float *p = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(float)));
    if (!p) {
        fprintf(stderr, "bench_layers: error: %s\n", dpt_last_error());
        exit(1);
    }
    return p;
}

/* One timed op: a closure over the case's buffers. */
typedef struct shape_case shape_case;
typedef void (*op_fn)(shape_case *c);

struct shape_case {
    const char *name;
    int64_t N, C, H, W;
    float *x, *y, *dy, *dx, *copy;
    int32_t *argmax;
    float *gamma, *beta, *mean, *invstd;
    double *s1, *s2, *d1, *d2, *var;
    dpt_pool_geom pg;
    dpt_model *bn_model, *pool_model;
};

static int64_t numel(const shape_case *c) {
    return c->N * c->C * c->H * c->W;
}

static void op_memcpy(shape_case *c) {
    memcpy(c->copy, c->x, (size_t)numel(c) * sizeof(float));
}

static void op_bn_stats(shape_case *c) {
    dpt_bn_stats(c->s1, c->s2, c->x, c->N, c->C, c->H * c->W);
}

static void op_bn_apply_relu(shape_case *c) {
    dpt_bn_apply_relu(c->y, c->x, c->mean, c->invstd, c->gamma, c->beta, c->N, c->C, c->H * c->W);
}

static void op_bn_bwd_sums_relu(shape_case *c) {
    dpt_bn_backward_sums_relu(c->d1, c->d2, c->dy, c->y, c->x, c->mean, c->invstd, c->N, c->C,
                              c->H * c->W);
}

static void op_bn_bwd_data_relu(shape_case *c) {
    dpt_bn_backward_data_relu(c->dx, c->dy, c->y, c->x, c->mean, c->invstd, c->gamma, c->d1, c->d2,
                              c->N * c->H * c->W, c->N, c->C, c->H * c->W);
}

static void op_bn_layer_fwd(shape_case *c) {
    dpt_status st = dpt_model_forward(c->bn_model, c->x, c->N, 1, NULL);
    if (st != DPT_OK)
        exit(1);
}

static void op_bn_layer_bwd(shape_case *c) {
    if (dpt_model_backward(c->bn_model, c->dy) != DPT_OK)
        exit(1);
}

static void op_maxpool_fwd(shape_case *c) {
    dpt_maxpool_forward(c->y, c->argmax, c->x, &c->pg);
}

static void op_maxpool_bwd(shape_case *c) {
    dpt_maxpool_backward(c->dx, c->dy, c->argmax, &c->pg);
}

static void op_pool_layer_fwd(shape_case *c) {
    if (dpt_model_forward(c->pool_model, c->x, c->N, 1, NULL) != DPT_OK)
        exit(1);
}

static void op_pool_layer_bwd(shape_case *c) {
    if (dpt_model_backward(c->pool_model, c->dy) != DPT_OK)
        exit(1);
}

/* `pre` runs untimed before each timed call (a layer backward needs its forward). */
typedef struct {
    const char *name;
    op_fn fn, pre;
    double tensors; /* activation-sized arrays moved (read or written): the GB/s column */
} op_desc;

static const op_desc ops[] = {
    {"memcpy (yardstick)", op_memcpy, NULL, 2},
    {"bn_stats", op_bn_stats, NULL, 1},
    {"bn_apply_relu", op_bn_apply_relu, NULL, 2},
    {"bn_backward_sums_relu", op_bn_bwd_sums_relu, NULL, 3},
    {"bn_backward_data_relu", op_bn_bwd_data_relu, NULL, 4},
    {"bn+relu layer forward", op_bn_layer_fwd, NULL, 3},
    {"bn+relu layer backward", op_bn_layer_bwd, op_bn_layer_fwd, 6},
    {"maxpool_forward", op_maxpool_fwd, NULL, 1.5},
    {"maxpool_backward", op_maxpool_bwd, NULL, 1.5},
    {"maxpool layer forward", op_pool_layer_fwd, NULL, 1.5},
    {"maxpool layer backward", op_pool_layer_bwd, op_pool_layer_fwd, 1.5},
};

static dpt_model *make_model(const char *spec, const shape_case *c) {
    dpt_model *m = NULL;
    const int64_t d[3] = {c->C, c->H, c->W};
    dpt_model_cfg cfg = {.max_batch = c->N, .seed = 1, .input_grad = 1};
    if (dpt_model_create(&m, spec, dpt_shape_make(3, d), &cfg) != DPT_OK) {
        fprintf(stderr, "bench_layers: error: %s\n", dpt_last_error());
        exit(1);
    }
    return m;
}

static void case_init(shape_case *c) {
    const int64_t n = numel(c), C = c->C, S = c->H * c->W;
    c->x = alloc_floats(n), c->y = alloc_floats(n), c->dy = alloc_floats(n);
    c->dx = alloc_floats(n), c->copy = alloc_floats(n);
    c->argmax = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int32_t)));
    c->gamma = alloc_floats(C), c->beta = alloc_floats(C), c->mean = alloc_floats(C);
    c->invstd = alloc_floats(C);
    c->s1 = calloc((size_t)C, sizeof(double)), c->s2 = calloc((size_t)C, sizeof(double));
    c->d1 = calloc((size_t)C, sizeof(double)), c->d2 = calloc((size_t)C, sizeof(double));
    c->var = calloc((size_t)C, sizeof(double));
    if (!c->argmax || !c->s1 || !c->s2 || !c->d1 || !c->d2 || !c->var) {
        fprintf(stderr, "bench_layers: error: out of memory\n");
        exit(1);
    }
    fill(c->x, n, -1.0f, 2.0f, 1);
    fill(c->dy, n, -1.0f, 1.0f, 2);
    fill(c->gamma, C, 0.5f, 1.5f, 3);
    fill(c->beta, C, -0.5f, 0.5f, 4);
    dpt_bn_stats(c->s1, c->s2, c->x, c->N, C, S);
    dpt_bn_moments(c->mean, c->invstd, c->var, c->s1, c->s2, c->N * S, C, 1e-5);
    dpt_bn_apply_relu(c->y, c->x, c->mean, c->invstd, c->gamma, c->beta, c->N, C, S);
    dpt_bn_backward_sums_relu(c->d1, c->d2, c->dy, c->y, c->x, c->mean, c->invstd, c->N, C, S);
    c->pg = (dpt_pool_geom){.dims = 2, .N = c->N, .C = C, .in = {1, c->H, c->W}, .k = {1, 2, 2}};
    if (dpt_pool_geom_check(&c->pg) != DPT_OK) {
        fprintf(stderr, "bench_layers: error: %s\n", dpt_last_error());
        exit(1);
    }
    dpt_maxpool_forward(c->y, c->argmax, c->x, &c->pg);
    c->bn_model = make_model("batchnorm2d relu", c);
    c->pool_model = make_model("maxpool2d(2)", c);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 15;
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench_layers: error: runs must be in [1, %d]\n", MAX_RUNS);
        return 1;
    }
    const char *wall = getenv("DPT_BENCH_WALL");
    use_wall_clock = wall && wall[0] == '1';
    shape_case cases[] = {
        {.name = "64x32x28x28", .N = BATCH, .C = 32, .H = 28, .W = 28},
        {.name = "64x64x14x14", .N = BATCH, .C = 64, .H = 14, .W = 14},
    };
    printf("# %s time, median of %d runs (ms); GB/s counts the activation tensors each op must "
           "move\n",
           use_wall_clock ? "wall" : "thread CPU", runs);
    printf("%-12s %-24s %9s %9s %7s\n", "shape", "op", "ms", "min ms", "GB/s");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        shape_case *c = &cases[k];
        case_init(c);
        const double bytes = (double)numel(c) * sizeof(float);
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            double t[MAX_RUNS];
            if (ops[o].pre)
                ops[o].pre(c);
            ops[o].fn(c); /* warm-up */
            for (int r = 0; r < runs; r++) {
                if (ops[o].pre)
                    ops[o].pre(c);
                const double t0 = now();
                ops[o].fn(c);
                t[r] = now() - t0;
            }
            const double med = dpt_bench_median(t, runs), lo = t[0];
            printf("%-12s %-24s %9.3f %9.3f %7.1f\n", c->name, ops[o].name, 1e3 * med, 1e3 * lo,
                   ops[o].tensors * bytes / med * 1e-9);
            fflush(stdout);
        }
    }
    return 0;
}
