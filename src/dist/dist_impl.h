/* Helpers shared by the files of dist (internal): chunked in-place reductions that lift MPI's int
 * counts to int64_t, and the communicator of a scope. Knows no layers and no files. */
#ifndef DPT_DIST_IMPL_H
#define DPT_DIST_IMPL_H

#include "dpt/dist.h"

/* In-place MPI_Allreduce of n elements of `type` over `comm`, in pieces of at most INT_MAX
 * elements. `what` names the operation in error messages. */
dpt_status dpt__allreduce_inplace(void *buf, int64_t n, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                                  const char *what);

/* g->comm or g->world. */
MPI_Comm dpt__scope_comm(const dpt_group *g, dpt_scope scope);

#endif
