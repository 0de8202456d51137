/* Reading helpers and the comparison rule of ../shared/golden/README.md §2 for the golden
 * handlers. Every missing item is a recorded failure, never a skip. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "golden.h"

void golden_fail(golden_case *c, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL %s %s [%s]: %s\n", c->file, c->name, c->desc, msg);
    c->failures++;
}

int golden_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

int golden_has(hid_t obj, const char *name) { return H5Lexists(obj, name, H5P_DEFAULT) > 0; }

static int attr_read(golden_case *c, hid_t obj, const char *name, hid_t memtype, void *out,
                     int maxn) {
    if (!golden_attr_exists(obj, name)) {
        golden_fail(c, "missing attribute '%s'", name);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int rc = (n >= 1 && n <= maxn && H5Aread(a, memtype, out) >= 0) ? (int)n : -1;
    H5Sclose(sp);
    H5Aclose(a);
    if (rc < 0)
        golden_fail(c, "attribute '%s': unreadable or more than %d values", name, maxn);
    return rc;
}

int golden_attr_ints(golden_case *c, hid_t obj, const char *name, int *out, int maxn) {
    return attr_read(c, obj, name, H5T_NATIVE_INT, out, maxn);
}

int golden_attr_doubles(golden_case *c, hid_t obj, const char *name, double *out, int maxn) {
    return attr_read(c, obj, name, H5T_NATIVE_DOUBLE, out, maxn);
}

int golden_attr_str(golden_case *c, hid_t obj, const char *name, char *buf, size_t n) {
    if (!golden_attr_exists(obj, name)) {
        golden_fail(c, "missing attribute '%s'", name);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    herr_t rc = H5Aread(a, mt, buf);
    H5Tclose(mt);
    H5Aclose(a);
    buf[n - 1] = '\0';
    if (rc < 0) {
        golden_fail(c, "attribute '%s': unreadable string", name);
        return -1;
    }
    return 1;
}

static void *read_ds(golden_case *c, hid_t obj, const char *name, hid_t memtype, size_t elsize,
                     golden_dims *d) {
    golden_dims local;
    if (!d)
        d = &local;
    memset(d, 0, sizeof *d);
    if (!golden_has(obj, name)) {
        golden_fail(c, "missing dataset '%s'", name);
        return NULL;
    }
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT), sp = H5Dget_space(ds);
    d->rank = H5Sget_simple_extent_ndims(sp);
    if (d->rank < 0 || d->rank > 8) {
        golden_fail(c, "dataset '%s': bad rank %d", name, d->rank);
        H5Sclose(sp);
        H5Dclose(ds);
        return NULL;
    }
    H5Sget_simple_extent_dims(sp, d->dims, NULL);
    d->count = (int64_t)H5Sget_simple_extent_npoints(sp);
    void *buf = malloc((size_t)d->count * elsize + 1);
    if (H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        golden_fail(c, "dataset '%s': read failed", name);
        free(buf);
        buf = NULL;
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

float *golden_read_f32(golden_case *c, hid_t obj, const char *name, golden_dims *d) {
    return read_ds(c, obj, name, H5T_NATIVE_FLOAT, sizeof(float), d);
}

double *golden_read_f64(golden_case *c, hid_t obj, const char *name, golden_dims *d) {
    return read_ds(c, obj, name, H5T_NATIVE_DOUBLE, sizeof(double), d);
}

int32_t *golden_read_i32(golden_case *c, hid_t obj, const char *name, golden_dims *d) {
    return read_ds(c, obj, name, H5T_NATIVE_INT32, sizeof(int32_t), d);
}

int golden_check_values(golden_case *c, const char *impl, const char *what, const float *got,
                        const double *ref, int64_t n) {
    dpt_cmp r;
    int ok = dpt_cmp_f32_f64(&r, got, ref, n, c->atol, c->rtol);
    c->checks++;
    if (r.max_abs > c->max_abs)
        c->max_abs = r.max_abs;
    if (r.max_rel > c->max_rel)
        c->max_rel = r.max_rel;
    if (r.max_ratio > c->max_ratio)
        c->max_ratio = r.max_ratio;
    if (!ok)
        golden_fail(c, "%s: '%s' element %lld: got %.9g, ref %.9g, |got-ref|/tol = %.3g%s", impl,
                    what, (long long)r.worst, r.got, r.ref, r.max_ratio,
                    r.nonfinite ? " (non-finite)" : "");
    return ok;
}

int golden_check(golden_case *c, hid_t obj, const char *impl, const char *name, const float *got,
                 int64_t n) {
    golden_dims d;
    double *ref = golden_read_f64(c, obj, name, &d);
    if (!ref)
        return 0;
    int ok = 0;
    if (d.count != n)
        golden_fail(c, "%s: '%s' has %lld elements, the implementation produced %lld", impl, name,
                    (long long)d.count, (long long)n);
    else
        ok = golden_check_values(c, impl, name, got, ref, n);
    free(ref);
    return ok;
}
