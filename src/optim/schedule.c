/* Learning-rate schedules as closed forms of the step number (optim): constant, step decay,
 * exponential, cosine, times an optional linear warmup; the linear scaling rule. No state, so a
 * resumed run gets the same LR at the same step. */
#include "dpt/schedule.h"

#include <math.h>
#include <string.h>

static const double pi = 3.14159265358979323846;

static const char *const sched_names[DPT_SCHED_KIND_COUNT] = {"constant", "step", "exponential",
                                                              "cosine"};

const char *dpt_schedule_kind_name(dpt_schedule_kind kind) {
    return (unsigned)kind < DPT_SCHED_KIND_COUNT ? sched_names[kind] : "unknown";
}

dpt_status dpt_schedule_kind_parse(const char *name, dpt_schedule_kind *kind) {
    for (int k = 0; k < DPT_SCHED_KIND_COUNT; k++)
        if (name && !strcmp(name, sched_names[k])) {
            *kind = (dpt_schedule_kind)k;
            return DPT_OK;
        }
    return dpt_errorf(DPT_EINVAL,
                      "LR schedule '%s': unknown (choose constant, step, exponential or cosine)",
                      name ? name : "(null)");
}

static dpt_status check_step(dpt_schedule *s, const char *kn) {
    dpt_schedule_cfg *c = &s->cfg;
    int n = 0;
    while (n < DPT_SCHED_MAX_MILESTONES && c->milestones[n] != 0) {
        if (c->milestones[n] < 0 || (n > 0 && c->milestones[n] <= c->milestones[n - 1]))
            return dpt_errorf(DPT_EINVAL,
                              "%s schedule: milestone %d = %lld: milestones must be positive and "
                              "strictly increasing",
                              kn, n, (long long)c->milestones[n]);
        n++;
    }
    for (int i = n; i < DPT_SCHED_MAX_MILESTONES; i++)
        if (c->milestones[i] != 0)
            return dpt_errorf(DPT_EINVAL, "%s schedule: milestone %d follows the terminating 0", kn,
                              i);
    if ((n > 0) == (c->step_size > 0))
        return dpt_errorf(DPT_EINVAL,
                          "%s schedule: give either step_size > 0 or milestones (step_size = "
                          "%lld, %d milestones)",
                          kn, (long long)c->step_size, n);
    if (c->step_size < 0)
        return dpt_errorf(DPT_EINVAL, "%s schedule: step_size = %lld: must be > 0", kn,
                          (long long)c->step_size);
    s->n_milestones = n;
    if (c->gamma == 0)
        c->gamma = 0.1; /* torch StepLR / MultiStepLR */
    return DPT_OK;
}

dpt_status dpt_schedule_init(dpt_schedule *s, const dpt_schedule_cfg *cfg) {
    *s = (dpt_schedule){.cfg = *cfg};
    dpt_schedule_cfg *c = &s->cfg;
    if ((unsigned)c->kind >= DPT_SCHED_KIND_COUNT)
        return dpt_errorf(DPT_EINVAL, "LR schedule: kind %d is not a dpt_schedule_kind",
                          (int)c->kind);
    const char *kn = sched_names[c->kind];
    if (!(c->base_lr > 0) || !isfinite(c->base_lr))
        return dpt_errorf(DPT_EINVAL, "%s schedule: base_lr = %g: must be finite and > 0", kn,
                          c->base_lr);
    dpt_status st = DPT_OK;
    if (c->kind == DPT_SCHED_STEP && (st = check_step(s, kn)) != DPT_OK)
        return st;
    if (c->kind == DPT_SCHED_STEP || c->kind == DPT_SCHED_EXPONENTIAL) {
        if (!(c->gamma > 0 && c->gamma <= 1))
            return dpt_errorf(DPT_EINVAL, "%s schedule: gamma = %g: must be in (0, 1]%s", kn,
                              c->gamma, c->kind == DPT_SCHED_EXPONENTIAL ? " (required)" : "");
    } else if (c->gamma != 0) {
        return dpt_errorf(DPT_EINVAL, "%s schedule: gamma is not a parameter of it", kn);
    }
    if (c->kind == DPT_SCHED_COSINE) {
        if (c->total_steps <= 0)
            return dpt_errorf(DPT_EINVAL, "cosine schedule: total_steps = %lld: must be > 0",
                              (long long)c->total_steps);
        if (!(c->final_lr >= 0 && c->final_lr <= c->base_lr))
            return dpt_errorf(DPT_EINVAL,
                              "cosine schedule: final_lr = %g: must be in [0, base_lr = %g]",
                              c->final_lr, c->base_lr);
    } else if (c->total_steps != 0 || c->final_lr != 0) {
        return dpt_errorf(
            DPT_EINVAL, "%s schedule: total_steps and final_lr belong to the cosine schedule", kn);
    }
    if (c->warmup_steps < 0)
        return dpt_errorf(DPT_EINVAL, "%s schedule: warmup_steps = %lld: must be >= 0", kn,
                          (long long)c->warmup_steps);
    if (c->warmup_from_zero) {
        if (c->warmup_start != 0)
            return dpt_errorf(DPT_EINVAL,
                              "%s schedule: warmup_from_zero and warmup_start = %g conflict", kn,
                              c->warmup_start);
    } else if (c->warmup_start == 0) {
        c->warmup_start = 1.0 / 3.0; /* torch LinearLR's start_factor */
    }
    if (!(c->warmup_start >= 0 && c->warmup_start <= 1))
        return dpt_errorf(DPT_EINVAL, "%s schedule: warmup_start = %g: must be in (0, 1]", kn,
                          c->warmup_start);
    return DPT_OK;
}

static double main_lr(const dpt_schedule *s, int64_t t) {
    const dpt_schedule_cfg *c = &s->cfg;
    switch (c->kind) {
    case DPT_SCHED_CONSTANT:
        return c->base_lr;
    case DPT_SCHED_STEP: {
        int64_t passed = 0;
        if (c->step_size > 0)
            passed = t / c->step_size;
        else
            while (passed < s->n_milestones && t >= c->milestones[passed])
                passed++;
        return c->base_lr * pow(c->gamma, (double)passed);
    }
    case DPT_SCHED_EXPONENTIAL:
        return c->base_lr * pow(c->gamma, (double)t);
    case DPT_SCHED_COSINE:
        if (t >= c->total_steps)
            return c->final_lr;
        return c->final_lr + (c->base_lr - c->final_lr) *
                                 (1.0 + cos(pi * (double)t / (double)c->total_steps)) / 2.0;
    case DPT_SCHED_KIND_COUNT:
        break;
    }
    DPT_ASSERT(!"initialised schedule");
    return 0;
}

double dpt_schedule_lr(const dpt_schedule *s, int64_t t) {
    DPT_ASSERT(t >= 0);
    double lr = main_lr(s, t);
    const dpt_schedule_cfg *c = &s->cfg;
    if (t < c->warmup_steps)
        lr *= c->warmup_start + (1.0 - c->warmup_start) * (double)t / (double)c->warmup_steps;
    return lr;
}

double dpt_schedule_linear_scaling(double base_lr, int64_t batch, int64_t batch_ref) {
    DPT_ASSERT(batch > 0 && batch_ref > 0);
    return base_lr * (double)batch / (double)batch_ref;
}

double dpt_schedule_scaled_lr(double base_lr, dpt_lr_scaling rule, int64_t batch, int64_t batch_ref) {
    DPT_ASSERT(batch > 0 && batch_ref > 0);
    switch (rule) {
    case DPT_LR_SCALING_LINEAR:
        return dpt_schedule_linear_scaling(base_lr, batch, batch_ref);
    case DPT_LR_SCALING_SQRT:
        return base_lr * sqrt((double)batch / (double)batch_ref);
    case DPT_LR_SCALING_NONE:
        break;
    }
    return base_lr;
}

dpt_status dpt_lr_scaling_parse(const char *name, dpt_lr_scaling *rule) {
    static const char *const names[] = {"linear", "sqrt", "none"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *rule = (dpt_lr_scaling)i;
            return DPT_OK;
        }
    return dpt_errorf(DPT_EINVAL, "'%s' is not one of none, linear, sqrt", name);
}
