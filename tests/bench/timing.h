/* Shared helpers of the benchmarks (tests/bench): medians and per-thread CPU time. */
#ifndef DPT_BENCH_TIMING_H
#define DPT_BENCH_TIMING_H

/* Median of v[0..n) (sorts v in place); n >= 1. */
double dpt_bench_median(double *v, int n);
/* Seconds of CPU time of the calling thread: on shared cores, time spent descheduled is not the
 * code's (OpenBLAS is pinned to one thread, so all work runs on this thread). */
double dpt_bench_thread_time(void);

#endif
