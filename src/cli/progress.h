/* The training display of rank 0 (cli): implements train's dpt_progress callbacks. */
#ifndef DPT_CLI_PROGRESS_H
#define DPT_CLI_PROGRESS_H

#include <stdio.h>

#include "dpt/train.h"

typedef struct {
    FILE *out;
    int quiet;     /* no epoch lines */
    int live;      /* redraw a progress line in place */
    int drawn;     /* a progress line is on the screen */
    double last_draw;
} dpt_cli_progress;

/* quiet: only errors and the final summary; no_live: no in-place line (--no-progress);
 * several_groups: ranks groups print concurrently, so no in-place line either. */
dpt_progress dpt_cli_progress_init(dpt_cli_progress *p, FILE *out, int quiet, int no_live,
                                   int several_groups);

#endif
