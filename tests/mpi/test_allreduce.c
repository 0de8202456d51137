/* The bucketed gradient allreduce under mpirun. Oracle: the serial sum, in double, of every
 * rank's gradient, regenerated on each rank from the same seeded streams (Philox, keyed by world
 * rank). A float sum of R terms in any order is within R*FLT_EPSILON*sum|x| of it, and the scale
 * adds one more rounding; that bound is the tolerance, per element. Overlapped, blocking and a
 * plain MPI_Allreduce must all meet it, hold the same bits on every rank, and (2 ranks: one
 * rounding of a commutative sum) agree bit for bit. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dpt/comm.h"
#include "dpt/rng.h"
#include "mpi_check.h"

#define SEED 7321u

/* A small CNN's parameter tensors in layer order: conv(1->32, 3x3), bias, bn gamma/beta,
 * conv(32->64, 3x3), bias, dense(1024->128), bias, dense(128->10), bias. */
static const int64_t seg_counts[] = {288, 32, 32, 32, 18432, 64, 131072, 128, 1280, 10};
#define N_SEGS ((int)(sizeof seg_counts / sizeof seg_counts[0]))

typedef struct {
    int W;
    dpt_group g;
    dpt_comm_segment segs[N_SEGS];
    int64_t n;
    float *mine;           /* this rank's gradient */
    double *ref, *abs_sum; /* serial sum over the group, and sum of |x| */
    float *got, *plain;
    float scale;
} fixture;

static void fixture_init(fixture *f, int W, int G) {
    memset(f, 0, sizeof *f);
    f->W = W;
    dpt_status st = dpt_group_init(&f->g, MPI_COMM_WORLD, &(dpt_group_cfg){.n_groups = G});
    CHECK(st == DPT_OK, "init: %s", dpt_last_error());
    for (int s = 0; s < N_SEGS; s++) {
        f->segs[s] = (dpt_comm_segment){f->n, seg_counts[s]};
        f->n += seg_counts[s];
    }
    size_t n = (size_t)f->n;
    f->mine = malloc(n * sizeof *f->mine);
    f->got = malloc(n * sizeof *f->got);
    f->plain = malloc(n * sizeof *f->plain);
    f->ref = calloc(n, sizeof *f->ref);
    f->abs_sum = calloc(n, sizeof *f->abs_sum);
    float *tmp = malloc(n * sizeof *tmp);
    int first = f->g.group * f->g.size; /* block layout: my group's world ranks */
    for (int r = first; r < first + f->g.size; r++) {
        dpt_fill_uniform(tmp, f->n, -1.0f, 1.0f, SEED, (uint32_t)r);
        for (int64_t i = 0; i < f->n; i++) {
            f->ref[i] += tmp[i];
            f->abs_sum[i] += fabs(tmp[i]);
        }
    }
    free(tmp);
    dpt_fill_uniform(f->mine, f->n, -1.0f, 1.0f, SEED, (uint32_t)f->g.world_rank);
    /* 1/global batch for 32 samples per rank, as the trainer would pass it */
    f->scale = (float)(1.0 / (32.0 * f->g.size));
    for (int64_t i = 0; i < f->n; i++) {
        f->ref[i] *= f->scale;
        f->abs_sum[i] *= f->scale;
    }
    /* The plain MPI_Allreduce result, scaled the same way. */
    MPI_Allreduce(f->mine, f->plain, (int)f->n, MPI_FLOAT, MPI_SUM, f->g.comm);
    for (int64_t i = 0; i < f->n; i++)
        f->plain[i] *= f->scale;
}

static void fixture_free(fixture *f) {
    free(f->mine);
    free(f->got);
    free(f->plain);
    free(f->ref);
    free(f->abs_sum);
    dpt_group_free(&f->g);
}

/* |got - ref| <= R*FLT_EPSILON*sum|x|*scale per element (R-1 additions plus the scaling). */
static void check_result(fixture *f, const char *name) {
    double R = f->g.size;
    int64_t bad = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < f->n; i++) {
        double tol = R * FLT_EPSILON * f->abs_sum[i] + FLT_MIN;
        double err = fabs((double)f->got[i] - f->ref[i]);
        if (!(err <= tol) && (bad < 0 || err / tol > worst)) {
            bad = i;
            worst = err / tol;
        }
    }
    CHECK(bad < 0, "%s: element %lld: got %.9g, want %.9g (|err|/tol %.3g)", name, (long long)bad,
          bad < 0 ? 0.0 : (double)f->got[bad], bad < 0 ? 0.0 : f->ref[bad], worst);
    dpt_status st =
        dpt_group_check_same(&f->g, DPT_SCOPE_GROUP, f->got, (size_t)f->n * sizeof *f->got, name);
    CHECK(st == DPT_OK, "%s: replicas differ: %s", name, dpt_last_error());
    if (f->g.size <= 2)
        CHECK(memcmp(f->got, f->plain, (size_t)f->n * sizeof *f->got) == 0,
              "%s: differs from MPI_Allreduce at %d ranks", name, f->g.size);
}

/* Buckets tile the buffer from its end, hold whole segments, and respect the cap. */
static void check_buckets(const dpt_bucketer *b, const fixture *f, int64_t cap_bytes,
                          const char *name) {
    int64_t end = f->n;
    for (int k = 0; k < b->n_buckets; k++) {
        int64_t off, cnt;
        dpt_bucketer_bucket(b, k, &off, &cnt);
        CHECK(off + cnt == end, "%s: bucket %d ends at %lld, want %lld", name, k,
              (long long)(off + cnt), (long long)end);
        int starts_on_segment = 0, n_in = 0;
        for (int s = 0; s < N_SEGS; s++) {
            starts_on_segment |= f->segs[s].offset == off;
            n_in += f->segs[s].offset >= off && f->segs[s].offset < end;
        }
        CHECK(starts_on_segment, "%s: bucket %d starts inside a segment", name, k);
        CHECK(cnt * 4 <= cap_bytes || n_in == 1, "%s: bucket %d has %lld bytes over the cap", name,
              k, (long long)cnt * 4);
        /* Greedy from the end: the next segment would not have fitted. */
        if (k + 1 < b->n_buckets) {
            int64_t prev_seg = 0;
            for (int s = 0; s < N_SEGS; s++)
                if (f->segs[s].offset + f->segs[s].count == off)
                    prev_seg = f->segs[s].count;
            CHECK((cnt + prev_seg) * 4 > cap_bytes, "%s: bucket %d could have taken one more", name,
                  k);
        }
        end = off;
    }
    CHECK(end == 0, "%s: buckets leave [0, %lld) uncovered", name, (long long)end);
}

enum order { BACKWARD, RANDOM, NONE };

static void run_case(fixture *f, int64_t cap_bytes, int blocking, enum order order) {
    char name[96];
    static const char *order_names[] = {"backward order", "random order", "no marks"};
    snprintf(name, sizeof name, "G=%d cap=%lld %s %s", f->g.n_groups, (long long)cap_bytes,
             blocking ? "blocking" : "overlapped", order_names[order]);
    dpt_bucketer b;
    dpt_status st = dpt_bucketer_init(&b, &f->g, f->got, f->n, f->segs, N_SEGS,
                                      &(dpt_bucketer_cfg){cap_bytes, blocking});
    CHECK(st == DPT_OK, "%s: init: %s", name, dpt_last_error());
    if (st != DPT_OK)
        return;
    int64_t cap = cap_bytes ? cap_bytes : dpt_bucket_bytes_default(f->n * 4);
    check_buckets(&b, f, cap, name);
    if (cap_bytes == 1)
        CHECK(b.n_buckets == N_SEGS, "%s: %d buckets for a cap below every segment", name,
              b.n_buckets);
    if (cap >= f->n * 4)
        CHECK(b.n_buckets == 1, "%s: %d buckets for a cap above the buffer", name, b.n_buckets);

    for (int step = 0; step < 2; step++) { /* twice: the step state must reset */
        memcpy(f->got, f->mine, (size_t)f->n * sizeof *f->got);
        dpt_bucketer_begin(&b, 1.0 / (32.0 * f->g.size));
        if (order == BACKWARD) {
            for (int s = N_SEGS - 1; s >= 0; s--) { /* one layer at a time, last first */
                CHECK(dpt_bucketer_mark_from(&b, f->segs[s].offset) == DPT_OK, "%s: mark: %s", name,
                      dpt_last_error());
                CHECK(dpt_bucketer_progress(&b) == DPT_OK, "%s: progress", name);
            }
        } else if (order == RANDOM) {
            /* Each rank finishes segments in its own order (keyed by rank): buckets must still
             * start in the same order everywhere. */
            int64_t perm[N_SEGS];
            dpt_rng_permutation(perm, N_SEGS,
                                dpt_rng_key_make(SEED, DPT_RNG_TEST, (uint32_t)f->g.world_rank),
                                (uint32_t)step);
            for (int s = 0; s < N_SEGS; s++) {
                CHECK(dpt_bucketer_mark_segments(&b, (int)perm[s], (int)perm[s] + 1) == DPT_OK,
                      "%s: mark: %s", name, dpt_last_error());
                dpt_bucketer_progress(&b);
            }
        }
        st = dpt_bucketer_wait(&b);
        CHECK(st == DPT_OK, "%s: wait: %s", name, dpt_last_error());
        check_result(f, name);
        int want_early = blocking || order == NONE ? 0 : b.n_buckets;
        CHECK(b.stats.started_early == want_early, "%s: %d buckets started before wait, want %d",
              name, b.stats.started_early, want_early);
        CHECK(b.stats.steps == step + 1 && b.stats.wait_seconds >= 0.0, "%s: stats", name);
    }
    dpt_bucketer_free(&b);
}

static void test_marks(fixture *f) {
    dpt_bucketer b;
    dpt_status st = dpt_bucketer_init(&b, &f->g, f->got, f->n, f->segs, N_SEGS,
                                      &(dpt_bucketer_cfg){.bucket_bytes = 1});
    CHECK(st == DPT_OK, "init: %s", dpt_last_error());
    memcpy(f->got, f->mine, (size_t)f->n * sizeof *f->got);
    dpt_bucketer_begin(&b, 1.0);
    /* An offset inside the last segment marks nothing; its start marks exactly it. */
    dpt_bucketer_mark_from(&b, f->segs[N_SEGS - 1].offset + 1);
    CHECK(b.next_start == 0, "mark inside a segment started %d buckets", b.next_start);
    dpt_bucketer_mark_from(&b, f->segs[N_SEGS - 1].offset);
    dpt_bucketer_mark_from(&b, f->segs[N_SEGS - 1].offset); /* twice is harmless */
    CHECK(b.next_start == 1, "mark of the last segment started %d buckets", b.next_start);
    /* Segment 0 alone is complete but must wait for every bucket after it. */
    dpt_bucketer_mark_segments(&b, 0, 1);
    CHECK(b.next_start == 1, "an out-of-order bucket started early (%d)", b.next_start);
    dpt_bucketer_mark_from(&b, f->n); /* nothing */
    st = dpt_bucketer_wait(&b);
    CHECK(st == DPT_OK, "wait: %s", dpt_last_error());
    MPI_Allreduce(f->mine, f->plain, (int)f->n, MPI_FLOAT, MPI_SUM, f->g.comm);
    if (f->g.size <= 2)
        CHECK(memcmp(f->got, f->plain, (size_t)f->n * sizeof *f->got) == 0,
              "scale 1: differs from MPI_Allreduce");
    dpt_bucketer_free(&b);
}

static void test_bad_init(fixture *f) {
    dpt_bucketer b;
    dpt_comm_segment gap[2] = {{0, 10}, {11, 5}};
    CHECK(dpt_bucketer_init(&b, &f->g, f->got, 16, gap, 2, NULL) == DPT_EINVAL &&
              strstr(dpt_last_error(), "segment 1 starts at 11, expected 10"),
          "gap: %s", dpt_last_error());
    dpt_bucketer_free(&b);
    dpt_comm_segment short_[1] = {{0, 10}};
    CHECK(dpt_bucketer_init(&b, &f->g, f->got, 16, short_, 1, NULL) == DPT_EINVAL &&
              strstr(dpt_last_error(), "cover 10 floats, the buffer has 16"),
          "cover: %s", dpt_last_error());
    dpt_bucketer_free(&b);
    CHECK(dpt_bucketer_init(&b, &f->g, f->got, 10, short_, 1,
                            &(dpt_bucketer_cfg){.bucket_bytes = -1}) == DPT_EINVAL,
          "negative cap accepted");
    dpt_bucketer_free(&b);
    dpt_comm_segment empty[2] = {{0, 10}, {10, 0}};
    CHECK(dpt_bucketer_init(&b, &f->g, f->got, 10, empty, 2, NULL) == DPT_EINVAL,
          "empty segment accepted");
    dpt_bucketer_free(&b);
}

/* The default cap, by hand: a quarter of the gradient within [512 KiB, 25 MiB]. */
static void test_default_cap(void) {
    const int64_t fmnist_cnn = 468010 * 4, big = 25600000LL * 4;
    CHECK(dpt_bucket_bytes_default(fmnist_cnn) == 512 << 10, "fmnist-cnn: %lld",
          (long long)dpt_bucket_bytes_default(fmnist_cnn));
    CHECK(dpt_bucket_bytes_default(61706 * 4) == 512 << 10, "lenet5: one bucket");
    CHECK(dpt_bucket_bytes_default(8 << 20) == 2 << 20, "8 MiB: a quarter");
    CHECK(dpt_bucket_bytes_default(big) == big / 4, "25.6 M parameters (24.4 MiB): %lld",
          (long long)dpt_bucket_bytes_default(big));
    CHECK(dpt_bucket_bytes_default(4 * big) == 25 << 20, "102.4 M parameters: the 25 MiB cap");
}

int main(int argc, char **argv) {
    int W = mpi_check_init(&argc, &argv);
    test_default_cap();
    for (int G = 1; G <= 2; G++) {
        fixture f;
        fixture_init(&f, W, G);
        /* 1 byte: below every segment; 4 KiB and 64 KiB: several segments per bucket; 600 KiB:
         * just above the 512 KiB dense weight; n*4+1: above the whole buffer; 0: the default. */
        const int64_t caps[] = {1, 4096, 65536, 600 << 10, f.n * 4 + 1, 0};
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++)
            for (int o = BACKWARD; o <= NONE; o++)
                run_case(&f, caps[c], 0, (enum order)o);
        run_case(&f, 4096, 1, BACKWARD);
        run_case(&f, 0, 1, NONE);
        test_marks(&f);
        if (G == 1)
            test_bad_init(&f);
        fixture_free(&f);
    }
    return mpi_check_finish("test_allreduce");
}
