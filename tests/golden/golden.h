/* The generic golden-vector runner (tests/golden): walks every case_* group of every .h5 file in
 * $DPT_GOLDEN_DIR (default ../shared/golden), dispatches on the `op` attribute to a handler, and
 * compares with the rule of ../shared/golden/README.md §2. Handlers live in golden_<area>.c files,
 * each exporting one NULL-terminated table; the runner lists the tables. */
#ifndef DPT_TEST_GOLDEN_H
#define DPT_TEST_GOLDEN_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank;           /* 0 for a scalar */
    hsize_t dims[8];
    int64_t count;      /* number of elements */
} golden_dims;

typedef struct golden_case {
    const char *file;   /* path of the .h5 file */
    const char *name;   /* "case_003" */
    char op[64];
    char desc[256];
    hid_t group;        /* the open case group */
    double atol, rtol;  /* from the handler */
    int failures;       /* failed checks and missing items in this case */
    int checks;         /* reference datasets compared */
    double max_abs, max_rel, max_ratio; /* worst over the case, all implementations */
} golden_case;

/* Records a failure of the case (file, case, desc, message) for the final report. */
void golden_fail(golden_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Attribute readers: element count (>= 1) on success; a missing or unreadable attribute is a
 * recorded failure and returns -1. `obj` is c->group or a subgroup of it. */
int golden_attr_ints(golden_case *c, hid_t obj, const char *name, int *out, int maxn);
int golden_attr_doubles(golden_case *c, hid_t obj, const char *name, double *out, int maxn);
int golden_attr_str(golden_case *c, hid_t obj, const char *name, char *buf, size_t n);
int golden_attr_exists(hid_t obj, const char *name);
int golden_has(hid_t obj, const char *name);

/* Dataset readers: malloc'd buffer (free()), shape in *d (may be NULL); a missing dataset is a
 * recorded failure and returns NULL. */
float *golden_read_f32(golden_case *c, hid_t obj, const char *name, golden_dims *d);
double *golden_read_f64(golden_case *c, hid_t obj, const char *name, golden_dims *d);
int32_t *golden_read_i32(golden_case *c, hid_t obj, const char *name, golden_dims *d);

/* Compares `got` (n floats) with the float64 reference dataset `name` of `obj` under the case
 * tolerance; `impl` names the implementation in failure messages ("ref", "im2col", ...).
 * A missing reference or a size mismatch is a failure. Returns 1 on pass. */
int golden_check(golden_case *c, hid_t obj, const char *impl, const char *name, const float *got,
                 int64_t n);
/* Same against a reference already in memory; `what` names it. */
int golden_check_values(golden_case *c, const char *impl, const char *what, const float *got,
                        const double *ref, int64_t n);

typedef struct {
    const char *op;
    void (*run)(golden_case *c); /* NULL: known op whose implementation has not landed (pending) */
    double atol, rtol;           /* README §2 */
} golden_handler;

/* One table per area, each terminated by {NULL}. */
extern const golden_handler golden_kernel_handlers[];
extern const golden_handler golden_optim_handlers[];
extern const golden_handler golden_model_handlers[];

#endif
