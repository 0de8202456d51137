/* Shape arithmetic with overflow checks and tensor views (core). */
#include "dpt/tensor.h"

#include <stdio.h>
#include <string.h>

dpt_shape dpt_shape_make(int ndim, const int64_t *d) {
    DPT_ASSERT(ndim >= 0 && ndim <= DPT_MAX_DIMS);
    dpt_shape s = {.ndim = ndim};
    for (int i = 0; i < ndim; i++)
        s.d[i] = d[i];
    return s;
}

dpt_status dpt_shape_numel(const dpt_shape *s, int64_t *numel) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0)
            return dpt_errorf(DPT_ERANGE, "shape: negative extent %lld in dimension %d",
                              (long long)s->d[i], i);
        if (s->d[i] != 0 && n > INT64_MAX / s->d[i])
            return dpt_errorf(DPT_ERANGE, "shape: element count overflows int64");
        n *= s->d[i];
    }
    *numel = n;
    return DPT_OK;
}

int64_t dpt_shape_count(const dpt_shape *s) {
    int64_t n = 0;
    dpt_status st = dpt_shape_numel(s, &n);
    DPT_ASSERT(st == DPT_OK);
    return n;
}

int dpt_shape_equal(const dpt_shape *a, const dpt_shape *b) {
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i])
            return 0;
    return 1;
}

int dpt_shape_format(const dpt_shape *s, char *buf, size_t n) {
    size_t used = 0;
    int total = snprintf(buf, n, "(");
    for (int i = 0; i < s->ndim; i++) {
        used = (size_t)total < n ? (size_t)total : n;
        total += snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    }
    used = (size_t)total < n ? (size_t)total : n;
    total += snprintf(buf + used, n - used, ")");
    return total;
}

dpt_tensor dpt_tensor_view(float *data, dpt_shape s) { return (dpt_tensor){.data = data, .shape = s}; }
