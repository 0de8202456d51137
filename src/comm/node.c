/* One read-only copy per node (comm): the ranks of a node found with MPI_Comm_split_type, a
 * buffer that the node leader allocates with MPI_Win_allocate_shared and the others map with
 * MPI_Win_shared_query, and the synchronization that makes the leader's writes visible. Knows
 * no layers and no files: the buffer is bytes, whoever fills it says what they mean. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "comm_impl.h"
#include "dpt/tensor.h" /* DPT_ALIGN */

#define SHM_DIR "/dev/shm"

static int is_null_comm(MPI_Comm c) {
    /* A zeroed struct holds all-zero handles, which are not MPI_COMM_NULL in Open MPI. */
    MPI_Comm zero;
    memset(&zero, 0, sizeof zero);
    return c == MPI_COMM_NULL || memcmp(&c, &zero, sizeof zero) == 0;
}

static int is_null_win(MPI_Win w) {
    MPI_Win zero;
    memset(&zero, 0, sizeof zero);
    return w == MPI_WIN_NULL || memcmp(&w, &zero, sizeof zero) == 0;
}

dpt_status dpt_node_buffer_init(dpt_node_buffer *b, const dpt_group *g) {
    memset(b, 0, sizeof *b);
    b->g = g;
    b->node = MPI_COMM_NULL;
    b->win = MPI_WIN_NULL;
    return dpt__comm_returning(MPI_Comm_split_type(g->world, MPI_COMM_TYPE_SHARED, g->world_rank,
                                                   MPI_INFO_NULL, &b->node),
                               &b->node, &b->rank, &b->size, "node buffer: MPI_Comm_split_type");
}

/* Open MPI and MPICH back shared windows with files in /dev/shm. When it cannot hold the buffer,
 * Open MPI's MPI_Win_allocate_shared fails on the leader while the others wait for it forever;
 * checked first, the leader can say so and the others go on. "" when it fits or cannot be
 * known. */
static void shm_shortfall(char *why, size_t n, uint64_t bytes) {
    struct statvfs sv;
    why[0] = '\0';
    if (statvfs(SHM_DIR, &sv) != 0 || sv.f_frsize == 0)
        return;
    uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    if (avail < bytes)
        snprintf(why, n, "%s has %.1f MiB free, the buffer needs %.1f MiB", SHM_DIR,
                 (double)avail / 1048576.0, (double)bytes / 1048576.0);
}

dpt_status dpt_node_buffer_alloc(dpt_node_buffer *b, size_t bytes) {
    DPT_ASSERT(b->g && !is_null_comm(b->node) && is_null_win(b->win));
    char why[160] = "";
    if (b->rank == 0 && bytes > 0)
        shm_shortfall(why, sizeof why, (uint64_t)bytes + DPT_ALIGN);
    /* the size, or 0 with refused = 1 when the leader knows it cannot allocate it */
    uint64_t msg[2] = {b->rank == 0 && !why[0] ? (uint64_t)bytes : 0, why[0] != '\0'};
    dpt_status st = dpt__bcast(b->g, b->node, msg, 2, MPI_UINT64_T, 0, "node buffer size");
    if (st != DPT_OK)
        return st;
    uint64_t size = msg[0];
    b->bytes = 0;
    b->base = NULL;
    if (why[0]) /* the others go on without a buffer; dpt_group_agree brings them this message */
        return dpt_errorf(DPT_ENOMEM, "node-shared buffer: %s", why);
    if (size == 0)
        return DPT_OK;
    /* The leader's segment is the only one; DPT_ALIGN more bytes let every rank align its view
     * (mappings are page-aligned, so the offset is the same in every process). */
    char what[96];
    snprintf(what, sizeof what, "node buffer of %llu bytes: MPI_Win_allocate_shared",
             (unsigned long long)size);
    if (size > (uint64_t)PTRDIFF_MAX - DPT_ALIGN)
        return dpt_errorf(DPT_ENOMEM, "%s: too large", what);
    void *mine = NULL;
    MPI_Aint want = b->rank == 0 ? (MPI_Aint)(size + DPT_ALIGN) : 0;
    st = dpt_mpi_status(MPI_Win_allocate_shared(want, 1, MPI_INFO_NULL, b->node, &mine, &b->win),
                        what);
    if (st != DPT_OK) {
        b->win = MPI_WIN_NULL;
        return st;
    }
    /* windows come with MPI_ERRORS_ARE_FATAL */
    st = dpt_mpi_status(MPI_Win_set_errhandler(b->win, MPI_ERRORS_RETURN),
                        "node buffer: MPI_Win_set_errhandler");
    MPI_Aint got = 0;
    int disp = 0;
    void *leader = NULL;
    if (st == DPT_OK)
        st = dpt_mpi_status(MPI_Win_shared_query(b->win, 0, &got, &disp, &leader),
                            "node buffer: MPI_Win_shared_query");
    if (st == DPT_OK && (!leader || (uint64_t)got < size + DPT_ALIGN))
        st = dpt_errorf(DPT_EMPI, "node buffer: the leader's segment has %lld bytes, not %llu",
                        (long long)got, (unsigned long long)(size + DPT_ALIGN));
    if (st == DPT_OK)
        st = dpt_mpi_status(MPI_Win_lock_all(MPI_MODE_NOCHECK, b->win),
                            "node buffer: MPI_Win_lock_all");
    if (st != DPT_OK)
        return st;
    b->locked = 1; /* a passive-target epoch for MPI_Win_sync, open until free */
    uintptr_t p = (uintptr_t)leader;
    b->base = (void *)((p + DPT_ALIGN - 1) / DPT_ALIGN * DPT_ALIGN);
    b->bytes = (size_t)size;
    return DPT_OK;
}

dpt_status dpt_node_buffer_publish(dpt_node_buffer *b) {
    DPT_ASSERT(b->g && !is_null_comm(b->node));
    dpt_status st = DPT_OK;
    if (b->locked)
        st = dpt_mpi_status(MPI_Win_sync(b->win), "node buffer: MPI_Win_sync");
    MPI_Request req;
    if (st == DPT_OK)
        st = dpt_mpi_status(MPI_Ibarrier(b->node, &req), "node buffer: MPI_Ibarrier");
    if (st == DPT_OK)
        st = dpt__wait(b->g, b->node, 1, &req, b->g->collective_timeout, "node's shared data load");
    if (st == DPT_OK && b->locked)
        st = dpt_mpi_status(MPI_Win_sync(b->win), "node buffer: MPI_Win_sync");
    if (st == DPT_OK && b->base && b->rank != 0) {
        /* Map every page now (a read per page, a few ms for 50 MB): the node's copy then counts
         * evenly in each rank's proportional set size from the start, not on the leader alone
         * until the others first read the test split, and training takes no page faults. */
        const volatile unsigned char *p = b->base;
        unsigned sum = 0;
        for (size_t off = 0; off < b->bytes; off += 4096)
            sum += p[off];
        (void)sum;
    }
    return st;
}

void dpt_node_buffer_free(dpt_node_buffer *b) {
    if (!is_null_win(b->win)) {
        if (b->locked)
            MPI_Win_unlock_all(b->win);
        MPI_Win_free(&b->win);
    }
    if (!is_null_comm(b->node))
        MPI_Comm_free(&b->node);
    memset(b, 0, sizeof *b);
    b->node = MPI_COMM_NULL;
    b->win = MPI_WIN_NULL;
}
