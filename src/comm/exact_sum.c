/* Exact, rank-count-independent sums for --deterministic (comm): chunk gradients quantized to
 * int64 with one exponent agreed over the group, added exactly, allreduced as integers, converted
 * back once. Knows flat float arrays and chunk counts, never layers or samples. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"

double dpt_exact_maxabs(const float *x, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX))
            return INFINITY; /* NaN or infinite */
        if (a > m)
            m = a;
    }
    return m;
}

dpt_exact_scale dpt_exact_scale_make(double maxabs, int64_t total_chunks) {
    DPT_ASSERT(total_chunks >= 1 && maxabs >= 0.0 && maxabs <= DBL_MAX);
    int headroom = 0; /* ceil(log2 K) */
    while (headroom < 62 && ((int64_t)1 << headroom) < total_chunks)
        headroom++;
    dpt_exact_scale s = {.total_chunks = total_chunks, .maxabs = maxabs};
    s.qmax = ldexp(1.0, 62 - headroom);
    if (maxabs > 0.0) {
        int e = 0;
        frexp(maxabs, &e); /* maxabs = f * 2^e with 0.5 <= f < 1: e is the least with M < 2^e */
        s.exponent = 62 - headroom - e;
    }
    return s;
}

dpt_status dpt_exact_agree(const dpt_group *g, double local_maxabs, int64_t total_chunks,
                           dpt_exact_scale *out) {
    if (total_chunks < 1)
        return dpt_errorf(DPT_EINVAL, "exact sum: %lld chunks per global batch",
                          (long long)total_chunks);
    int bad = !(local_maxabs >= 0.0 && local_maxabs <= DBL_MAX);
    double m = bad ? INFINITY : local_maxabs;
    dpt_status st = dpt__allreduce_inplace(g, g->comm, &m, 1, MPI_DOUBLE, MPI_MAX,
                                           "exact-sum scale allreduce");
    if (st != DPT_OK)
        return st;
    if (m <= DBL_MAX) {
        *out = dpt_exact_scale_make(m, total_chunks);
        return DPT_OK;
    }
    /* Some rank saw NaN or Inf: name the first one, the same way on every rank. */
    int first = bad ? g->world_rank : INT_MAX;
    st = dpt__allreduce_inplace(g, g->comm, &first, 1, MPI_INT, MPI_MIN,
                                "exact-sum scale allreduce");
    if (st != DPT_OK)
        return st;
    return dpt_errorf(DPT_ENONFINITE, "non-finite gradient value on rank %d", first);
}

dpt_status dpt_exact_acc_init(dpt_exact_acc *a, int64_t n) {
    memset(a, 0, sizeof *a);
    DPT_ASSERT(n >= 0);
    a->acc = calloc((size_t)n + 1, sizeof *a->acc);
    if (!a->acc)
        return dpt_errorf(DPT_ENOMEM, "exact sum: out of memory for %lld values", (long long)n);
    a->n = n;
    a->scale = dpt_exact_scale_make(0.0, 1);
    a->mul = 1.0;
    return DPT_OK;
}

void dpt_exact_acc_free(dpt_exact_acc *a) {
    free(a->acc);
    memset(a, 0, sizeof *a);
}

void dpt_exact_acc_begin(dpt_exact_acc *a, const dpt_exact_scale *scale) {
    DPT_ASSERT(a->acc && scale && scale->total_chunks >= 1);
    memset(a->acc, 0, ((size_t)a->n + 1) * sizeof *a->acc);
    a->scale = *scale;
    a->mul = ldexp(1.0, scale->exponent);
    a->reduced = 0;
}

dpt_status dpt_exact_acc_add_chunk(dpt_exact_acc *a, const float *chunk) {
    DPT_ASSERT(a->acc && !a->reduced && (chunk || a->n == 0));
    const double mul = a->mul, qmax = a->scale.qmax;
    int64_t *restrict acc = a->acc;
    for (int64_t i = 0; i < a->n; i++) {
        /* Exact: a float times a power of two stays inside double's range and precision. */
        double v = (double)chunk[i] * mul;
        if (!(fabs(v) <= qmax)) {
            /* Not covered by the agreed maximum: take back what this chunk added. */
            for (int64_t j = 0; j < i; j++)
                acc[j] -= llrint((double)chunk[j] * mul);
            return dpt_errorf(DPT_ERANGE,
                              "exact sum: value %g at index %lld exceeds the agreed maximum %g "
                              "(the chunk was not part of dpt_exact_agree)",
                              (double)chunk[i], (long long)i, a->scale.maxabs);
        }
        acc[i] += llrint(v); /* round half to even; |v| <= 2^62, so it fits */
    }
    acc[a->n] += 1;
    return DPT_OK;
}

dpt_status dpt_exact_acc_allreduce(dpt_exact_acc *a, const dpt_group *g) {
    DPT_ASSERT(a->acc && !a->reduced);
    dpt_status st = dpt__allreduce_inplace(g, g->comm, a->acc, a->n + 1, MPI_INT64_T, MPI_SUM,
                                           "gradient allreduce (exact sum)");
    if (st != DPT_OK)
        return st;
    a->reduced = 1;
    if (a->acc[a->n] != a->scale.total_chunks)
        return dpt_errorf(DPT_EINVAL,
                          "exact sum: the ranks added %lld chunks, the global batch has %lld",
                          (long long)a->acc[a->n], (long long)a->scale.total_chunks);
    return DPT_OK;
}

void dpt_exact_acc_result(const dpt_exact_acc *a, float *out, double extra_scale) {
    DPT_ASSERT(a->acc && (out || a->n == 0));
    const double inv = ldexp(1.0, -a->scale.exponent);
    for (int64_t i = 0; i < a->n; i++)
        out[i] = (float)((double)a->acc[i] * inv * extra_scale);
}
