/* Whole-model gradients. Oracle: central finite differences in double of the mean cross-entropy
 * of a small conv-bn-relu-maxpool-conv-relu-flatten-dropout-dense network, for every parameter
 * and every input element (training with full-batch and with ghost batch norm, and eval mode).
 * A difference whose +-h evaluations change a ReLU sign or a max-pool argmax crosses a kink and
 * is skipped (counted: at most a fifth). Dropout: closed form (the mean of inverted-dropout outputs
 * is the input) and rank independence of the masks; eval mode: deterministic and per-sample. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/loss.h"
#include "dpt/model.h"

#define N 3
#define K 4
#define IN (2 * 4 * 4)
#define SPEC                                                                                       \
    "conv2d(2,3,pad=1,bias=0) bn relu maxpool(2) conv2d(3,2,pad=1) relu flatten dropout(0.25) "    \
    "dense(4)"

#define SEED 20240611u
static const int64_t in_shape[3] = {2, 4, 4};
static const int32_t labels[N] = {1, 3, 0};

typedef struct {
    dpt_model *m;
    float x[N * IN];
    int64_t sample[N];
    dpt_model_rng rng;
    int training;
} net;

static void net_init(net *t, int64_t ghost, int training) {
    dpt_model_cfg cfg = {
        .max_batch = N, .num_classes = K, .bn_ghost = ghost, .seed = SEED, .input_grad = 1};
    if (dpt_model_create(&t->m, SPEC, dpt_shape_make(3, in_shape), &cfg) != DPT_OK)
        fail_msg("create: %s", dpt_last_error());
    dpt_fill_uniform(t->x, N * IN, -2.0f, 2.0f, SEED, 1);
    for (int i = 0; i < N; i++)
        t->sample[i] = 1000 + 37 * i;
    t->rng = (dpt_model_rng){.seed = SEED, .member = 0, .step = 3, .sample = t->sample};
    t->training = training;
    /* Non-trivial batch-norm weights and running statistics (from two training passes). */
    int n = 0;
    int64_t count = 0;
    float *p = dpt_model_params(t->m, &count);
    const dpt_model_segment *s = dpt_model_param_segments(t->m, &n);
    dpt_fill_uniform(p + s[1].offset, s[1].count, 0.5f, 1.5f, SEED, 2);
    dpt_fill_uniform(p + s[2].offset, s[2].count, -0.5f, 0.5f, SEED, 3);
    for (int k = 0; k < 2; k++)
        assert_int_equal(dpt_model_forward(t->m, t->x, N, 1, &t->rng), DPT_OK);
}

static double net_loss(net *t) {
    assert_int_equal(dpt_model_forward(t->m, t->x, N, t->training, &t->rng), DPT_OK);
    return dpt_xent_forward_backward(NULL, NULL, dpt_model_logits(t->m), labels, N, K, 0.0, N);
}

/* Which side of every kink the network is on: ReLU input signs and max-pool argmaxes. */
static void kink_signature(net *t, unsigned char *sig, int64_t cap, int64_t *len) {
    int64_t at = 0;
    for (int i = 1; i < dpt_model_num_layers(t->m); i++) {
        const char *name = dpt_model_layer_name(t->m, i);
        dpt_shape s;
        const float *in = dpt_model_layer_output(t->m, i - 1, &s);
        const int64_t count = N * dpt_shape_count(&s);
        if (strstr(name, "_relu")) {
            for (int64_t j = 0; j < count; j++, at++) {
                assert_true(at < cap);
                sig[at] = in[j] > 0.0f;
            }
        } else if (strstr(name, "_maxpool2d")) { /* 2x2 windows, stride 2 */
            const int64_t H = s.d[1], W = s.d[2];
            for (int64_t nc = 0; nc < N * s.d[0]; nc++)
                for (int64_t oh = 0; oh + 1 < H; oh += 2)
                    for (int64_t ow = 0; ow + 1 < W; ow += 2, at++) {
                        const float *w = in + (nc * H + oh) * W + ow;
                        const float v[4] = {w[0], w[1], w[W], w[W + 1]};
                        int best = 0;
                        for (int q = 1; q < 4; q++)
                            best = v[q] > v[best] ? q : best;
                        assert_true(at < cap);
                        sig[at] = (unsigned char)best;
                    }
        }
    }
    *len = at;
}

/* Central differences of the loss with respect to v[0..n) against the analytic gradient g.
 *
 * Tolerance, derived. Rounding: L is a mean of log-sum-exps of float32 logits whose rounding
 * errors are of the order of an ulp of L; allowing delta = 2 * FLT_EPSILON * max(1, |L|) per
 * evaluation (the observed spread is below 0.3 ulp), the quotient carries at most 2 delta / 2h.
 * Truncation: h^2/6 |L'''| with h = 1e-3 is about 1e-7 for third derivatives of order 1 (the
 * network is smooth between kinks), covered by rtol = 1e-3. A gradient off by 1% fails.
 * Kinks: h = 1e-3 moves a pre-activation by about 1e-3, so only the few ReLU inputs or pool
 * maxima that close to a tie make a coordinate skip; at most a fifth may. */
static void check_fd(net *t, float *v, const float *g, int64_t n, const char *what) {
    enum { CAP = 4096 };
    static unsigned char base[CAP], plus[CAP], minus[CAP];
    const double h = 1e-3;
    const double L0 = net_loss(t);
    int64_t len = 0, lp = 0, lm = 0, skipped = 0;
    kink_signature(t, base, CAP, &len);
    const double atol = 2.0 * FLT_EPSILON * fmax(1.0, fabs(L0)) / h;
    const double rtol = 1e-3;
    double worst = 0.0;
    int64_t worst_i = -1;
    for (int64_t i = 0; i < n; i++) {
        const float keep = v[i];
        v[i] = (float)(keep + h);
        const double up = (double)v[i] - keep;
        const double Lp = net_loss(t);
        kink_signature(t, plus, CAP, &lp);
        v[i] = (float)(keep - h);
        const double down = keep - (double)v[i];
        const double Lm = net_loss(t);
        kink_signature(t, minus, CAP, &lm);
        v[i] = keep;
        if (memcmp(base, plus, (size_t)len) != 0 || memcmp(base, minus, (size_t)len) != 0) {
            skipped++;
            continue;
        }
        const double fd = (Lp - Lm) / (up + down);
        const double ratio = fabs(fd - g[i]) / (atol + rtol * fabs(fd));
        if (ratio > worst) {
            worst = ratio;
            worst_i = i;
        }
    }
    print_message("%s: %lld values, %lld skipped at kinks, worst |fd-g|/tol = %.3f (index %lld)\n",
                  what, (long long)n, (long long)skipped, worst, (long long)worst_i);
    assert_true(skipped * 5 <= n);
    assert_true(worst <= 1.0);
}

static void check_model(int64_t ghost, int training) {
    net t;
    net_init(&t, ghost, training);
    int64_t np = 0;
    float *p = dpt_model_params(t.m, &np);
    float *dl = dpt_model_dlogits_buffer(t.m);
    /* analytic gradients at the current point */
    (void)net_loss(&t);
    dpt_xent_forward_backward(dl, NULL, dpt_model_logits(t.m), labels, N, K, 0.0, N);
    dpt_model_zero_grad(t.m);
    assert_int_equal(dpt_model_backward(t.m, dl), DPT_OK);
    float *g = malloc((size_t)np * sizeof *g), *dx = malloc(sizeof t.x);
    assert_non_null(g);
    assert_non_null(dx);
    memcpy(g, dpt_model_grads(t.m, &np), (size_t)np * sizeof *g);
    memcpy(dx, dpt_model_input_grad(t.m), sizeof t.x);

    /* one backward per forward: the first wrote gradients over outputs the second would read */
    assert_int_equal(dpt_model_backward(t.m, dl), DPT_EINVAL);
    /* accumulation: the same forward again, and a second backward adds the same gradients again
     * (a kernel may fold the old value into its sum, so equal up to the rounding of sums of a few
     * dozen terms) */
    (void)net_loss(&t);
    assert_int_equal(dpt_model_backward(t.m, dl), DPT_OK);
    float *g2 = malloc((size_t)np * sizeof *g2);
    assert_non_null(g2);
    for (int64_t i = 0; i < np; i++)
        g2[i] = 2.0f * g[i];
    dpt_assert_close_f32("accumulated", dpt_model_grads(t.m, &np), g2, np, 1e-6, 64 * FLT_EPSILON);
    free(g2);

    char what[64];
    snprintf(what, sizeof what, "params (ghost %lld, %s)", (long long)ghost,
             training ? "training" : "eval");
    check_fd(&t, p, g, np, what);
    snprintf(what, sizeof what, "input (ghost %lld, %s)", (long long)ghost,
             training ? "training" : "eval");
    check_fd(&t, t.x, dx, N * IN, what);
    free(g);
    free(dx);
    dpt_model_destroy(t.m);
}

static void test_grad_training(void **state) {
    (void)state;
    check_model(0, 1);
}

static void test_grad_ghost(void **state) {
    (void)state;
    check_model(2, 1);
}

static void test_grad_eval(void **state) {
    (void)state;
    check_model(0, 0);
}

/* Inverted dropout: E[y] = x, so the mean over many masks of an all-ones input is 1 within
 * 5 standard errors; the kept fraction is 1-p likewise. The mask of a sample depends on its global
 * index, not on its row; eval mode is the identity. */
static void test_dropout(void **state) {
    (void)state;
    enum { B = 8, F = 500, STEPS = 50 };
    const double p = 0.3;
    dpt_model_cfg cfg = {.max_batch = B};
    dpt_model *m = NULL;
    assert_int_equal(dpt_model_create(&m, "dropout(0.3)", dpt_shape_make(1, (int64_t[]){F}), &cfg),
                     DPT_OK);
    float *x = malloc(B * F * sizeof *x), *first = malloc(B * F * sizeof *x);
    assert_non_null(x);
    assert_non_null(first);
    for (int i = 0; i < B * F; i++)
        x[i] = 1.0f;
    int64_t sample[B];
    double sum = 0.0, kept = 0.0;
    for (uint32_t step = 0; step < STEPS; step++) {
        for (int i = 0; i < B; i++)
            sample[i] = (int64_t)step * B + i;
        dpt_model_rng rng = {.seed = 5, .step = step, .sample = sample};
        assert_int_equal(dpt_model_forward(m, x, B, 1, &rng), DPT_OK);
        const float *y = dpt_model_logits(m);
        for (int i = 0; i < B * F; i++) {
            sum += y[i];
            kept += y[i] != 0.0f;
            assert_true(y[i] == 0.0f || fabsf(y[i] - (float)(1.0 / (1.0 - p))) < 1e-6f);
        }
    }
    const double total = (double)B * F * STEPS;
    const double se_mean = sqrt(p / (1.0 - p) / total), se_kept = sqrt(p * (1.0 - p) / total);
    assert_true(fabs(sum / total - 1.0) < 5.0 * se_mean);
    assert_true(fabs(kept / total - (1.0 - p)) < 5.0 * se_kept);

    /* rows reversed, same global indices: the same mask follows each sample */
    int64_t rev[B];
    for (int i = 0; i < B; i++)
        sample[i] = 100 + i, rev[i] = 100 + B - 1 - i;
    dpt_model_rng a = {.seed = 5, .step = 9, .sample = sample}, b = a;
    b.sample = rev;
    assert_int_equal(dpt_model_forward(m, x, B, 1, &a), DPT_OK);
    memcpy(first, dpt_model_logits(m), B * F * sizeof *x);
    assert_int_equal(dpt_model_forward(m, x, B, 1, &b), DPT_OK);
    for (int i = 0; i < B; i++)
        assert_memory_equal(first + i * F, dpt_model_logits(m) + (B - 1 - i) * F, F * sizeof *x);
    /* a sample alone in a batch of one gets the same mask too */
    a.sample = &sample[3];
    assert_int_equal(dpt_model_forward(m, x, 1, 1, &a), DPT_OK);
    assert_memory_equal(first + 3 * F, dpt_model_logits(m), F * sizeof *x);
    /* eval: identity */
    assert_int_equal(dpt_model_forward(m, x, B, 0, NULL), DPT_OK);
    assert_memory_equal(dpt_model_logits(m), x, B * F * sizeof *x);
    free(x);
    free(first);
    dpt_model_destroy(m);
}

/* Eval mode: the same input gives the same output bit for bit, each row independent of the others
 * (running statistics, no dropout), and the running statistics stay as they are. */
static void test_eval_deterministic(void **state) {
    (void)state;
    net t;
    net_init(&t, 0, 0);
    int64_t nb = 0;
    float *buf = dpt_model_buffers(t.m, &nb);
    float *before = malloc((size_t)nb * sizeof *before), *y = malloc(N * K * sizeof *y);
    assert_non_null(before);
    assert_non_null(y);
    memcpy(before, buf, (size_t)nb * sizeof *before);
    assert_int_equal(dpt_model_forward(t.m, t.x, N, 0, NULL), DPT_OK);
    memcpy(y, dpt_model_logits(t.m), N * K * sizeof *y);
    assert_int_equal(dpt_model_forward(t.m, t.x, N, 0, NULL), DPT_OK);
    assert_memory_equal(y, dpt_model_logits(t.m), N * K * sizeof *y);
    assert_memory_equal(before, buf, (size_t)nb * sizeof *before);
    for (int i = 0; i < N; i++) {
        assert_int_equal(dpt_model_forward(t.m, t.x + i * IN, 1, 0, NULL), DPT_OK);
        dpt_assert_close_f32("row alone", dpt_model_logits(t.m), y + i * K, K, 1e-6, 1e-6);
    }
    free(before);
    free(y);
    dpt_model_destroy(t.m);
}

/* Synced batch norm through the reducer: two identical replicas double every sum and the count,
 * which must leave outputs and gradients as the local statistics give them; the reducer runs
 * once per batch-norm layer forward and once backward; the hook reports every layer, last first. */
typedef struct {
    int calls;
    int order[32], nhook;
} hooks;

static dpt_status twice(void *ctx, double *buf, int64_t n) {
    ((hooks *)ctx)->calls++;
    for (int64_t i = 0; i < n; i++)
        buf[i] *= 2.0;
    return DPT_OK;
}

static void on_layer(void *ctx, int layer) {
    hooks *h = ctx;
    h->order[h->nhook++] = layer;
}

static void test_reducer_and_hook(void **state) {
    (void)state;
    net a, b;
    net_init(&a, 0, 1);
    net_init(&b, 0, 1);
    hooks h = {0};
    dpt_model_set_bn_reducer(b.m, twice, &h);
    dpt_model_set_backward_hook(b.m, on_layer, &h);
    int64_t np = 0;
    for (int k = 0; k < 2; k++) {
        net *t = k ? &b : &a;
        (void)net_loss(t);
        float *dl = dpt_model_dlogits_buffer(t->m);
        dpt_xent_forward_backward(dl, NULL, dpt_model_logits(t->m), labels, N, K, 0.0, N);
        dpt_model_zero_grad(t->m);
        assert_int_equal(dpt_model_backward(t->m, dl), DPT_OK);
    }
    assert_int_equal(h.calls, 2);
    const int L = dpt_model_num_layers(b.m);
    assert_int_equal(h.nhook, L);
    for (int i = 0; i < L; i++)
        assert_int_equal(h.order[i], L - 1 - i);
    dpt_assert_close_f32("logits", dpt_model_logits(b.m), dpt_model_logits(a.m), N * K, 1e-6, 1e-5);
    float *ga = dpt_model_grads(a.m, &np), *gb = dpt_model_grads(b.m, &np);
    dpt_assert_close_f32("grads", gb, ga, np, 1e-6, 1e-5);
    dpt_assert_close_f32("dx", dpt_model_input_grad(b.m), dpt_model_input_grad(a.m), N * IN, 1e-6,
                         1e-5);
    dpt_model_destroy(a.m);
    dpt_model_destroy(b.m);
}

/* Every preset (1-D, 2-D, 3-D) runs a training step on a small batch: finite logits, and every
 * parameter segment receives a non-zero gradient (random inputs leave no layer dead). */
static void test_presets_step(void **state) {
    (void)state;
    const struct {
        const char *name;
        dpt_shape in;
    } cases[] = {
        {"lenet5", dpt_shape_make(3, (int64_t[]){1, 28, 28})},
        {"fmnist-cnn", dpt_shape_make(3, (int64_t[]){1, 28, 28})},
        {"mlp", dpt_shape_make(3, (int64_t[]){1, 28, 28})},
        {"cnn1d", dpt_shape_make(2, (int64_t[]){2, 32})},
        {"cnn3d", dpt_shape_make(4, (int64_t[]){1, 8, 8, 8})},
    };
    const int32_t y[3] = {0, 2, 1};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dpt_model_cfg cfg = {.max_batch = 3, .num_classes = 3, .seed = SEED};
        dpt_model *m = NULL;
        assert_int_equal(dpt_model_create(&m, cases[c].name, cases[c].in, &cfg), DPT_OK);
        const int64_t per = dpt_shape_count(&cases[c].in);
        float *x = malloc((size_t)(3 * per) * sizeof *x);
        assert_non_null(x);
        dpt_fill_uniform(x, 3 * per, -1.0f, 1.0f, SEED, 10 + (uint32_t)c);
        int64_t sample[3] = {5, 6, 7};
        dpt_model_rng rng = {.seed = SEED, .step = 1, .sample = sample};
        assert_int_equal(dpt_model_forward(m, x, 3, 1, &rng), DPT_OK);
        for (int i = 0; i < 9; i++)
            assert_true(isfinite(dpt_model_logits(m)[i]));
        float *dl = dpt_model_dlogits_buffer(m);
        dpt_xent_forward_backward(dl, NULL, dpt_model_logits(m), y, 3, 3, 0.0, 3);
        dpt_model_zero_grad(m);
        assert_int_equal(dpt_model_backward(m, dl), DPT_OK);
        int64_t np = 0;
        const float *g = dpt_model_grads(m, &np);
        int ns = 0;
        const dpt_model_segment *s = dpt_model_param_segments(m, &ns);
        for (int k = 0; k < ns; k++) {
            double norm = 0.0;
            for (int64_t i = 0; i < s[k].count; i++)
                norm += fabs(g[s[k].offset + i]);
            if (!(norm > 0.0 && isfinite(norm)))
                fail_msg("%s: %s has gradient norm %g", cases[c].name, s[k].name, norm);
        }
        free(x);
        dpt_model_destroy(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_training),      cmocka_unit_test(test_grad_ghost),
        cmocka_unit_test(test_grad_eval),          cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_eval_deterministic), cmocka_unit_test(test_reducer_and_hook),
        cmocka_unit_test(test_presets_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
