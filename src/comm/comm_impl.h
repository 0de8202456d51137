/* Helpers shared by the files of comm (internal): the one deadline-bound wait every collective
 * completes through, chunked in-place reductions and broadcasts that lift MPI's int counts to
 * int64_t, and the communicator of a scope. Knows no layers and no files. */
#ifndef DPT_COMM_IMPL_H
#define DPT_COMM_IMPL_H

#include "dpt/comm.h"

/* Takes over a communicator just made by MPI_Comm_split, _split_type or _dup (rc: that call's
 * result): on failure *c is set to MPI_COMM_NULL; otherwise it gets MPI_ERRORS_RETURN, so every
 * later failure on it comes back as a code, and *rank, *size (either may be NULL) are filled. A
 * split that left this rank out (MPI_COMM_NULL) is fine. `what` names it in errors. */
dpt_status dpt__comm_returning(int rc, MPI_Comm *c, int *rank, int *size, const char *what);

/* Completes the n requests (MPI_REQUEST_NULL entries are fine) of a collective started on `comm`,
 * which is g->comm, g->world or g->agree_comm. Polls (comm.h, "Timeouts"); after `timeout`
 * seconds (< 0: never) it does not return: the roll call names the silent ranks and ends the job.
 * `what` names the collective in messages ("gradient allreduce"). An MPI failure returns
 * DPT_EMPI ("WHAT: MPI_Testall: ..."). */
dpt_status dpt__wait(const dpt_group *g, MPI_Comm comm, int n, MPI_Request *req, double timeout,
                     const char *what);

/* In-place MPI_Iallreduce of n elements of `type` over `comm` (a communicator of g, as above), in
 * pieces of at most INT_MAX elements, each completed by dpt__wait with g->collective_timeout. */
dpt_status dpt__allreduce_inplace(const dpt_group *g, MPI_Comm comm, void *buf, int64_t n,
                                  MPI_Datatype type, MPI_Op op, const char *what);
/* MPI_Ibcast of n elements from `root` of `comm`, likewise. */
dpt_status dpt__bcast(const dpt_group *g, MPI_Comm comm, void *buf, int64_t n, MPI_Datatype type,
                      int root, const char *what);

/* g->comm or g->world. */
MPI_Comm dpt__scope_comm(const dpt_group *g, dpt_scope scope);

#endif
