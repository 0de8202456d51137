/* The thread pool (core): T - 1 workers started once, woken per job by a generation counter.
 * A waiting thread polls briefly (jobs of one training step follow each other within
 * microseconds), yielding its core to anyone else runnable, and then sleeps on a condition
 * variable, so an idle pool costs no CPU while MPI waits or other ranks share the cores. Knows
 * nothing about what the units compute; for share jobs it keeps, per kind of job, each thread's
 * share of the work, learnt from their times, and lets the two threads beside each cut claim the
 * blocks around it. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dpt/pool.h"

/* Before sleeping, a waiting thread polls SPIN times with a pause (about 80 us: the serial code
 * between the jobs of one step), then YIELDS times with sched_yield, which keeps it responsive
 * for about 400 us more on an idle core (a partner's late finish, the loss and the optimizer's
 * norms) and gives the core away at once to any other runnable thread: ranks x threads above the
 * cores, or a neighbour process. Sleeping after 4000 pauses alone, workers fell asleep about 11
 * times a fmnist-cnn step and lenet5 trained 4-11 % slower at 2 threads; 12000 pauses alone
 * doubled test_model_threads' time (3 threads on 2 cores). With the yields: lenet5 +4 %,
 * fmnist-cnn unchanged (medians of 5, interleaved). */
enum { SPIN = 4000, YIELDS = 300 };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void back_off(int i) {
    if (i < SPIN)
        cpu_relax();
    else
        sched_yield();
}

/* Kinds of share jobs whose balance is remembered (a model has a few per layer type). Further
 * kinds get equal shares. */
enum { KINDS = 64 };

/* Each share job moves a thread's share this far towards what its last times asked for: a few
 * jobs follow a change of a core's speed, one preempted piece does not swing the next cut. */
#define SHARE_STEP 0.25
/* A thread keeps at least this fraction of an equal share, so that its speed stays measured. */
#define SHARE_FLOOR 0.05
/* Pieces shorter than this are mostly start-up cost: their times teach nothing about speed. */
#define MIN_TIMED_SECONDS 5e-6

static double monotonic_seconds(int thread) {
    (void)thread;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double (*_Atomic pool_clock)(int thread) = monotonic_seconds;

void dpt_pool_set_clock(double (*clock)(int thread)) {
    pool_clock = clock ? clock : monotonic_seconds;
}

/* The unclaimed blocks [lo, hi) of the region around a cut: lo in the low 32 bits of one word, so
 * that the threads on either side claim from their ends with one compare-and-swap. */
typedef struct {
    _Atomic uint64_t span;
    int64_t piece; /* blocks per claim */
} region;

static uint64_t span_of(int64_t lo, int64_t hi) {
    return (uint64_t)lo | (uint64_t)hi << 32;
}

/* Takes up to `piece` blocks from the low end (from_low) or the high end of r into [*b0, *b1);
 * 0 when nothing is left. */
static int claim(region *r, int from_low, int64_t *b0, int64_t *b1) {
    uint64_t span = atomic_load_explicit(&r->span, memory_order_relaxed);
    for (;;) {
        const int64_t lo = (int64_t)(span & 0xffffffffu), hi = (int64_t)(span >> 32);
        if (lo >= hi)
            return 0;
        const int64_t n = hi - lo < r->piece ? hi - lo : r->piece;
        const uint64_t next = from_low ? span_of(lo + n, hi) : span_of(lo, hi - n);
        if (atomic_compare_exchange_weak_explicit(&r->span, &span, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *b0 = from_low ? lo : hi - n;
            *b1 = from_low ? lo + n : hi;
            return 1;
        }
    }
}

struct dpt_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_uint_fast64_t gen; /* job number; a change tells the workers to start */
    atomic_int pending;       /* workers still running the current job */
    atomic_int stop;
    dpt_pool_fn fn;
    void *ctx;
    int64_t units;
    atomic_int_fast64_t next; /* the next unit to claim */
    /* share jobs: the caller places the cuts (cut[0..T], its own scratch); thread t runs its bulk
     * [bulk[2t], bulk[2t + 1]) whole, then claims pieces of the regions around its cuts, and
     * records its blocks in ran[t] and their time in seconds[t] */
    dpt_pool_share_fn share_fn;
    int64_t *cut, *bulk, *ran;
    double *seconds;
    region *regions; /* regions[t] lies around cut[t], between threads t - 1 and t (1 <= t < T) */
    const void *kind[KINDS];
    double *share; /* KINDS x threads: the fractions of a kind's work given to each thread */
};

static void run_piece(dpt_pool *p, int t, int64_t b0, int64_t b1) {
    if (b1 == b0)
        return;
    const double t0 = pool_clock(t);
    p->share_fn(p->ctx, b0, b1, t);
    p->seconds[t] += pool_clock(t) - t0;
    p->ran[t] += b1 - b0;
}

/* The bulk, then the region above it from the bottom up and the one below from the top down: the
 * blocks a thread runs stay one contiguous range, next to its neighbours' (the data a thread
 * wrote in one pass is what it reads in the next), and where the range ends follows how fast
 * each thread actually was on this job. */
static void run_share(dpt_pool *p, int t) {
    const int T = p->threads;
    p->seconds[t] = 0;
    p->ran[t] = 0;
    run_piece(p, t, p->bulk[2 * t], p->bulk[2 * t + 1]);
    int64_t b0, b1;
    while (t + 1 < T && claim(&p->regions[t + 1], 1, &b0, &b1))
        run_piece(p, t, b0, b1);
    while (t > 0 && claim(&p->regions[t], 0, &b0, &b1))
        run_piece(p, t, b0, b1);
}

/* Claims units in increasing order until none is left: a thread slowed by another process on its
 * core takes fewer of them, instead of holding up the job's end. */
static void run_units(dpt_pool *p, int t) {
    if (p->share_fn) {
        run_share(p, t);
        return;
    }
    for (;;) {
        const int64_t u = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (u >= p->units)
            return;
        p->fn(p->ctx, u, t);
    }
}

typedef struct {
    dpt_pool *p;
    int t;
} worker_arg;

static void *worker(void *arg) {
    dpt_pool *p = ((worker_arg *)arg)->p;
    const int t = ((worker_arg *)arg)->t;
    free(arg);
    uint_fast64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed) && spins < SPIN + YIELDS)
            back_off(spins++);
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_relaxed))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_units(p, t);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

dpt_status dpt_pool_create(dpt_pool **out, int threads) {
    *out = NULL;
    if (threads < 1 || threads > DPT_POOL_MAX_THREADS)
        return dpt_errorf(DPT_EINVAL, "thread count %d is not in [1, %d]", threads,
                          DPT_POOL_MAX_THREADS);
    dpt_pool *p = calloc(1, sizeof *p);
    if (!p)
        return dpt_errorf(DPT_ENOMEM, "thread pool: cannot allocate");
    p->threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (threads == 1) {
        *out = p;
        return DPT_OK;
    }
    p->tid = calloc((size_t)threads, sizeof *p->tid);
    p->cut = calloc((size_t)threads + 1, sizeof *p->cut);
    p->bulk = calloc(2 * (size_t)threads, sizeof *p->bulk);
    p->ran = calloc((size_t)threads, sizeof *p->ran);
    p->seconds = calloc((size_t)threads, sizeof *p->seconds);
    p->regions = calloc((size_t)threads, sizeof *p->regions);
    p->share = calloc((size_t)KINDS * (size_t)threads, sizeof *p->share);
    if (!p->tid || !p->cut || !p->bulk || !p->ran || !p->seconds || !p->regions || !p->share) {
        dpt_pool_destroy(p);
        return dpt_errorf(DPT_ENOMEM, "thread pool: cannot allocate");
    }
    for (int t = 1; t < threads; t++) {
        worker_arg *a = malloc(sizeof *a);
        int err = a ? 0 : ENOMEM;
        if (a) {
            *a = (worker_arg){p, t};
            err = pthread_create(&p->tid[t], NULL, worker, a);
            if (err)
                free(a);
        }
        if (err) {
            dpt_pool_destroy(p); /* joins the workers started so far (p->threads of them) */
            return dpt_errorf(err == ENOMEM ? DPT_ENOMEM : DPT_EIO,
                              "thread pool: cannot start thread %d of %d: %s", t + 1, threads,
                              strerror(err));
        }
        p->threads = t + 1;
    }
    *out = p;
    return DPT_OK;
}

void dpt_pool_destroy(dpt_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->threads; t++)
        pthread_join(p->tid[t], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->tid);
    free(p->cut);
    free(p->bulk);
    free(p->ran);
    free(p->seconds);
    free(p->regions);
    free(p->share);
    free(p);
}

int dpt_pool_threads(const dpt_pool *p) {
    return p ? p->threads : 1;
}

/* Wakes the workers for the job set up in p, takes the caller's part and waits for the rest. */
static void run_job(dpt_pool *p) {
    atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_units(p, 0);
    for (int spins = 0;
         atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && spins < SPIN + YIELDS;)
        back_off(spins++);
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void dpt_pool_run(dpt_pool *p, int64_t units, dpt_pool_fn fn, void *ctx) {
    DPT_ASSERT(units >= 0 && fn);
    if (!p || p->threads == 1 || units <= 1) {
        for (int64_t u = 0; u < units; u++)
            fn(ctx, u, 0);
        return;
    }
    p->fn = fn;
    p->share_fn = NULL;
    p->ctx = ctx;
    p->units = units;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    run_job(p);
}

/* The row of shares remembered for `kind` (equal shares when it is new), or NULL when the table
 * is full. */
static double *shares_of(dpt_pool *p, const void *kind) {
    const int T = p->threads;
    const size_t h = ((uintptr_t)kind >> 4) * 0x9E3779B97F4A7C15u >> 58; /* 6 bits: KINDS */
    for (size_t k = 0; k < KINDS; k++) {
        const size_t i = (h + k) % KINDS;
        if (p->kind[i] == kind)
            return p->share + i * (size_t)T;
        if (!p->kind[i]) {
            p->kind[i] = kind;
            for (int t = 0; t < T; t++)
                p->share[i * (size_t)T + (size_t)t] = 1.0 / T;
            return p->share + i * (size_t)T;
        }
    }
    return NULL;
}

/* Moves each thread's share towards its speed on the job just run (blocks per second, as a
 * fraction of all threads' speeds). Skipped when a piece was empty or too short to time. */
static void learn_shares(dpt_pool *p, double *share) {
    const int T = p->threads;
    double speed_sum = 0;
    for (int t = 0; t < T; t++) {
        if (p->seconds[t] < MIN_TIMED_SECONDS)
            return;
        speed_sum += (double)p->ran[t] / p->seconds[t];
    }
    double sum = 0;
    for (int t = 0; t < T; t++) {
        const double asked = (double)p->ran[t] / p->seconds[t] / speed_sum;
        share[t] += SHARE_STEP * (asked - share[t]);
        if (share[t] < SHARE_FLOOR / T)
            share[t] = SHARE_FLOOR / T;
        sum += share[t];
    }
    for (int t = 0; t < T; t++)
        share[t] /= sum;
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

void dpt_pool_run_shares(dpt_pool *p, const void *kind, int64_t blocks, int64_t slack,
                         dpt_pool_share_fn fn, void *ctx) {
    DPT_ASSERT(blocks >= 0 && blocks <= UINT32_MAX && slack >= 0 && fn);
    if (blocks == 0)
        return;
    if (!p || p->threads == 1) {
        fn(ctx, 0, blocks, 0);
        return;
    }
    const int T = p->threads;
    double *share = shares_of(p, kind);
    /* Cuts at the rounded running sums of the shares, kept in order and inside [0, blocks]. */
    double before = 0;
    p->cut[0] = 0;
    for (int t = 0; t < T - 1; t++) {
        before += share ? share[t] : 1.0 / T;
        int64_t c = (int64_t)(before * (double)blocks + 0.5);
        c = c < p->cut[t] ? p->cut[t] : c;
        p->cut[t + 1] = c > blocks ? blocks : c;
    }
    p->cut[T] = blocks;
    /* Around each inner cut, up to `slack` blocks on either side (at most half of each share) go
     * to a region that both neighbours claim from, a quarter of it at a time; the rest of a share
     * is its thread's bulk. */
    p->bulk[0] = 0;
    p->bulk[2 * T - 1] = blocks;
    for (int t = 1; t < T; t++) {
        const int64_t below = min64(slack, (p->cut[t] - p->cut[t - 1]) / 2);
        const int64_t above = min64(slack, (p->cut[t + 1] - p->cut[t]) / 2);
        p->bulk[2 * t - 1] = p->cut[t] - below;
        p->bulk[2 * t] = p->cut[t] + above;
        p->regions[t].piece = (below + above + 3) / 4 > 1 ? (below + above + 3) / 4 : 1;
        atomic_store_explicit(&p->regions[t].span, span_of(p->cut[t] - below, p->cut[t] + above),
                              memory_order_relaxed);
    }
    p->share_fn = fn; /* selects share mode in run_units */
    p->ctx = ctx;
    run_job(p);
    if (share)
        learn_shares(p, share);
}

dpt_status dpt_pool_threads_from_env(int *threads) {
    *threads = 1;
    const char *v = getenv("DPT_THREADS");
    if (!v || !*v)
        return DPT_OK;
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno || n < 1 || n > DPT_POOL_MAX_THREADS)
        return dpt_errorf(DPT_EINVAL, "DPT_THREADS: '%s' is not an integer in [1, %d]", v,
                          DPT_POOL_MAX_THREADS);
    *threads = (int)n;
    return DPT_OK;
}

int dpt_pool_cpus_available(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
