/* metrics.csv and the per-epoch history table (io). */
#include "dpt/metrics_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dpt_status dpt_metrics_log_init(dpt_metrics_log *l, int n_cols, const char *const *names,
                                int n_int_cols, int64_t capacity) {
    memset(l, 0, sizeof *l);
    DPT_ASSERT(n_cols >= 1 && n_int_cols >= 0 && n_int_cols <= n_cols);
    l->n_cols = n_cols;
    l->names = names;
    l->n_int_cols = n_int_cols;
    l->capacity = capacity > 0 ? capacity : 16;
    l->cols = calloc((size_t)n_cols, sizeof *l->cols);
    if (!l->cols)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the metrics history");
    for (int c = 0; c < n_cols; c++)
        if (!(l->cols[c] = calloc((size_t)l->capacity, sizeof(double))))
            return dpt_errorf(DPT_ENOMEM, "cannot allocate the metrics history");
    return DPT_OK;
}

void dpt_metrics_log_free(dpt_metrics_log *l) {
    for (int c = 0; l->cols && c < l->n_cols; c++)
        free(l->cols[c]);
    free(l->cols);
    memset(l, 0, sizeof *l);
}

dpt_status dpt_metrics_log_append(dpt_metrics_log *l, const double *row) {
    if (l->rows == l->capacity) {
        int64_t cap = 2 * l->capacity;
        for (int c = 0; c < l->n_cols; c++) {
            double *p = realloc(l->cols[c], (size_t)cap * sizeof(double));
            if (!p)
                return dpt_errorf(DPT_ENOMEM, "cannot grow the metrics history");
            l->cols[c] = p;
        }
        l->capacity = cap;
    }
    for (int c = 0; c < l->n_cols; c++)
        l->cols[c][l->rows] = row[c];
    l->rows++;
    return DPT_OK;
}

dpt_status dpt_metrics_log_write_csv(const dpt_metrics_log *l, const char *path) {
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp)
        return dpt_errorf(DPT_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        dpt_status st = dpt_errorf(DPT_EIO, "%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    for (int c = 0; c < l->n_cols; c++)
        fprintf(f, "%s%s", l->names[c], c + 1 < l->n_cols ? "," : "\n");
    for (int64_t r = 0; r < l->rows; r++)
        for (int c = 0; c < l->n_cols; c++)
            fprintf(f, c < l->n_int_cols ? "%.0f%s" : "%.9g%s", l->cols[c][r],
                    c + 1 < l->n_cols ? "," : "\n");
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    int err = errno;
    dpt_status st = DPT_OK;
    if (bad || rename(tmp, path) != 0) {
        st = dpt_errorf(DPT_EIO, "%s: write failed: %s", path, strerror(bad ? err : errno));
        remove(tmp);
    }
    free(tmp);
    return st;
}
