/* Per-layer convolution benchmark (tests/bench, never under ctest): the conv layers of fmnist-cnn
 * and lenet5, one thread, each pass of each implementation timed alone (median of several runs),
 * beside a register-only FMA loop measured in the same run, and, with --torch FILE, the PyTorch
 * figures printed by scripts/bench-vs-pytorch.py. scripts/bench-conv.sh runs both. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/conv.h"
#include "dpt/tensor.h"
#include "timing.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* All times are CPU time of this thread (cores are shared); scripts/bench-vs-pytorch.py uses the
 * same clock (time.thread_time). */
#define cpu_now dpt_bench_thread_time

typedef struct {
    const char *name;
    int64_t C, O, S, k, pad;
} layer;

/* Same names and shapes as scripts/bench-vs-pytorch.py. */
static const layer layers[] = {
    {"fmnist.conv1", 1, 32, 28, 3, 1}, {"fmnist.conv2", 32, 32, 28, 3, 1},
    {"fmnist.conv3", 32, 64, 14, 3, 1}, {"fmnist.conv4", 64, 64, 14, 3, 1},
    {"lenet5.conv1", 1, 6, 28, 5, 2},   {"lenet5.conv2", 6, 16, 14, 5, 0},
};
enum { N_LAYERS = sizeof layers / sizeof layers[0], N_PASSES = 3, MAX_TORCH = 256 };
static const char *const pass_names[N_PASSES] = {"fwd", "bwd_data", "bwd_weight"};
static const dpt_conv_impl_id impl_ids[] = {DPT_CONV_IM2COL, DPT_CONV_AVX2, DPT_CONV_AVX512};
enum { N_IMPLS = sizeof impl_ids / sizeof impl_ids[0] };

/* ---- FMA peak: independent register-only FMA chains, nothing touches memory in the loop. ---- */
static volatile float sink;

#if defined(__x86_64__)
#if defined(__clang__) /* clang keeps the chains in memory unless told to unroll fully */
#define PEAK_UNROLL _Pragma("clang loop unroll(full)")
#else
#define PEAK_UNROLL _Pragma("GCC unroll 32")
#endif
/* peak_<isa>(iters): GFLOP/s of CHAINS independent FMA chains of LANES-wide vectors. */
#define PEAK_FN(name, isa, vec, LANES, CHAINS, set1, fmadd, store)                              \
    __attribute__((target(isa))) static double name(int64_t iters) {                         \
        vec c[CHAINS];                                                                             \
        const vec m = set1(sink * 0.0f + 0.999f), a = set1(sink * 0.0f + 1e-3f);                   \
        for (int i = 0; i < CHAINS; i++)                                                           \
            c[i] = set1((float)i);                                                                 \
        double t0 = cpu_now();                                                                     \
        for (int64_t it = 0; it < iters; it++) {                                                   \
            PEAK_UNROLL for (int i = 0; i < CHAINS; i++) c[i] = fmadd(c[i], m, a);                 \
        }                                                                                          \
        double t = cpu_now() - t0;                                                                 \
        float f[LANES], s = 0.0f;                                                                  \
        for (int i = 0; i < CHAINS; i++) {                                                         \
            store(f, c[i]);                                                                        \
            s += f[0];                                                                             \
        }                                                                                          \
        sink = s;                                                                                  \
        return 2.0 * LANES * CHAINS * (double)iters / t / 1e9;                                     \
    }
PEAK_FN(peak_avx512, "avx512f", __m512, 16, 24, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps)
PEAK_FN(peak_avx2, "avx2,fma", __m256, 8, 12, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps)
#endif

/* Median of `reps` runs of the peak loop (~20 ms each). */
static double peak(int isa512, int reps) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (isa512 ? !__builtin_cpu_supports("avx512f")
               : !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0.0;
    double v[32];
    reps = reps > 32 ? 32 : reps;
    for (int r = 0; r < reps; r++)
        v[r] = isa512 ? peak_avx512(2000000) : peak_avx2(4000000);
    return dpt_bench_median(v, reps);
#else
    (void)isa512;
    (void)reps;
    return 0.0;
#endif
}

/* ---- timing ---- */
typedef struct {
    const dpt_conv_impl *impl;
    const dpt_conv_geom *g;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db, *work;
} bench_bufs;

static void run_pass(const bench_bufs *s, int pass) {
    switch (pass) {
    case 0:
        s->impl->forward(s->y, s->x, s->w, s->b, s->g, s->work);
        break;
    case 1:
        s->impl->backward_data(s->dx, s->dy, s->w, s->g, s->work);
        break;
    default:
        s->impl->backward_weight(s->dw, s->db, s->dy, s->x, s->g, s->work);
        break;
    }
}

/* Median seconds of one call: at least `reps` timed runs and `min_time` seconds, after a warm-up. */
static double time_pass(const bench_bufs *s, int pass, int reps, double min_time) {
    enum { MAX_RUNS = 1000 };
    static double t[MAX_RUNS];
    int n = 0;
    run_pass(s, pass);
    double start = cpu_now();
    while (n < MAX_RUNS && (n < reps || cpu_now() - start < min_time)) {
        double t0 = cpu_now();
        run_pass(s, pass);
        t[n++] = cpu_now() - t0;
    }
    return dpt_bench_median(t, n);
}

static void fill(float *p, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
    }
}

static float *alloc_floats(int64_t n) {
    float *p = dpt_alloc_aligned((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_conv_simd: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- PyTorch figures: lines "torch LAYER N PASS GFLOPS SECONDS" ---- */
typedef struct {
    char layer[32];
    int64_t N;
    int pass;
    double gflops;
} torch_row;
static torch_row torch_rows[MAX_TORCH];
static int n_torch;

static void read_torch(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_conv_simd: %s: cannot open\n", path);
        exit(1);
    }
    char line[256], name[32], pass[32];
    long long N;
    double gf, sec;
    while (fgets(line, sizeof line, f) && n_torch < MAX_TORCH) {
        if (sscanf(line, "torch %31s %lld %31s %lf %lf", name, &N, pass, &gf, &sec) != 5)
            continue;
        for (int p = 0; p < N_PASSES; p++)
            if (!strcmp(pass, pass_names[p])) {
                torch_row *r = &torch_rows[n_torch++];
                snprintf(r->layer, sizeof r->layer, "%s", name);
                r->N = N;
                r->pass = p;
                r->gflops = gf;
            }
    }
    fclose(f);
}

static double torch_gflops(const char *name, int64_t N, int pass) {
    for (int i = 0; i < n_torch; i++)
        if (!strcmp(torch_rows[i].layer, name) && torch_rows[i].N == N && torch_rows[i].pass == pass)
            return torch_rows[i].gflops;
    return 0.0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_conv_simd [--batches 64,256] [--reps N] [--min-time SEC]\n"
                    "                       [--only LAYER,...] [--impls im2col,avx2,avx512]\n"
                    "                       [--passes fwd,bwd_data,bwd_weight] [--torch FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int64_t batches[8] = {64, 256};
    int n_batches = 2, reps = 7;
    double min_time = 0.2;
    const char *only = NULL, *impls = NULL, *passes = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            n_batches = 0;
            for (char *s = argv[++i]; *s && n_batches < 8;) {
                char *end;
                batches[n_batches++] = strtoll(s, &end, 10);
                s = *end == ',' ? end + 1 : end;
                if (end == s && *s)
                    usage();
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--impls") && i + 1 < argc) {
            impls = argv[++i];
        } else if (!strcmp(argv[i], "--passes") && i + 1 < argc) {
            passes = argv[++i];
        } else if (!strcmp(argv[i], "--torch") && i + 1 < argc) {
            read_torch(argv[++i]);
        } else {
            usage();
        }
    }
    if (reps < 1)
        reps = 1;
    const char *blas = getenv("OPENBLAS_CORETYPE");
    double pk512 = peak(1, 5), pk2 = peak(0, 5);
    printf("# one thread, thread CPU time; medians of >= %d runs; OPENBLAS_CORETYPE=%s\n", reps, blas ? blas : "");
    printf("# measured FMA peak: avx512 %.1f GFLOP/s, avx2 %.1f GFLOP/s; %%pk = %% of the avx512 "
           "peak\n",
           pk512, pk2);
    printf("%-13s %4s %-10s", "layer", "N", "pass");
    for (int k = 0; k < N_IMPLS; k++)
        printf(" %8s %5s", impl_ids[k] == DPT_CONV_IM2COL ? "im2col"
                           : impl_ids[k] == DPT_CONV_AVX2 ? "avx2"
                                                          : "avx512",
               "%pk");
    /* The ratio is dptrain's own choice on this CPU (what `dptrain train` runs) over PyTorch. */
    const dpt_conv_impl *chosen = dpt_conv_default();
    printf(" %8s %5s %9s\n", "torch", "%pk", "dpt/pt");
    double min_ratio = 0.0;
    char min_row[96] = "";
    for (int bi = 0; bi < n_batches; bi++)
        for (int li = 0; li < N_LAYERS; li++) {
            const layer *L = &layers[li];
            if (only && !strstr(only, L->name) && !strstr(L->name, only))
                continue;
            dpt_conv_geom g = {.dims = 2, .N = batches[bi], .C = L->C, .O = L->O,
                               .in = {1, L->S, L->S}, .k = {1, L->k, L->k},
                               .pad = {0, L->pad, L->pad}, .has_bias = 1};
            if (dpt_conv_geom_check(&g) != DPT_OK) {
                fprintf(stderr, "bench_conv_simd: bad geometry for %s\n", L->name);
                return 1;
            }
            size_t ws = 0;
            for (int k = 0; k < N_IMPLS; k++) {
                const dpt_conv_impl *im = dpt_conv_impl_get(impl_ids[k]);
                if (im && im->workspace(&g) > ws)
                    ws = im->workspace(&g);
            }
            bench_bufs s = {.g = &g};
            s.x = alloc_floats(dpt_conv_x_count(&g));
            s.dx = alloc_floats(dpt_conv_x_count(&g));
            s.w = alloc_floats(dpt_conv_w_count(&g));
            s.dw = alloc_floats(dpt_conv_w_count(&g));
            s.b = alloc_floats(g.O);
            s.db = alloc_floats(g.O);
            s.y = alloc_floats(dpt_conv_y_count(&g));
            s.dy = alloc_floats(dpt_conv_y_count(&g));
            s.work = alloc_floats((int64_t)ws);
            fill(s.x, dpt_conv_x_count(&g), 1);
            fill(s.w, dpt_conv_w_count(&g), 2);
            fill(s.b, g.O, 3);
            fill(s.dy, dpt_conv_y_count(&g), 4);
            const double gflop = dpt_conv_flops(&g) / 1e9;
            for (int p = 0; p < N_PASSES; p++) {
                if (passes && !strstr(passes, pass_names[p]))
                    continue;
                printf("%-13s %4lld %-10s", L->name, (long long)g.N, pass_names[p]);
                double mine = 0.0;
                for (int k = 0; k < N_IMPLS; k++) {
                    s.impl = dpt_conv_impl_get(impl_ids[k]);
                    if (s.impl && impls && !strstr(impls, s.impl->name))
                        s.impl = NULL;
                    if (!s.impl) {
                        printf(" %8s %5s", "-", "-");
                        continue;
                    }
                    const double gf = gflop / time_pass(&s, p, reps, min_time);
                    if (s.impl == chosen)
                        mine = gf;
                    printf(" %8.1f %4.0f%%", gf, pk512 > 0 ? 100.0 * gf / pk512 : 0.0);
                    fflush(stdout);
                }
                const double pt = torch_gflops(L->name, g.N, p);
                if (pt > 0 && mine > 0) {
                    printf(" %8.1f %4.0f%% %8.2fx\n", pt, pk512 > 0 ? 100.0 * pt / pk512 : 0.0,
                           mine / pt);
                    if (min_ratio == 0.0 || mine / pt < min_ratio) {
                        min_ratio = mine / pt;
                        snprintf(min_row, sizeof min_row, "%s N=%lld %s", L->name,
                                 (long long)g.N, pass_names[p]);
                    }
                } else
                    printf(" %8s %5s %9s\n", "-", "-", "-");
            }
            dpt_free_aligned(s.x);
            dpt_free_aligned(s.dx);
            dpt_free_aligned(s.w);
            dpt_free_aligned(s.dw);
            dpt_free_aligned(s.b);
            dpt_free_aligned(s.db);
            dpt_free_aligned(s.y);
            dpt_free_aligned(s.dy);
            dpt_free_aligned(s.work);
        }
    if (min_ratio > 0)
        printf("minimum %s/PyTorch ratio: %.2fx (%s)\n", chosen->name, min_ratio, min_row);
    else
        printf("minimum %s/PyTorch ratio: - (no PyTorch figures)\n", chosen->name);
    return 0;
}
