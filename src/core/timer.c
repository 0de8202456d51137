/* Monotonic clock and phase accumulators (core). */
#include "dpt/timer.h"

#include <string.h>
#include <time.h>

#include "dpt/status.h"

double dpt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dpt_phase_timer_init(dpt_phase_timer *t) {
    memset(t, 0, sizeof *t);
    t->current = -1;
}

void dpt_phase_begin(dpt_phase_timer *t, dpt_phase p) {
    DPT_ASSERT(t->current < 0 && (unsigned)p < DPT_PHASE_COUNT);
    t->current = (int)p;
    t->started = dpt_now();
}

void dpt_phase_end(dpt_phase_timer *t) {
    DPT_ASSERT(t->current >= 0);
    t->seconds[t->current] += dpt_now() - t->started;
    t->current = -1;
}

const char *dpt_phase_name(dpt_phase p) {
    static const char *const names[DPT_PHASE_COUNT] = {"data", "forward", "backward",
                                                       "allreduce wait", "optimizer", "eval"};
    return (unsigned)p < DPT_PHASE_COUNT ? names[p] : "?";
}
