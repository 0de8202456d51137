/* Allreduce benchmark (comm), on demand: mpirun -np 2 bench_allreduce [--steps N] [--compute-ms T]
 * 1. OSU-style MPI_Allreduce (float SUM) latency and bandwidth, 4 B .. 16 MiB: warm-up, then the
 *    median over 5 batches of each batch's slowest-rank mean latency.
 * 2. One 1.2 M-float gradient buffer (a CNN-like segment list) with simulated backward compute
 *    (a spin of T ms split over the layers): blocking allreduce after backward vs buckets started
 *    from the backward hook, for several bucket caps; medians over N steps, ratios against the
 *    blocking baseline of the same run. Knows no layers: the "model" is a segment list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timing.h"
#include "dpt/comm.h"
#include "dpt/tensor.h"
#include "dpt/timer.h"

#define BATCHES 5


/* Slowest rank's value: a collective is as fast as its last rank. */
static double max_over(MPI_Comm comm, double x) {
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, comm);
    return x;
}

static void bench_latency(const dpt_group *g) {
    const int64_t max_bytes = 16 << 20;
    float *buf = dpt_alloc_aligned((size_t)max_bytes);
    if (!buf) {
        fprintf(stderr, "bench_allreduce: out of memory\n");
        return;
    }
    if (g->world_rank == 0) {
        printf("# MPI_Allreduce, MPI_FLOAT, MPI_SUM, %d ranks (median of %d batches; busbw = "
               "algbw * 2(R-1)/R)\n",
               g->size, BATCHES);
        printf("%12s %8s %12s %12s %12s\n", "bytes", "iters", "latency_us", "algbw_MB/s",
               "busbw_MB/s");
    }
    for (int64_t bytes = 4; bytes <= max_bytes; bytes *= 2) {
        int count = (int)(bytes / 4);
        int iters = (int)(((int64_t)1 << 24) / bytes);
        iters = iters < 10 ? 10 : iters > 1000 ? 1000 : iters;
        for (int i = 0; i < iters / 10 + 2; i++) /* warm-up */
            MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, g->comm);
        double t[BATCHES];
        for (int b = 0; b < BATCHES; b++) {
            memset(buf, 0, (size_t)bytes); /* zeros stay zeros: no overflow, no denormals */
            MPI_Barrier(g->comm);
            double t0 = dpt_now();
            for (int i = 0; i < iters; i++)
                MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, g->comm);
            t[b] = max_over(g->comm, (dpt_now() - t0) / iters);
        }
        double lat = dpt_bench_median(t, BATCHES);
        double algbw = (double)bytes / lat / 1e6;
        double busbw = algbw * 2.0 * (g->size - 1) / g->size;
        if (g->world_rank == 0)
            printf("%12lld %8d %12.2f %12.1f %12.1f\n", (long long)bytes, iters, lat * 1e6, algbw,
                   busbw);
    }
    dpt_free_aligned(buf);
}

/* Backward compute stand-in: floating-point work on an L1-resident array until `seconds` pass. */
static float sink;
static void spin(double seconds) {
    float a[256];
    for (int i = 0; i < 256; i++)
        a[i] = (float)i * 1e-3f;
    double t0 = dpt_now();
    do {
        for (int r = 0; r < 64; r++)
            for (int i = 0; i < 256; i++)
                a[i] = a[i] * 0.999f + 1e-4f;
    } while (dpt_now() - t0 < seconds);
    sink += a[17];
}

/* A CNN-like parameter list of 1.2 M floats: (weight, bias) per layer, the last dense layer
 * taking the rest. */
enum { N_LAYERS = 8 };
static const int64_t layer_weights[N_LAYERS] = {864, 18432, 73728, 147456, 294912, 294912, 0, 5120};
static const int64_t layer_biases[N_LAYERS] = {32, 64, 128, 128, 256, 256, 512, 10};
#define TOTAL 1200000

typedef struct {
    double step, wait;
    int buckets;
} step_result;

/* mode: 0 compute only (no communication), 1 blocking, 2 overlapped buckets of `cap` bytes. */
static step_result bench_mode(const dpt_group *g, float *grad, const dpt_comm_segment *segs,
                              int n_segs, const int *layer_first_seg, int64_t cap, int mode,
                              double compute_s, int steps) {
    dpt_bucketer b;
    step_result res = {0};
    dpt_status st =
        dpt_bucketer_init(&b, g, grad, TOTAL, segs, n_segs, &(dpt_bucketer_cfg){cap, mode == 1});
    if (st != DPT_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", dpt_last_error());
        return res;
    }
    double *ts = malloc((size_t)steps * sizeof *ts), *tw = malloc((size_t)steps * sizeof *tw);
    for (int s = -2; s < steps; s++) { /* two warm-up steps */
        for (int64_t i = 0; i < TOTAL; i++)
            grad[i] = 1e-3f;
        MPI_Barrier(g->comm);
        double t0 = dpt_now();
        if (mode == 0) {
            for (int l = N_LAYERS - 1; l >= 0; l--)
                spin(compute_s / N_LAYERS);
        } else {
            dpt_bucketer_begin(&b, 1.0 / (64.0 * g->size));
            for (int l = N_LAYERS - 1; l >= 0; l--) { /* backward: last layer first */
                spin(compute_s / N_LAYERS);
                dpt_bucketer_mark_from(&b, segs[layer_first_seg[l]].offset);
                dpt_bucketer_progress(&b);
            }
            if ((st = dpt_bucketer_wait(&b)) != DPT_OK)
                fprintf(stderr, "bench_allreduce: %s\n", dpt_last_error());
        }
        double step = max_over(g->comm, dpt_now() - t0);
        double wait = max_over(g->comm, mode ? b.stats.wait_seconds : 0.0);
        if (s >= 0) {
            ts[s] = step;
            tw[s] = wait;
        }
    }
    res.step = dpt_bench_median(ts, steps);
    res.wait = dpt_bench_median(tw, steps);
    res.buckets = mode ? b.n_buckets : 0;
    free(ts);
    free(tw);
    dpt_bucketer_free(&b);
    return res;
}

static void bench_overlap(const dpt_group *g, double compute_s, int steps) {
    dpt_comm_segment segs[2 * N_LAYERS];
    int first[N_LAYERS], n_segs = 0;
    int64_t off = 0, rest = TOTAL;
    for (int l = 0; l < N_LAYERS; l++)
        rest -= layer_weights[l] + layer_biases[l];
    for (int l = 0; l < N_LAYERS; l++) {
        int64_t w = layer_weights[l] ? layer_weights[l] : rest;
        first[l] = n_segs;
        segs[n_segs++] = (dpt_comm_segment){off, w};
        off += w;
        segs[n_segs++] = (dpt_comm_segment){off, layer_biases[l]};
        off += layer_biases[l];
    }
    float *grad = dpt_alloc_aligned(TOTAL * sizeof *grad);
    if (!grad) {
        fprintf(stderr, "bench_allreduce: out of memory\n");
        return;
    }
    if (g->world_rank == 0) {
        printf("\n# %d floats (%.1f MB) in %d segments, %d ranks, simulated backward %.1f ms over "
               "%d layers, median of %d steps (slowest rank)\n",
               TOTAL, TOTAL * 4e-6, n_segs, g->size, compute_s * 1e3, N_LAYERS, steps);
        printf("# comm_ms = step - compute-only step; speedup = blocking step / step\n");
        printf("%-12s %7s %8s %9s %9s %9s %8s\n", "mode", "cap_MB", "buckets", "step_ms", "wait_ms",
               "comm_ms", "speedup");
    }
    step_result compute = bench_mode(g, grad, segs, n_segs, first, 0, 0, compute_s, steps);
    step_result base = bench_mode(g, grad, segs, n_segs, first, 0, 1, compute_s, steps);
    const double caps_mb[] = {0.25, 1.0, 2.0, 25.0};
    for (int c = -2; c < (int)(sizeof caps_mb / sizeof caps_mb[0]); c++) {
        step_result r = c == -2 ? compute : base;
        double cap_mb = 0.0;
        if (c >= 0) {
            cap_mb = caps_mb[c];
            r = bench_mode(g, grad, segs, n_segs, first, (int64_t)(cap_mb * (1 << 20)), 2,
                           compute_s, steps);
        }
        const char *name = c == -2 ? "compute-only" : c == -1 ? "blocking" : "overlapped";
        if (g->world_rank == 0)
            printf("%-12s %7.2f %8d %9.2f %9.2f %9.2f %8.2f\n", name, cap_mb, r.buckets,
                   r.step * 1e3, r.wait * 1e3, (r.step - compute.step) * 1e3, base.step / r.step);
    }
    dpt_free_aligned(grad);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int steps = 20;
    double compute_ms = 20.0;
    int skip_latency = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--compute-ms") && i + 1 < argc)
            compute_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-latency"))
            skip_latency = 1;
        else {
            fprintf(stderr, "usage: bench_allreduce [--steps N] [--compute-ms T] [--no-latency]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (steps < 1)
        steps = 1;
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, NULL);
    if (st == DPT_OK) {
        if (!skip_latency)
            bench_latency(&g);
        bench_overlap(&g, compute_ms * 1e-3, steps);
    } else {
        fprintf(stderr, "bench_allreduce: %s\n", dpt_last_error());
    }
    dpt_group_free(&g);
    MPI_Finalize();
    return st == DPT_OK ? 0 : 1;
}
