/* Error agreement and coordinated abort (comm): every rank learns the worst status and the first
 * failing rank's message; a rank that cannot reach agreement within the timeout names the silent
 * ranks and aborts the whole job rather than hang (wait.c). Knows no layers and no files; prints
 * only right before MPI_Abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"

#define MESSAGE_BYTES 1024

/* Completes `req` through the deadline-bound wait (wait.c) with the agreement's own limit. An
 * MPI failure aborts the job: once agreement is impossible, an abort is the only outcome that
 * leaves no rank hanging. */
static void complete_or_abort(const dpt_group *g, MPI_Request *req) {
    dpt_status st = dpt__wait(g, g->agree_comm, 1, req, g->agree_timeout, "error agreement");
    if (st != DPT_OK)
        dpt_group_abort(g, st);
}

/* A message that already went through an agreement starts with "rank N: "; it keeps its origin
 * instead of being attributed to the rank that relays it. */
static int has_rank_prefix(const char *msg) {
    int used = 0, r = 0;
    return sscanf(msg, "rank %d: %n", &r, &used) == 1 && used > 0;
}

dpt_status dpt_group_agree(const dpt_group *g, dpt_status st) {
    DPT_ASSERT(g && g->agree_comm != MPI_COMM_NULL && g->world_size >= 1);
    /* One int64 MAX carries both answers: the status in the high half, and in the low half
     * (world_size - 1 - rank), so that among the ranks with the worst status the lowest rank
     * wins. DPT_OK contributes 0. */
    int64_t mine = 0, worst = 0;
    if (st != DPT_OK)
        mine = ((int64_t)st << 32) | (int64_t)(g->world_size - 1 - g->world_rank);
    MPI_Request req;
    int rc = MPI_Iallreduce(&mine, &worst, 1, MPI_INT64_T, MPI_MAX, g->agree_comm, &req);
    if (rc != MPI_SUCCESS)
        dpt_group_abort(g, dpt_mpi_status(rc, "agree: MPI_Iallreduce"));
    complete_or_abort(g, &req);
    if (worst == 0)
        return DPT_OK;

    dpt_status result = (dpt_status)(worst >> 32);
    int origin = g->world_size - 1 - (int)(worst & 0xffffffff);
    char msg[MESSAGE_BYTES];
    memset(msg, 0, sizeof msg);
    if (g->world_rank == origin)
        snprintf(msg, sizeof msg, "%s", dpt_last_error());
    rc = MPI_Ibcast(msg, MESSAGE_BYTES, MPI_CHAR, origin, g->agree_comm, &req);
    if (rc != MPI_SUCCESS)
        dpt_group_abort(g, dpt_mpi_status(rc, "agree: MPI_Ibcast"));
    complete_or_abort(g, &req);
    msg[MESSAGE_BYTES - 1] = '\0';
    if (has_rank_prefix(msg))
        return dpt_errorf(result, "%s", msg);
    return dpt_errorf(result, "rank %d: %s", origin, msg);
}

_Noreturn void dpt_group_abort(const dpt_group *g, dpt_status st) {
    const char *msg = dpt_last_error();
    if (!strcmp(msg, "no error recorded"))
        msg = dpt_strerror(st);
    int rank = g ? g->world_rank : -1;
    if (rank < 0 || has_rank_prefix(msg))
        fprintf(stderr, "dptrain: error: %s\n", msg);
    else
        fprintf(stderr, "dptrain: error: rank %d: %s\n", rank, msg);
    fflush(stderr);
    MPI_Comm zero;
    memset(&zero, 0, sizeof zero);
    MPI_Comm comm = MPI_COMM_WORLD;
    if (g && g->world != MPI_COMM_NULL && memcmp(&g->world, &zero, sizeof zero) != 0)
        comm = g->world;
    MPI_Abort(comm, 1);
    abort(); /* MPI_Abort does not return; this only satisfies _Noreturn */
}
