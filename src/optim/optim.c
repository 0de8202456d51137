/* The dpt_optim object (optim): hyper-parameter defaults and validation from one table, parameter
 * segments and their flags, state slots, step dispatch to the per-rule update functions, state
 * export/import for checkpoints, and the name parsers for the CLI. Never sees a layer. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/tensor.h"
#include "optim_impl.h"

static const char *const kind_names[DPT_OPTIM_KIND_COUNT] = {
    "sgd",      "momentum", "nesterov", "adagrad", "rmsprop",
    "adadelta", "adam",     "adamw",    "lars",    "lamb",
};

const char *dpt_optim_kind_name(dpt_optim_kind kind) {
    return (unsigned)kind < DPT_OPTIM_KIND_COUNT ? kind_names[kind] : "unknown";
}

dpt_status dpt_optim_kind_parse(const char *name, dpt_optim_kind *kind) {
    for (int k = 0; k < DPT_OPTIM_KIND_COUNT; k++)
        if (name && !strcmp(name, kind_names[k])) {
            *kind = (dpt_optim_kind)k;
            return DPT_OK;
        }
    return dpt_errorf(DPT_EINVAL,
                      "optimizer '%s': unknown (choose sgd, momentum, nesterov, adagrad, rmsprop, "
                      "adadelta, adam, adamw, lars or lamb)",
                      name ? name : "(null)");
}

/* ---- the hyper-parameter table: defaults per kind and valid ranges ---- */

#define REQ INFINITY /* required: no default (torch.optim.SGD's lr) */
#define NA NAN       /* not a hyper-parameter of this kind */

typedef enum { NONNEG, POSITIVE, UNIT_OPEN, UNIT_CLOSED } range;

typedef struct {
    const char *name;
    size_t offset; /* of a double in dpt_optim_cfg */
    unsigned bit;  /* DPT_OPTIM_F_* */
    range valid;
    double def[DPT_OPTIM_KIND_COUNT]; /* sgd momentum nesterov adagrad rmsprop adadelta adam adamw
                                         lars lamb */
} hparam;

#define FIELD(f) offsetof(dpt_optim_cfg, f)
/* One row per hyper-parameter, laid out as the header's table. */
/* clang-format off */
static const hparam hparams[] = {
    {"lr", FIELD(lr), DPT_OPTIM_F_LR, NONNEG,
     {REQ, REQ, REQ, 1e-2, 1e-2, 1.0, 1e-3, 1e-3, REQ, 1e-3}},
    {"momentum", FIELD(momentum), DPT_OPTIM_F_MOMENTUM, UNIT_OPEN,
     {0, 0.9, 0.9, NA, 0, NA, NA, NA, 0.9, NA}},
    {"dampening", FIELD(dampening), DPT_OPTIM_F_DAMPENING, UNIT_CLOSED,
     {0, 0, 0, NA, NA, NA, NA, NA, NA, NA}},
    {"weight_decay", FIELD(weight_decay), DPT_OPTIM_F_WEIGHT_DECAY, NONNEG,
     {0, 0, 0, 0, 0, 0, 0, 1e-2, 0, 0}},
    {"eps", FIELD(eps), DPT_OPTIM_F_EPS, NONNEG,
     {NA, NA, NA, 1e-10, 1e-8, 1e-6, 1e-8, 1e-8, NA, 1e-6}},
    {"beta1", FIELD(betas[0]), DPT_OPTIM_F_BETA1, UNIT_OPEN,
     {NA, NA, NA, NA, NA, NA, 0.9, 0.9, NA, 0.9}},
    {"beta2", FIELD(betas[1]), DPT_OPTIM_F_BETA2, UNIT_OPEN,
     {NA, NA, NA, NA, NA, NA, 0.999, 0.999, NA, 0.999}},
    {"alpha", FIELD(alpha), DPT_OPTIM_F_ALPHA, UNIT_OPEN,
     {NA, NA, NA, NA, 0.99, NA, NA, NA, NA, NA}},
    {"rho", FIELD(rho), DPT_OPTIM_F_RHO, UNIT_OPEN, {NA, NA, NA, NA, NA, 0.9, NA, NA, NA, NA}},
    {"lr_decay", FIELD(lr_decay), DPT_OPTIM_F_LR_DECAY, NONNEG,
     {NA, NA, NA, 0, NA, NA, NA, NA, NA, NA}},
    {"initial_accumulator_value", FIELD(initial_accumulator_value),
     DPT_OPTIM_F_INITIAL_ACCUMULATOR, NONNEG, {NA, NA, NA, 0, NA, NA, NA, NA, NA, NA}},
    {"trust_coefficient", FIELD(trust_coefficient), DPT_OPTIM_F_TRUST, POSITIVE,
     {NA, NA, NA, NA, NA, NA, NA, NA, 1e-3, NA}},
};
/* clang-format on */
#define N_HPARAMS (int)(sizeof hparams / sizeof hparams[0])

static double *hp_ptr(dpt_optim_cfg *cfg, const hparam *h) {
    return (double *)((char *)cfg + h->offset);
}
static double hp_get(const dpt_optim_cfg *cfg, const hparam *h) {
    return *(const double *)((const char *)cfg + h->offset);
}

/* The integer fields: booleans and role masks. `kinds` is the bit set of kinds that use it. */
typedef struct {
    const char *name;
    size_t offset; /* of an int or unsigned in dpt_optim_cfg */
    int is_mask;   /* unsigned DPT_ROLE_* mask, else int boolean */
    unsigned bit;  /* DPT_OPTIM_F_* for masks */
    unsigned kinds;
} iparam;

#define K(k) (1u << DPT_OPTIM_##k)
#define SGD_FAMILY (K(SGD) | K(MOMENTUM) | K(NESTEROV))
#define ALL_KINDS ((1u << DPT_OPTIM_KIND_COUNT) - 1)
#define LAYERWISE (K(LARS) | K(LAMB))
#define ALL_ROLES (DPT_ROLE_WEIGHT | DPT_ROLE_BIAS | DPT_ROLE_NORM)
static const iparam iparams[] = {
    {"nesterov", FIELD(nesterov), 0, 0, SGD_FAMILY},
    {"centered", FIELD(centered), 0, 0, K(RMSPROP)},
    {"amsgrad", FIELD(amsgrad), 0, 0, K(ADAM) | K(ADAMW)},
    {"no_decay", FIELD(no_decay), 1, DPT_OPTIM_F_NO_DECAY, ALL_KINDS},
    {"no_adapt", FIELD(no_adapt), 1, DPT_OPTIM_F_NO_ADAPT, LAYERWISE},
};
#define N_IPARAMS (int)(sizeof iparams / sizeof iparams[0])

static unsigned ip_get(const dpt_optim_cfg *cfg, const iparam *p) {
    const char *at = (const char *)cfg + p->offset;
    return p->is_mask ? *(const unsigned *)at : (unsigned)*(const int *)at;
}
static void ip_set(dpt_optim_cfg *cfg, const iparam *p, unsigned v) {
    char *at = (char *)cfg + p->offset;
    if (p->is_mask)
        *(unsigned *)at = v;
    else
        *(int *)at = (int)v;
}

static int in_range(double v, range r) {
    switch (r) {
    case NONNEG:
        return v >= 0;
    case POSITIVE:
        return v > 0;
    case UNIT_OPEN:
        return v >= 0 && v < 1;
    case UNIT_CLOSED:
        return v >= 0 && v <= 1;
    }
    return 0;
}

static const char *range_text(range r) {
    switch (r) {
    case NONNEG:
        return ">= 0";
    case POSITIVE:
        return "> 0";
    case UNIT_OPEN:
        return "in [0, 1)";
    case UNIT_CLOSED:
        return "in [0, 1]";
    }
    return "?";
}

/* Fills defaults into `out` and checks every value; the message names kind and field. */
static dpt_status resolve(dpt_optim_cfg *out, const dpt_optim_cfg *in) {
    if ((unsigned)in->kind >= DPT_OPTIM_KIND_COUNT)
        return dpt_errorf(DPT_EINVAL, "optimizer: kind %d is not a dpt_optim_kind", (int)in->kind);
    const dpt_optim_kind k = in->kind;
    const char *kn = kind_names[k];
    *out = (dpt_optim_cfg){.kind = k};
    for (int i = 0; i < N_HPARAMS; i++) {
        const hparam *h = &hparams[i];
        double v = hp_get(in, h), def = h->def[k];
        if (!isfinite(v))
            return dpt_errorf(DPT_EINVAL, "%s: %s = %g: must be finite", kn, h->name, v);
        if (isnan(def)) {
            if (v != 0)
                return dpt_errorf(DPT_EINVAL, "%s: %s = %g: %s is not a hyper-parameter of %s", kn,
                                  h->name, v, h->name, kn);
            continue;
        }
        if (v == 0 && !(in->literal_zero & h->bit)) {
            if (isinf(def))
                return dpt_errorf(DPT_EINVAL,
                                  "%s: %s is required (torch.optim.SGD has no default for it)", kn,
                                  h->name);
            v = def;
        }
        if (!in_range(v, h->valid))
            return dpt_errorf(DPT_EINVAL, "%s: %s = %g: must be %s", kn, h->name, v,
                              range_text(h->valid));
        *hp_ptr(out, h) = v;
    }
    for (int i = 0; i < N_IPARAMS; i++) {
        const iparam *p = &iparams[i];
        unsigned v = ip_get(in, p);
        if (!(p->kinds & (1u << k))) {
            if (v != 0)
                return dpt_errorf(DPT_EINVAL, "%s: %s is not a hyper-parameter of %s", kn, p->name,
                                  kn);
            continue;
        }
        if (p->is_mask && (v & ~(unsigned)ALL_ROLES))
            return dpt_errorf(DPT_EINVAL, "%s: %s = 0x%x: unknown role bits", kn, p->name, v);
        if (p->is_mask && v == 0 && !(in->literal_zero & p->bit) && (LAYERWISE & (1u << k)))
            v = DPT_ROLE_BIAS | DPT_ROLE_NORM; /* the papers exclude biases and norm parameters */
        if (!p->is_mask && v > 1)
            return dpt_errorf(DPT_EINVAL, "%s: %s = %u: must be 0 or 1", kn, p->name, v);
        ip_set(out, p, v);
    }
    if (k == DPT_OPTIM_NESTEROV)
        out->nesterov = 1;
    if (out->nesterov && (out->momentum <= 0 || out->dampening != 0))
        return dpt_errorf(DPT_EINVAL,
                          "%s: Nesterov momentum requires momentum > 0 and dampening 0 "
                          "(momentum = %g, dampening = %g)",
                          kn, out->momentum, out->dampening);
    if (k == DPT_OPTIM_MOMENTUM && out->momentum <= 0)
        return dpt_errorf(DPT_EINVAL, "momentum: momentum must be > 0 (use sgd for plain SGD)");
    out->literal_zero = 0; /* every field is now literal */
    for (int i = 0; i < N_HPARAMS; i++)
        out->literal_zero |= hp_get(out, &hparams[i]) == 0 ? hparams[i].bit : 0;
    for (int i = 0; i < N_IPARAMS; i++)
        out->literal_zero |=
            iparams[i].is_mask && ip_get(out, &iparams[i]) == 0 ? iparams[i].bit : 0;
    return DPT_OK;
}

dpt_status dpt_optim_cfg_set(dpt_optim_cfg *cfg, const char *name, double value) {
    for (int i = 0; i < N_HPARAMS; i++)
        if (!strcmp(name, hparams[i].name)) {
            *hp_ptr(cfg, &hparams[i]) = value;
            cfg->literal_zero = value == 0 ? cfg->literal_zero | hparams[i].bit
                                           : cfg->literal_zero & ~hparams[i].bit;
            return DPT_OK;
        }
    for (int i = 0; i < N_IPARAMS; i++)
        if (!strcmp(name, iparams[i].name)) {
            if (!(value >= 0 && value <= 0xffff && value == floor(value)))
                return dpt_errorf(DPT_EINVAL, "optimizer: %s = %g: must be a small integer", name,
                                  value);
            ip_set(cfg, &iparams[i], (unsigned)value);
            if (iparams[i].is_mask)
                cfg->literal_zero = value == 0 ? cfg->literal_zero | iparams[i].bit
                                               : cfg->literal_zero & ~iparams[i].bit;
            return DPT_OK;
        }
    return dpt_errorf(DPT_EINVAL, "optimizer: unknown hyper-parameter '%s'", name);
}

int dpt_optim_hparams(const dpt_optim_cfg *cfg, const char **names, double *values, int max) {
    int n = 0;
    if ((unsigned)cfg->kind >= DPT_OPTIM_KIND_COUNT)
        return 0;
    for (int i = 0; i < N_HPARAMS; i++) {
        if (isnan(hparams[i].def[cfg->kind]))
            continue;
        if (n < max) {
            names[n] = hparams[i].name;
            values[n] = hp_get(cfg, &hparams[i]);
        }
        n++;
    }
    for (int i = 0; i < N_IPARAMS; i++) {
        if (!(iparams[i].kinds & (1u << cfg->kind)))
            continue;
        if (n < max) {
            names[n] = iparams[i].name;
            values[n] = (double)ip_get(cfg, &iparams[i]);
        }
        n++;
    }
    return n;
}

dpt_status dpt_optim_roles_parse(const char *list, unsigned *roles) {
    static const struct {
        const char *name;
        unsigned role;
    } table[] = {
        {"weight", DPT_ROLE_WEIGHT}, {"bias", DPT_ROLE_BIAS}, {"norm", DPT_ROLE_NORM}, {"none", 0}};
    unsigned r = 0;
    const char *s = list ? list : "";
    while (*s) {
        size_t len = strcspn(s, ",");
        size_t t = 0, nt = sizeof table / sizeof table[0];
        while (t < nt && !(strlen(table[t].name) == len && !strncmp(s, table[t].name, len)))
            t++;
        if (t == nt)
            return dpt_errorf(DPT_EINVAL,
                              "parameter roles '%s': unknown role '%.*s' (choose from weight, "
                              "bias, norm, none)",
                              list, (int)len, s);
        r |= table[t].role;
        s += len + (s[len] == ',');
    }
    *roles = r;
    return DPT_OK;
}

/* ---- the object ---- */

typedef struct {
    int64_t offset, length;
    double wd;
    int adapt;
    char *name;
} segment;

/* Elements [off, off + len) of segment `seg`: one unit of a step on the pool's threads. The
 * elementwise rules take blocks of UNIT_ELEMS (a multiple of the 4 lanes, so each element sees
 * the operations it sees in a whole-segment pass); LARS and LAMB, whose trust ratio is a norm
 * over the segment, take whole segments. Either way a unit's result does not depend on T. */
typedef struct {
    int seg;
    int64_t off, len;
} unit;

enum { UNIT_ELEMS = 16384 };

static int layerwise(dpt_optim_kind kind) {
    return kind == DPT_OPTIM_LARS || kind == DPT_OPTIM_LAMB;
}

struct dpt_optim {
    dpt_optim_cfg cfg; /* resolved */
    int64_t n, t;
    dpt__optim_update update;
    int n_segs;
    segment *segs;
    const char *slot_names[DPT_OPTIM_MAX_SLOTS]; /* at the rule's fixed indices; NULL if absent */
    float *slots[DPT_OPTIM_MAX_SLOTS];
    unit *units; /* the fixed partition of a step (dpt/pool.h) */
    int64_t n_units;
    dpt_pool *pool; /* borrowed; NULL: one thread */
};

/* The rule's update function and its state slots at their fixed indices. */
static dpt__optim_update layout(const dpt_optim_cfg *c, const char *names[DPT_OPTIM_MAX_SLOTS]) {
    switch (c->kind) {
    case DPT_OPTIM_SGD:
    case DPT_OPTIM_MOMENTUM:
    case DPT_OPTIM_NESTEROV:
        names[0] = c->momentum > 0 ? "momentum_buffer" : NULL;
        return dpt__optim_sgd;
    case DPT_OPTIM_ADAGRAD:
        names[0] = "sum";
        return dpt__optim_adagrad;
    case DPT_OPTIM_RMSPROP:
        names[0] = "square_avg";
        names[1] = c->momentum > 0 ? "momentum_buffer" : NULL;
        names[2] = c->centered ? "grad_avg" : NULL;
        return dpt__optim_rmsprop;
    case DPT_OPTIM_ADADELTA:
        names[0] = "square_avg";
        names[1] = "acc_delta";
        return dpt__optim_adadelta;
    case DPT_OPTIM_ADAM:
    case DPT_OPTIM_ADAMW:
        names[0] = "exp_avg";
        names[1] = "exp_avg_sq";
        names[2] = c->amsgrad ? "max_exp_avg_sq" : NULL;
        return dpt__optim_adam;
    case DPT_OPTIM_LARS:
        names[0] = c->momentum > 0 ? "momentum_buffer" : NULL;
        return dpt__optim_lars;
    case DPT_OPTIM_LAMB:
        names[0] = "exp_avg";
        names[1] = "exp_avg_sq";
        return dpt__optim_lamb;
    case DPT_OPTIM_KIND_COUNT:
        break;
    }
    DPT_ASSERT(!"resolved kind");
    return NULL;
}

static dpt_status check_segments(const dpt_optim_segment *segs, int n_segs, int64_t n) {
    int64_t next = 0;
    for (int i = 0; i < n_segs; i++) {
        const dpt_optim_segment *s = &segs[i];
        const char *nm = s->name ? s->name : "(unnamed)";
        if (s->offset != next || s->length <= 0 || s->length > n - s->offset)
            return dpt_errorf(DPT_EINVAL,
                              "optimizer: segment %d '%s' = [%lld, %lld + %lld): segments must "
                              "tile [0, %lld) in order, each non-empty (expected offset %lld)",
                              i, nm, (long long)s->offset, (long long)s->offset,
                              (long long)s->length, (long long)n, (long long)next);
        unsigned role = s->role ? s->role : DPT_ROLE_WEIGHT;
        if (role & (role - 1) || (role & ~(unsigned)ALL_ROLES))
            return dpt_errorf(DPT_EINVAL, "optimizer: segment '%s': role 0x%x is not one role", nm,
                              s->role);
        if (s->flags & ~(unsigned)(DPT_SEG_NO_DECAY | DPT_SEG_NO_ADAPT))
            return dpt_errorf(DPT_EINVAL, "optimizer: segment '%s': unknown flags 0x%x", nm,
                              s->flags);
        next += s->length;
    }
    if (next != n)
        return dpt_errorf(DPT_EINVAL,
                          "optimizer: the segments cover [0, %lld) but there are %lld parameters",
                          (long long)next, (long long)n);
    return DPT_OK;
}

static char *copy_name(const char *s) {
    size_t len = strlen(s) + 1;
    char *d = malloc(len);
    if (d)
        memcpy(d, s, len);
    return d;
}

dpt_status dpt_optim_create(dpt_optim **out, const dpt_optim_cfg *cfg, int64_t n,
                            const dpt_optim_segment *segs, int n_segs) {
    DPT_ASSERT(out && cfg);
    *out = NULL;
    dpt_optim_cfg rc;
    dpt_status st = resolve(&rc, cfg);
    if (st != DPT_OK)
        return st;
    if (n <= 0)
        return dpt_errorf(DPT_EINVAL, "optimizer: %lld parameters: must be > 0", (long long)n);
    const dpt_optim_segment whole = {.offset = 0, .length = n, .name = "params"};
    if (!segs) {
        segs = &whole;
        n_segs = 1;
    }
    if ((st = check_segments(segs, n_segs, n)) != DPT_OK)
        return st;
    dpt_optim *o = calloc(1, sizeof *o);
    if (!o)
        return dpt_errorf(DPT_ENOMEM, "optimizer: out of memory");
    o->cfg = rc;
    o->n = n;
    o->update = layout(&rc, o->slot_names);
    o->segs = calloc((size_t)n_segs, sizeof *o->segs);
    st = o->segs ? DPT_OK : DPT_ENOMEM;
    for (int i = 0; st == DPT_OK && i < n_segs; i++) {
        const dpt_optim_segment *s = &segs[i];
        unsigned role = s->role ? s->role : DPT_ROLE_WEIGHT;
        segment *d = &o->segs[i];
        d->offset = s->offset;
        d->length = s->length;
        d->wd = (s->flags & DPT_SEG_NO_DECAY) || (rc.no_decay & role) ? 0.0 : rc.weight_decay;
        d->adapt = !(s->flags & DPT_SEG_NO_ADAPT) && !(rc.no_adapt & role);
        d->name = copy_name(s->name ? s->name : "");
        o->n_segs = i + 1;
        if (!d->name)
            st = DPT_ENOMEM;
    }
    const int64_t block = layerwise(rc.kind) ? INT64_MAX : UNIT_ELEMS;
    for (int pass = 0; st == DPT_OK && pass < 2; pass++) { /* count, then fill */
        int64_t u = 0;
        for (int i = 0; i < n_segs; i++)
            for (int64_t off = 0; off < o->segs[i].length; off += block, u++)
                if (pass)
                    o->units[u] = (unit){i, off, o->segs[i].length - off < block
                                                     ? o->segs[i].length - off
                                                     : block};
        o->n_units = u;
        if (!pass && !(o->units = calloc((size_t)u + 1, sizeof *o->units)))
            st = DPT_ENOMEM;
    }
    for (int k = 0; st == DPT_OK && k < DPT_OPTIM_MAX_SLOTS; k++) {
        if (!o->slot_names[k])
            continue;
        o->slots[k] = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(float)));
        if (!o->slots[k])
            st = DPT_ENOMEM;
    }
    if (st != DPT_OK) {
        dpt_optim_destroy(o);
        return dpt_errorf(st, "optimizer: out of memory for %lld parameters", (long long)n);
    }
    if (rc.kind == DPT_OPTIM_ADAGRAD && rc.initial_accumulator_value != 0) {
        float init = (float)rc.initial_accumulator_value;
        for (int64_t i = 0; i < n; i++)
            o->slots[0][i] = init;
    }
    *out = o;
    return DPT_OK;
}

void dpt_optim_destroy(dpt_optim *o) {
    if (!o)
        return;
    for (int i = 0; i < o->n_segs; i++)
        free(o->segs[i].name);
    free(o->segs);
    free(o->units);
    for (int k = 0; k < DPT_OPTIM_MAX_SLOTS; k++)
        dpt_free_aligned(o->slots[k]);
    free(o);
}

typedef struct {
    const dpt_optim *o;
    float *params;
    const float *grads;
    double lr;
} step_job;

static void step_unit(void *ctx, int64_t u, int thread) {
    (void)thread;
    const step_job *j = ctx;
    const dpt_optim *o = j->o;
    const unit *un = &o->units[u];
    const segment *sg = &o->segs[un->seg];
    const int64_t at = sg->offset + un->off;
    dpt__optim_seg s = {.p = j->params + at,
                        .g = j->grads + at,
                        .n = un->len,
                        .wd = sg->wd,
                        .adapt = sg->adapt,
                        .lr = j->lr,
                        .t = o->t};
    for (int k = 0; k < DPT_OPTIM_MAX_SLOTS; k++)
        s.slot[k] = o->slots[k] ? o->slots[k] + at : NULL;
    o->update(&o->cfg, &s);
}

dpt_status dpt_optim_step(dpt_optim *o, float *params, const float *grads, double lr) {
    DPT_ASSERT(o && params && grads);
    if (!(lr >= 0) || !isfinite(lr))
        return dpt_errorf(DPT_EINVAL, "%s step %lld: lr = %g: must be finite and >= 0",
                          kind_names[o->cfg.kind], (long long)o->t + 1, lr);
    o->t++;
    step_job j = {o, params, grads, lr};
    dpt_pool_run(o->pool, o->n_units, step_unit, &j);
    return DPT_OK;
}

void dpt_optim_set_pool(dpt_optim *o, dpt_pool *pool) {
    o->pool = pool;
}

const dpt_optim_cfg *dpt_optim_config(const dpt_optim *o) {
    return &o->cfg;
}
double dpt_optim_base_lr(const dpt_optim *o) {
    return o->cfg.lr;
}
int64_t dpt_optim_steps(const dpt_optim *o) {
    return o->t;
}
int64_t dpt_optim_size(const dpt_optim *o) {
    return o->n;
}

double dpt_optim_l2_penalty(const dpt_optim *o, const float *params) {
    if (o->cfg.kind == DPT_OPTIM_ADAMW || o->cfg.kind == DPT_OPTIM_LAMB)
        return 0.0;
    double sum = 0.0;
    for (int i = 0; i < o->n_segs; i++)
        if (o->segs[i].wd != 0)
            sum += 0.5 * o->segs[i].wd *
                   dpt__sumsq_array(params + o->segs[i].offset, o->segs[i].length);
    return sum;
}

void dpt_optim_state_export(const dpt_optim *o, dpt_optim_state *st) {
    *st = (dpt_optim_state){.cfg = o->cfg, .steps = o->t, .n = o->n};
    for (int k = 0; k < DPT_OPTIM_MAX_SLOTS; k++)
        if (o->slot_names[k]) {
            st->names[st->n_slots] = o->slot_names[k];
            st->slots[st->n_slots] = o->slots[k];
            st->n_slots++;
        }
}

/* The first field whose value differs, or NULL. */
static const char *cfg_difference(const dpt_optim_cfg *a, const dpt_optim_cfg *b) {
    if (a->kind != b->kind)
        return "kind";
    for (int i = 0; i < N_HPARAMS; i++)
        if (hp_get(a, &hparams[i]) != hp_get(b, &hparams[i]))
            return hparams[i].name;
    for (int i = 0; i < N_IPARAMS; i++)
        if (ip_get(a, &iparams[i]) != ip_get(b, &iparams[i]))
            return iparams[i].name;
    return NULL;
}

dpt_status dpt_optim_state_import(dpt_optim *o, const dpt_optim_state *st) {
    const char *kn = kind_names[o->cfg.kind];
    const char *diff = cfg_difference(&o->cfg, &st->cfg);
    if (diff)
        return dpt_errorf(DPT_EINVAL, "%s state: hyper-parameter '%s' differs from the saved one",
                          kn, diff);
    if (st->n != o->n)
        return dpt_errorf(DPT_EINVAL, "%s state: %lld parameters saved, %lld expected", kn,
                          (long long)st->n, (long long)o->n);
    if (st->steps < 0)
        return dpt_errorf(DPT_EINVAL, "%s state: step count %lld", kn, (long long)st->steps);
    dpt_optim_state mine;
    dpt_optim_state_export(o, &mine);
    if (st->n_slots != mine.n_slots)
        return dpt_errorf(DPT_EINVAL, "%s state: %d slots saved, %d expected", kn, st->n_slots,
                          mine.n_slots);
    for (int k = 0; k < mine.n_slots; k++)
        if (!st->names[k] || strcmp(st->names[k], mine.names[k]) || !st->slots[k])
            return dpt_errorf(DPT_EINVAL, "%s state: slot %d is '%s', expected '%s'", kn, k,
                              st->names[k] ? st->names[k] : "(null)", mine.names[k]);
    for (int k = 0; k < mine.n_slots; k++)
        if (st->slots[k] != mine.slots[k])
            memcpy(mine.slots[k], st->slots[k], (size_t)o->n * sizeof(float));
    o->t = st->steps;
    return DPT_OK;
}
