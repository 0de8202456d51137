/* The deadline-bound wait every collective of comm completes through: polls MPI requests, and
 * when a rank has waited longer than the group's timeout, finds the silent ranks with a roll call
 * on a private communicator, prints one line naming them and ends the job. Knows no layers and no
 * files; prints only right before MPI_Abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm_impl.h"
#include "dpt/timer.h"

#define SPINS 1000              /* MPI_Testall calls before the first sleep */
#define PAUSE_MIN_NS 10000L     /* then sleeps of 10 us, doubling ... */
#define PAUSE_MAX_NS 1000000L   /* ... up to 1 ms */
#define ROLL_CALL_TAG 1
#define LISTED_RANKS 8          /* the line names at most this many ranks */
/* A rank that notices its timeout this much after it passed was not running (SIGSTOP, a node
 * swapping, a debugger): it is one of the silent ranks itself. Polling looks at the clock at
 * least every millisecond. */
#define LATE_SECONDS 0.5

static void pause_ns(long ns) {
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

/* How long the collector listens. The waiting ranks' clocks started when each entered the
 * collective, so their timeouts fire as far apart as they arrived; in training that is a step's
 * imbalance, far below two seconds. */
static double grace_of(double timeout) {
    double grace = timeout / 4;
    return grace < 2 ? 2 : grace > 10 ? 10 : grace;
}

/* "step 120's gradient allreduce", or "the gradient allreduce" outside the training steps. */
static void name_wait(char *buf, size_t n, const dpt_group *g, const char *what) {
    if (g->step >= 0)
        snprintf(buf, n, "step %lld's %s", (long long)g->step, what);
    else
        snprintf(buf, n, "the %s", what);
}

/* Appends "1 (host n07)" for world rank r: the launch rank, which mpirun and the user know. */
static size_t append_rank(char *buf, size_t n, size_t used, const dpt_group *g, int r) {
    int launch = g->peers ? g->peers[r].rank : r;
    const char *host = g->peers ? g->peers[r].host : "?";
    int k = snprintf(buf + used, used < n ? n - used : 0, "%s%d (host %s)", used ? ", " : "",
                     launch, host);
    return k > 0 ? used + (size_t)k : used;
}

/* The collector: members[0, skipped) were asked before and did not collect, so they are silent.
 * Listens for reports until every other member has reported or the grace period is over, then
 * names the members that did not report (itself too when it was `late`) and ends the job. */
_Noreturn static void collect_and_stop(const dpt_group *g, const int *members, int n_members,
                                       int skipped, double grace, double timeout,
                                       const char *what, int late) {
    /* 0: not a member of the collective; 1: member, silent; 2: member, reported */
    unsigned char *state = calloc((size_t)g->world_size, 1);
    int reported = late ? 0 : 1, can_report = n_members - skipped - late;
    if (state) {
        for (int k = 0; k < n_members; k++)
            state[members[k]] = 1;
        state[g->world_rank] = late ? 1 : 2;
        double end = dpt_now() + grace;
        while (reported < can_report && dpt_now() < end) {
            int flag = 0;
            MPI_Status s;
            if (MPI_Iprobe(MPI_ANY_SOURCE, ROLL_CALL_TAG, g->watch_comm, &flag, &s) != MPI_SUCCESS)
                break;
            if (!flag) {
                pause_ns(PAUSE_MAX_NS);
                continue;
            }
            char here = 0;
            MPI_Recv(&here, 1, MPI_CHAR, s.MPI_SOURCE, ROLL_CALL_TAG, g->watch_comm,
                     MPI_STATUS_IGNORE);
            if (s.MPI_SOURCE >= 0 && s.MPI_SOURCE < g->world_size && state[s.MPI_SOURCE] == 1) {
                state[s.MPI_SOURCE] = 2;
                reported++;
            }
        }
    }
    char where[256], list[1024] = "";
    name_wait(where, sizeof where, g, what);
    size_t used = 0;
    int silent = 0;
    for (int k = 0; state && k < n_members; k++) {
        if (state[members[k]] != 1)
            continue;
        if (silent++ < LISTED_RANKS)
            used = append_rank(list, sizeof list, used, g, members[k]);
    }
    if (!state)
        fprintf(stderr, "dptrain: error: %s did not complete within %g s (out of memory for the "
                        "roll call); stopping every rank\n",
                where, timeout);
    else if (silent == 0)
        fprintf(stderr, "dptrain: error: every rank reached %s, but it did not complete within "
                        "%g s; stopping every rank\n",
                where, timeout);
    else if (silent > LISTED_RANKS)
        fprintf(stderr, "dptrain: error: ranks %s and %d more did not reach %s within %g s; "
                        "stopping every rank\n",
                list, silent - LISTED_RANKS, where, timeout);
    else
        fprintf(stderr, "dptrain: error: rank%s %s did not reach %s within %g s; stopping every "
                        "rank\n",
                silent > 1 ? "s" : "", list, where, timeout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1); /* MPI_Abort does not return */
}

/* The roll call after this rank's timeout (comm.h, "Timeouts"), noticed `overdue` seconds after
 * it passed. Never returns: this rank either collects and aborts, or an abort by another rank
 * ends it. */
_Noreturn static void roll_call(const dpt_group *g, MPI_Comm comm, double timeout,
                                const char *what, double overdue) {
    /* The collective's ranks as ranks of g->world (the watch communicator's numbering), lowest
     * first: the order in which they are asked to collect. */
    int n = 0;
    MPI_Comm_size(comm, &n);
    int *members = malloc((size_t)n * 2 * sizeof *members);
    MPI_Group cg, wg;
    if (!members || MPI_Comm_group(comm, &cg) != MPI_SUCCESS ||
        MPI_Comm_group(g->world, &wg) != MPI_SUCCESS) {
        int me = g->world_rank;
        collect_and_stop(g, &me, 1, 0, 0, timeout, what, 0);
    }
    for (int k = 0; k < n; k++)
        members[n + k] = k;
    MPI_Group_translate_ranks(cg, n, members + n, wg, members);
    MPI_Group_free(&cg);
    MPI_Group_free(&wg);

    double grace = grace_of(timeout);
    int late = overdue > LATE_SECONDS;
    if (overdue > grace) {
        /* Stopped for longer than a roll call takes: the others have named this rank and are
         * ending the job (mpirun sends SIGCONT before it kills); a second line would blame
         * them. */
        for (double end = dpt_now() + 2 * grace; dpt_now() < end;)
            pause_ns(PAUSE_MAX_NS);
    }
    static const char here = 1;
    for (int k = 0; k < n; k++) {
        if (members[k] == g->world_rank)
            collect_and_stop(g, members, n, k, grace, timeout, what, late);
        MPI_Request req = MPI_REQUEST_NULL;
        if (!late) /* a late rank is not "here": it was one of the silent ones */
            MPI_Isend(&here, 1, MPI_CHAR, members[k], ROLL_CALL_TAG, g->watch_comm, &req);
        /* The collector ends the job within its grace period of its own timeout; twice that
         * without an abort means it is silent too, and the next one collects. */
        double end = dpt_now() + 2 * grace;
        while (dpt_now() < end) {
            int done = 0;
            if (req != MPI_REQUEST_NULL)
                MPI_Test(&req, &done, MPI_STATUS_IGNORE); /* drives the send */
            pause_ns(PAUSE_MAX_NS);
        }
    }
    /* Unreachable: this rank is a member of its own collective. */
    collect_and_stop(g, members, n, n, grace, timeout, what, late);
}

dpt_status dpt__wait(const dpt_group *g, MPI_Comm comm, int n, MPI_Request *req, double timeout,
                     const char *what) {
    double t0 = dpt_now();
    long pause = PAUSE_MIN_NS;
    for (long spins = 0;; spins++) {
        int done = 0;
        int rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            char w[160];
            snprintf(w, sizeof w, "%s: MPI_Testall", what);
            return dpt_mpi_status(rc, w);
        }
        if (done)
            return DPT_OK;
        if (spins < SPINS)
            continue;
        double waited = timeout > 0 ? dpt_now() - t0 : 0;
        if (timeout > 0 && waited > timeout)
            roll_call(g, comm, timeout, what, waited - timeout);
        pause_ns(pause);
        if (pause < PAUSE_MAX_NS)
            pause *= 2;
    }
}
