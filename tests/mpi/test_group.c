/* dpt_group under mpirun: the split matches the layout (oracle: the closed-form block and cyclic
 * mappings, checked against the members each group communicator reports), one leader per group,
 * MPI_ERRORS_RETURN everywhere, MPI errors translated, and bad layouts rejected on every rank
 * with the same message. */
#include <stdlib.h>
#include <string.h>

#include "dpt/comm.h"
#include "mpi_check.h"

static int errhandler_returns(MPI_Comm comm) {
    MPI_Errhandler eh;
    MPI_Comm_get_errhandler(comm, &eh);
    int ok = eh == MPI_ERRORS_RETURN;
    MPI_Errhandler_free(&eh);
    return ok;
}

static int cyclic(void *ctx, int world_rank, int world_size) {
    (void)world_size;
    return world_rank % *(const int *)ctx;
}

static int all_to_zero(void *ctx, int world_rank, int world_size) {
    return 0;
}

static int out_of_range(void *ctx, int world_rank, int world_size) {
    return world_rank + 5;
}

/* Checks a successfully built group against `expect(world_rank)`: membership, order, sizes,
 * leader, and that every communicator returns errors. */
static void check_layout(const dpt_group *g, int G, const int *expect, const char *name) {
    int W = g->world_size, me = g->world_rank;
    CHECK(g->n_groups == G, "%s: n_groups %d, want %d", name, g->n_groups, G);
    CHECK(g->group == expect[me], "%s: group %d, want %d", name, g->group, expect[me]);
    int members = 0, my_pos = 0;
    for (int r = 0; r < W; r++) {
        if (expect[r] == expect[me]) {
            if (r == me)
                my_pos = members;
            members++;
        }
    }
    CHECK(g->size == members, "%s: group size %d, want %d", name, g->size, members);
    CHECK(g->rank == my_pos, "%s: group rank %d, want %d (world order)", name, g->rank, my_pos);
    CHECK(g->leader == (my_pos == 0), "%s: leader flag %d at group rank %d", name, g->leader,
          g->rank);

    /* The group communicator really holds the expected world ranks, in world order. */
    int *ranks = malloc((size_t)g->size * sizeof *ranks);
    MPI_Allgather(&me, 1, MPI_INT, ranks, 1, MPI_INT, g->comm);
    for (int i = 0, k = 0; i < W; i++) {
        if (expect[i] != expect[me])
            continue;
        CHECK(ranks[k] == i, "%s: member %d of group %d is world rank %d, want %d", name, k,
              g->group, ranks[k], i);
        k++;
    }
    free(ranks);

    /* One leader per group: over the group the flags sum to 1, over the world to G. */
    int in_group = 0, in_world = 0;
    MPI_Allreduce(&g->leader, &in_group, 1, MPI_INT, MPI_SUM, g->comm);
    MPI_Allreduce(&g->leader, &in_world, 1, MPI_INT, MPI_SUM, g->world);
    CHECK(in_group == 1, "%s: %d leaders in group %d", name, in_group, g->group);
    CHECK(in_world == G, "%s: %d leaders in the world, want %d", name, in_world, G);

    int wr = -1, ws = -1;
    MPI_Comm_rank(g->world, &wr);
    MPI_Comm_size(g->world, &ws);
    int pw = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &pw);
    CHECK(wr == pw && ws == W, "%s: world rank/size %d/%d", name, wr, ws);
    CHECK(errhandler_returns(g->world) && errhandler_returns(g->comm) &&
              errhandler_returns(g->agree_comm),
          "%s: a communicator does not have MPI_ERRORS_RETURN", name);
}

static void test_block(int W, int G) {
    char name[64];
    snprintf(name, sizeof name, "block G=%d", G);
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, &(dpt_group_cfg){.n_groups = G});
    CHECK(st == DPT_OK, "%s: %s: %s", name, dpt_status_name(st), dpt_last_error());
    if (st == DPT_OK) {
        int *expect = malloc((size_t)W * sizeof *expect);
        for (int r = 0; r < W; r++)
            expect[r] = r / (W / (G ? G : 1)); /* closed form: consecutive blocks */
        check_layout(&g, G ? G : 1, expect, name);
        free(expect);
    }
    dpt_group_free(&g);
}

static void test_cyclic(int W, int G) {
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD,
                                   &(dpt_group_cfg){.n_groups = G, .map = cyclic, .map_ctx = &G});
    CHECK(st == DPT_OK, "cyclic: %s", dpt_last_error());
    if (st == DPT_OK) {
        int *expect = malloc((size_t)W * sizeof *expect);
        for (int r = 0; r < W; r++)
            expect[r] = r % G;
        check_layout(&g, G, expect, "cyclic");
        free(expect);
    }
    dpt_group_free(&g);
}

/* A bad layout fails on every rank, with the same message everywhere, and leaves the world
 * communicators usable for the agreement that reports it. */
static void test_bad_layout(const char *name, const dpt_group_cfg *cfg, const char *want) {
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, cfg);
    const char *msg = dpt_last_error();
    CHECK(st == DPT_EINVAL, "%s: got %s (%s)", name, dpt_status_name(st), msg);
    CHECK(strstr(msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", name, msg, want);
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", msg);
    CHECK(g.comm == MPI_COMM_NULL, "%s: a group communicator after a failed init", name);
    dpt_status same = dpt_group_check_same(&g, DPT_SCOPE_WORLD, copy, strlen(copy), "message");
    CHECK(same == DPT_OK, "%s: the error message differs between ranks: %s", name,
          dpt_last_error());
    dpt_status agreed = dpt_group_agree(&g, st);
    CHECK(agreed == DPT_EINVAL, "%s: agreement after a failed init gave %s", name,
          dpt_status_name(agreed));
    dpt_group_free(&g);
}

int main(int argc, char **argv) {
    int W = mpi_check_init(&argc, &argv);

    test_block(W, 0); /* default: one group */
    test_block(W, 1);
    test_block(W, 2);
    test_block(W, W);
    test_cyclic(W, 2);

    char want[128];
    snprintf(want, sizeof want, "%d ranks cannot be split into 3 groups of equal size", W);
    if (W % 3 != 0 && W >= 3)
        test_bad_layout("non-divisible", &(dpt_group_cfg){.n_groups = 3, .what = "--members 3"},
                        want);
    test_bad_layout("too many groups", &(dpt_group_cfg){.n_groups = W + 1, .what = "--folds"},
                    "--folds: ");
    test_bad_layout("no group", &(dpt_group_cfg){.n_groups = -1}, "at least 1");
    test_bad_layout("map out of range", &(dpt_group_cfg){.n_groups = 2, .map = out_of_range},
                    "rank 0 is mapped");
    test_bad_layout("empty group", &(dpt_group_cfg){.n_groups = 2, .map = all_to_zero},
                    "group 1 has no rank");
    /* With 4 ranks the block layout of 3 groups is the non-divisible case; with 2 it is "too
     * many groups". Both sizes must reject G = 3 on every rank. */
    test_bad_layout("G=3", &(dpt_group_cfg){.n_groups = 3},
                    W >= 3 ? "cannot be split" : "need at least 3 ranks");

    /* MPI errors come back as codes (MPI_ERRORS_RETURN) and are translated. */
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, NULL);
    CHECK(st == DPT_OK, "default init: %s", dpt_last_error());
    float x = 0.0f;
    int rc = MPI_Bcast(&x, 1, MPI_FLOAT, g.size + 7, g.comm); /* invalid root */
    st = dpt_mpi_status(rc, "test broadcast");
    CHECK(rc != MPI_SUCCESS && st == DPT_EMPI, "invalid root gave rc %d, %s", rc,
          dpt_status_name(st));
    CHECK(strncmp(dpt_last_error(), "test broadcast: MPI_ERR", 23) == 0, "translated: \"%s\"",
          dpt_last_error());
    CHECK(dpt_mpi_status(MPI_SUCCESS, "nothing") == DPT_OK, "MPI_SUCCESS is DPT_OK");
    CHECK(g.agree_timeout == DPT_AGREE_TIMEOUT_DEFAULT, "default timeout %g", g.agree_timeout);
    dpt_group_free(&g);

    dpt_group zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    dpt_group_free(&zeroed); /* a zeroed struct frees safely */

    return mpi_check_finish("test_group");
}
