/* The --deterministic exact sum under mpirun. Oracles: (1) a serial single-process computation
 * of all K chunks on every rank (the same scale rule, one int64 accumulator, no MPI): the
 * distributed result must equal it bit for bit, for every split of the chunks over 1, 2 or 4
 * ranks (sub-groups of this launch); (2) a double-precision sum of the chunks, within the derived
 * bound K*2^-(E+1) (quantization) + 2K*DBL_EPSILON*sum|x| (double sum) + FLT_EPSILON*|ref| (final
 * rounding to float); (3) closed forms at the edges (zero, FLT_MAX). Chunk data come from Philox
 * keyed by the global chunk index, never by rank. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dpt/comm.h"
#include "dpt/rng.h"
#include "mpi_check.h"

#define SEED 99173u
#define N 10007 /* values per chunk (a prime: no alignment luck) */

/* Chunk k's gradient: uniform values scaled by 2^s with s in [-30, 10] varying by element and
 * chunk, some exact zeros, and a few subnormals: magnitudes far apart stress the quantization. */
static void make_chunk(float *x, int k) {
    dpt_fill_uniform(x, N, -1.0f, 1.0f, SEED, (uint32_t)k);
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(SEED, DPT_RNG_TEST, 77), (uint32_t)k, 0);
    for (int i = 0; i < N; i++) {
        int s = (int)dpt_rng_below(&r, 41) - 30;
        x[i] = ldexpf(x[i], s + (k == 3 ? 5 : 0));
        if (i % 97 == 0)
            x[i] = 0.0f;
        if (i % 101 == 0)
            x[i] = 1e-40f * (float)(k + 1);
    }
}

/* The serial computation: every chunk on one process, no communication. */
static void serial(float *out, dpt_exact_scale *scale, int K, double extra) {
    float *chunk = malloc(N * sizeof *chunk);
    double m = 0.0;
    for (int k = 0; k < K; k++) {
        make_chunk(chunk, k);
        double mk = dpt_exact_maxabs(chunk, N);
        m = mk > m ? mk : m;
    }
    *scale = dpt_exact_scale_make(m, K);
    dpt_exact_acc a;
    dpt_exact_acc_init(&a, N);
    dpt_exact_acc_begin(&a, scale);
    for (int k = 0; k < K; k++) {
        make_chunk(chunk, k);
        dpt_exact_acc_add_chunk(&a, chunk);
    }
    dpt_exact_acc_result(&a, out, extra);
    dpt_exact_acc_free(&a);
    free(chunk);
}

/* The distributed computation as the trainer does it: this rank's chunks kept, the maximum
 * agreed, then quantized, added, allreduced. strided = 0: chunks [r*K/R, (r+1)*K/R) (contiguous
 * slices of the global batch); 1: chunks r, r+R, ... (another split, same answer). */
static dpt_status distributed(float *out, dpt_exact_scale *scale, const dpt_group *g, int K,
                              int strided, double extra) {
    int R = g->size, per = K / R;
    float *mine = malloc((size_t)per * N * sizeof *mine);
    for (int j = 0; j < per; j++)
        make_chunk(mine + (size_t)j * N, strided ? g->rank + j * R : g->rank * per + j);
    dpt_status st = dpt_exact_agree(g, dpt_exact_maxabs(mine, (int64_t)per * N), K, scale);
    dpt_exact_acc a;
    if (st == DPT_OK)
        st = dpt_exact_acc_init(&a, N);
    if (st == DPT_OK) {
        dpt_exact_acc_begin(&a, scale);
        for (int j = 0; j < per && st == DPT_OK; j++)
            st = dpt_exact_acc_add_chunk(&a, mine + (size_t)j * N);
        if (st == DPT_OK)
            st = dpt_exact_acc_allreduce(&a, g);
        dpt_exact_acc_result(&a, out, extra);
        dpt_exact_acc_free(&a);
    }
    free(mine);
    return st;
}

static void check_against_double(const float *got, const dpt_exact_scale *s, int K, double extra,
                                 const char *name) {
    double *sum = calloc(N, sizeof *sum), *abs_sum = calloc(N, sizeof *abs_sum);
    float *chunk = malloc(N * sizeof *chunk);
    for (int k = 0; k < K; k++) {
        make_chunk(chunk, k);
        for (int i = 0; i < N; i++) {
            sum[i] += chunk[i];
            abs_sum[i] += fabs(chunk[i]);
        }
    }
    int bad = -1;
    for (int i = 0; i < N && bad < 0; i++) {
        double ref = sum[i] * extra;
        double tol =
            extra * (K * ldexp(1.0, -(s->exponent + 1)) + 2 * K * DBL_EPSILON * abs_sum[i]) +
            FLT_EPSILON * fabs(ref) + FLT_TRUE_MIN;
        if (!(fabs(got[i] - ref) <= tol))
            bad = i;
    }
    CHECK(bad < 0, "%s: element %d: got %.9g, double sum %.9g", name, bad, bad < 0 ? 0.0 : got[bad],
          bad < 0 ? 0.0 : sum[bad] * extra);
    free(sum);
    free(abs_sum);
    free(chunk);
}

static void test_bit_identical(int W, int K) {
    double extra = 1.0 / (16.0 * K); /* 16 samples per chunk: 1/global batch */
    float *want = malloc(N * sizeof *want), *got = malloc(N * sizeof *got);
    dpt_exact_scale ws;
    serial(want, &ws, K, extra);
    check_against_double(want, &ws, K, extra, "serial");
    /* G groups of W/G ranks: each group sums all K chunks with its own rank count. */
    for (int G = 1; G <= W; G *= 2) {
        dpt_group g;
        dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, &(dpt_group_cfg){.n_groups = G});
        CHECK(st == DPT_OK, "init: %s", dpt_last_error());
        for (int strided = 0; strided <= 1; strided++) {
            char name[80];
            snprintf(name, sizeof name, "K=%d on %d rank(s)%s", K, g.size,
                     strided ? ", strided chunks" : "");
            dpt_exact_scale s;
            memset(got, 0xff, N * sizeof *got);
            st = distributed(got, &s, &g, K, strided, extra);
            CHECK(st == DPT_OK, "%s: %s", name, dpt_last_error());
            CHECK(s.exponent == ws.exponent && s.maxabs == ws.maxabs && s.qmax == ws.qmax,
                  "%s: scale E=%d M=%g, serial E=%d M=%g", name, s.exponent, s.maxabs, ws.exponent,
                  ws.maxabs);
            int first = -1;
            for (int i = 0; i < N && first < 0; i++)
                if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
                    first = i;
            CHECK(first < 0, "%s: element %d: %a, serial %a", name, first,
                  first < 0 ? 0.0 : got[first], first < 0 ? 0.0 : want[first]);
            st = dpt_group_check_same(&g, DPT_SCOPE_WORLD, got, N * sizeof *got, name);
            CHECK(st == DPT_OK, "%s: %s", name, dpt_last_error());
        }
        dpt_group_free(&g);
    }
    free(want);
    free(got);
}

static void test_scale_rule(void) {
    /* M = 1 (e = 1), K = 3 (2 bits of headroom): E = 62 - 2 - 1. */
    dpt_exact_scale s = dpt_exact_scale_make(1.0, 3);
    CHECK(s.exponent == 59 && s.qmax == 0x1p60, "M=1 K=3: E=%d qmax=%g", s.exponent, s.qmax);
    s = dpt_exact_scale_make(0.75, 1); /* e = 0 */
    CHECK(s.exponent == 62 && s.qmax == 0x1p62, "M=0.75 K=1: E=%d", s.exponent);
    s = dpt_exact_scale_make(0.0, 8);
    CHECK(s.exponent == 0, "M=0: E=%d", s.exponent);
    s = dpt_exact_scale_make(FLT_TRUE_MIN, 1); /* 2^-149: e = -148 */
    CHECK(s.exponent == 62 + 148, "M=2^-149: E=%d", s.exponent);
    float v[3] = {1.0f, -INFINITY, 2.0f};
    CHECK(dpt_exact_maxabs(v, 1) == 1.0 && isinf(dpt_exact_maxabs(v, 3)), "maxabs inf");
    v[1] = NAN;
    CHECK(isinf(dpt_exact_maxabs(v, 3)), "maxabs NaN");
    CHECK(dpt_exact_maxabs(v, 0) == 0.0, "maxabs empty");
}

/* K copies of +-FLT_MAX: the largest possible sum must not overflow and must come back exactly. */
static void test_extremes(void) {
    enum { K = 4, n = 2 };
    float chunk[n] = {FLT_MAX, -FLT_MAX}, out[n];
    dpt_exact_scale s = dpt_exact_scale_make(FLT_MAX, K);
    dpt_exact_acc a;
    dpt_exact_acc_init(&a, n);
    dpt_exact_acc_begin(&a, &s);
    for (int k = 0; k < K; k++)
        CHECK(dpt_exact_acc_add_chunk(&a, chunk) == DPT_OK, "FLT_MAX chunk %d: %s", k,
              dpt_last_error());
    dpt_exact_acc_result(&a, out, 1.0 / K);
    CHECK(out[0] == FLT_MAX && out[1] == -FLT_MAX, "K*FLT_MAX/K = %a, %a", out[0], out[1]);
    /* A value above the agreed maximum is refused and leaves the sums untouched. */
    dpt_exact_scale small = dpt_exact_scale_make(0.5, K);
    dpt_exact_acc_begin(&a, &small);
    float half[n] = {0.5f, -0.25f};
    dpt_exact_acc_add_chunk(&a, half);
    float worse[n] = {0.25f, 3.0f};
    CHECK(dpt_exact_acc_add_chunk(&a, worse) == DPT_ERANGE, "value over the maximum accepted");
    dpt_exact_acc_result(&a, out, 1.0);
    CHECK(out[0] == 0.5f && out[1] == -0.25f, "refused chunk left %g %g", out[0], out[1]);
    float nan_chunk[n] = {NAN, 0.0f};
    CHECK(dpt_exact_acc_add_chunk(&a, nan_chunk) == DPT_ERANGE, "NaN accepted");
    dpt_exact_acc_free(&a);
}

static void test_errors(int W) {
    dpt_group g;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, NULL);
    CHECK(st == DPT_OK, "init: %s", dpt_last_error());
    /* A non-finite gradient on the last rank: every rank learns it, with the rank named. */
    dpt_exact_scale s;
    double m = g.world_rank == W - 1 ? INFINITY : 1.0;
    st = dpt_exact_agree(&g, m, W, &s);
    char want[64];
    snprintf(want, sizeof want, "non-finite gradient value on rank %d", W - 1);
    CHECK(st == DPT_ENONFINITE && !strcmp(dpt_last_error(), want), "non-finite: %s: %s",
          dpt_status_name(st), dpt_last_error());
    st = dpt_exact_agree(&g, NAN, W, &s);
    CHECK(st == DPT_ENONFINITE, "NaN maximum: %s", dpt_status_name(st));
    CHECK(dpt_exact_agree(&g, 1.0, 0, &s) == DPT_EINVAL, "zero chunks accepted");
    /* Chunk counts that do not add up to K: rank 0 adds its chunk twice. */
    st = dpt_exact_agree(&g, 1.0, W, &s);
    CHECK(st == DPT_OK, "agree: %s", dpt_last_error());
    dpt_exact_acc a;
    dpt_exact_acc_init(&a, 3);
    dpt_exact_acc_begin(&a, &s);
    float one[3] = {1.0f, -1.0f, 0.5f};
    dpt_exact_acc_add_chunk(&a, one);
    if (g.world_rank == 0)
        dpt_exact_acc_add_chunk(&a, one);
    st = dpt_exact_acc_allreduce(&a, &g);
    snprintf(want, sizeof want, "the ranks added %d chunks, the global batch has %d", W + 1, W);
    CHECK(st == DPT_EINVAL && strstr(dpt_last_error(), want), "count mismatch: %s",
          dpt_last_error());
    dpt_exact_acc_free(&a);
    dpt_group_free(&g);
}

int main(int argc, char **argv) {
    int W = mpi_check_init(&argc, &argv);
    test_scale_rule();
    test_extremes();
    test_bit_identical(W, 8);
    test_bit_identical(W, 12); /* K not a power of two: ceil(log2 12) = 4 bits of headroom */
    test_errors(W);
    return mpi_check_finish("test_exact_sum");
}
