/* Optimizer step throughput: GB/s of parameter, gradient and state bytes touched per step, for
 * 1-10 M parameters, next to a memcpy of the same number of bytes timed in the same run (an
 * optimizer step is memory-bound, so memcpy is the yardstick). Medians of several runs, each
 * step and copy timed in thread CPU time (DPT_BENCH_WALL=1 for wall time): the cores are
 * shared, and time spent descheduled belongs to neither.
 * Usage: bench_optim [runs [n_params ...]]   (defaults: 9 runs; 1M 3M 10M) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timing.h"
#include "dpt/optim.h"
#include "dpt/status.h"
#include "dpt/tensor.h"
#include "dpt/timer.h"

#define MAX_RUNS 101

static int use_wall_clock;

static double now(void) {
    if (use_wall_clock)
        return dpt_now();
    return dpt_bench_thread_time();
}


typedef struct {
    const char *label;
    dpt_optim_cfg cfg;
} bench_case;

static const bench_case cases[] = {
    {"sgd", {.kind = DPT_OPTIM_SGD, .lr = 0.1}},
    {"momentum", {.kind = DPT_OPTIM_MOMENTUM, .lr = 0.1, .weight_decay = 5e-4}},
    {"nesterov", {.kind = DPT_OPTIM_NESTEROV, .lr = 0.1}},
    {"adagrad", {.kind = DPT_OPTIM_ADAGRAD}},
    {"rmsprop", {.kind = DPT_OPTIM_RMSPROP}},
    {"rmsprop-c-m", {.kind = DPT_OPTIM_RMSPROP, .centered = 1, .momentum = 0.9}},
    {"adadelta", {.kind = DPT_OPTIM_ADADELTA}},
    {"adam", {.kind = DPT_OPTIM_ADAM}},
    {"adam-amsgrad", {.kind = DPT_OPTIM_ADAM, .amsgrad = 1}},
    {"adamw", {.kind = DPT_OPTIM_ADAMW}},
    {"lars", {.kind = DPT_OPTIM_LARS, .lr = 1.0, .weight_decay = 5e-4}},
    {"lamb", {.kind = DPT_OPTIM_LAMB, .weight_decay = 0.01}},
};

static void fill(float *x, int64_t n, float scale) {
    uint32_t s = 12345u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u; /* LCG: the values do not matter, only finiteness */
        x[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
}

/* Bytes a single fused pass must move: params, grads and every slot read; params and every
 * slot written. LARS and LAMB make a second pass (norms), which this count does not credit. */
static double bytes_touched(const dpt_optim *o) {
    dpt_optim_state st;
    dpt_optim_state_export(o, &st);
    return (double)(3 + 2 * st.n_slots) * (double)st.n * sizeof(float);
}

static int run_size(int64_t n, int runs) {
    float *p = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(float)));
    float *g = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(float)));
    /* memcpy source and destination of up to 11 arrays' bytes (adam-amsgrad: 3 + 2*3 = 9) */
    size_t copy_cap = dpt_size_mul((size_t)n, 6 * sizeof(float));
    char *src = dpt_alloc_aligned(copy_cap), *dst = dpt_alloc_aligned(copy_cap);
    if (!p || !g || !src || !dst) {
        fprintf(stderr, "bench_optim: error: %s\n", dpt_last_error());
        return 1;
    }
    fill(p, n, 1.0f);
    fill(g, n, 1e-3f);
    memset(src, 1, copy_cap);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dpt_optim *o = NULL;
        if (dpt_optim_create(&o, &cases[c].cfg, n, NULL, 0) != DPT_OK) {
            fprintf(stderr, "bench_optim: error: %s\n", dpt_last_error());
            return 1;
        }
        double lr = dpt_optim_base_lr(o), bytes = bytes_touched(o);
        size_t half = (size_t)(bytes / 2);
        double t_step[MAX_RUNS], t_copy[MAX_RUNS];
        for (int r = -2; r < runs; r++) { /* two warm-up rounds */
            double t0 = now();
            dpt_optim_step(o, p, g, lr);
            double t1 = now();
            memcpy(dst, src, half);
            double t2 = now();
            if (r >= 0) {
                t_step[r] = t1 - t0;
                t_copy[r] = t2 - t1;
            }
        }
        double ms = dpt_bench_median(t_step, runs), mc = dpt_bench_median(t_copy, runs);
        printf("%-13s %6.1fM %3.0f MB %8.3f ms %7.2f GB/s   memcpy %8.3f ms %7.2f GB/s   "
               "%5.1f%%\n",
               cases[c].label, (double)n / 1e6, bytes / 1e6, ms * 1e3, bytes / ms / 1e9, mc * 1e3,
               bytes / mc / 1e9, 100.0 * mc / ms);
        fflush(stdout);
        dpt_optim_destroy(o);
    }
    dpt_free_aligned(p);
    dpt_free_aligned(g);
    dpt_free_aligned(src);
    dpt_free_aligned(dst);
    return 0;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 9;
    const char *wall = getenv("DPT_BENCH_WALL");
    use_wall_clock = wall && wall[0] == '1';
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench_optim: error: runs must be in 1..%d\n", MAX_RUNS);
        return 1;
    }
    int64_t default_sizes[] = {1000000, 3000000, 10000000};
    printf(
        "optimizer step vs memcpy of the same bytes (bytes = params + grads + state, read and "
        "written once);\nmedian of %d runs, %s time; last column = optimizer GB/s as %% of memcpy "
        "GB/s\n",
        runs, use_wall_clock ? "wall" : "thread CPU");
    printf("%-13s %7s %6s %11s %12s   %-33s\n", "kind", "params", "bytes", "step", "rate",
           "memcpy");
    if (argc > 2) {
        for (int i = 2; i < argc; i++) {
            long long n = atoll(argv[i]);
            if (n <= 0 || run_size(n, runs))
                return 1;
        }
    } else {
        for (int i = 0; i < 3; i++)
            if (run_size(default_sizes[i], runs))
                return 1;
    }
    return 0;
}
