/* Rank groups running a queue of jobs (comm): the layout of G jobs over R ranks, one private
 * world per group so that groups never wait for each other inside a job, the leaders'
 * communicator that brings results to world rank 0, and the launch-wide stop on a failed job. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "comm_impl.h"

dpt_status dpt_rank_groups_init(dpt_rank_groups *rg, const dpt_group *world, int n_jobs,
                                int fit, const char *what) {
    memset(rg, 0, sizeof *rg);
    rg->leaders = MPI_COMM_NULL;
    rg->split.world = rg->split.comm = rg->split.agree_comm = rg->split.watch_comm = MPI_COMM_NULL;
    rg->member.world = rg->member.comm = rg->member.agree_comm = MPI_COMM_NULL;
    rg->member.watch_comm = MPI_COMM_NULL;
    rg->n_jobs = n_jobs;
    int R = world->world_size;
    dpt_status st = DPT_OK;
    if (n_jobs < 1)
        st = dpt_errorf(DPT_EINVAL, "%s: at least 1 is needed", what);
    int P = n_jobs < R ? n_jobs : R;
    while (fit && P > 1 && R % P != 0)
        P--;
    if (st == DPT_OK && R % P != 0)
        st = dpt_errorf(DPT_EINVAL,
                        "%s: %d ranks cannot form %d groups of equal size (start a multiple of "
                        "%d ranks)",
                        what, R, P, P);
    st = dpt_group_agree(world, st);
    if (st != DPT_OK)
        return st;
    rg->n_groups = P;
    rg->group_size = R / P;
    dpt_group_cfg cfg = {.n_groups = P, .what = what, .agree_timeout = world->agree_timeout,
                         .collective_timeout = world->collective_timeout};
    st = dpt_group_init(&rg->split, world->world, &cfg);
    if ((st = dpt_group_agree(world, st)) != DPT_OK)
        return st;
    dpt_group_cfg inner = {.agree_timeout = world->agree_timeout,
                           .collective_timeout = world->collective_timeout};
    st = dpt_group_init(&rg->member, rg->split.comm, &inner);
    if (st == DPT_OK)
        st = dpt__comm_returning(MPI_Comm_split(rg->split.world,
                                                rg->split.leader ? 0 : MPI_UNDEFINED,
                                                rg->split.world_rank, &rg->leaders),
                                 &rg->leaders, NULL, NULL, "groups: the leaders' communicator");
    return dpt_group_agree(world, st);
}

void dpt_rank_groups_free(dpt_rank_groups *rg) {
    if (rg->leaders != MPI_COMM_NULL)
        MPI_Comm_free(&rg->leaders);
    dpt_group_free(&rg->member);
    dpt_group_free(&rg->split);
    rg->leaders = MPI_COMM_NULL;
}

int dpt_rank_groups_group_of(const dpt_rank_groups *rg, int job) { return job % rg->n_groups; }

int dpt_rank_groups_describe(const dpt_rank_groups *rg, const char *what_job, char *buf,
                             size_t n) {
    size_t used = 0;
    int total = 0;
    for (int p = 0; p < rg->n_groups; p++) {
        int first = p * rg->group_size, last = first + rg->group_size - 1;
        char ranks[48];
        if (first == last)
            snprintf(ranks, sizeof ranks, "rank %d", first);
        else
            snprintf(ranks, sizeof ranks, "ranks %d-%d", first, last);
        int k = snprintf(buf + used, used < n ? n - used : 0, "  group %d: %s, %s%s", p, ranks,
                         what_job, rg->n_jobs > rg->n_groups ? "s" : "");
        total += k;
        used = (size_t)total;
        for (int j = p; j < rg->n_jobs; j += rg->n_groups) {
            k = snprintf(buf + (used < n ? used : n), used < n ? n - used : 0, " %d", j);
            total += k;
            used = (size_t)total;
        }
        k = snprintf(buf + (used < n ? used : n), used < n ? n - used : 0, "\n");
        total += k;
        used = (size_t)total;
    }
    return total;
}

dpt_status dpt_rank_groups_to_root(const dpt_rank_groups *rg, int job, void *buf, size_t bytes) {
    if (rg->leaders == MPI_COMM_NULL)
        return DPT_OK;
    int owner = dpt_rank_groups_group_of(rg, job), me = rg->split.group;
    if (owner == 0 && me == 0)
        return DPT_OK; /* world rank 0 ran it itself */
    if (me != owner && me != 0)
        return DPT_OK;
    char *p = buf;
    for (size_t done = 0; done < bytes;) {
        size_t left = bytes - done;
        int count = left > (size_t)INT_MAX ? INT_MAX : (int)left;
        int rc = me == owner ? MPI_Send(p + done, count, MPI_BYTE, 0, job, rg->leaders)
                             : MPI_Recv(p + done, count, MPI_BYTE, owner, job, rg->leaders,
                                        MPI_STATUS_IGNORE);
        dpt_status st = dpt_mpi_status(rc, "groups: sending a result to rank 0");
        if (st != DPT_OK)
            return st;
        done += (size_t)count;
    }
    return DPT_OK;
}

dpt_status dpt_rank_groups_wait_all(const dpt_rank_groups *rg) {
    MPI_Request req;
    dpt_status st = dpt_mpi_status(MPI_Ibarrier(rg->split.agree_comm, &req),
                                   "groups: MPI_Ibarrier");
    if (st == DPT_OK) /* no limit: the groups' queues may take hours longer than each other */
        st = dpt__wait(&rg->split, rg->split.agree_comm, 1, &req, -1, "groups: waiting for the "
                                                                       "other groups");
    return st;
}

_Noreturn void dpt_rank_groups_abort(const dpt_rank_groups *rg, const char *what, dpt_status st) {
    const char *msg = dpt_last_error();
    if (!strcmp(msg, "no error recorded"))
        msg = dpt_strerror(st);
    if (rg->member.leader) {
        fprintf(stderr, "dptrain: error: %s: %s\n", what, msg);
        fflush(stderr);
    } else {
        sleep(2); /* the leader's line first; it aborts the launch before this rank wakes */
    }
    MPI_Abort(rg->split.world, 1);
    _exit(1); /* MPI_Abort does not return */
}
