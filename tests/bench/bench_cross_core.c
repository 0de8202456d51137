/* What a thread pays to read data another core wrote (docs/threads.md, "Shares that follow the
 * cores"): a buffer is written by a thread pinned to the first CPU of this process's affinity,
 * then summed by a thread pinned to the same CPU and by one pinned to the second CPU, in turn,
 * at sizes from L2 to beyond the last-level cache. Prints GB/s of each read (medians of several
 * rounds) and their ratio: why every per-image pass of a model cuts the batch where the others do.
 * Usage: bench_cross_core [rounds]   (default 7); needs two CPUs in its affinity. */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_* */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "dpt/tensor.h"
#include "dpt/timer.h"
#include "timing.h"

enum { MAX_ROUNDS = 51 };

typedef struct {
    int cpu;
    const float *x;
    size_t n;
    double seconds;
    float sum; /* kept, so that the reads are not optimized away */
} reader;

static void pin(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
}

/* Eight independent sums, so that the loop is bound by loads, not by one addition chain. */
static void *read_all(void *arg) {
    reader *r = arg;
    pin(r->cpu);
    float s[8] = {0};
    const double t0 = dpt_now();
    for (size_t i = 0; i + 8 <= r->n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += r->x[i + (size_t)k];
    r->seconds = dpt_now() - t0;
    r->sum = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    return NULL;
}

static double read_on(int cpu, const float *x, size_t n, float *sink) {
    reader r = {.cpu = cpu, .x = x, .n = n};
    pthread_t t;
    if (pthread_create(&t, NULL, read_all, &r) != 0) {
        fprintf(stderr, "bench_cross_core: cannot start a thread\n");
        exit(1);
    }
    pthread_join(t, NULL);
    *sink += r.sum;
    return (double)(n * sizeof *x) / r.seconds / 1e9;
}

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_cross_core [rounds 1..%d]\n", MAX_ROUNDS);
        return 2;
    }
    cpu_set_t set;
    int cpus[2], found = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
            if (CPU_ISSET(c, &set))
                cpus[found++] = c;
    if (found < 2) {
        fprintf(stderr, "bench_cross_core: needs two CPUs in its affinity, has %d\n", found);
        return 1;
    }
    static const int mib[] = {1, 2, 4, 8, 16, 64};
    float sink = 0;
    printf("# written on CPU %d; read on CPU %d (same) and CPU %d (other); medians of %d rounds\n",
           cpus[0], cpus[0], cpus[1], rounds);
    printf("%8s %12s %12s %8s\n", "MiB", "same GB/s", "other GB/s", "other/same");
    for (size_t k = 0; k < sizeof mib / sizeof mib[0]; k++) {
        const size_t n = (size_t)mib[k] << 18; /* floats */
        float *x = dpt_alloc_aligned(n * sizeof *x);
        if (!x) {
            fprintf(stderr, "bench_cross_core: out of memory\n");
            return 1;
        }
        double same[MAX_ROUNDS], other[MAX_ROUNDS];
        pin(cpus[0]);
        for (int r = 0; r < rounds; r++) {
            for (size_t i = 0; i < n; i++) /* written on cpus[0] before each read */
                x[i] = (float)(i & 1023) + (float)r;
            same[r] = read_on(cpus[0], x, n, &sink);
            for (size_t i = 0; i < n; i++)
                x[i] = (float)(i & 1023) + (float)r;
            other[r] = read_on(cpus[1], x, n, &sink);
        }
        const double s = dpt_bench_median(same, rounds), o = dpt_bench_median(other, rounds);
        printf("%8d %12.1f %12.1f %7.2fx\n", mib[k], s, o, o / s);
        dpt_free_aligned(x);
    }
    if (sink == 1234.5f) /* never: keeps the sums alive */
        printf("\n");
    return 0;
}
