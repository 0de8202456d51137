/* Small collectives under mpirun. Oracles: the leader's data regenerated locally from its seed
 * (broadcast, bit for bit), closed-form sums of rank-dependent values (metrics, batch-norm
 * reducer; exactly representable, so equality is exact), and the list of ranks that were made to
 * differ (checksum). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dpt/comm.h"
#include "mpi_check.h"

#define SEED 20240611u

/* nn's dpt_bn_reduce_fn, restated so that this test needs no model: the reducer must fit it. */
typedef dpt_status (*bn_reduce_fn)(void *ctx, double *buf, int64_t n);

static void test_bcast(int G) {
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, &(dpt_group_cfg){.n_groups = G});
    CHECK(st == DPT_OK, "init G=%d: %s", G, dpt_last_error());
    int64_t n = 100003;
    float *x = malloc((size_t)n * sizeof *x), *want = malloc((size_t)n * sizeof *want);
    /* The leader holds the group's parameters; every other rank starts from different data. */
    dpt_fill_uniform(want, n, -1.0f, 1.0f, SEED, (uint32_t)g.group);
    if (g.leader)
        memcpy(x, want, (size_t)n * sizeof *x);
    else
        dpt_fill_uniform(x, n, -5.0f, 5.0f, SEED, 1000u + (uint32_t)g.world_rank);
    st = dpt_group_bcast_f32(&g, x, n);
    CHECK(st == DPT_OK, "bcast: %s", dpt_last_error());
    CHECK(memcmp(x, want, (size_t)n * sizeof *x) == 0,
          "G=%d: rank %d of group %d does not hold its leader's parameters", G, g.rank, g.group);
    st = dpt_group_check_same(&g, DPT_SCOPE_GROUP, x, (size_t)n * sizeof *x, "parameters");
    CHECK(st == DPT_OK, "parameters after bcast: %s", dpt_last_error());
    CHECK(dpt_group_bcast_f32(&g, NULL, 0) == DPT_OK, "empty broadcast");
    free(x);
    free(want);
    dpt_group_free(&g);
}

static void test_hash(void) {
    unsigned char a[37], b[37];
    for (int i = 0; i < 37; i++)
        a[i] = b[i] = (unsigned char)(i * 7 + 1);
    uint64_t h = dpt_hash64(a, sizeof a);
    CHECK(h == dpt_hash64(b, sizeof b), "equal bytes, different hashes");
    for (int bit = 0; bit < 37 * 8; bit += 5) {
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        CHECK(dpt_hash64(b, sizeof b) != h, "flipping bit %d leaves the hash unchanged", bit);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    unsigned char zero[9] = {0};
    CHECK(dpt_hash64(zero, 8) != dpt_hash64(zero, 9), "length is not hashed");
    CHECK(dpt_hash64(zero, 0) != dpt_hash64(zero, 1), "empty vs one zero byte");
}

/* Ranks in `bad` (a bitmask of world ranks) perturb their copy; the error must name exactly
 * them, on every rank of the scope. */
static void check_mismatch(const dpt_group *g, dpt_scope scope, unsigned bad, const char *want,
                           const char *name) {
    char args[64] = "train --model fmnist-cnn --batch 256 --seed 1";
    size_t len = strlen(args);
    if (bad >> g->world_rank & 1u)
        args[len - 1] = '2';
    dpt_status st = dpt_group_check_same(g, scope, args, len, "the command line");
    if (!want) {
        CHECK(st == DPT_OK, "%s: %s", name, dpt_last_error());
        return;
    }
    CHECK(st == DPT_EINVAL, "%s: got %s", name, dpt_status_name(st));
    CHECK(strstr(dpt_last_error(), want) != NULL, "%s: \"%s\" lacks \"%s\"", name, dpt_last_error(),
          want);
}

static void test_checksum(int W) {
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, NULL);
    CHECK(st == DPT_OK, "init: %s", dpt_last_error());
    char want[256];
    check_mismatch(&g, DPT_SCOPE_WORLD, 0u, NULL, "identical");
    snprintf(want, sizeof want,
             "the command line differs between ranks: rank %d differs from "
             "rank 0 (1 of %d ranks differ)",
             W - 1, W);
    check_mismatch(&g, DPT_SCOPE_WORLD, 1u << (W - 1), want, "last rank");
    if (W >= 4) {
        check_mismatch(&g, DPT_SCOPE_WORLD, (1u << 1) | (1u << 3),
                       "ranks 1, 3 differ from rank 0 (2 of 4 ranks differ)", "ranks 1 and 3");
        check_mismatch(&g, DPT_SCOPE_WORLD, 1u, "ranks 1, 2, 3 differ from rank 0", "rank 0");
    } else {
        check_mismatch(&g, DPT_SCOPE_WORLD, 1u, "rank 1 differs from rank 0", "rank 0");
    }
    /* Different lengths are a mismatch too. */
    char buf[8] = "abcdefg";
    st = dpt_group_check_same(&g, DPT_SCOPE_WORLD, buf, g.world_rank == 0 ? 7 : 6, "version");
    CHECK(st == DPT_EINVAL, "length mismatch: %s", dpt_status_name(st));
    dpt_group_free(&g);

    /* Group scope: only the perturbed rank's group fails, and it names world ranks. */
    st = dpt_group_init(&g, MPI_COMM_WORLD, &(dpt_group_cfg){.n_groups = 2});
    CHECK(st == DPT_OK, "init G=2: %s", dpt_last_error());
    if (W >= 4) {
        snprintf(want, sizeof want, "rank 3 differs from rank 2 (1 of 2 ranks differ)");
        check_mismatch(&g, DPT_SCOPE_GROUP, 1u << 3, g.group == 1 ? want : NULL, "group scope");
    } else {
        check_mismatch(&g, DPT_SCOPE_GROUP, 1u << 1, NULL, "group of one");
    }
    dpt_group_free(&g);
}

static void test_sums(int W) {
    for (int G = 1; G <= 2; G++) {
        dpt_group g;
        dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, &(dpt_group_cfg){.n_groups = G});
        CHECK(st == DPT_OK, "init G=%d: %s", G, dpt_last_error());
        int first = g.group * (W / G), last = first + g.size - 1; /* world ranks of my group */
        for (int scope = 0; scope < 2; scope++) {
            int lo = scope == DPT_SCOPE_GROUP ? first : 0;
            int hi = scope == DPT_SCOPE_GROUP ? last : W - 1;
            double cnt = hi - lo + 1, rsum = (lo + hi) * cnt / 2;
            /* Halves, integers and 2^40 multiples: every partial sum is exact in double. */
            double d[3] = {0.5 + g.world_rank, 1.0, 0x1p40 * g.world_rank};
            st = dpt_group_sum_f64(&g, (dpt_scope)scope, d, 3);
            CHECK(st == DPT_OK, "sum_f64: %s", dpt_last_error());
            CHECK(d[0] == 0.5 * cnt + rsum && d[1] == cnt && d[2] == 0x1p40 * rsum,
                  "G=%d scope %d: f64 sums %g %g %g", G, scope, d[0], d[1], d[2]);
            int64_t i[2] = {(int64_t)1 << 50 | g.world_rank, -g.world_rank};
            st = dpt_group_sum_i64(&g, (dpt_scope)scope, i, 2);
            CHECK(st == DPT_OK, "sum_i64: %s", dpt_last_error());
            CHECK(i[0] == ((int64_t)1 << 50) * (int64_t)cnt + (int64_t)rsum && i[1] == -rsum,
                  "G=%d scope %d: i64 sums %lld %lld", G, scope, (long long)i[0], (long long)i[1]);
        }
        /* The batch-norm reducer: per-channel sums, sums of squares and a count, in place. */
        bn_reduce_fn fn = dpt_group_bn_reduce;
        double bn[5] = {g.world_rank, 2.0 * g.world_rank, 1.0, -0.25, 16.0};
        st = fn(&g, bn, 5);
        CHECK(st == DPT_OK, "bn reducer: %s", dpt_last_error());
        double cnt = g.size, rsum = (first + last) * cnt / 2;
        CHECK(bn[0] == rsum && bn[1] == 2 * rsum && bn[2] == cnt && bn[3] == -0.25 * cnt &&
                  bn[4] == 16 * cnt,
              "G=%d: bn sums %g %g %g %g %g", G, bn[0], bn[1], bn[2], bn[3], bn[4]);
        CHECK(fn(&g, NULL, 0) == DPT_OK, "empty reduction");
        dpt_group_free(&g);
    }
}

int main(int argc, char **argv) {
    int W = mpi_check_init(&argc, &argv);
    test_bcast(1);
    test_bcast(2);
    test_hash();
    test_checksum(W);
    test_sums(W);
    return mpi_check_finish("test_collectives");
}
