/* Monotonic wall clock and per-phase accumulators (core). */
#ifndef DPT_TIMER_H
#define DPT_TIMER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double dpt_now(void);

typedef enum {
    DPT_PHASE_DATA,
    DPT_PHASE_FORWARD,
    DPT_PHASE_BACKWARD,
    DPT_PHASE_COMM_WAIT,
    DPT_PHASE_OPTIM,
    DPT_PHASE_EVAL,
    DPT_PHASE_COUNT
} dpt_phase;

/* Seconds spent per phase; begin/end pairs may not nest. */
typedef struct {
    double seconds[DPT_PHASE_COUNT];
    double started;
    int current; /* -1 when no phase is running */
} dpt_phase_timer;

void dpt_phase_timer_init(dpt_phase_timer *t);
void dpt_phase_begin(dpt_phase_timer *t, dpt_phase p);
void dpt_phase_end(dpt_phase_timer *t);
const char *dpt_phase_name(dpt_phase p);

#ifdef __cplusplus
}
#endif
#endif
