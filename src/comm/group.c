/* World and group communicators (comm): duplicates the parent communicator, splits it by the
 * caller's layout (ensemble member, fold, sweep point), records where this rank is (and every
 * rank's host, for timeout messages), turns MPI error codes into dpt_status messages, and the
 * chunked allreduce and broadcast every collective uses. Knows no layers and no files. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"

dpt_status dpt_mpi_status(int mpi_rc, const char *what) {
    if (mpi_rc == MPI_SUCCESS)
        return DPT_OK;
    char text[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(mpi_rc, text, &len) != MPI_SUCCESS || len <= 0)
        snprintf(text, sizeof text, "MPI error code %d", mpi_rc);
    else
        text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = '\0';
    return dpt_errorf(DPT_EMPI, "%s: %s", what, text);
}

/* n elements in pieces of at most INT_MAX, each started nonblocking and completed by dpt__wait:
 * an in-place MPI_Iallreduce with `op`, or (op == MPI_OP_NULL) an MPI_Ibcast from `root`. */
static dpt_status in_pieces(const dpt_group *g, MPI_Comm comm, void *buf, int64_t n,
                            MPI_Datatype type, MPI_Op op, int root, const char *what) {
    char call[160];
    snprintf(call, sizeof call, "%s: %s", what,
             op != MPI_OP_NULL ? "MPI_Iallreduce" : "MPI_Ibcast");
    int elsize = 0;
    dpt_status st = dpt_mpi_status(MPI_Type_size(type, &elsize), call);
    char *p = buf;
    for (int64_t done = 0; st == DPT_OK && done < n;) {
        int64_t left = n - done;
        int count = left > INT_MAX ? INT_MAX : (int)left;
        MPI_Request req;
        int rc = op != MPI_OP_NULL
                     ? MPI_Iallreduce(MPI_IN_PLACE, p + done * elsize, count, type, op, comm, &req)
                     : MPI_Ibcast(p + done * elsize, count, type, root, comm, &req);
        st = dpt_mpi_status(rc, call);
        if (st == DPT_OK)
            st = dpt__wait(g, comm, 1, &req, g->collective_timeout, what);
        done += count;
    }
    return st;
}

dpt_status dpt__allreduce_inplace(const dpt_group *g, MPI_Comm comm, void *buf, int64_t n,
                                  MPI_Datatype type, MPI_Op op, const char *what) {
    return in_pieces(g, comm, buf, n, type, op, 0, what);
}

dpt_status dpt__bcast(const dpt_group *g, MPI_Comm comm, void *buf, int64_t n, MPI_Datatype type,
                      int root, const char *what) {
    return in_pieces(g, comm, buf, n, type, MPI_OP_NULL, root, what);
}

MPI_Comm dpt__scope_comm(const dpt_group *g, dpt_scope scope) {
    DPT_ASSERT(scope == DPT_SCOPE_GROUP || scope == DPT_SCOPE_WORLD);
    return scope == DPT_SCOPE_GROUP ? g->comm : g->world;
}

dpt_status dpt__comm_returning(int rc, MPI_Comm *c, int *rank, int *size, const char *what) {
    dpt_status st = dpt_mpi_status(rc, what);
    if (st != DPT_OK) {
        *c = MPI_COMM_NULL;
        return st;
    }
    if (*c == MPI_COMM_NULL)
        return DPT_OK;
    if ((st = dpt_mpi_status(MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN), what)) == DPT_OK &&
        rank)
        st = dpt_mpi_status(MPI_Comm_rank(*c, rank), what);
    if (st == DPT_OK && size)
        st = dpt_mpi_status(MPI_Comm_size(*c, size), what);
    return st;
}

static dpt_status dup_comm(MPI_Comm parent, MPI_Comm *out, const char *what) {
    return dpt__comm_returning(MPI_Comm_dup(parent, out), out, NULL, NULL, what);
}

/* Group index of every world rank under the layout; counts[k] = ranks in group k. Evaluated
 * identically on every rank (the map is a pure function), so a bad layout fails everywhere
 * with the same message and without communication. */
static dpt_status check_layout(const dpt_group_cfg *cfg, int G, int size, int rank, int *my_group,
                               const char *what) {
    if (G < 1)
        return dpt_errorf(DPT_EINVAL, "%s: the number of groups must be at least 1, not %d", what,
                          G);
    if (G > size)
        return dpt_errorf(DPT_EINVAL, "%s: %d groups need at least %d ranks, but %d were started",
                          what, G, G, size);
    if (!cfg->map) {
        if (size % G != 0)
            return dpt_errorf(DPT_EINVAL,
                              "%s: %d ranks cannot be split into %d groups of equal size "
                              "(start a multiple of %d ranks)",
                              what, size, G, G);
        *my_group = rank / (size / G);
        return DPT_OK;
    }
    int *counts = calloc((size_t)G, sizeof *counts);
    if (!counts)
        return dpt_errorf(DPT_ENOMEM, "%s: out of memory for %d groups", what, G);
    dpt_status st = DPT_OK;
    for (int r = 0; r < size && st == DPT_OK; r++) {
        int k = cfg->map(cfg->map_ctx, r, size);
        if (k < 0 || k >= G)
            st = dpt_errorf(DPT_EINVAL, "%s: rank %d is mapped to group %d, outside 0..%d", what, r,
                            k, G - 1);
        else
            counts[k]++;
        if (r == rank)
            *my_group = k;
    }
    for (int k = 0; k < G && st == DPT_OK; k++)
        if (counts[k] == 0)
            st = dpt_errorf(DPT_EINVAL, "%s: group %d has no rank (%d ranks, %d groups)", what, k,
                            size, G);
    free(counts);
    return st;
}

/* Every rank's launch rank and host, so that a timeout can name a rank that no longer answers. */
static dpt_status gather_peers(dpt_group *g) {
    g->peers = calloc((size_t)g->world_size, sizeof *g->peers);
    if (!g->peers)
        return dpt_errorf(DPT_ENOMEM, "group: out of memory for %d ranks", g->world_size);
    dpt_group_peer me;
    memset(&me, 0, sizeof me);
    char host[MPI_MAX_PROCESSOR_NAME + 1] = "";
    int len = 0;
    if (MPI_Get_processor_name(host, &len) != MPI_SUCCESS || len <= 0)
        snprintf(host, sizeof host, "?");
    snprintf(me.host, sizeof me.host, "%s", host);
    dpt_status st = dpt_mpi_status(MPI_Comm_rank(MPI_COMM_WORLD, &me.rank), "group: MPI_Comm_rank");
    if (st != DPT_OK)
        return st;
    return dpt_mpi_status(MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, g->peers, (int)sizeof me,
                                        MPI_BYTE, g->world),
                          "group: gathering host names");
}

dpt_status dpt_group_init(dpt_group *g, MPI_Comm parent, const dpt_group_cfg *cfg) {
    static const dpt_group_cfg defaults = {0};
    memset(g, 0, sizeof *g);
    g->world = g->comm = g->agree_comm = g->watch_comm = MPI_COMM_NULL;
    if (!cfg)
        cfg = &defaults;
    const char *what = cfg->what ? cfg->what : "groups";
    g->agree_timeout = cfg->agree_timeout == 0.0 ? DPT_AGREE_TIMEOUT_DEFAULT : cfg->agree_timeout;
    dpt_group_set_timeout(g, cfg->collective_timeout);
    g->step = -1;
    g->n_groups = cfg->n_groups ? cfg->n_groups : 1;

    dpt_status st = dup_comm(parent, &g->world, "group: duplicating the world communicator");
    if (st != DPT_OK)
        return st;
    st = dup_comm(g->world, &g->agree_comm, "group: duplicating the agreement communicator");
    if (st != DPT_OK)
        return st;
    st = dup_comm(g->world, &g->watch_comm, "group: duplicating the roll-call communicator");
    if (st != DPT_OK)
        return st;
    if ((st = dpt_mpi_status(MPI_Comm_rank(g->world, &g->world_rank), "group: MPI_Comm_rank")) ||
        (st = dpt_mpi_status(MPI_Comm_size(g->world, &g->world_size), "group: MPI_Comm_size")))
        return st;
    if ((st = gather_peers(g)) != DPT_OK)
        return st;

    int color = 0;
    st = check_layout(cfg, g->n_groups, g->world_size, g->world_rank, &color, what);
    if (st != DPT_OK)
        return st;
    g->group = color;
    st = dpt__comm_returning(MPI_Comm_split(g->world, color, g->world_rank, &g->comm), &g->comm,
                             &g->rank, &g->size, "group: MPI_Comm_split");
    if (st != DPT_OK)
        return st;
    g->leader = g->rank == 0;
    return DPT_OK;
}

void dpt_group_free(dpt_group *g) {
    /* A struct that was only zeroed holds all-zero handles, which are not MPI_COMM_NULL in Open
     * MPI (there the null handle is the address of a global). */
    MPI_Comm zero;
    memset(&zero, 0, sizeof zero);
    MPI_Comm *comms[] = {&g->comm, &g->watch_comm, &g->agree_comm, &g->world};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (*comms[i] != MPI_COMM_NULL && memcmp(comms[i], &zero, sizeof zero) != 0)
            MPI_Comm_free(comms[i]);
    free(g->peers);
    memset(g, 0, sizeof *g);
    g->world = g->comm = g->agree_comm = g->watch_comm = MPI_COMM_NULL;
}

void dpt_group_set_timeout(dpt_group *g, double seconds) {
    g->collective_timeout = seconds == 0.0 ? DPT_COLLECTIVE_TIMEOUT_DEFAULT : seconds;
}

void dpt_group_set_step(dpt_group *g, int64_t step) { g->step = step < 0 ? -1 : step; }
