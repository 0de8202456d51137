/* A fixed pool of worker threads for the threads inside one rank (core). A job is `units`
 * independent pieces of work, claimed in increasing order by whichever thread is free (the calling
 * thread is thread 0), so a thread slowed by another process on its core takes fewer of them; or
 * (dpt_pool_run_shares) one range per thread, sized by the threads' measured speeds.
 * What a unit computes must depend neither on T nor on the thread that runs it (only its scratch
 * may be the thread's): callers fix the partition into units (images, channel blocks, parameter
 * ranges) and give every reduction one partial per unit, summed in unit order, so results are
 * bit-identical for any thread count.
 *
 * pthreads rather than OpenMP: the partition is ours, idle workers poll only briefly (yielding
 * their core to anyone else runnable) before sleeping on a condition variable (libgomp's spinning
 * would fight MPI progress and the other ranks of an oversubscribed node), and ranks x threads
 * stays an explicit count. */
#ifndef DPT_POOL_H
#define DPT_POOL_H

#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dpt_pool dpt_pool;

/* Runs unit `unit` on thread `thread` (0 <= thread < dpt_pool_threads). */
typedef void (*dpt_pool_fn)(void *ctx, int64_t unit, int thread);

#define DPT_POOL_MAX_THREADS 1024

/* Starts threads - 1 workers (1 <= threads <= DPT_POOL_MAX_THREADS). threads = 1 starts none and
 * runs every job on the caller. DPT_EINVAL, DPT_ENOMEM or DPT_EIO (thread creation) on failure,
 * *out NULL then. */
dpt_status dpt_pool_create(dpt_pool **out, int threads);
void dpt_pool_destroy(dpt_pool *p); /* NULL is fine; joins the workers */

/* 1 for NULL. */
int dpt_pool_threads(const dpt_pool *p);

/* Calls fn(ctx, u, t) for every u in [0, units), t the thread that claimed u, and returns when
 * all have returned. p NULL runs everything on the caller as thread 0, in order. Not reentrant:
 * one job at a time, from one calling thread. */
void dpt_pool_run(dpt_pool *p, int64_t units, dpt_pool_fn fn, void *ctx);

/* Calls fn(ctx, start, end, t) on the threads t so that every block of [0, blocks) runs once and
 * the blocks each thread runs form one range, the ranges in thread order (some possibly empty).
 * The cuts between the ranges are first placed by each thread's speed on the earlier jobs of the
 * same `kind` (any address that names the kind of work, e.g. the function that does it): a thread
 * whose core another process slows gets less. With slack 0, that is all: one call per thread.
 * Otherwise up to `slack` blocks on either side of each cut (at most half of each share) are
 * claimed in pieces by whichever of the two neighbours gets there first, after its bulk: a
 * thread may get a few calls, and a late one loses blocks to its neighbour on this very job.
 * Only for work whose result does not depend on where the cuts fall. One thread (or p NULL):
 * one call fn(ctx, 0, blocks, 0). blocks <= UINT32_MAX. */
typedef void (*dpt_pool_share_fn)(void *ctx, int64_t start, int64_t end, int thread);
void dpt_pool_run_shares(dpt_pool *p, const void *kind, int64_t blocks, int64_t slack,
                         dpt_pool_share_fn fn, void *ctx);

/* For tests: the clock that times the shares (seconds; called on the thread that runs the share),
 * for every pool of the process; NULL restores the monotonic clock. */
void dpt_pool_set_clock(double (*clock)(int thread));

/* The thread count asked for by the environment variable DPT_THREADS (1 when unset);
 * DPT_EINVAL naming the variable when it is not an integer in [1, DPT_POOL_MAX_THREADS]. */
dpt_status dpt_pool_threads_from_env(int *threads);

/* CPUs this process may run on (its affinity mask, which mpirun's binding sets). */
int dpt_pool_cpus_available(void);

#ifdef __cplusplus
}
#endif
#endif
