/* Error agreement under mpirun. Oracle: the statuses and messages this test plants on chosen
 * ranks; after dpt_group_agree every rank must hold the worst status and the first failing rank's
 * message, prefixed with that rank. With --die MODE it is instead the helper of dead_rank.sh:
 * the last rank aborts, exits without MPI_Finalize (status 3 or 0), or hangs, while the others wait
 * in an agreement; mpirun must then exit non-zero within seconds. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpt/comm.h"
#include "dpt/timer.h"
#include "mpi_check.h"

static dpt_group group_init(int G, double timeout) {
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD,
                                   &(dpt_group_cfg){.n_groups = G, .agree_timeout = timeout});
    CHECK(st == DPT_OK, "init: %s", dpt_last_error());
    return g;
}

static void test_all_ok(void) {
    dpt_group g = group_init(1, 0);
    dpt_errorf(DPT_OK, "marker");
    dpt_status st = dpt_group_agree(&g, DPT_OK);
    CHECK(st == DPT_OK, "all OK gave %s", dpt_status_name(st));
    CHECK(!strcmp(dpt_last_error(), "marker"), "message changed to \"%s\"", dpt_last_error());
    dpt_group_free(&g);
}

/* One rank fails: every rank returns its status and rank 0 can print its message. */
static void test_one_fails(int W, int G) {
    dpt_group g = group_init(G, 0);
    int bad = W - 1;
    dpt_status st = DPT_OK;
    if (g.world_rank == bad)
        st = dpt_errorf(DPT_EIO, "data/train.h5: cannot open: No such file or directory");
    else
        dpt_error_clear();
    st = dpt_group_agree(&g, st);
    char want[256];
    snprintf(want, sizeof want, "rank %d: data/train.h5: cannot open: No such file or directory",
             bad);
    CHECK(st == DPT_EIO, "G=%d: agree gave %s", G, dpt_status_name(st));
    CHECK(!strcmp(dpt_last_error(), want), "G=%d: message \"%s\"", G, dpt_last_error());

    /* Agreeing again on the agreed status keeps the origin (no "rank 0: rank 3: ..."). */
    st = dpt_group_agree(&g, st);
    CHECK(st == DPT_EIO && !strcmp(dpt_last_error(), want), "re-agreement: %s: \"%s\"",
          dpt_status_name(st), dpt_last_error());
    dpt_group_free(&g);
}

/* Several ranks fail differently: the worst (largest) code wins, reported by the lowest rank
 * that holds it. */
static void test_worst_wins(int W) {
    dpt_group g = group_init(1, 0);
    dpt_status st = DPT_OK;
    if (g.world_rank == 0)
        st = dpt_errorf(DPT_EINVAL, "--lr: not a number");
    if (g.world_rank == 1 || g.world_rank == W - 1)
        st = dpt_errorf(DPT_EFORMAT, "x.idx: bad magic on rank %d", g.world_rank);
    st = dpt_group_agree(&g, st);
    CHECK(st == DPT_EFORMAT, "worst: %s", dpt_status_name(st));
    CHECK(!strcmp(dpt_last_error(), "rank 1: x.idx: bad magic on rank 1"), "worst: \"%s\"",
          dpt_last_error());
    dpt_group_free(&g);
}

/* A message longer than the agreement's buffer arrives truncated, never unterminated. */
static void test_long_message(void) {
    dpt_group g = group_init(1, 0);
    char longer[1000];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    dpt_status st = g.world_rank == 0 ? dpt_errorf(DPT_EIO, "%s%s", longer, longer) : DPT_OK;
    st = dpt_group_agree(&g, st);
    CHECK(st == DPT_EIO && !strncmp(dpt_last_error(), "rank 0: xxxx", 12) &&
              strlen(dpt_last_error()) < 1100,
          "long message: length %zu", strlen(dpt_last_error()));
    dpt_group_free(&g);
}

/* A late rank (300 ms behind) is waited for, well inside the timeout. */
static void test_late_rank(void) {
    dpt_group g = group_init(1, 5.0);
    CHECK(g.agree_timeout == 5.0, "timeout %g", g.agree_timeout);
    double t0 = dpt_now();
    if (g.world_rank == 0) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    dpt_status st = dpt_group_agree(&g, DPT_OK);
    CHECK(st == DPT_OK && dpt_now() - t0 >= 0.29, "late rank: %s after %.3f s", dpt_status_name(st),
          dpt_now() - t0);
    dpt_group_free(&g);
    g = group_init(1, -1.0);
    CHECK(g.agree_timeout < 0, "no limit: %g", g.agree_timeout);
    dpt_group_free(&g);
}

/* Helper mode for dead_rank.sh: never returns normally on the failing rank. */
static int die(const char *mode) {
    dpt_group g;
    /* The waiting ranks' limit: 30 s for abort/exit (mpirun must end the job long before), 2 s
     * for hang (our own timeout must end it). */
    int hang = !strcmp(mode, "hang");
    dpt_status st =
        dpt_group_init(&g, MPI_COMM_WORLD, &(dpt_group_cfg){.agree_timeout = hang ? 2.0 : 30.0});
    if (st != DPT_OK)
        dpt_group_abort(&g, st);
    if (g.world_rank == g.world_size - 1) {
        if (!strcmp(mode, "abort")) {
            dpt_group_abort(&g, dpt_errorf(DPT_EIO, "data.h5: simulated failure"));
        } else if (!strcmp(mode, "exit") || !strcmp(mode, "exit0")) {
            fprintf(stderr, "rank %d: exiting without MPI_Finalize\n", g.world_rank);
            return mode[4] ? 0 : 3; /* exit0: even a zero status must fail the job */
        } else if (hang) {
            fprintf(stderr, "rank %d: hanging\n", g.world_rank);
            for (;;) {
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
            }
        }
        fprintf(stderr, "unknown --die mode '%s' (abort, exit, exit0, hang)\n", mode);
        dpt_group_abort(&g, DPT_EINVAL);
    }
    st = dpt_group_agree(&g, DPT_OK);
    fprintf(stderr, "rank %d: agreement returned %s: the dead rank was not detected\n",
            g.world_rank, dpt_status_name(st));
    dpt_group_free(&g);
    MPI_Finalize();
    return 0; /* dead_rank.sh fails on a zero exit status */
}

int main(int argc, char **argv) {
    int W = mpi_check_init(&argc, &argv);
    if (argc == 3 && !strcmp(argv[1], "--die"))
        return die(argv[2]);
    test_all_ok();
    test_one_fails(W, 1);
    test_one_fails(W, 2); /* groups: the agreement still spans the world */
    test_worst_wins(W);
    test_long_message();
    test_late_rank();
    return mpi_check_finish("test_failure");
}
