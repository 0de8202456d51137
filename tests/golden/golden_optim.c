/* optim.h5 handlers of the golden test: T steps of dpt_optim on one parameter vector, compared with
 * torch.optim's float64 trajectory after EVERY step (README §4.7, tolerance 1e-5/1e-5). Every
 * hyper-parameter comes from the file and goes in through dpt_optim_cfg_set, by torch's names.
 * "quadratic" cases run twice: with g = a*theta computed from our own float32 parameters, as a
 * training loop would, and with the stored gradients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/optim.h"
#include "golden.h"

#define OPTIM_TOL 1e-5

typedef enum { A_DOUBLE, A_INT, A_BETAS } attr_type;

typedef struct {
    const char *name;
    attr_type type;
} attr_spec;

/* Every op has these. */
static const attr_spec common_attrs[] = {{"lr", A_DOUBLE}, {"weight_decay", A_DOUBLE}, {NULL, 0}};

static const attr_spec sgd_attrs[] = {
    {"momentum", A_DOUBLE}, {"dampening", A_DOUBLE}, {"nesterov", A_INT}, {NULL, 0}};
static const attr_spec adagrad_attrs[] = {
    {"eps", A_DOUBLE}, {"lr_decay", A_DOUBLE}, {"initial_accumulator_value", A_DOUBLE}, {NULL, 0}};
static const attr_spec rmsprop_attrs[] = {
    {"alpha", A_DOUBLE}, {"eps", A_DOUBLE}, {"momentum", A_DOUBLE}, {"centered", A_INT}, {NULL, 0}};
static const attr_spec adadelta_attrs[] = {{"rho", A_DOUBLE}, {"eps", A_DOUBLE}, {NULL, 0}};
static const attr_spec adam_attrs[] = {
    {"betas", A_BETAS}, {"eps", A_DOUBLE}, {"amsgrad", A_INT}, {NULL, 0}};

/* Reads the listed attributes into cfg; 0 on success (a missing one is a recorded failure). */
static int read_hparams(golden_case *c, const attr_spec *spec, dpt_optim_cfg *cfg) {
    for (; spec->name; spec++) {
        double v[2];
        int iv;
        dpt_status st = DPT_OK;
        switch (spec->type) {
        case A_DOUBLE:
            if (golden_attr_doubles(c, c->group, spec->name, v, 1) != 1)
                return -1;
            st = dpt_optim_cfg_set(cfg, spec->name, v[0]);
            break;
        case A_INT:
            if (golden_attr_ints(c, c->group, spec->name, &iv, 1) != 1)
                return -1;
            st = dpt_optim_cfg_set(cfg, spec->name, iv);
            break;
        case A_BETAS:
            if (golden_attr_doubles(c, c->group, spec->name, v, 2) != 2) {
                golden_fail(c, "attribute 'betas' must hold 2 values");
                return -1;
            }
            st = dpt_optim_cfg_set(cfg, "beta1", v[0]);
            if (st == DPT_OK)
                st = dpt_optim_cfg_set(cfg, "beta2", v[1]);
            break;
        }
        if (st != DPT_OK) {
            golden_fail(c, "%s", dpt_last_error());
            return -1;
        }
    }
    return 0;
}

typedef struct {
    int64_t n, T;
    int quadratic;
    float *p0, *grads, *a;
    double *params;
} trajectory;

static void trajectory_free(trajectory *tr) {
    free(tr->p0);
    free(tr->grads);
    free(tr->a);
    free(tr->params);
}

static int read_trajectory(golden_case *c, trajectory *tr) {
    char source[32];
    int steps;
    golden_dims dp, dg, dr, da;
    if (golden_attr_str(c, c->group, "grad_source", source, sizeof source) < 0 ||
        golden_attr_ints(c, c->group, "steps", &steps, 1) != 1)
        return -1;
    if (strcmp(source, "given") && strcmp(source, "quadratic")) {
        golden_fail(c, "grad_source '%s' is neither 'given' nor 'quadratic'", source);
        return -1;
    }
    tr->quadratic = !strcmp(source, "quadratic");
    tr->p0 = golden_read_f32(c, c->group, "p0", &dp);
    tr->grads = golden_read_f32(c, c->group, "grads", &dg); /* f64 refs convert exactly enough */
    tr->params = golden_read_f64(c, c->group, "params", &dr);
    tr->a = tr->quadratic ? golden_read_f32(c, c->group, "a", &da) : NULL;
    if (!tr->p0 || !tr->grads || !tr->params || (tr->quadratic && !tr->a))
        return -1;
    tr->n = dp.count;
    tr->T = steps;
    if (dp.rank != 1 || dg.rank != 2 || dr.rank != 2 || (int64_t)dg.dims[0] != tr->T ||
        (int64_t)dr.dims[0] != tr->T || (int64_t)dg.dims[1] != tr->n ||
        (int64_t)dr.dims[1] != tr->n || (tr->quadratic && da.count != tr->n) || tr->T < 1) {
        golden_fail(c, "shapes disagree: p0 (n), grads and params (steps = %d, n), a (n)", steps);
        return -1;
    }
    return 0;
}

/* Runs the T steps from p0; grads come from the file, or from a*theta when `from_a`. */
static void run_trajectory(golden_case *c, const dpt_optim_cfg *cfg, const trajectory *tr,
                           int from_a, const char *impl) {
    dpt_optim *o = NULL;
    if (dpt_optim_create(&o, cfg, tr->n, NULL, 0) != DPT_OK) {
        golden_fail(c, "%s: dpt_optim_create: %s", impl, dpt_last_error());
        return;
    }
    float *p = malloc((size_t)tr->n * sizeof *p), *g = malloc((size_t)tr->n * sizeof *g);
    memcpy(p, tr->p0, (size_t)tr->n * sizeof *p);
    for (int64_t t = 0; t < tr->T; t++) {
        const float *grad = tr->grads + t * tr->n;
        if (from_a) {
            for (int64_t i = 0; i < tr->n; i++)
                g[i] = tr->a[i] * p[i];
            grad = g;
        }
        if (dpt_optim_step(o, p, grad, cfg->lr) != DPT_OK) {
            golden_fail(c, "%s: step %lld: %s", impl, (long long)t + 1, dpt_last_error());
            break;
        }
        char what[32];
        snprintf(what, sizeof what, "params[%lld]", (long long)t);
        if (!golden_check_values(c, impl, what, p, tr->params + t * tr->n, tr->n))
            break; /* later steps inherit the error; the first one is the message */
    }
    free(p);
    free(g);
    dpt_optim_destroy(o);
}

static void run_case(golden_case *c, dpt_optim_kind kind, const attr_spec *attrs) {
    dpt_optim_cfg cfg = {.kind = kind};
    trajectory tr = {0};
    if (read_hparams(c, common_attrs, &cfg) == 0 && read_hparams(c, attrs, &cfg) == 0 &&
        read_trajectory(c, &tr) == 0) {
        if (tr.quadratic) {
            run_trajectory(c, &cfg, &tr, 1, "a*theta");
            run_trajectory(c, &cfg, &tr, 0, "stored-grads");
        } else {
            run_trajectory(c, &cfg, &tr, 0, "given");
        }
    }
    trajectory_free(&tr);
}

static void run_sgd(golden_case *c) {
    run_case(c, DPT_OPTIM_SGD, sgd_attrs);
}
static void run_momentum(golden_case *c) {
    run_case(c, DPT_OPTIM_MOMENTUM, sgd_attrs);
}
static void run_nesterov(golden_case *c) {
    run_case(c, DPT_OPTIM_NESTEROV, sgd_attrs);
}
static void run_adagrad(golden_case *c) {
    run_case(c, DPT_OPTIM_ADAGRAD, adagrad_attrs);
}
static void run_rmsprop(golden_case *c) {
    run_case(c, DPT_OPTIM_RMSPROP, rmsprop_attrs);
}
static void run_adadelta(golden_case *c) {
    run_case(c, DPT_OPTIM_ADADELTA, adadelta_attrs);
}
static void run_adam(golden_case *c) {
    run_case(c, DPT_OPTIM_ADAM, adam_attrs);
}
static void run_adamw(golden_case *c) {
    run_case(c, DPT_OPTIM_ADAMW, adam_attrs);
}

const golden_handler golden_optim_handlers[] = {
    {"sgd", run_sgd, OPTIM_TOL, OPTIM_TOL},
    {"momentum", run_momentum, OPTIM_TOL, OPTIM_TOL},
    {"nesterov", run_nesterov, OPTIM_TOL, OPTIM_TOL},
    {"adagrad", run_adagrad, OPTIM_TOL, OPTIM_TOL},
    {"rmsprop", run_rmsprop, OPTIM_TOL, OPTIM_TOL},
    {"adadelta", run_adadelta, OPTIM_TOL, OPTIM_TOL},
    {"adam", run_adam, OPTIM_TOL, OPTIM_TOL},
    {"adamw", run_adamw, OPTIM_TOL, OPTIM_TOL},
    {NULL, NULL, 0, 0},
};
