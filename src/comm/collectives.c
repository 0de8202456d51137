/* Small collectives of data-parallel training (comm): parameter broadcast from the group leader,
 * hashes that prove buffers identical across ranks, metric sums and the synced batch-norm
 * reducer. Knows no layers and no files. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "comm_impl.h"

#define LISTED_RANKS 8 /* a mismatch message names at most this many ranks */

dpt_status dpt_group_bcast_f32(const dpt_group *g, float *buf, int64_t n) {
    DPT_ASSERT(n >= 0 && (buf || n == 0));
    return dpt__bcast(g, g->comm, buf, n, MPI_FLOAT, 0, "parameter broadcast");
}

dpt_status dpt_group_bcast_f64(const dpt_group *g, double *buf, int64_t n) {
    DPT_ASSERT(n >= 0 && (buf || n == 0));
    return dpt__bcast(g, g->comm, buf, n, MPI_DOUBLE, 0, "broadcast from the group leader");
}

static uint64_t rotl64(uint64_t x, int r) {
    return (x << r) | (x >> (64 - r));
}

/* One round of xxHash64's inner loop (single lane). */
static uint64_t hash_round(uint64_t h, uint64_t w) {
    return rotl64(h ^ (w * 0xC2B2AE3D27D4EB4FULL), 31) * 0x9E3779B185EBCA87ULL;
}

uint64_t dpt_hash64(const void *buf, size_t bytes) {
    const unsigned char *p = buf;
    uint64_t h = 0x27D4EB2F165667C5ULL;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = hash_round(h, w);
    }
    if (i < bytes) {
        uint64_t w = 0;
        memcpy(&w, p + i, bytes - i);
        h = hash_round(h, w);
    }
    h = hash_round(h, (uint64_t)bytes);
    /* splitmix64's finalizer: every input bit reaches every output bit. */
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 31);
}

/* Compares against the scope's rank 0, then names the differing ranks without allocating:
 * each MIN-allreduce finds the next differing world rank, so every rank builds the same message
 * and returns the same status. Only the mismatch path pays for more than two collectives. */
dpt_status dpt_group_check_same(const dpt_group *g, dpt_scope scope, const void *buf, size_t bytes,
                                const char *what) {
    MPI_Comm comm = dpt__scope_comm(g, scope);
    uint64_t mine = dpt_hash64(buf, bytes);
    uint64_t ref[2] = {mine, (uint64_t)g->world_rank};
    dpt_status st = dpt__bcast(g, comm, ref, 2, MPI_UINT64_T, 0, "checksum");
    if (st != DPT_OK)
        return st;
    int differs = mine != ref[0];
    int n_differ = differs;
    st = dpt__allreduce_inplace(g, comm, &n_differ, 1, MPI_INT, MPI_SUM, "checksum");
    if (st != DPT_OK || n_differ == 0)
        return st;

    int scope_size = 0;
    MPI_Comm_size(comm, &scope_size);
    char list[256] = "";
    size_t len = 0;
    int last = -1;
    for (int k = 0; k < n_differ && k < LISTED_RANKS; k++) {
        int next = differs && g->world_rank > last ? g->world_rank : INT_MAX;
        st = dpt__allreduce_inplace(g, comm, &next, 1, MPI_INT, MPI_MIN, "checksum");
        if (st != DPT_OK)
            return st;
        last = next;
        int w = snprintf(list + len, sizeof list - len, "%s%d", k ? ", " : "", next);
        if (w > 0 && (size_t)w < sizeof list - len)
            len += (size_t)w;
    }
    return dpt_errorf(DPT_EINVAL,
                      "%s differs between ranks: rank%s %s%s differ%s from rank %d "
                      "(%d of %d ranks differ)",
                      what, n_differ > 1 ? "s" : "", list, n_differ > LISTED_RANKS ? ", ..." : "",
                      n_differ > 1 ? "" : "s", (int)ref[1], n_differ, scope_size);
}

dpt_status dpt_group_sum_f64(const dpt_group *g, dpt_scope scope, double *buf, int64_t n) {
    DPT_ASSERT(n >= 0 && (buf || n == 0));
    return dpt__allreduce_inplace(g, dpt__scope_comm(g, scope), buf, n, MPI_DOUBLE, MPI_SUM,
                                  "metric sum");
}

dpt_status dpt_group_sum_i64(const dpt_group *g, dpt_scope scope, int64_t *buf, int64_t n) {
    DPT_ASSERT(n >= 0 && (buf || n == 0));
    return dpt__allreduce_inplace(g, dpt__scope_comm(g, scope), buf, n, MPI_INT64_T, MPI_SUM,
                                  "metric sum");
}

dpt_status dpt_group_sum_f32(const dpt_group *g, dpt_scope scope, float *buf, int64_t n) {
    DPT_ASSERT(n >= 0 && (buf || n == 0));
    return dpt__allreduce_inplace(g, dpt__scope_comm(g, scope), buf, n, MPI_FLOAT, MPI_SUM,
                                  "row gather");
}

dpt_status dpt_group_sum_flags(const dpt_group *g, double *flags, int64_t n) {
    DPT_ASSERT(n >= 0 && (flags || n == 0));
    return dpt__allreduce_inplace(g, g->comm, flags, n, MPI_DOUBLE, MPI_SUM, "stop-flag allreduce");
}

dpt_status dpt_group_bn_reduce(void *ctx, double *buf, int64_t n) {
    const dpt_group *g = ctx;
    DPT_ASSERT(g && n >= 0 && (buf || n == 0));
    return dpt__allreduce_inplace(g, g->comm, buf, n, MPI_DOUBLE, MPI_SUM,
                                  "batch-norm statistics");
}
