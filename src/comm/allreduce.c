/* Gradient buckets over one flat float buffer (comm): contiguous ranges of whole segments formed
 * from the end of the buffer, each summed with MPI_Iallreduce as soon as backward has finished it,
 * in the same order on every rank; or one allreduce of the whole buffer after backward for
 * comparison. Every wait is bounded by the group's collective timeout (wait.c). Knows segments
 * (offset, count), never layers; allocates only in init. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"
#include "dpt/optim.h"
#include "dpt/timer.h"

/* Keeps the first error of the step (message included) for dpt_bucketer_wait. */
static dpt_status keep_error(dpt_bucketer *b, dpt_status st) {
    if (st != DPT_OK && b->st == DPT_OK) {
        b->st = st;
        snprintf(b->err, sizeof b->err, "%s", dpt_last_error());
    }
    return st;
}

static dpt_status check_segments(const dpt_comm_segment *segs, int n_segs, int64_t n) {
    if (n_segs < 1)
        return dpt_errorf(DPT_EINVAL, "bucketer: no parameter segments");
    int64_t end = 0;
    for (int s = 0; s < n_segs; s++) {
        if (segs[s].offset != end)
            return dpt_errorf(DPT_EINVAL,
                              "bucketer: segment %d starts at %lld, expected %lld (segments must "
                              "tile the gradient buffer in order)",
                              s, (long long)segs[s].offset, (long long)end);
        if (segs[s].count < 1)
            return dpt_errorf(DPT_EINVAL, "bucketer: segment %d has %lld elements", s,
                              (long long)segs[s].count);
        end += segs[s].count;
    }
    if (end != n)
        return dpt_errorf(DPT_EINVAL, "bucketer: segments cover %lld floats, the buffer has %lld",
                          (long long)end, (long long)n);
    return DPT_OK;
}

int64_t dpt_bucket_bytes_default(int64_t grad_bytes) {
    const int64_t quarter = grad_bytes / 4;
    return quarter < DPT_BUCKET_BYTES_MIN_DEFAULT ? DPT_BUCKET_BYTES_MIN_DEFAULT
           : quarter > DPT_BUCKET_BYTES_DEFAULT   ? DPT_BUCKET_BYTES_DEFAULT
                                                  : quarter;
}

dpt_status dpt_bucketer_init(dpt_bucketer *b, const dpt_group *g, float *grad, int64_t n,
                             const dpt_comm_segment *segs, int n_segs,
                             const dpt_bucketer_cfg *cfg) {
    static const dpt_bucketer_cfg defaults = {0};
    memset(b, 0, sizeof *b);
    DPT_ASSERT(g && grad && segs);
    if (!cfg)
        cfg = &defaults;
    dpt_status st = check_segments(segs, n_segs, n);
    if (st != DPT_OK)
        return st;
    if (cfg->bucket_bytes < 0)
        return dpt_errorf(DPT_EINVAL, "bucketer: bucket size %lld bytes is negative",
                          (long long)cfg->bucket_bytes);
    b->g = g;
    b->grad = grad;
    b->n = n;
    b->n_segs = n_segs;
    b->blocking = cfg->blocking != 0;
    b->bucket_bytes =
        cfg->bucket_bytes ? cfg->bucket_bytes : dpt_bucket_bytes_default(n * (int64_t)sizeof(float));
    b->scale = 1.0f;

    size_t ns = (size_t)n_segs;
    b->segs = malloc(ns * sizeof *b->segs);
    b->seg_bucket = malloc(ns * sizeof *b->seg_bucket);
    b->seg_done = calloc(ns, 1);
    b->b_offset = malloc(ns * sizeof *b->b_offset);
    b->b_count = malloc(ns * sizeof *b->b_count);
    b->b_first = malloc(ns * sizeof *b->b_first);
    b->b_missing = malloc(ns * sizeof *b->b_missing);
    b->req = malloc(ns * sizeof *b->req);
    if (!b->segs || !b->seg_bucket || !b->seg_done || !b->b_offset || !b->b_count || !b->b_first ||
        !b->b_missing || !b->req) {
        dpt_bucketer_free(b);
        return dpt_errorf(DPT_ENOMEM, "bucketer: out of memory for %d segments", n_segs);
    }
    memcpy(b->segs, segs, ns * sizeof *segs);

    /* From the last segment backwards: a segment opens a new bucket when adding it would take the
     * current one over the cap. Bucket k covers segments [b_first[k], b_first[k-1]). */
    int nb = 0;
    int64_t cap = b->bucket_bytes / (int64_t)sizeof(float);
    for (int s = n_segs - 1; s >= 0; s--) {
        if (nb == 0 || b->b_count[nb - 1] + segs[s].count > cap) {
            b->b_count[nb] = 0;
            nb++;
        }
        b->b_count[nb - 1] += segs[s].count;
        b->b_offset[nb - 1] = segs[s].offset;
        b->b_first[nb - 1] = s;
        b->seg_bucket[s] = nb - 1;
    }
    b->n_buckets = nb;
    for (int k = 0; k < nb; k++) {
        b->req[k] = MPI_REQUEST_NULL;
        if (!b->blocking && b->b_count[k] > INT_MAX) {
            st = dpt_errorf(DPT_ERANGE,
                            "bucketer: a segment of %lld floats is larger than one MPI message "
                            "(INT_MAX elements); use the blocking mode",
                            (long long)b->b_count[k]);
            dpt_bucketer_free(b);
            return st;
        }
    }
    return DPT_OK;
}

void dpt_bucketer_free(dpt_bucketer *b) {
    DPT_ASSERT(!b->in_step || b->next_start == b->first_pending);
    free(b->segs);
    free(b->seg_bucket);
    free(b->seg_done);
    free(b->b_offset);
    free(b->b_count);
    free(b->b_first);
    free(b->b_missing);
    free(b->req);
    memset(b, 0, sizeof *b);
}

void dpt_bucketer_bucket(const dpt_bucketer *b, int i, int64_t *offset, int64_t *count) {
    DPT_ASSERT(i >= 0 && i < b->n_buckets);
    *offset = b->b_offset[i];
    *count = b->b_count[i];
}

void dpt_bucketer_begin(dpt_bucketer *b, double scale) {
    /* Buckets still in flight belong to the previous step: it must have been waited for. */
    DPT_ASSERT(b->segs && b->next_start == b->first_pending);
    memset(b->seg_done, 0, (size_t)b->n_segs);
    for (int k = 0; k < b->n_buckets; k++) {
        int end = k == 0 ? b->n_segs : b->b_first[k - 1];
        b->b_missing[k] = end - b->b_first[k];
    }
    b->next_start = b->first_pending = 0;
    b->in_step = 1;
    b->scale = (float)scale;
    b->want_sumsq = 0;
    b->local_sumsq = 0;
    b->st = DPT_OK;
    b->err[0] = '\0';
}

void dpt_bucketer_begin_sumsq(dpt_bucketer *b, double scale) {
    dpt_bucketer_begin(b, scale);
    b->want_sumsq = 1;
}

/* Squares of grad[offset, offset + count) into local_sumsq, while the values are still local. */
static void add_local_sumsq(dpt_bucketer *b, int64_t offset, int64_t count) {
    if (b->want_sumsq) {
        double norm = dpt_norm2(b->grad + offset, count);
        b->local_sumsq += norm * norm;
    }
}

static void start_bucket(dpt_bucketer *b, int k) {
    add_local_sumsq(b, b->b_offset[k], b->b_count[k]);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, b->grad + b->b_offset[k], (int)b->b_count[k], MPI_FLOAT,
                            MPI_SUM, b->g->comm, &b->req[k]);
    if (rc != MPI_SUCCESS) {
        b->req[k] = MPI_REQUEST_NULL;
        keep_error(b, dpt_mpi_status(rc, "gradient allreduce: MPI_Iallreduce"));
    }
}

/* Starts complete buckets strictly in bucket order (the order has to be the same on every rank;
 * the order in which segments become final need not be). */
static dpt_status start_ready(dpt_bucketer *b) {
    while (b->next_start < b->n_buckets && b->b_missing[b->next_start] == 0)
        start_bucket(b, b->next_start++);
    return b->st;
}

dpt_status dpt_bucketer_mark_segments(dpt_bucketer *b, int first, int last) {
    DPT_ASSERT(b->in_step && 0 <= first && first <= last && last <= b->n_segs);
    for (int s = first; s < last; s++) {
        if (!b->seg_done[s]) {
            b->seg_done[s] = 1;
            b->b_missing[b->seg_bucket[s]]--;
        }
    }
    return b->blocking ? DPT_OK : start_ready(b);
}

dpt_status dpt_bucketer_mark_from(dpt_bucketer *b, int64_t offset) {
    /* First segment starting at or after `offset` (binary search: segments are sorted). */
    int lo = 0, hi = b->n_segs;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (b->segs[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return dpt_bucketer_mark_segments(b, lo, b->n_segs);
}

dpt_status dpt_bucketer_progress(dpt_bucketer *b) {
    DPT_ASSERT(b->in_step);
    while (b->first_pending < b->next_start && b->req[b->first_pending] == MPI_REQUEST_NULL)
        b->first_pending++;
    for (int k = b->first_pending; k < b->next_start; k++) {
        if (b->req[k] == MPI_REQUEST_NULL)
            continue;
        int done = 0;
        int rc = MPI_Test(&b->req[k], &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return keep_error(b, dpt_mpi_status(rc, "gradient allreduce: MPI_Test"));
        if (!done)
            break; /* later buckets started later; one test per call drives MPI's progress */
    }
    return DPT_OK;
}

dpt_status dpt_bucketer_wait(dpt_bucketer *b) {
    DPT_ASSERT(b->in_step);
    double t0 = dpt_now();
    b->stats.started_early = b->next_start;
    if (b->blocking) {
        add_local_sumsq(b, 0, b->n);
        keep_error(b, dpt__allreduce_inplace(b->g, b->g->comm, b->grad, b->n, MPI_FLOAT, MPI_SUM,
                                             "gradient allreduce"));
    } else {
        while (b->next_start < b->n_buckets)
            start_bucket(b, b->next_start++);
        int pending = b->next_start - b->first_pending;
        if (pending > 0) {
            keep_error(b, dpt__wait(b->g, b->g->comm, pending, b->req + b->first_pending,
                                    b->g->collective_timeout, "gradient allreduce"));
        }
    }
    b->first_pending = b->next_start;
    if (b->scale != 1.0f) {
        float s = b->scale;
        float *restrict x = b->grad;
        for (int64_t i = 0; i < b->n; i++)
            x[i] *= s;
    }
    b->in_step = 0;
    b->stats.wait_seconds = dpt_now() - t0;
    b->stats.total_wait_seconds += b->stats.wait_seconds;
    b->stats.steps++;
    if (b->st != DPT_OK)
        return dpt_errorf(b->st, "%s", b->err);
    return DPT_OK;
}
