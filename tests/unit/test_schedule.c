/* LR schedules. Oracle: the closed forms of torch.optim.lr_scheduler (StepLR, MultiStepLR,
 * ExponentialLR, CosineAnnealingLR, LinearLR) and Goyal et al. 2017, evaluated by hand at the
 * boundary steps; the comparison allows a few ulps of double (pow, cos). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dpt/schedule.h"

#define CLOSE(got, want) assert_true(fabs((got) - (want)) <= 1e-14 * fabs(want) + 1e-300)

static dpt_schedule make(const dpt_schedule_cfg *cfg) {
    dpt_schedule s;
    if (dpt_schedule_init(&s, cfg) != DPT_OK)
        fail_msg("dpt_schedule_init: %s", dpt_last_error());
    return s;
}

static void test_constant_and_step(void **state) {
    (void)state;
    dpt_schedule c = make(&(dpt_schedule_cfg){.kind = DPT_SCHED_CONSTANT, .base_lr = 0.1});
    CLOSE(dpt_schedule_lr(&c, 0), 0.1);
    CLOSE(dpt_schedule_lr(&c, 1000000), 0.1);
    /* StepLR(step_size=30), gamma defaults to 0.1 */
    dpt_schedule s =
        make(&(dpt_schedule_cfg){.kind = DPT_SCHED_STEP, .base_lr = 0.4, .step_size = 30});
    CLOSE(dpt_schedule_lr(&s, 0), 0.4);
    CLOSE(dpt_schedule_lr(&s, 29), 0.4);
    CLOSE(dpt_schedule_lr(&s, 30), 0.04);
    CLOSE(dpt_schedule_lr(&s, 59), 0.04);
    CLOSE(dpt_schedule_lr(&s, 60), 0.4 * 0.01);
    /* MultiStepLR(milestones=[30, 60, 80], gamma=0.1): Goyal et al.'s ImageNet schedule */
    dpt_schedule m = make(
        &(dpt_schedule_cfg){.kind = DPT_SCHED_STEP, .base_lr = 3.2, .milestones = {30, 60, 80}});
    CLOSE(dpt_schedule_lr(&m, 29), 3.2);
    CLOSE(dpt_schedule_lr(&m, 30), 0.32);
    CLOSE(dpt_schedule_lr(&m, 79), 3.2 * 0.01);
    CLOSE(dpt_schedule_lr(&m, 80), 3.2 * 0.001);
    CLOSE(dpt_schedule_lr(&m, 500), 3.2 * 0.001);
}

static void test_exponential_and_cosine(void **state) {
    (void)state;
    dpt_schedule e =
        make(&(dpt_schedule_cfg){.kind = DPT_SCHED_EXPONENTIAL, .base_lr = 0.1, .gamma = 0.95});
    CLOSE(dpt_schedule_lr(&e, 0), 0.1);
    CLOSE(dpt_schedule_lr(&e, 1), 0.095);
    CLOSE(dpt_schedule_lr(&e, 10), 0.1 * pow(0.95, 10));
    /* CosineAnnealingLR(T_max=100, eta_min=1e-3) */
    dpt_schedule c = make(&(dpt_schedule_cfg){
        .kind = DPT_SCHED_COSINE, .base_lr = 0.1, .total_steps = 100, .final_lr = 1e-3});
    CLOSE(dpt_schedule_lr(&c, 0), 0.1);
    CLOSE(dpt_schedule_lr(&c, 50), 1e-3 + (0.1 - 1e-3) / 2);
    CLOSE(dpt_schedule_lr(&c, 25), 1e-3 + (0.1 - 1e-3) * (1 + sqrt(0.5)) / 2);
    CLOSE(dpt_schedule_lr(&c, 100), 1e-3);
    CLOSE(dpt_schedule_lr(&c, 150), 1e-3); /* held at the final LR after T_max */
    dpt_schedule z =
        make(&(dpt_schedule_cfg){.kind = DPT_SCHED_COSINE, .base_lr = 1, .total_steps = 4});
    CLOSE(dpt_schedule_lr(&z, 2), 0.5);
    assert_true(dpt_schedule_lr(&z, 4) == 0);
}

/* LinearLR(start_factor, total_iters=N) chained with the main schedule on the same clock:
 * factor(t) = start + (1 - start) * t / N for t < N, then 1. */
static void test_warmup_composes_with_every_schedule(void **state) {
    (void)state;
    const dpt_schedule_cfg mains[] = {
        {.kind = DPT_SCHED_CONSTANT, .base_lr = 0.8},
        {.kind = DPT_SCHED_STEP, .base_lr = 0.8, .step_size = 3},
        {.kind = DPT_SCHED_EXPONENTIAL, .base_lr = 0.8, .gamma = 0.9},
        {.kind = DPT_SCHED_COSINE, .base_lr = 0.8, .total_steps = 20},
    };
    for (int k = 0; k < 4; k++) {
        dpt_schedule plain = make(&mains[k]);
        dpt_schedule_cfg wc = mains[k];
        wc.warmup_steps = 5;
        wc.warmup_start = 0.125;
        dpt_schedule w = make(&wc);
        for (int64_t t = 0; t < 30; t++) {
            double f = t < 5 ? 0.125 + 0.875 * (double)t / 5 : 1.0;
            CLOSE(dpt_schedule_lr(&w, t), f * dpt_schedule_lr(&plain, t));
        }
    }
    /* warmup_start 0 means torch's 1/3; warmup_from_zero starts at 0 */
    dpt_schedule d =
        make(&(dpt_schedule_cfg){.kind = DPT_SCHED_CONSTANT, .base_lr = 0.3, .warmup_steps = 3});
    CLOSE(dpt_schedule_lr(&d, 0), 0.1);
    CLOSE(dpt_schedule_lr(&d, 3), 0.3);
    dpt_schedule z = make(&(dpt_schedule_cfg){
        .kind = DPT_SCHED_CONSTANT, .base_lr = 0.3, .warmup_steps = 3, .warmup_from_zero = 1});
    assert_true(dpt_schedule_lr(&z, 0) == 0);
    CLOSE(dpt_schedule_lr(&z, 1), 0.1);
}

/* Goyal et al. 2017: lr = 0.1 * b / 256; with b = 8192, 32 * 0.1 = 3.2, warmed up from 0.1
 * (start fraction 256/8192) over the first 5 epochs. */
static void test_linear_scaling_rule(void **state) {
    (void)state;
    double lr = dpt_schedule_linear_scaling(0.1, 8192, 256);
    CLOSE(lr, 3.2);
    CLOSE(dpt_schedule_linear_scaling(1e-3, 64, 256), 2.5e-4);
    dpt_schedule s = make(&(dpt_schedule_cfg){.kind = DPT_SCHED_STEP,
                                              .base_lr = lr,
                                              .milestones = {30 * 156, 60 * 156, 80 * 156},
                                              .warmup_steps = 5 * 156,
                                              .warmup_start = 256.0 / 8192});
    CLOSE(dpt_schedule_lr(&s, 0), 0.1);
    CLOSE(dpt_schedule_lr(&s, 5 * 156), 3.2);
    CLOSE(dpt_schedule_lr(&s, 30 * 156), 0.32);
}

static void expect_rejected(const dpt_schedule_cfg *cfg, const char *needle) {
    dpt_schedule s;
    if (dpt_schedule_init(&s, cfg) != DPT_EINVAL)
        fail_msg("schedule accepted; expected a message about '%s'", needle);
    if (!strstr(dpt_last_error(), needle))
        fail_msg("message '%s' does not mention '%s'", dpt_last_error(), needle);
}

/* The three rules by hand: 0.1 tuned at 256, used at 1024 (4x): linear 0.4, sqrt 0.2, none 0.1. */
static void test_scaling_rules(void **state) {
    (void)state;
    assert_true(dpt_schedule_scaled_lr(0.1, DPT_LR_SCALING_LINEAR, 1024, 256) == 0.4);
    assert_true(dpt_schedule_scaled_lr(0.1, DPT_LR_SCALING_SQRT, 1024, 256) == 0.2);
    assert_true(dpt_schedule_scaled_lr(0.1, DPT_LR_SCALING_NONE, 1024, 256) == 0.1);
    assert_true(dpt_schedule_scaled_lr(0.1, DPT_LR_SCALING_SQRT, 64, 256) == 0.05);
    dpt_lr_scaling r;
    assert_int_equal(dpt_lr_scaling_parse("sqrt", &r), DPT_OK);
    assert_int_equal(r, DPT_LR_SCALING_SQRT);
    assert_int_equal(dpt_lr_scaling_parse("none", &r), DPT_OK);
    assert_int_equal(r, DPT_LR_SCALING_NONE);
    assert_int_equal(dpt_lr_scaling_parse("quadratic", &r), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "none, linear, sqrt"));
}

static void test_invalid_schedules_rejected(void **state) {
    (void)state;
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_CONSTANT}, "base_lr = 0");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_CONSTANT, .base_lr = -1}, "base_lr");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_STEP, .base_lr = 1}, "step_size");
    expect_rejected(
        &(dpt_schedule_cfg){
            .kind = DPT_SCHED_STEP, .base_lr = 1, .step_size = 3, .milestones = {5}},
        "either");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_STEP, .base_lr = 1, .milestones = {5, 5}},
                    "strictly increasing");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_EXPONENTIAL, .base_lr = 1}, "gamma = 0");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_EXPONENTIAL, .base_lr = 1, .gamma = 2},
                    "gamma = 2");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_COSINE, .base_lr = 1}, "total_steps");
    expect_rejected(
        &(dpt_schedule_cfg){
            .kind = DPT_SCHED_COSINE, .base_lr = 1, .total_steps = 9, .final_lr = 2},
        "final_lr");
    expect_rejected(
        &(dpt_schedule_cfg){
            .kind = DPT_SCHED_CONSTANT, .base_lr = 1, .warmup_steps = 4, .warmup_start = 1.5},
        "warmup_start");
    expect_rejected(&(dpt_schedule_cfg){.kind = DPT_SCHED_CONSTANT, .base_lr = 1, .total_steps = 4},
                    "cosine");
    dpt_schedule_kind k;
    assert_int_equal(dpt_schedule_kind_parse("cosine", &k), DPT_OK);
    assert_int_equal(k, DPT_SCHED_COSINE);
    assert_int_equal(dpt_schedule_kind_parse("poly", &k), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "'poly'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_and_step),
        cmocka_unit_test(test_exponential_and_cosine),
        cmocka_unit_test(test_warmup_composes_with_every_schedule),
        cmocka_unit_test(test_linear_scaling_rule),
        cmocka_unit_test(test_scaling_rules),
        cmocka_unit_test(test_invalid_schedules_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
