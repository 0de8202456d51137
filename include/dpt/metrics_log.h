/* Per-epoch metrics history (io): a table of named float64 columns, one row per epoch, written
 * as metrics.csv (atomically: NAME.tmp then rename) and into checkpoints. Knows no training
 * logic: the trainer names the columns and fills the rows. */
#ifndef DPT_METRICS_LOG_H
#define DPT_METRICS_LOG_H

#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dpt_metrics_log {
    int n_cols;
    const char *const *names; /* borrowed, n_cols */
    int n_int_cols;           /* the first n_int_cols columns are printed as integers */
    double **cols;            /* cols[c][r], owned */
    int64_t rows, capacity;
} dpt_metrics_log;

/* Allocates room for `capacity` rows (grows when more are appended). */
dpt_status dpt_metrics_log_init(dpt_metrics_log *l, int n_cols, const char *const *names,
                                int n_int_cols, int64_t capacity);
void dpt_metrics_log_free(dpt_metrics_log *l);
/* Appends row[0..n_cols). */
dpt_status dpt_metrics_log_append(dpt_metrics_log *l, const double *row);
/* Writes the header and every row to `path` through path.tmp and a rename; the error names the
 * file and the system's reason. */
dpt_status dpt_metrics_log_write_csv(const dpt_metrics_log *l, const char *path);

#ifdef __cplusplus
}
#endif
#endif
