/* Optimizers over one flat float32 parameter array (optim): SGD, Momentum, Nesterov, Adagrad,
 * RMSprop, Adadelta, Adam, AdamW as torch.optim 1.13 computes them, LARS and LAMB as their papers
 * write them; the L2 penalty, and gradient clipping. The optimizer sees parameter *segments*
 * (offset, length, role, flags), never layers. docs/optimizers.md compares every rule with the
 * course notes' form. */
#ifndef DPT_OPTIM_H
#define DPT_OPTIM_H

#include <stdint.h>

#include "dpt/pool.h"
#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One kind per update rule; the names are what the CLI accepts (dpt_optim_kind_parse). */
typedef enum {
    DPT_OPTIM_SGD,      /* "sgd": torch.optim.SGD (momentum 0 unless given) */
    DPT_OPTIM_MOMENTUM, /* "momentum": torch.optim.SGD, momentum defaults to 0.9 */
    DPT_OPTIM_NESTEROV, /* "nesterov": torch.optim.SGD(nesterov=True), momentum defaults to 0.9 */
    DPT_OPTIM_ADAGRAD,  /* "adagrad": torch.optim.Adagrad */
    DPT_OPTIM_RMSPROP,  /* "rmsprop": torch.optim.RMSprop (plain or centered, optional momentum) */
    DPT_OPTIM_ADADELTA, /* "adadelta": torch.optim.Adadelta */
    DPT_OPTIM_ADAM,     /* "adam": torch.optim.Adam (coupled L2; optional AMSGrad) */
    DPT_OPTIM_ADAMW,    /* "adamw": torch.optim.AdamW (decoupled weight decay) */
    DPT_OPTIM_LARS,     /* "lars": You, Gitman, Ginsburg 2017, Algorithm 1 */
    DPT_OPTIM_LAMB,     /* "lamb": You et al. 2019 (ICLR 2020), Algorithm 2 */
    DPT_OPTIM_KIND_COUNT
} dpt_optim_kind;

/* Parameter roles, as bits: segments carry one role; the config's no_decay / no_adapt masks
 * exclude whole roles. */
typedef enum {
    DPT_ROLE_WEIGHT = 1u << 0, /* conv and dense weights */
    DPT_ROLE_BIAS = 1u << 1,   /* conv and dense biases */
    DPT_ROLE_NORM = 1u << 2,   /* batch-norm gamma and beta */
} dpt_param_role;

/* Per-segment flags, OR-ed with what the config's role masks imply. */
enum {
    DPT_SEG_NO_DECAY = 1u << 0, /* no weight decay (neither coupled L2 nor AdamW/LAMB decay) */
    DPT_SEG_NO_ADAPT = 1u << 1, /* no layer-wise trust ratio (LARS/LAMB use ratio 1) */
};

/* A contiguous piece of the flat parameter buffer: one layer's weight, bias, gamma or beta.
 * LARS and LAMB compute one trust ratio per segment. */
typedef struct {
    int64_t offset, length; /* in elements */
    unsigned role;          /* one dpt_param_role; 0 means DPT_ROLE_WEIGHT */
    unsigned flags;         /* DPT_SEG_* */
    const char *name;       /* e.g. "00_conv2d/weight"; copied; NULL is fine */
} dpt_optim_segment;

/* Bits of dpt_optim_cfg.literal_zero: fields whose 0 is meant as the value 0. */
enum {
    DPT_OPTIM_F_LR = 1u << 0,
    DPT_OPTIM_F_MOMENTUM = 1u << 1,
    DPT_OPTIM_F_DAMPENING = 1u << 2,
    DPT_OPTIM_F_WEIGHT_DECAY = 1u << 3,
    DPT_OPTIM_F_EPS = 1u << 4,
    DPT_OPTIM_F_BETA1 = 1u << 5,
    DPT_OPTIM_F_BETA2 = 1u << 6,
    DPT_OPTIM_F_ALPHA = 1u << 7,
    DPT_OPTIM_F_RHO = 1u << 8,
    DPT_OPTIM_F_LR_DECAY = 1u << 9,
    DPT_OPTIM_F_INITIAL_ACCUMULATOR = 1u << 10,
    DPT_OPTIM_F_TRUST = 1u << 11,
    DPT_OPTIM_F_NO_DECAY = 1u << 12,
    DPT_OPTIM_F_NO_ADAPT = 1u << 13,
};

/* Hyper-parameters, named as torch.optim names them; build with designated initializers.
 *
 * THE ZERO RULE. A field that is 0 takes the kind's default from the table below, unless its
 * DPT_OPTIM_F_* bit is set in `literal_zero`, which makes the 0 literal. Non-zero values are
 * always taken as given. So `{.kind = DPT_OPTIM_ADAMW, .lr = 1e-3}` is torch's AdamW(lr=1e-3)
 * with weight_decay 1e-2, and AdamW without decay is
 * `{.kind = DPT_OPTIM_ADAMW, .weight_decay = 0, .literal_zero = DPT_OPTIM_F_WEIGHT_DECAY}`.
 * Where the default is 0 (momentum of sgd, weight_decay of adam, ...) the bit changes nothing.
 * The flags nesterov, centered and amsgrad are plain booleans (default 0). dpt_optim_cfg_set()
 * sets a field by its torch name and handles the bit itself.
 *
 * Defaults ("req": no default, as torch.optim.SGD's lr; "-": not a hyper-parameter of the kind,
 * and giving it is an error). Ranges are checked by dpt_optim_create.
 *
 *   field          sgd  momentum nesterov adagrad rmsprop adadelta adam  adamw  lars   lamb
 *   lr             req  req      req      1e-2    1e-2    1.0      1e-3  1e-3   req    1e-3
 *   momentum       0    0.9      0.9      -       0       -        -     -      0.9    -
 *   dampening      0    0        0        -       -       -        -     -      -      -
 *   weight_decay   0    0        0        0       0       0        0     1e-2   0      0
 *   eps            -    -        -        1e-10   1e-8    1e-6     1e-8  1e-8   -      1e-6
 *   betas          -    -        -        -       -       -        (0.9, 0.999)  -     (0.9, 0.999)
 *   alpha          -    -        -        -       0.99    -        -     -      -      -
 *   rho            -    -        -        -       -       0.9      -     -      -      -
 *   lr_decay, initial_accumulator_value: adagrad only, default 0
 *   trust_coefficient: lars only (eta of the paper), default 1e-3
 *   no_decay, no_adapt: lars and lamb DPT_ROLE_BIAS | DPT_ROLE_NORM; every other kind 0
 *
 * Ranges: lr, weight_decay, eps, lr_decay, initial_accumulator_value >= 0; trust_coefficient > 0;
 * momentum, betas, alpha, rho in [0, 1); dampening in [0, 1]; nesterov needs momentum > 0 and
 * dampening 0 (as torch). Every value must be finite.
 *
 * The update rules, exactly: ../shared/golden/README.md §4.7 for the torch kinds, as
 *   https://pytorch.org/docs/1.13/optim.html documents them (one page per class), and
 *   LARS: v = momentum*v + lr*lambda*(g + wd*w), w = w - v,
 *         lambda = trust_coefficient*|w| / (|g| + wd*|w|) per segment (1 when a norm is 0 or the
 *         segment is NO_ADAPT)                                       arXiv:1708.03888, Alg. 1
 *   LAMB: Adam's bias-corrected m^, v^; r = m^/(sqrt(v^) + eps) + wd*w;
 *         w = w - lr*|w|/|r|*r per segment (ratio 1 when a norm is 0 or NO_ADAPT)
 *                                                                    arXiv:1904.00962, Alg. 2 */
typedef struct {
    dpt_optim_kind kind;
    double lr;                        /* base learning rate, for schedules (dpt_optim_base_lr) */
    double momentum;                  /* sgd family, rmsprop, lars */
    double dampening;                 /* sgd family */
    double weight_decay;              /* L2 added to the gradient; decoupled for adamw and lamb */
    double eps;                       /* adagrad, rmsprop, adadelta, adam, adamw, lamb */
    double betas[2];                  /* adam, adamw, lamb */
    double alpha;                     /* rmsprop smoothing constant */
    double rho;                       /* adadelta */
    double lr_decay;                  /* adagrad */
    double initial_accumulator_value; /* adagrad */
    double trust_coefficient;         /* lars */
    int nesterov;                     /* sgd family: torch's nesterov=True */
    int centered;                     /* rmsprop */
    int amsgrad;                      /* adam, adamw */
    unsigned no_decay;                /* DPT_ROLE_* bits excluded from weight decay */
    unsigned no_adapt;                /* DPT_ROLE_* bits excluded from the LARS/LAMB ratio */
    unsigned literal_zero;            /* DPT_OPTIM_F_* bits: see THE ZERO RULE */
} dpt_optim_cfg;

typedef struct dpt_optim dpt_optim;

/* "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "lars",
 * "lamb" (exact, lower case). DPT_EINVAL naming the value and listing the choices otherwise. */
dpt_status dpt_optim_kind_parse(const char *name, dpt_optim_kind *kind);
/* The name above; "unknown" outside the enum. */
const char *dpt_optim_kind_name(dpt_optim_kind kind);

/* Sets the field named `name` (torch's names: "lr", "momentum", "dampening", "weight_decay",
 * "eps", "beta1", "beta2", "alpha", "rho", "lr_decay", "initial_accumulator_value",
 * "trust_coefficient", "nesterov", "centered", "amsgrad", "no_decay", "no_adapt") and, for a 0,
 * its literal_zero bit. For the CLI and for checkpoints. DPT_EINVAL for an unknown name. Values
 * are checked later, by dpt_optim_create. */
dpt_status dpt_optim_cfg_set(dpt_optim_cfg *cfg, const char *name, double value);

/* The hyper-parameters cfg->kind uses, as (name, value) pairs in a fixed order: the names that
 * dpt_optim_cfg_set accepts, so a checkpoint can store them as attributes and rebuild the
 * config. Writes at most `max` pairs; returns how many there are. */
int dpt_optim_hparams(const dpt_optim_cfg *cfg, const char **names, double *values, int max);

/* "bias,norm" -> DPT_ROLE_BIAS | DPT_ROLE_NORM (also "weight"; "none" or "" -> 0), for
 * --no-decay / --no-adapt style options. DPT_EINVAL naming the bad token. */
dpt_status dpt_optim_roles_parse(const char *list, unsigned *roles);

/* Creates an optimizer for `n` parameters. `segs` (n_segs entries) must tile [0, n) in order,
 * without gaps or overlaps; NULL means one weight segment "params" covering everything. Copies
 * `cfg` (defaults resolved) and the segments; allocates every state slot (zeroed; adagrad's
 * "sum" filled with initial_accumulator_value). DPT_EINVAL with a message naming the field for
 * a value out of range, a missing required lr, or a field the kind does not use. */
dpt_status dpt_optim_create(dpt_optim **out, const dpt_optim_cfg *cfg, int64_t n,
                            const dpt_optim_segment *segs, int n_segs);
void dpt_optim_destroy(dpt_optim *o); /* NULL is fine */

/* One step, in place: params[0..n) -= update(grads, state, lr). `grads` is read only (the
 * weight decay term is added on the fly, as torch adds it to a copy). `lr` is the learning rate
 * of this step (from a schedule based on dpt_optim_base_lr); adamw's decay uses it too, as torch
 * does. Float32 element math in torch's operation order; the norms of LARS and LAMB are summed
 * in double, in a fixed order, so every rank computes the same bits. Allocates nothing.
 * DPT_EINVAL if lr is negative or not finite (nothing is changed then). */
dpt_status dpt_optim_step(dpt_optim *o, float *params, const float *grads, double lr);
/* Runs later steps on `pool`'s threads (borrowed until the next call; NULL: the caller's thread).
 * The parameters are cut into blocks (whole segments for LARS and LAMB) that do not depend on
 * the thread count, so every count gives the same bits. */
void dpt_optim_set_pool(dpt_optim *o, dpt_pool *pool);

/* The resolved configuration (every default filled in), the base lr, steps taken, size. */
const dpt_optim_cfg *dpt_optim_config(const dpt_optim *o);
double dpt_optim_base_lr(const dpt_optim *o);
int64_t dpt_optim_steps(const dpt_optim *o);
int64_t dpt_optim_size(const dpt_optim *o);

/* (wd/2) * sum of theta^2 over the segments that are decayed, in double: the term the coupled
 * L2 penalty adds to the loss (its gradient is the wd*theta that dpt_optim_step adds). 0 for
 * adamw and lamb, whose decay is not a loss term. For reporting the regularized loss. */
double dpt_optim_l2_penalty(const dpt_optim *o, const float *params);

/* State export/import for checkpoints: each slot is a named float array of dpt_optim_size()
 * elements, named as torch's state_dict names it ("momentum_buffer", "sum", "square_avg",
 * "grad_avg", "acc_delta", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"). */
#define DPT_OPTIM_MAX_SLOTS 4
typedef struct {
    dpt_optim_cfg cfg; /* resolved hyper-parameters and kind */
    int64_t steps;     /* steps taken (torch's state["step"]) */
    int64_t n;         /* floats per slot */
    int n_slots;
    const char *names[DPT_OPTIM_MAX_SLOTS]; /* static strings */
    float *slots[DPT_OPTIM_MAX_SLOTS];      /* export: views of the optimizer's own buffers */
} dpt_optim_state;

/* Fills `st` with views of o's state (not copies): valid until dpt_optim_destroy(o), and a step
 * changes what they hold, so save them between steps. */
void dpt_optim_state_export(const dpt_optim *o, dpt_optim_state *st);
/* Copies the slots and the step count of `st` into `o`. The kind, the slot names, n and every
 * resolved hyper-parameter must equal o's, so a resumed run continues bit for bit; DPT_EINVAL
 * naming the first difference otherwise (o is then unchanged). */
dpt_status dpt_optim_state_import(dpt_optim *o, const dpt_optim_state *st);

/* Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_), before the step.
 * By norm: total = ||grads||_2 (double, fixed order); if total > max_norm, grads are scaled by
 * max_norm / (total + 1e-6). *total_norm (may be NULL) receives total. DPT_ENONFINITE (grads
 * unchanged) when total is not finite; DPT_EINVAL for max_norm <= 0 or not finite. */
dpt_status dpt_clip_grad_norm(float *grads, int64_t n, double max_norm, double *total_norm);
/* By value: clamps each gradient to [-clip, clip]. DPT_EINVAL for clip <= 0 or not finite. */
dpt_status dpt_clip_grad_value(float *grads, int64_t n, double clip);

/* Euclidean norm of x[0..n) accumulated in double in a fixed order (8 interleaved partial sums,
 * combined pairwise), independent of the machine and of the thread count. */
double dpt_norm2(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
