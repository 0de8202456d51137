/* Rank groups and a bagging run under mpirun -np 2 and -np 4. Oracles: the closed-form layout
 * (P = min(G, R) groups of R / P consecutive ranks, job j on group j % P) checked against the
 * communicators; results carried to rank 0 against what each leader sent; the bagging run's files
 * against independent recomputation: each member's in-bag list against dpt_resample_bootstrap
 * from the seed, out-of-bag lists disjoint from and complementary to the in-bag draws, members'
 * samples different, and the soft vote against the plain mean of the members' saved
 * probabilities (computed here in double). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpt/comm.h"
#include "dpt/h5file.h"
#include "dpt/sampler.h"
#include "dpt/train.h"
#include "mpi_check.h"

static void test_layout(const dpt_group *world, int G) {
    int R = world->world_size, P = G < R ? G : R;
    dpt_rank_groups rg;
    dpt_status st = dpt_rank_groups_init(&rg, world, G, 0, "members");
    CHECK(st == DPT_OK, "G=%d: %s", G, dpt_last_error());
    if (st != DPT_OK) {
        dpt_rank_groups_free(&rg);
        return;
    }
    int me = world->world_rank;
    CHECK(rg.n_groups == P && rg.group_size == R / P, "G=%d: %d groups of %d", G, rg.n_groups,
          rg.group_size);
    CHECK(rg.split.group == me / (R / P), "G=%d: rank %d in group %d", G, me, rg.split.group);
    CHECK(rg.member.world_size == R / P && rg.member.world_rank == me % (R / P),
          "G=%d: private world %d of %d", G, rg.member.world_rank, rg.member.world_size);
    CHECK((rg.leaders != MPI_COMM_NULL) == (me % (R / P) == 0), "G=%d: leaders' comm", G);
    for (int j = 0; j < G; j++)
        CHECK(dpt_rank_groups_group_of(&rg, j) == j % P, "G=%d: job %d on group %d", G, j,
              dpt_rank_groups_group_of(&rg, j));
    /* every job's result reaches rank 0 from the leader that ran it */
    for (int j = 0; j < G; j++) {
        double v[2] = {-1, -1};
        if (rg.split.leader && rg.split.group == j % P)
            v[0] = j, v[1] = me;
        st = dpt_rank_groups_to_root(&rg, j, v, sizeof v);
        CHECK(st == DPT_OK, "to_root %d: %s", j, dpt_last_error());
        if (me == 0)
            CHECK(v[0] == j && v[1] == (j % P) * (R / P), "job %d came as (%g, %g)", j, v[0],
                  v[1]);
    }
    CHECK(dpt_rank_groups_wait_all(&rg) == DPT_OK, "wait_all");
    dpt_rank_groups_free(&rg);
}

/* With `fit`, 3 jobs on 4 ranks run as 2 groups of 2 (the largest divisor of 4 not above 3);
 * without it they are an error naming the layout. */
static void test_fit(const dpt_group *world) {
    int R = world->world_size;
    dpt_rank_groups rg;
    dpt_status st = dpt_rank_groups_init(&rg, world, 3, 1, "points");
    int want = R >= 3 ? (R % 3 == 0 ? 3 : R % 2 == 0 ? 2 : 1) : R;
    CHECK(st == DPT_OK && rg.n_groups == want && rg.group_size == R / want,
          "fit: 3 jobs on %d ranks gave %d groups, want %d", R, rg.n_groups, want);
    dpt_rank_groups_free(&rg);
    if (R == 4) {
        st = dpt_rank_groups_init(&rg, world, 3, 0, "points");
        CHECK(st == DPT_EINVAL && strstr(dpt_last_error(), "cannot form 3 groups"),
              "no fit: %s", dpt_last_error());
        dpt_rank_groups_free(&rg);
    }
}

static void read_i64(const char *path, const char *obj, int64_t **out, int64_t *n) {
    dpt_h5r r;
    *out = NULL, *n = 0;
    if (dpt_h5r_open(&r, path) != DPT_OK)
        return;
    int nd;
    int64_t dims[8];
    if (dpt_h5r_shape(&r, obj, &nd, dims) == DPT_OK && nd == 1) {
        *n = dims[0];
        *out = malloc((size_t)(*n + 1) * sizeof(int64_t));
        if (dpt_h5r_i64(&r, obj, *out, *n) != DPT_OK)
            *n = 0;
    }
    dpt_h5r_close(&r);
}

enum { G = 4 }; /* members: 2 queued per group at np 2, one each at np 4 */

static void test_bagging(dpt_group *world) {
    char out[256];
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(out, sizeof out, "/tmp/dpt_test_ensemble_%d_np%d", pid, world->world_size);
    dpt_train_cfg cfg;
    dpt_train_cfg_defaults(&cfg);
    cfg.model = "lenet5";
    cfg.data = "sample";
    cfg.data_search = DPT_SOURCE_DIR;
    cfg.batch = 32;
    cfg.max_steps = 6;
    cfg.epochs = 1;
    cfg.test_samples = 100;
    cfg.quiet = 1;
    cfg.out = out;
    FILE *devnull = fopen("/dev/null", "w");
    cfg.log = devnull;
    dpt_ensemble_cfg ec = {.kind = DPT_ENS_BAGGING, .members = G, .max_samples = 0.5};
    dpt_status st = dpt_ensemble_run(&cfg, &ec, world, NULL);
    CHECK(st == DPT_OK, "bagging run: %s", dpt_last_error());
    if (world->world_rank == 0 && st == DPT_OK) {
        const int64_t n_pool = 3000, m = 1500, n = 100, K = 10;
        int64_t *bag[G] = {0};
        for (int j = 0; j < G; j++) {
            char path[512];
            snprintf(path, sizeof path, "%s/members/%02d/checkpoints/final.h5", out, j);
            int64_t *oob, n_bag, n_oob;
            read_i64(path, "member/train_indices", &bag[j], &n_bag);
            read_i64(path, "member/heldout_indices", &oob, &n_oob);
            CHECK(n_bag == m, "member %d: %lld in-bag draws, want floor(0.5 * 3000)", j,
                  (long long)n_bag);
            int64_t *want = malloc((size_t)n_pool * sizeof *want), *want_oob = malloc(
                                                                       (size_t)n_pool * 8);
            int64_t want_n_oob = 0;
            dpt_resample_bootstrap(want, m, want_oob, &want_n_oob, NULL, n_pool, cfg.seed,
                                   (uint32_t)j);
            CHECK(n_bag == m && !memcmp(want, bag[j], (size_t)m * 8),
                  "member %d: in-bag list is not the seed's bootstrap", j);
            /* out of bag = the pool minus the draws, each once */
            char *seen = calloc((size_t)n_pool, 1);
            for (int64_t i = 0; i < n_bag; i++)
                seen[bag[j][i]] = 1;
            int64_t missing = 0;
            for (int64_t i = 0; i < n_pool; i++)
                missing += !seen[i];
            int ok = n_oob == missing;
            for (int64_t i = 0; i < n_oob && ok; i++)
                ok = !seen[oob[i]] && (seen[oob[i]] = 2);
            CHECK(ok, "member %d: out-of-bag list (%lld) is not the complement of the draws "
                      "(%lld)",
                  j, (long long)n_oob, (long long)missing);
            free(seen), free(want), free(want_oob), free(oob);
        }
        CHECK(bag[0] && bag[1] && memcmp(bag[0], bag[1], (size_t)m * 8) != 0,
              "members 0 and 1 drew the same sample");
        for (int j = 0; j < G; j++)
            free(bag[j]);
        /* soft vote = mean of the saved member probabilities */
        char path[512];
        snprintf(path, sizeof path, "%s/results.h5", out);
        dpt_h5r r;
        CHECK(dpt_h5r_open(&r, path) == DPT_OK, "%s", dpt_last_error());
        float *p = malloc((G + 1) * (size_t)(n * K) * sizeof(float));
        int okread = 1;
        for (int j = 0; j < G; j++) {
            char obj[64];
            snprintf(obj, sizeof obj, "ensemble/member_test_probs/%02d", j);
            okread &= dpt_h5r_f32(&r, obj, p + j * n * K, n * K) == DPT_OK;
        }
        okread &= dpt_h5r_f32(&r, "ensemble/test_probs", p + G * n * K, n * K) == DPT_OK;
        CHECK(okread, "reading the probabilities: %s", dpt_last_error());
        double worst = 0;
        for (int64_t i = 0; okread && i < n * K; i++) {
            double mean = 0;
            for (int j = 0; j < G; j++)
                mean += p[j * n * K + i];
            mean /= G;
            worst = fmax(worst, fabs(mean - p[G * n * K + i]));
        }
        CHECK(okread && worst <= 6e-8, "soft vote differs from the mean by %g", worst);
        double acc = NAN;
        CHECK(dpt_h5r_f64(&r, "ensemble/test_acc", &acc, 1) == DPT_OK && acc > 0.1 && acc <= 1,
              "ensemble test_acc %g", acc);
        dpt_h5r_close(&r);
        free(p);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
        CHECK(system(cmd) == 0, "cleanup");
    }
    fclose(devnull);
}

int main(int argc, char **argv) {
    int R = mpi_check_init(&argc, &argv);
    dpt_group world;
    CHECK(dpt_group_init(&world, MPI_COMM_WORLD, NULL) == DPT_OK, "%s", dpt_last_error());
    test_layout(&world, 1);
    test_layout(&world, 2);
    test_layout(&world, R);
    test_layout(&world, 5); /* 5 members queued on min(5, R) groups */
    test_fit(&world);
    test_bagging(&world);
    dpt_group_free(&world);
    return mpi_check_finish("test_rank_groups");
}
