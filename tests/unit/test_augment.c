/* Augmentation and mixing. Oracles: naive per-element definitions of flip and zero-padded shift
 * (written here as two separate steps), set identities (flip is an involution, cutout changes
 * exactly its box), closed forms (noise mean 0 and variance std^2, Beta(a, a) mean 1/2 and
 * variance 1/(4(2a + 1)), cutmix lam = 1 - box volume / sample volume, targets summing to 1), and
 * invariance: a sample's transform depends only on (seed, epoch, sample), and the concatenated
 * rank slices of a batch equal the 1-rank batch for R in {1, 2, 3, 4, 8}. Fixed seeds. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/augment.h"

static void make_ds(dpt_dataset *ds, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W,
                    int sdims, int64_t K, uint32_t seed) {
    assert_int_equal(dpt_dataset_init(ds, N, C, D, H, W, sdims, K, DPT_SAMPLES_F32), DPT_OK);
    dpt_fill_uniform(ds->x_f32, N * C * D * H * W, 0.0f, 1.0f, seed, 0);
    for (int64_t i = 0; i < N; i++)
        ds->y[i] = (int32_t)((i * 3 + 1) % K);
}

static float *falloc(int64_t n) {
    float *p = calloc((size_t)n, sizeof(float));
    assert_non_null(p);
    return p;
}

/* ---- oracles ---- */

static void naive_flip(float *out, const float *in, const dpt_augment *a) {
    int64_t rows = a->C * a->D * a->H;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t w = 0; w < a->W; w++)
            out[r * a->W + w] = in[r * a->W + a->W - 1 - w];
}

static void naive_shift(float *out, const float *in, const int64_t shift[3], const dpt_augment *a) {
    for (int64_t c = 0; c < a->C; c++)
        for (int64_t z = 0; z < a->D; z++)
            for (int64_t h = 0; h < a->H; h++)
                for (int64_t w = 0; w < a->W; w++) {
                    int64_t sz = z - shift[0], sh = h - shift[1], sw = w - shift[2];
                    int inside =
                        sz >= 0 && sz < a->D && sh >= 0 && sh < a->H && sw >= 0 && sw < a->W;
                    out[((c * a->D + z) * a->H + h) * a->W + w] =
                        inside ? in[((c * a->D + sz) * a->H + sh) * a->W + sw] : a->fill[c];
                }
}

static void test_flip_is_an_involution(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 1, 2, 1, 5, 7, 2, 3, 1);
    dpt_augment a;
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){0}, &ds), DPT_OK);
    int64_t n = dpt_dataset_sample_numel(&ds);
    float *once = falloc(n), *twice = falloc(n), *ref = falloc(n);
    dpt_augment_params p = {.flip = 1};
    dpt_augment_transform(once, ds.x_f32, &p, &a);
    naive_flip(ref, ds.x_f32, &a);
    assert_memory_equal(once, ref, (size_t)n * sizeof(float));
    dpt_augment_transform(twice, once, &p, &a);
    assert_memory_equal(twice, ds.x_f32, (size_t)n * sizeof(float));
    free(once), free(twice), free(ref);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

/* Flip then shift, against the naive two-step oracle, in 1-D, 2-D and 3-D, with the fill value of
 * a normalized dataset (-mean/std, the normalized raw zero). */
static void test_shift_matches_naive(void **state) {
    (void)state;
    static const struct {
        int64_t C, D, H, W;
        int sdims;
    } shapes[] = {{2, 1, 1, 11, 1}, {3, 1, 6, 5, 2}, {2, 4, 3, 5, 3}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        dpt_dataset ds;
        make_ds(&ds, 3, shapes[k].C, shapes[k].D, shapes[k].H, shapes[k].W, shapes[k].sdims, 4,
                (uint32_t)k);
        double mean[3] = {0.5, 0.25, -1.0}, sd[3] = {0.25, 2.0, 1.0};
        assert_int_equal(dpt_dataset_normalize(&ds, mean, sd), DPT_OK);
        dpt_augment a;
        dpt_augment_cfg cfg = {.seed = 3, .flip_prob = 0.5f, .shift = 2};
        assert_int_equal(dpt_augment_init(&a, &cfg, &ds), DPT_OK);
        for (int64_t c = 0; c < ds.C; c++)
            assert_true(a.fill[c] == (float)(-mean[c] / sd[c]));
        int64_t n = dpt_dataset_sample_numel(&ds);
        float *out = falloc(n), *tmp = falloc(n), *ref = falloc(n), *in = falloc(n);
        int flips = 0, moved[3] = {0, 0, 0};
        for (uint32_t e = 0; e < 40; e++) {
            dpt_augment_params p;
            dpt_augment_draw(&p, &a, e, 1);
            flips += p.flip;
            for (int ax = 0; ax < 3; ax++) {
                assert_true(llabs(p.shift[ax]) <= 2);
                moved[ax] |= p.shift[ax] != 0;
            }
            dpt_dataset_gather(&ds, in, NULL, 1, 1); /* sample 1, normalized */
            dpt_augment_transform(out, in, &p, &a);
            if (p.flip)
                naive_flip(tmp, in, &a);
            else
                memcpy(tmp, in, (size_t)n * sizeof(float));
            naive_shift(ref, tmp, p.shift, &a);
            assert_memory_equal(out, ref, (size_t)n * sizeof(float));
        }
        /* only the sample's own spatial axes move; both flip outcomes occur */
        for (int ax = 0; ax < 3; ax++)
            assert_int_equal(moved[ax], ax >= 3 - shapes[k].sdims);
        assert_true(flips > 0 && flips < 40);
        free(out), free(tmp), free(ref), free(in);
        dpt_augment_free(&a);
        dpt_dataset_free(&ds);
    }
}

static void test_cutout_changes_exactly_the_box(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 20, 2, 1, 8, 9, 2, 3, 5);
    dpt_augment a;
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.seed = 8, .cutout = 4}, &ds), DPT_OK);
    int64_t n = dpt_dataset_sample_numel(&ds);
    float *out = falloc(n);
    int clipped = 0;
    for (int64_t s = 0; s < ds.N; s++) {
        dpt_augment_params p;
        dpt_augment_draw(&p, &a, 0, s);
        assert_true(p.cut && !p.flip);
        assert_true(p.cut_lo[0] == 0 && p.cut_hi[0] == 1);
        for (int ax = 1; ax < 3; ax++) {
            assert_true(0 <= p.cut_lo[ax] && p.cut_lo[ax] < p.cut_hi[ax]);
            assert_true(p.cut_hi[ax] <= (ax == 1 ? 8 : 9) && p.cut_hi[ax] - p.cut_lo[ax] <= 4);
            clipped |= p.cut_hi[ax] - p.cut_lo[ax] < 4;
        }
        dpt_augment_transform(out, ds.x_f32 + s * n, &p, &a);
        for (int64_t c = 0; c < 2; c++)
            for (int64_t h = 0; h < 8; h++)
                for (int64_t w = 0; w < 9; w++) {
                    int64_t i = (c * 8 + h) * 9 + w;
                    int in_box =
                        h >= p.cut_lo[1] && h < p.cut_hi[1] && w >= p.cut_lo[2] && w < p.cut_hi[2];
                    if (in_box)
                        assert_true(out[i] == 0.0f); /* not normalized: fill is 0 */
                    else
                        assert_true(out[i] == ds.x_f32[s * n + i]);
                }
    }
    assert_true(clipped); /* some boxes reach a border */
    free(out);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

/* The same (seed, epoch, sample) gives the same output wherever the sample sits in the list. */
static void test_same_sample_same_transform(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 16, 1, 1, 6, 6, 2, 4, 2);
    dpt_augment a;
    dpt_augment_cfg cfg = {
        .seed = 21, .flip_prob = 0.5f, .shift = 2, .cutout = 3, .noise_std = 0.1f};
    assert_int_equal(dpt_augment_init(&a, &cfg, &ds), DPT_OK);
    int64_t n = dpt_dataset_sample_numel(&ds);
    const int64_t A[3] = {5, 9, 13}, B[4] = {13, 1, 5, 9};
    float *xa = falloc(3 * n), *xb = falloc(4 * n), *xe = falloc(3 * n);
    int32_t la[3], lb[4];
    dpt_augment_fill(&a, xa, la, NULL, &ds, A, NULL, 3, 4);
    dpt_augment_fill(&a, xb, lb, NULL, &ds, B, NULL, 4, 4);
    assert_memory_equal(xa, xb + 2 * n, (size_t)n * sizeof(float));     /* sample 5 */
    assert_memory_equal(xa + n, xb + 3 * n, (size_t)n * sizeof(float)); /* sample 9 */
    assert_memory_equal(xa + 2 * n, xb, (size_t)n * sizeof(float));     /* sample 13 */
    assert_true(la[0] == ds.y[5] && lb[2] == ds.y[5]);
    /* another epoch draws other transforms */
    dpt_augment_fill(&a, xe, NULL, NULL, &ds, A, NULL, 3, 5);
    assert_memory_not_equal(xa, xe, 3 * (size_t)n * sizeof(float));
    free(xa), free(xb), free(xe);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

/* Closed form: mean 0 and variance std^2. For m normals the sample mean has sd std/sqrt(m) and
 * the sample variance sd std^2 sqrt(2/(m-1)); both are checked within 5 sd. */
static void test_noise_has_requested_std(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 1, 1, 1, 2, 2, 2, 2, 0);
    const float sd = 0.3f;
    dpt_augment a;
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.seed = 4, .noise_std = sd}, &ds),
                     DPT_OK);
    enum { m = 200000 };
    float *x = falloc(m), *y = falloc(m);
    dpt_augment_noise(x, m, &a, 2, 77);
    double s = 0, s2 = 0;
    for (int i = 0; i < m; i++)
        s += x[i];
    double mean = s / m;
    for (int i = 0; i < m; i++)
        s2 += (x[i] - mean) * (x[i] - mean);
    double var = s2 / (m - 1), v = (double)sd * sd;
    assert_true(fabs(mean) < 5.0 * sd / sqrt((double)m));
    assert_true(fabs(var - v) < 5.0 * v * sqrt(2.0 / (m - 1)));
    /* keyed by (epoch, sample): reproducible, and another sample gets other noise */
    dpt_augment_noise(y, m, &a, 2, 77);
    assert_memory_equal(x, y, sizeof(float) * m);
    memset(y, 0, sizeof(float) * m);
    dpt_augment_noise(y, m, &a, 2, 78);
    assert_memory_not_equal(x, y, sizeof(float) * m);
    free(x), free(y);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

/* Closed form of Beta(a, a): mean 1/2, variance 1/(4(2a + 1)). The sample mean has sd
 * sqrt(var/m); the sample variance sd <= sqrt(mu4/m) <= 0.25/sqrt(m) since |lam - 1/2| <= 1/2. */
static void test_mixup_lambda_is_beta(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 1, 1, 1, 4, 4, 2, 2, 0);
    const float alphas[] = {0.4f, 2.0f};
    for (int k = 0; k < 2; k++) {
        dpt_augment a;
        dpt_augment_cfg cfg = {.seed = 6, .mixup_alpha = alphas[k]};
        assert_int_equal(dpt_augment_init(&a, &cfg, &ds), DPT_OK);
        enum { m = 40000 };
        static double lam[m];
        double s = 0, s2 = 0;
        for (int i = 0; i < m; i++) {
            dpt_augment_params p;
            dpt_augment_draw(&p, &a, 1, i);
            assert_int_equal(p.mix, DPT_MIX_MIXUP);
            assert_true(p.lam >= 0.0f && p.lam <= 1.0f);
            lam[i] = p.lam;
            s += lam[i];
        }
        double mean = s / m;
        for (int i = 0; i < m; i++)
            s2 += (lam[i] - mean) * (lam[i] - mean);
        double var = s2 / (m - 1), want = 1.0 / (4.0 * (2.0 * alphas[k] + 1.0));
        assert_true(fabs(mean - 0.5) < 5.0 * sqrt(want / m));
        assert_true(fabs(var - want) < 5.0 * 0.25 / sqrt((double)m));
        dpt_augment_free(&a);
    }
    dpt_dataset_free(&ds);
}

/* Mixup: x = lam*x_s + (1-lam)*x_p of the transformed pair, targets lam / 1-lam summing to 1. */
static void test_mixup_inputs_and_targets(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 10, 2, 1, 4, 5, 2, 6, 9);
    dpt_augment a;
    dpt_augment_cfg cfg = {.seed = 2, .mixup_alpha = 0.3f, .flip_prob = 0.5f, .shift = 1};
    assert_int_equal(dpt_augment_init(&a, &cfg, &ds), DPT_OK);
    int64_t n = dpt_dataset_sample_numel(&ds), K = ds.K;
    const int64_t idx[5] = {0, 1, 2, 3, 4}, partner[5] = {9, 8, 7, 6, 4};
    float *x = falloc(5 * n), *xs = falloc(n), *xp = falloc(n), *soft = falloc(5 * K);
    float *ref = falloc(n);
    int32_t lab[5];
    dpt_augment_fill(&a, x, lab, soft, &ds, idx, partner, 5, 3);
    for (int i = 0; i < 5; i++) {
        dpt_augment_params p, pp;
        dpt_augment_draw(&p, &a, 3, idx[i]);
        dpt_augment_draw(&pp, &a, 3, partner[i]);
        dpt_augment_transform(xs, ds.x_f32 + idx[i] * n, &p, &a);
        dpt_augment_transform(xp, ds.x_f32 + partner[i] * n, &pp, &a);
        double sum = 0;
        for (int64_t c = 0; c < K; c++)
            sum += soft[i * K + c];
        assert_true(fabs(sum - 1.0) <= 2 * FLT_EPSILON);
        assert_int_equal(lab[i], ds.y[idx[i]]);
        if (partner[i] == idx[i]) { /* mixed with itself: unchanged, one-hot */
            assert_memory_equal(x + i * n, xs, (size_t)n * sizeof(float));
            assert_true(soft[i * K + ds.y[idx[i]]] == 1.0f);
            continue;
        }
        float lam = p.lam;
        if (ds.y[idx[i]] != ds.y[partner[i]]) {
            assert_true(soft[i * K + ds.y[idx[i]]] == lam);
            assert_true(soft[i * K + ds.y[partner[i]]] == 1.0f - lam);
        }
        /* each element: one float rounding of a two-term combination of values in [0, 1] */
        for (int64_t j = 0; j < n; j++)
            ref[j] = (float)((double)lam * xs[j] + (1.0 - (double)lam) * xp[j]);
        dpt_assert_close_f32("mixup x", x + i * n, ref, n, 2 * FLT_EPSILON, 2 * FLT_EPSILON);
    }
    free(x), free(xs), free(xp), free(soft), free(ref);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

/* Cutmix: the box holds the partner's pixels, the rest the sample's; lam = 1 - box/area. */
static void test_cutmix_box_and_lambda(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 12, 1, 1, 10, 8, 2, 3, 4);
    dpt_augment a;
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.seed = 5, .cutmix_alpha = 1.0f}, &ds),
                     DPT_OK);
    int64_t n = dpt_dataset_sample_numel(&ds), K = ds.K;
    float *x = falloc(n), soft[3];
    int partial = 0;
    for (int64_t s = 0; s < 6; s++) {
        int64_t partner = 11 - s, idx = s;
        dpt_augment_fill(&a, x, NULL, soft, &ds, &idx, &partner, 1, 7);
        dpt_augment_params p;
        dpt_augment_draw(&p, &a, 7, s);
        assert_int_equal(p.mix, DPT_MIX_CUTMIX);
        int64_t box = (p.mix_hi[1] - p.mix_lo[1]) * (p.mix_hi[2] - p.mix_lo[2]);
        assert_true(fabsf(p.lam - (float)(1.0 - (double)box / 80.0)) <= FLT_EPSILON);
        partial |= box > 0 && box < 80;
        for (int64_t h = 0; h < 10; h++)
            for (int64_t w = 0; w < 8; w++) {
                int in_box =
                    h >= p.mix_lo[1] && h < p.mix_hi[1] && w >= p.mix_lo[2] && w < p.mix_hi[2];
                float want = ds.x_f32[(in_box ? partner : s) * n + h * 8 + w];
                assert_true(x[h * 8 + w] == want);
            }
        double sum = soft[0] + soft[1] + soft[2];
        assert_true(fabs(sum - 1.0) <= 2 * FLT_EPSILON);
        (void)K;
    }
    assert_true(partial);
    free(x);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

/* The training-step fill: for every rank count the slices concatenate to the 1-rank batch,
 * bit for bit, with every transform and both mixes on. */
static void test_batch_fill_is_rank_count_independent(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 50, 2, 1, 6, 6, 2, 5, 12);
    dpt_sampler s;
    assert_int_equal(
        dpt_sampler_init(&s, &(dpt_sampler_cfg){.global_batch = 12, .seed = 3}, NULL, ds.N),
        DPT_OK);
    dpt_augment a;
    dpt_augment_cfg cfg = {.seed = 3,
                           .flip_prob = 0.5f,
                           .shift = 1,
                           .cutout = 2,
                           .noise_std = 0.05f,
                           .mixup_alpha = 0.2f,
                           .cutmix_alpha = 1.0f};
    assert_int_equal(dpt_augment_init(&a, &cfg, &ds), DPT_OK);
    int64_t n = dpt_dataset_sample_numel(&ds), K = ds.K;
    float *x1 = falloc(12 * n), *s1 = falloc(12 * K), *xr = falloc(12 * n), *sr = falloc(12 * K);
    int32_t l1[12], lr[12];
    static const int ranks[] = {2, 3, 4, 8};
    int kinds[3] = {0, 0, 0};
    for (uint32_t e = 0; e < 2; e++) {
        dpt_sampler_set_epoch(&s, e);
        for (int64_t t = 0; t < dpt_sampler_steps(&s); t++) {
            int64_t b = dpt_batch_fill(&a, x1, l1, s1, &ds, &s, t, 0, 1);
            assert_int_equal(b, dpt_sampler_batch_size(&s, t));
            const int64_t *idx;
            dpt_sampler_slice(&s, t, 0, 1, &idx, NULL);
            for (int64_t j = 0; j < b; j++) {
                dpt_augment_params p;
                dpt_augment_draw(&p, &a, e, idx[j]);
                kinds[p.mix]++;
            }
            for (int k = 0; k < 4; k++) {
                int64_t pos = 0;
                for (int r = 0; r < ranks[k]; r++) {
                    int64_t c = dpt_batch_fill(&a, xr + pos * n, lr + pos, sr + pos * K, &ds, &s, t,
                                               r, ranks[k]);
                    pos += c;
                }
                assert_int_equal(pos, b);
                assert_memory_equal(xr, x1, (size_t)(b * n) * sizeof(float));
                assert_memory_equal(sr, s1, (size_t)(b * K) * sizeof(float));
                assert_memory_equal(lr, l1, (size_t)b * sizeof(int32_t));
            }
        }
    }
    assert_true(kinds[DPT_MIX_MIXUP] > 0 && kinds[DPT_MIX_CUTMIX] > 0);
    free(x1), free(s1), free(xr), free(sr);
    dpt_augment_free(&a);
    dpt_sampler_free(&s);
    dpt_dataset_free(&ds);
}

static void test_bad_config(void **state) {
    (void)state;
    dpt_dataset ds;
    make_ds(&ds, 2, 1, 1, 4, 6, 2, 2, 0);
    dpt_augment a;
    dpt_error_clear();
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.shift = 4}, &ds), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "shift 4"));
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.flip_prob = 1.5f}, &ds), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "flip_prob"));
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.noise_std = -1.0f}, &ds), DPT_EINVAL);
    assert_int_equal(dpt_augment_init(&a, &(dpt_augment_cfg){.mixup_alpha = NAN}, &ds), DPT_EINVAL);
    dpt_augment_free(&a);
    dpt_dataset_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_is_an_involution),
        cmocka_unit_test(test_shift_matches_naive),
        cmocka_unit_test(test_cutout_changes_exactly_the_box),
        cmocka_unit_test(test_same_sample_same_transform),
        cmocka_unit_test(test_noise_has_requested_std),
        cmocka_unit_test(test_mixup_lambda_is_beta),
        cmocka_unit_test(test_mixup_inputs_and_targets),
        cmocka_unit_test(test_cutmix_box_and_lambda),
        cmocka_unit_test(test_batch_fill_is_rank_count_independent),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
