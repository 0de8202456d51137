/* Learning-rate schedules (optim): constant, step decay (StepLR / MultiStepLR), exponential,
 * cosine annealing to a final LR, each optionally composed with a linear warmup; and the linear
 * scaling rule of Goyal et al. 2017 (arXiv:1706.02677). A schedule is a pure function of the step
 * number, so a resumed run needs no schedule state. torch.optim.lr_scheduler semantics:
 * https://pytorch.org/docs/1.13/optim.html#how-to-adjust-learning-rate */
#ifndef DPT_SCHEDULE_H
#define DPT_SCHEDULE_H

#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DPT_SCHED_CONSTANT,    /* "constant": base_lr */
    DPT_SCHED_STEP,        /* "step": base_lr * gamma^(number of boundaries passed) */
    DPT_SCHED_EXPONENTIAL, /* "exponential": base_lr * gamma^t (ExponentialLR) */
    DPT_SCHED_COSINE,      /* "cosine": CosineAnnealingLR to final_lr over total_steps */
    DPT_SCHED_KIND_COUNT
} dpt_schedule_kind;

#define DPT_SCHED_MAX_MILESTONES 16

/* Built with designated initializers. Zero means the default where zero would be meaningless:
 *   base_lr        required, > 0 (typically dpt_optim_base_lr, or dpt_schedule_linear_scaling)
 *   step:          either step_size > 0 (StepLR: decay every step_size steps) or milestones
 *                  (MultiStepLR: strictly increasing, positive, 0-terminated or full); gamma
 *                  default 0.1 (torch); 0 < gamma <= 1
 *   exponential:   gamma required, 0 < gamma <= 1
 *   cosine:        total_steps required (T_max); final_lr (eta_min) in [0, base_lr], default 0;
 *                  after total_steps the LR stays at final_lr (torch's closed form would
 *                  start to rise again)
 *   warmup_steps:  0 = no warmup. Otherwise the schedule's LR is multiplied by
 *                  warmup_start + (1 - warmup_start) * t / warmup_steps while t < warmup_steps,
 *                  torch's LinearLR(start_factor=warmup_start, total_iters=warmup_steps) chained
 *                  with the main schedule on the same step clock (ChainedScheduler), as Goyal et
 *                  al. warm up into a step schedule counted from the start of training.
 *   warmup_start:  in (0, 1]; 0 means torch's default 1/3, unless warmup_from_zero is set, which
 *                  starts the warmup at LR 0.
 * Steps count from 0: dpt_schedule_lr(s, t) is the LR of update t+1 (torch's last_epoch = t). */
typedef struct {
    dpt_schedule_kind kind;
    double base_lr;
    double gamma;
    int64_t step_size;
    int64_t milestones[DPT_SCHED_MAX_MILESTONES];
    int64_t total_steps;
    double final_lr;
    int64_t warmup_steps;
    double warmup_start;
    int warmup_from_zero;
} dpt_schedule_cfg;

typedef struct {
    dpt_schedule_cfg cfg; /* resolved: defaults filled in */
    int n_milestones;
} dpt_schedule;

/* Checks `cfg`, fills defaults. DPT_EINVAL naming the field otherwise. */
dpt_status dpt_schedule_init(dpt_schedule *s, const dpt_schedule_cfg *cfg);
/* The learning rate for step t >= 0 (closed form, in double). */
double dpt_schedule_lr(const dpt_schedule *s, int64_t t);

/* "constant", "step", "exponential", "cosine"; DPT_EINVAL listing the choices otherwise. */
dpt_status dpt_schedule_kind_parse(const char *name, dpt_schedule_kind *kind);
const char *dpt_schedule_kind_name(dpt_schedule_kind kind);

/* The linear scaling rule (Goyal et al. 2017, §2.1): base_lr * batch / batch_ref, for a global
 * batch `batch` and the batch `batch_ref` that base_lr was tuned for. Both must be > 0
 * (asserted: they come from validated options). */
double dpt_schedule_linear_scaling(double base_lr, int64_t batch, int64_t batch_ref);

/* How the learning rate follows the batch size: not at all, linearly (Goyal et al. 2017), or with
 * its square root (Krizhevsky 2014; Hoffer et al. 2017: keeps the covariance of the update). */
typedef enum { DPT_LR_SCALING_LINEAR, DPT_LR_SCALING_SQRT, DPT_LR_SCALING_NONE } dpt_lr_scaling;
/* base_lr scaled for `batch` from `batch_ref` by the rule (both > 0, asserted). */
double dpt_schedule_scaled_lr(double base_lr, dpt_lr_scaling rule, int64_t batch, int64_t batch_ref);
/* "none", "linear", "sqrt"; DPT_EINVAL listing the choices otherwise. */
dpt_status dpt_lr_scaling_parse(const char *name, dpt_lr_scaling *rule);

#ifdef __cplusplus
}
#endif
#endif
