/* dpt_optim contract tests. Oracles: closed forms (Adagrad's step size, Adam's first step, the L2
 * penalty), the torch.optim defaults and argument checks (docs 1.13), a bitwise comparison with
 * an uninterrupted run (state export/import), and the same optimizer fed the penalty's gradient
 * by hand. Trajectories against torch itself are the golden test (tests/golden/golden_optim.c). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/optim.h"

#define SEED 20240603u

static dpt_optim *make(const dpt_optim_cfg *cfg, int64_t n, const dpt_optim_segment *segs,
                       int n_segs) {
    dpt_optim *o = NULL;
    dpt_status st = dpt_optim_create(&o, cfg, n, segs, n_segs);
    if (st != DPT_OK)
        fail_msg("dpt_optim_create(%s): %s", dpt_optim_kind_name(cfg->kind), dpt_last_error());
    return o;
}

/* Creation must fail with DPT_EINVAL and a message that contains `needle`. */
static void expect_rejected(const dpt_optim_cfg *cfg, const char *needle) {
    dpt_optim *o = NULL;
    dpt_error_clear();
    dpt_status st = dpt_optim_create(&o, cfg, 4, NULL, 0);
    if (st != DPT_EINVAL || o != NULL)
        fail_msg("%s config accepted, expected a message about '%s'",
                 dpt_optim_kind_name(cfg->kind), needle);
    if (!strstr(dpt_last_error(), needle))
        fail_msg("message '%s' does not mention '%s'", dpt_last_error(), needle);
}

static void test_kind_names_round_trip(void **state) {
    (void)state;
    for (int k = 0; k < DPT_OPTIM_KIND_COUNT; k++) {
        dpt_optim_kind got;
        assert_int_equal(dpt_optim_kind_parse(dpt_optim_kind_name((dpt_optim_kind)k), &got),
                         DPT_OK);
        assert_int_equal(got, k);
    }
    dpt_optim_kind got;
    assert_int_equal(dpt_optim_kind_parse("Adam", &got), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "'Adam'"));
    assert_non_null(strstr(dpt_last_error(), "lamb"));
}

/* Oracle: the defaults of torch.optim 1.13 (and of the LARS/LAMB papers), as the header lists. */
static void test_defaults(void **state) {
    (void)state;
    static const struct {
        dpt_optim_kind kind;
        double lr, momentum, weight_decay, eps, beta1, beta2;
    } want[] = {
        {DPT_OPTIM_ADAGRAD, 1e-2, 0, 0, 1e-10, 0, 0},
        {DPT_OPTIM_RMSPROP, 1e-2, 0, 0, 1e-8, 0, 0},
        {DPT_OPTIM_ADADELTA, 1.0, 0, 0, 1e-6, 0, 0},
        {DPT_OPTIM_ADAM, 1e-3, 0, 0, 1e-8, .9, .999},
        {DPT_OPTIM_ADAMW, 1e-3, 0, 1e-2, 1e-8, .9, .999},
        {DPT_OPTIM_LAMB, 1e-3, 0, 0, 1e-6, .9, .999},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        dpt_optim *o = make(&(dpt_optim_cfg){.kind = want[i].kind}, 3, NULL, 0);
        const dpt_optim_cfg *c = dpt_optim_config(o);
        assert_true(c->lr == want[i].lr && dpt_optim_base_lr(o) == want[i].lr);
        assert_true(c->momentum == want[i].momentum);
        assert_true(c->weight_decay == want[i].weight_decay);
        assert_true(c->eps == want[i].eps);
        assert_true(c->betas[0] == want[i].beta1 && c->betas[1] == want[i].beta2);
        dpt_optim_destroy(o);
    }
    dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_RMSPROP}, 3, NULL, 0);
    assert_true(dpt_optim_config(o)->alpha == 0.99);
    dpt_optim_destroy(o);
    o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADADELTA}, 3, NULL, 0);
    assert_true(dpt_optim_config(o)->rho == 0.9);
    dpt_optim_destroy(o);
    o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_NESTEROV, .lr = 0.1}, 3, NULL, 0);
    assert_true(dpt_optim_config(o)->momentum == 0.9 && dpt_optim_config(o)->nesterov == 1);
    dpt_optim_destroy(o);
    o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_LARS, .lr = 0.1}, 3, NULL, 0);
    const dpt_optim_cfg *c = dpt_optim_config(o);
    assert_true(c->momentum == 0.9 && c->trust_coefficient == 1e-3 && c->weight_decay == 0);
    assert_int_equal(c->no_decay, DPT_ROLE_BIAS | DPT_ROLE_NORM);
    assert_int_equal(c->no_adapt, DPT_ROLE_BIAS | DPT_ROLE_NORM);
    dpt_optim_destroy(o);
    /* THE ZERO RULE: a literal 0 where the default is not 0 */
    o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAMW, .literal_zero = DPT_OPTIM_F_WEIGHT_DECAY}, 3,
             NULL, 0);
    assert_true(dpt_optim_config(o)->weight_decay == 0);
    dpt_optim_destroy(o);
    o = make(
        &(dpt_optim_cfg){.kind = DPT_OPTIM_LARS, .lr = 1, .literal_zero = DPT_OPTIM_F_NO_DECAY}, 3,
        NULL, 0);
    assert_int_equal(dpt_optim_config(o)->no_decay, 0);
    dpt_optim_destroy(o);
}

/* Oracle: torch.optim's argument checks ("Invalid learning rate", "Invalid beta parameter at
 * index 0", "Invalid rho value", "Nesterov momentum requires a momentum and zero dampening"),
 * plus the fields a kind does not have. */
static void test_invalid_hyper_parameters_rejected(void **state) {
    (void)state;
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_SGD, .lr = -0.1}, "lr = -0.1");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_SGD}, "lr is required");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM, .betas = {1.0, 0.999}},
                    "beta1 = 1: must be in [0, 1)");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAMW, .betas = {0.9, 1.5}}, "beta2 = 1.5");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_LAMB, .betas = {-0.1, 0.9}}, "beta1");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADADELTA, .rho = 1.0}, "rho = 1");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADADELTA, .rho = -0.5}, "rho = -0.5");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_RMSPROP, .alpha = 1.0}, "alpha");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM, .weight_decay = -1e-4},
                    "weight_decay = -0.0001");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAGRAD, .eps = -1}, "eps");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_SGD, .lr = 0.1, .momentum = 1.0},
                    "momentum = 1");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_SGD, .lr = NAN}, "finite");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_SGD, .lr = 0.1, .nesterov = 1},
                    "Nesterov momentum requires");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_NESTEROV, .lr = 0.1, .dampening = 0.1},
                    "dampening");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_MOMENTUM,
                                     .lr = 0.1,
                                     .literal_zero = DPT_OPTIM_F_MOMENTUM},
                    "momentum must be > 0");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_SGD, .lr = 0.1, .betas = {0.9, 0.99}},
                    "beta1 is not a hyper-parameter of sgd");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM, .centered = 1},
                    "centered is not a hyper-parameter of adam");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM, .no_adapt = DPT_ROLE_BIAS},
                    "no_adapt");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_LARS, .lr = 1, .trust_coefficient = -1},
                    "trust_coefficient");
    expect_rejected(&(dpt_optim_cfg){.kind = DPT_OPTIM_KIND_COUNT}, "kind");

    /* the step's learning rate is checked too, and a rejected step changes nothing */
    dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM}, 2, NULL, 0);
    float p[2] = {1, 2}, g[2] = {1, 1};
    assert_int_equal(dpt_optim_step(o, p, g, -1e-3), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "lr = -0.001"));
    assert_int_equal(dpt_optim_step(o, p, g, INFINITY), DPT_EINVAL);
    assert_true(p[0] == 1 && p[1] == 2 && dpt_optim_steps(o) == 0);
    dpt_optim_destroy(o);
}

static void test_segments_must_tile(void **state) {
    (void)state;
    dpt_optim_cfg cfg = {.kind = DPT_OPTIM_ADAM};
    dpt_optim *o = NULL;
    dpt_optim_segment gap[] = {{.offset = 0, .length = 4, .name = "w"},
                               {.offset = 5, .length = 5, .name = "b"}};
    assert_int_equal(dpt_optim_create(&o, &cfg, 10, gap, 2), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "'b'"));
    dpt_optim_segment short_[] = {{.offset = 0, .length = 4, .name = "w"}};
    assert_int_equal(dpt_optim_create(&o, &cfg, 10, short_, 1), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "cover [0, 4)"));
    dpt_optim_segment two_roles[] = {
        {.offset = 0, .length = 10, .role = DPT_ROLE_BIAS | DPT_ROLE_NORM, .name = "x"}};
    assert_int_equal(dpt_optim_create(&o, &cfg, 10, two_roles, 1), DPT_EINVAL);
    assert_null(o);
}

static void test_roles_and_cfg_set(void **state) {
    (void)state;
    unsigned r = 99;
    assert_int_equal(dpt_optim_roles_parse("bias,norm", &r), DPT_OK);
    assert_int_equal(r, DPT_ROLE_BIAS | DPT_ROLE_NORM);
    assert_int_equal(dpt_optim_roles_parse("none", &r), DPT_OK);
    assert_int_equal(r, 0);
    assert_int_equal(dpt_optim_roles_parse("bias,gamma", &r), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "'gamma'"));

    dpt_optim_cfg cfg = {.kind = DPT_OPTIM_ADAMW};
    assert_int_equal(dpt_optim_cfg_set(&cfg, "weight_decay", 0), DPT_OK);
    assert_int_equal(dpt_optim_cfg_set(&cfg, "beta2", 0.98), DPT_OK);
    assert_int_equal(dpt_optim_cfg_set(&cfg, "amsgrad", 1), DPT_OK);
    assert_int_equal(dpt_optim_cfg_set(&cfg, "betas", 0.9), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "'betas'"));
    dpt_optim *o = make(&cfg, 3, NULL, 0);
    const dpt_optim_cfg *c = dpt_optim_config(o);
    assert_true(c->weight_decay == 0 && c->betas[1] == 0.98 && c->amsgrad == 1);

    /* the (name, value) listing rebuilds the same configuration */
    const char *names[32];
    double values[32];
    int n = dpt_optim_hparams(c, names, values, 32);
    assert_true(n > 0 && n <= 32);
    dpt_optim_cfg again = {.kind = c->kind};
    for (int i = 0; i < n; i++)
        assert_int_equal(dpt_optim_cfg_set(&again, names[i], values[i]), DPT_OK);
    dpt_optim *o2 = make(&again, 3, NULL, 0);
    dpt_optim_state s1, s2;
    dpt_optim_state_export(o, &s1);
    assert_int_equal(dpt_optim_state_import(o2, &s1), DPT_OK); /* same hyper-parameters */
    dpt_optim_state_export(o2, &s2);
    assert_int_equal(s2.n_slots, 3);
    dpt_optim_destroy(o);
    dpt_optim_destroy(o2);
}

/* Property (course notes): Adagrad's effective step lr/(sqrt(G_t) + eps) shrinks monotonically,
 * so with gradients of similar size |delta theta| / |g| decreases at every step. */
static void test_adagrad_effective_step_shrinks(void **state) {
    (void)state;
    enum { n = 64, T = 40 };
    dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAGRAD, .lr = 0.1}, n, NULL, 0);
    float p[n] = {0}, g[n], before[n], mag[n];
    double last[n];
    dpt_fill_uniform(mag, n, 0.5f, 1.5f, SEED, 1);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < n; i++)
            g[i] = ((t + i) % 3 ? 1.0f : -1.0f) * mag[i] * (1.0f + 0.01f * (float)t);
        memcpy(before, p, sizeof p);
        assert_int_equal(dpt_optim_step(o, p, g, 0.1), DPT_OK);
        for (int i = 0; i < n; i++) {
            double eff = fabs((double)before[i] - p[i]) / fabs((double)g[i]);
            if (t > 0 && !(eff < last[i]))
                fail_msg("step %d, element %d: effective step %.9g did not shrink (was %.9g)",
                         t + 1, i, eff, last[i]);
            last[i] = eff;
        }
    }
    dpt_optim_destroy(o);
}

/* Property (course notes: "this algorithm has no learning rate"): created without lr, Adadelta's
 * multiplier is 1.0 and the update has the units of theta: its first step is
 * sqrt(eps)/sqrt((1-rho)g^2 + eps) * g, bounded by sqrt(eps/(1-rho)) whatever the gradient's
 * scale; and it minimises a quadratic with that multiplier. */
static void test_adadelta_runs_without_learning_rate(void **state) {
    (void)state;
    enum { n = 16 };
    const double scales[] = {1e-3, 1.0, 1e3};
    for (int s = 0; s < 3; s++) {
        dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADADELTA}, n, NULL, 0);
        assert_true(dpt_optim_base_lr(o) == 1.0);
        float p[n] = {0}, g[n];
        dpt_fill_uniform(g, n, -1, 1, SEED, 2);
        for (int i = 0; i < n; i++)
            g[i] *= (float)scales[s];
        assert_int_equal(dpt_optim_step(o, p, g, dpt_optim_base_lr(o)), DPT_OK);
        for (int i = 0; i < n; i++) {
            double gd = g[i], want = -sqrt(1e-6) / sqrt(0.1 * gd * gd + 1e-6) * gd;
            assert_true(fabs(p[i] - want) <= 1e-5 * fabs(want) + 1e-12);
            assert_true(fabs(p[i]) <= sqrt(1e-6 / 0.1) * (1 + 1e-6));
        }
        dpt_optim_destroy(o);
    }
    /* f = 1/2 sum a_i theta_i^2 from theta = 1: decreases to under 1% in 3000 steps */
    enum { m = 8 };
    dpt_optim *o = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADADELTA}, m, NULL, 0);
    float p[m], g[m], a[m];
    dpt_fill_uniform(a, m, 0.5f, 2.0f, SEED, 3);
    double f0 = 0, f = 0;
    for (int i = 0; i < m; i++)
        p[i] = 1.0f, f0 += 0.5 * a[i];
    for (int t = 0; t < 3000; t++) {
        for (int i = 0; i < m; i++)
            g[i] = a[i] * p[i];
        assert_int_equal(dpt_optim_step(o, p, g, dpt_optim_base_lr(o)), DPT_OK);
    }
    for (int i = 0; i < m; i++)
        f += 0.5 * a[i] * (double)p[i] * p[i];
    assert_true(f < 0.01 * f0);
    dpt_optim_destroy(o);
}

/* Closed form (course notes' one-line Adam): at t = 1, m^ = g and v^ = g^2, so the step is
 * lr * g / (|g| + eps): magnitude lr per coordinate for any gradient scale with |g| >> eps. */
static void test_adam_first_step_is_lr(void **state) {
    (void)state;
    enum { n = 32 };
    const dpt_optim_kind kinds[] = {DPT_OPTIM_ADAM, DPT_OPTIM_ADAMW};
    for (int k = 0; k < 2; k++) {
        dpt_optim *o =
            make(&(dpt_optim_cfg){.kind = kinds[k], .literal_zero = DPT_OPTIM_F_WEIGHT_DECAY}, n,
                 NULL, 0);
        float p[n] = {0}, g[n];
        dpt_fill_uniform(g, n, 0.5f, 1.0f, SEED, 4);
        for (int i = 0; i < n; i++)
            g[i] *= (i % 2 ? -1.0f : 1.0f) * powf(10.0f, (float)(i % 7) - 3.0f); /* 1e-3..1e3 */
        assert_int_equal(dpt_optim_step(o, p, g, 1e-3), DPT_OK);
        for (int i = 0; i < n; i++) {
            double want = -1e-3 * g[i] / (fabs(g[i]) + 1e-8);
            /* |g| >= 5e-4, so eps moves the step by at most 2e-5 of lr */
            assert_true(fabs(fabs(p[i]) - 1e-3) <= 1e-3 * 2.1e-5);
            /* about eight float32 roundings of at most half an ulp each */
            assert_true(fabs(p[i] - want) <= 8 * FLT_EPSILON * 1e-3);
        }
        dpt_optim_destroy(o);
    }
}

/* Parameter groups: a segment excluded from decay (by flag or by role) moves exactly as it would
 * with weight_decay 0; an included one does not. Oracle: a second optimizer without decay. */
static void test_no_decay_segments(void **state) {
    (void)state;
    enum { n = 10 };
    const dpt_optim_kind kinds[] = {DPT_OPTIM_SGD, DPT_OPTIM_ADAM, DPT_OPTIM_ADAMW};
    dpt_optim_segment segs[] = {
        {.offset = 0, .length = 6, .role = DPT_ROLE_WEIGHT, .name = "0/weight"},
        {.offset = 6, .length = 2, .role = DPT_ROLE_BIAS, .name = "0/bias"},
        {.offset = 8,
         .length = 2,
         .role = DPT_ROLE_NORM,
         .flags = DPT_SEG_NO_DECAY,
         .name = "1/gamma"},
    };
    for (int k = 0; k < 3; k++) {
        dpt_optim *dec = make(
            &(dpt_optim_cfg){
                .kind = kinds[k], .lr = 0.05, .weight_decay = 0.1, .no_decay = DPT_ROLE_BIAS},
            n, segs, 3);
        dpt_optim *plain = make(&(dpt_optim_cfg){.kind = kinds[k],
                                                 .lr = 0.05,
                                                 .literal_zero = DPT_OPTIM_F_WEIGHT_DECAY},
                                n, NULL, 0);
        float p1[n], p2[n], g[n];
        dpt_fill_uniform(p1, n, -1, 1, SEED, 5);
        memcpy(p2, p1, sizeof p1);
        for (int t = 0; t < 3; t++) {
            dpt_fill_uniform(g, n, -1, 1, SEED, 6 + (uint32_t)t);
            assert_int_equal(dpt_optim_step(dec, p1, g, 0.05), DPT_OK);
            assert_int_equal(dpt_optim_step(plain, p2, g, 0.05), DPT_OK);
        }
        assert_memory_equal(p1 + 6, p2 + 6, 4 * sizeof(float));
        for (int i = 0; i < 6; i++)
            assert_true(p1[i] != p2[i]);
        dpt_optim_destroy(dec);
        dpt_optim_destroy(plain);
    }
}

/* The L2 penalty (course notes: loss + alpha/2 |W|^2): dpt_optim_l2_penalty is that term, and a
 * step with weight_decay equals, bit for bit, a step without it fed g + wd*theta by hand. */
static void test_l2_penalty(void **state) {
    (void)state;
    enum { n = 12 };
    const float wd = 0.01f;
    dpt_optim_segment segs[] = {{.offset = 0, .length = 9, .name = "w"},
                                {.offset = 9, .length = 3, .flags = DPT_SEG_NO_DECAY, .name = "b"}};
    dpt_optim *dec = make(
        &(dpt_optim_cfg){.kind = DPT_OPTIM_MOMENTUM, .lr = 0.1, .weight_decay = wd}, n, segs, 2);
    dpt_optim *plain = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_MOMENTUM, .lr = 0.1}, n, NULL, 0);
    float p1[n], p2[n], g[n], gl2[n];
    dpt_fill_uniform(p1, n, -2, 2, SEED, 9);
    memcpy(p2, p1, sizeof p1);
    double want = 0;
    for (int i = 0; i < 9; i++)
        want += 0.5 * wd * (double)p1[i] * p1[i];
    assert_true(fabs(dpt_optim_l2_penalty(dec, p1) - want) <= 1e-15 * want + 1e-300);
    assert_true(dpt_optim_l2_penalty(plain, p1) == 0);
    for (int t = 0; t < 4; t++) {
        dpt_fill_uniform(g, n, -1, 1, SEED, 10 + (uint32_t)t);
        for (int i = 0; i < n; i++)
            gl2[i] = i < 9 ? g[i] + wd * p2[i] : g[i];
        assert_int_equal(dpt_optim_step(dec, p1, g, 0.1), DPT_OK);
        assert_int_equal(dpt_optim_step(plain, p2, gl2, 0.1), DPT_OK);
        assert_memory_equal(p1, p2, sizeof p1);
    }
    dpt_optim *aw = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAMW}, n, NULL, 0);
    assert_true(dpt_optim_l2_penalty(aw, p1) == 0); /* decoupled decay is not a loss term */
    dpt_optim_destroy(aw);
    dpt_optim_destroy(dec);
    dpt_optim_destroy(plain);
}

/* Checkpoint contract: k steps, export, import into a fresh optimizer, k more steps == 2k steps
 * uninterrupted, bit for bit, for every kind and every optional slot. */
static void test_state_export_import_bitwise(void **state) {
    (void)state;
    enum { n = 21, k = 3 };
    const dpt_optim_cfg cfgs[] = {
        {.kind = DPT_OPTIM_SGD, .lr = 0.1},
        {.kind = DPT_OPTIM_MOMENTUM, .lr = 0.1, .dampening = 0.2, .weight_decay = 1e-3},
        {.kind = DPT_OPTIM_NESTEROV, .lr = 0.1},
        {.kind = DPT_OPTIM_ADAGRAD, .lr_decay = 0.01, .initial_accumulator_value = 0.1},
        {.kind = DPT_OPTIM_RMSPROP, .momentum = 0.5, .centered = 1},
        {.kind = DPT_OPTIM_ADADELTA},
        {.kind = DPT_OPTIM_ADAM, .amsgrad = 1},
        {.kind = DPT_OPTIM_ADAMW},
        {.kind = DPT_OPTIM_LARS, .lr = 0.5, .weight_decay = 5e-4},
        {.kind = DPT_OPTIM_LAMB, .weight_decay = 0.01},
    };
    dpt_optim_segment segs[] = {{.offset = 0, .length = 15, .name = "w"},
                                {.offset = 15, .length = 6, .role = DPT_ROLE_BIAS, .name = "b"}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        dpt_optim *a = make(&cfgs[c], n, segs, 2), *b = make(&cfgs[c], n, segs, 2);
        float pa[n], pb[n], g[n];
        dpt_fill_uniform(pa, n, -1, 1, SEED, 20);
        double lr = dpt_optim_base_lr(a);
        for (int t = 0; t < k; t++) {
            dpt_fill_uniform(g, n, -1, 1, SEED, 21 + (uint32_t)t);
            assert_int_equal(dpt_optim_step(a, pa, g, lr), DPT_OK);
        }
        memcpy(pb, pa, sizeof pa);
        dpt_optim_state st;
        dpt_optim_state_export(a, &st);
        assert_int_equal(st.steps, k);
        assert_int_equal(dpt_optim_state_import(b, &st), DPT_OK);
        for (int t = k; t < 2 * k; t++) {
            dpt_fill_uniform(g, n, -1, 1, SEED, 21 + (uint32_t)t);
            assert_int_equal(dpt_optim_step(a, pa, g, lr), DPT_OK);
            assert_int_equal(dpt_optim_step(b, pb, g, lr), DPT_OK);
        }
        if (memcmp(pa, pb, sizeof pa))
            fail_msg("%s: resumed run differs", dpt_optim_kind_name(cfgs[c].kind));
        dpt_optim_destroy(a);
        dpt_optim_destroy(b);
    }
    /* a state saved with other hyper-parameters or another kind is refused, naming the field */
    dpt_optim *a = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM}, 4, NULL, 0);
    dpt_optim *b = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAM, .betas = {0.9, 0.98}}, 4, NULL, 0);
    dpt_optim *c = make(&(dpt_optim_cfg){.kind = DPT_OPTIM_ADAMW}, 4, NULL, 0);
    dpt_optim_state st;
    dpt_optim_state_export(a, &st);
    assert_int_equal(dpt_optim_state_import(b, &st), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "beta2"));
    assert_int_equal(dpt_optim_state_import(c, &st), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "kind"));
    st.names[1] = "exp_avg_sqr";
    assert_int_equal(dpt_optim_state_import(a, &st), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "exp_avg_sqr"));
    dpt_optim_destroy(a);
    dpt_optim_destroy(b);
    dpt_optim_destroy(c);
}

/* Oracle: torch.nn.utils.clip_grad_norm_ (coef = max_norm / (norm + 1e-6), applied when < 1)
 * and clip_grad_value_, in closed form. */
static void test_gradient_clipping(void **state) {
    (void)state;
    enum { n = 1000 };
    static float g[n], g0[n];
    dpt_fill_uniform(g0, n, -1, 1, SEED, 30);
    double sq = 0;
    for (int i = 0; i < n; i++)
        sq += (double)g0[i] * g0[i];
    double norm = sqrt(sq), total = 0;
    assert_true(fabs(dpt_norm2(g0, n) - norm) <= 1e-14 * norm);

    memcpy(g, g0, sizeof g);
    assert_int_equal(dpt_clip_grad_norm(g, n, 2.0, &total), DPT_OK);
    assert_true(fabs(total - norm) <= 1e-14 * norm);
    float coef = (float)(2.0 / (norm + 1e-6));
    for (int i = 0; i < n; i++)
        assert_true(g[i] == g0[i] * coef);
    assert_true(fabs(dpt_norm2(g, n) - 2.0) <= 1e-5);

    memcpy(g, g0, sizeof g);
    assert_int_equal(dpt_clip_grad_norm(g, n, 1e3, NULL), DPT_OK); /* below: untouched */
    assert_memory_equal(g, g0, sizeof g);

    assert_int_equal(dpt_clip_grad_value(g, n, 0.25), DPT_OK);
    for (int i = 0; i < n; i++)
        assert_true(g[i] == fminf(fmaxf(g0[i], -0.25f), 0.25f));

    g[7] = NAN;
    assert_int_equal(dpt_clip_grad_norm(g, n, 1.0, &total), DPT_ENONFINITE);
    assert_true(isnan(g[7]) && g[8] == fminf(fmaxf(g0[8], -0.25f), 0.25f));
    assert_int_equal(dpt_clip_grad_norm(g, n, -1.0, NULL), DPT_EINVAL);
    assert_int_equal(dpt_clip_grad_value(g, n, 0.0), DPT_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names_round_trip),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_invalid_hyper_parameters_rejected),
        cmocka_unit_test(test_segments_must_tile),
        cmocka_unit_test(test_roles_and_cfg_set),
        cmocka_unit_test(test_adagrad_effective_step_shrinks),
        cmocka_unit_test(test_adadelta_runs_without_learning_rate),
        cmocka_unit_test(test_adam_first_step_is_lr),
        cmocka_unit_test(test_no_decay_segments),
        cmocka_unit_test(test_l2_penalty),
        cmocka_unit_test(test_state_export_import_bitwise),
        cmocka_unit_test(test_gradient_clipping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
