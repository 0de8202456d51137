/* `dptrain train` and `dptrain cv` (cli): the option table, validation, and the hand-off to
 * train/ (a plain run, an ensemble, or cross-validation). Every rank parses the same arguments;
 * the ranks check that they did (hash). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

#include "cli.h"
#include "dpt/data.h"
#include "dpt/run_dir.h"
#include "dpt/model.h"
#include "options.h"
#include "progress.h"
#include "signals.h"

/* The table writes into train_options; the training configuration comes first. */
typedef struct {
    dpt_train_cfg train;
    dpt_ensemble_cfg ens;
    int ensemble_set; /* --ensemble given */
    int print_model;
    int no_progress;
    int overwrite;      /* --overwrite: replace an earlier run in --out */
    const char *resume; /* --resume RUN_DIR|CKPT.h5 */
    double hyper_value[9]; /* --lr ... as given (hyper_map order), to name the option at fault */
    unsigned hyper_given;
    double collective_timeout; /* --collective-timeout: 0 not given (the default), < 0 no limit */
} train_options;

#define FIELD(f) offsetof(train_options, train.f)
#define ENS(f) offsetof(train_options, ens.f)

static dpt_status parse_ensemble(void *cfg, const char *opt, const char *value) {
    static const char *const kinds[] = {"bagging", "boosting", NULL}; /* dpt_ensemble_kind order */
    train_options *o = cfg;
    int k;
    dpt_status st = dpt_cli_choice(opt, value, kinds, &k);
    if (st == DPT_OK)
        o->ens.kind = (dpt_ensemble_kind)k, o->ensemble_set = 1;
    return st;
}

static dpt_status parse_vote(void *cfg, const char *opt, const char *value) {
    static const char *const votes[] = {"soft", "hard", NULL}; /* dpt_vote order */
    int k;
    dpt_status st = dpt_cli_choice(opt, value, votes, &k);
    if (st == DPT_OK)
        ((train_options *)cfg)->ens.vote = (dpt_vote)k;
    return st;
}

static dpt_status parse_optim(void *cfg, const char *opt, const char *value) {
    dpt_train_cfg *c = cfg;
    dpt_status st = dpt_optim_kind_parse(value, &c->optim.kind);
    return st == DPT_OK ? st : dpt_errorf(st, "%s: %s", opt, dpt_last_error());
}

typedef struct {
    const char *opt, *name;
} hyper_name;
static const hyper_name hyper_map[] = {{"--lr", "lr"},
                 {"--momentum", "momentum"},
                 {"--weight-decay", "weight_decay"},
                 {"--eps", "eps"},
                 {"--beta1", "beta1"},
                 {"--beta2", "beta2"},
                 {"--alpha", "alpha"},
                 {"--rho", "rho"},
                 {"--trust-coefficient", "trust_coefficient"}};
#define N_HYPER (sizeof hyper_map / sizeof hyper_map[0])

/* --lr, --momentum, ... go through the optimizer's own setter (torch names), which records
 * literal zeros; ranges are checked when the optimizer is created. */
static dpt_status parse_hyper(void *cfg, const char *opt, const char *value) {
    const hyper_name *map = hyper_map;
    double v;
    dpt_status st = dpt_cli_number(opt, value, -1e300, 1e300, &v);
    if (st != DPT_OK)
        return st;
    for (size_t i = 0; i < N_HYPER; i++)
        if (!strcmp(map[i].opt, opt)) {
            train_options *o = cfg; /* the table is over train_options */
            _Static_assert(N_HYPER == sizeof o->hyper_value / sizeof o->hyper_value[0],
                           "one slot per hyper-parameter option");
            o->hyper_value[i] = v;
            o->hyper_given |= 1u << i;
            st = dpt_optim_cfg_set(&o->train.optim, map[i].name, v);
            return st == DPT_OK ? st : dpt_errorf(st, "%s: %s", opt, dpt_last_error());
        }
    return dpt_errorf(DPT_EINVAL, "%s: not an optimizer option", opt);
}

static dpt_status parse_flag_hyper(void *cfg, const char *opt, const char *value) {
    dpt_train_cfg *c = cfg;
    double v;
    dpt_status st = dpt_cli_number(opt, value, 0, 1, &v);
    if (st != DPT_OK)
        return st;
    if (!strcmp(opt, "--amsgrad"))
        c->optim.amsgrad = v != 0;
    else if (!strcmp(opt, "--centered"))
        c->optim.centered = v != 0;
    return DPT_OK;
}

static dpt_status parse_no_decay(void *cfg, const char *opt, const char *value) {
    dpt_train_cfg *c = cfg;
    unsigned roles;
    dpt_status st = dpt_optim_roles_parse(value, &roles);
    if (st != DPT_OK)
        return dpt_errorf(st, "%s: %s", opt, dpt_last_error());
    st = dpt_optim_cfg_set(&c->optim, !strcmp(opt, "--no-decay") ? "no_decay" : "no_adapt",
                           (double)roles);
    return st;
}

static dpt_status parse_schedule(void *cfg, const char *opt, const char *value) {
    dpt_status st = dpt_schedule_kind_parse(value, &((dpt_train_cfg *)cfg)->schedule);
    return st == DPT_OK ? st : dpt_errorf(st, "%s: %s", opt, dpt_last_error());
}

static dpt_status parse_lr_scaling(void *cfg, const char *opt, const char *value) {
    dpt_status st = dpt_lr_scaling_parse(value, &((dpt_train_cfg *)cfg)->lr_scaling);
    return st == DPT_OK ? st : dpt_errorf(st, "%s: %s", opt, dpt_last_error());
}

static dpt_status parse_bn(void *cfg, const char *opt, const char *value) {
    dpt_train_cfg *c = cfg;
    if (!strcmp(value, "local")) {
        c->bn = DPT_BN_LOCAL;
    } else if (!strcmp(value, "sync")) {
        c->bn = DPT_BN_SYNC;
    } else if (!strncmp(value, "ghost:", 6)) {
        double g;
        dpt_status st = dpt_cli_number(opt, value + 6, 1, 1 << 30, &g);
        if (st != DPT_OK)
            return st;
        c->bn = DPT_BN_GHOST;
        c->bn_ghost = (int64_t)g;
    } else {
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not one of local, sync, ghost:G", opt, value);
    }
    return DPT_OK;
}

/* Seconds >= 0; 0 means no limit, stored as -1 (0 in the field is the library's default). */
static dpt_status parse_collective_timeout(void *cfg, const char *opt, const char *value) {
    double v;
    dpt_status st = dpt_cli_number(opt, value, 0, 1e9, &v);
    if (st == DPT_OK)
        ((train_options *)cfg)->collective_timeout = v > 0 ? v : -1;
    return st;
}

static dpt_status parse_data_copy(void *cfg, const char *opt, const char *value) {
    static const char *const copies[] = {"node", "rank", NULL}; /* dpt_data_copy order */
    int k;
    dpt_status st = dpt_cli_choice(opt, value, copies, &k);
    if (st == DPT_OK)
        ((dpt_train_cfg *)cfg)->data_copy = (dpt_data_copy)k;
    return st;
}

/* N followed by the unit: "50steps", "1epochs" (the singular works too). */
static dpt_status parse_checkpoint_every(void *cfg, const char *opt, const char *value) {
    dpt_train_cfg *c = cfg;
    char *end = NULL;
    long long n = strtoll(value, &end, 10);
    int steps = !strcmp(end, "steps") || !strcmp(end, "step");
    int epochs = !strcmp(end, "epochs") || !strcmp(end, "epoch");
    if (end == value || n < 1 || (!steps && !epochs))
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not N followed by steps or epochs (e.g. "
                                      "50steps, 1epochs)",
                          opt, value);
    c->checkpoint_every = n;
    c->checkpoint_epochs = epochs;
    return DPT_OK;
}

static dpt_status parse_keep_last(void *cfg, const char *opt, const char *value) {
    (void)opt, (void)value;
    ((dpt_train_cfg *)cfg)->drop_last = 0;
    return DPT_OK;
}

static const dpt_cli_option train_table[] = {
    {"--model", "SPEC", DPT_OPT_STRING, FIELD(model), 0, 0,
     "preset (lenet5, fmnist-cnn, mlp, cnn1d, cnn3d) or a spec string [fmnist-cnn]", NULL},
    {"--data", "SRC", DPT_OPT_STRING, FIELD(data), 0, 0,
     "fashion-mnist, sample, a directory of IDX files or an .h5 file [fashion-mnist]", NULL},
    {"--data-copy", "node|rank", DPT_OPT_CUSTOM, 0, 0, 0,
     "node: one copy of the samples per node in shared memory, read by one rank and mapped by "
     "the others; rank: every rank reads its own. The same samples either way (docs/memory.md) "
     "[node]", parse_data_copy},
    {"--stream", NULL, DPT_OPT_FLAG, FIELD(stream), 0, 0,
     "read the training samples of the .h5 --data file step by step, each rank only its part "
     "of the batch, the next step's while this one computes, instead of loading them: datasets "
     "larger than memory; the same weights as without (docs/streaming.md)", NULL},
    {"--stream-window", "W", DPT_OPT_INT64, FIELD(stream_window), 0, 1e9,
     "with --stream: visit the file's chunks in random order, W at a time, shuffling the samples "
     "within each window of W chunks: mostly sequential reads, a weaker shuffle "
     "(docs/streaming.md) [0: the exact global shuffle]", NULL},
    {"--classes", "K", DPT_OPT_INT64, FIELD(classes), 2, 1 << 20,
     "number of classes, for data that does not declare it (an IDX directory, an HDF5 file "
     "without n_classes) [the model's last dense(N), else the data's own count]", NULL},
    {"--out", "DIR", DPT_OPT_STRING, FIELD(out), 0, 0,
     "run directory: metrics.csv, checkpoints/final.h5 [none]", NULL},
    {"--epochs", "N", DPT_OPT_INT64, FIELD(epochs), 1, 1e6, "epochs [10]", NULL},
    {"--batch", "N", DPT_OPT_INT64, FIELD(batch), 1, 1e8, "global batch size [128]", NULL},
    {"--micro-batch", "M", DPT_OPT_INT64, FIELD(micro_batch), 0, 1e8,
     "rows per forward/backward; gradients accumulate; at most --batch (larger than a rank's "
     "slice: the slice in one pass) [whole local slice]", NULL},
    {"--eval-batch", "N", DPT_OPT_INT64, FIELD(eval_batch), 1, 1e6, "rows per evaluation "
     "forward [64]", NULL},
    {"--test-samples", "N", DPT_OPT_INT64, FIELD(test_samples), 1, 1e12,
     "evaluate on the first N test samples only (quick runs) [all]", NULL},
    {"--max-steps", "N", DPT_OPT_INT64, FIELD(max_steps), 0, 1e12,
     "stop after N optimizer steps, N >= 1; omit it for no limit (with --resume, 0 lifts the "
     "checkpoint's limit) [no limit]", NULL},
    {"--seed", "S", DPT_OPT_UINT32, FIELD(seed), 0, 4294967295.0, "random seed [1]", NULL},
    {"--keep-last", NULL, DPT_OPT_CUSTOM, 0, 0, 0,
     "keep the last partial batch of an epoch [dropped]", parse_keep_last},
    {"--optim", "NAME", DPT_OPT_CUSTOM, 0, 0, 0,
     "sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, lars, lamb [adam]",
     parse_optim},
    {"--lr", "X", DPT_OPT_CUSTOM, 0, 0, 0, "learning rate [torch's default of the optimizer]",
     parse_hyper},
    {"--momentum", "X", DPT_OPT_CUSTOM, 0, 0, 0, "momentum (sgd family, rmsprop, lars)",
     parse_hyper},
    {"--weight-decay", "X", DPT_OPT_CUSTOM, 0, 0, 0,
     "L2 penalty added to the gradient (decoupled for adamw, lamb)", parse_hyper},
    {"--eps", "X", DPT_OPT_CUSTOM, 0, 0, 0, "epsilon of adaptive optimizers", parse_hyper},
    {"--beta1", "X", DPT_OPT_CUSTOM, 0, 0, 0, "adam/adamw/lamb beta1 [0.9]", parse_hyper},
    {"--beta2", "X", DPT_OPT_CUSTOM, 0, 0, 0, "adam/adamw/lamb beta2 [0.999]", parse_hyper},
    {"--alpha", "X", DPT_OPT_CUSTOM, 0, 0, 0, "rmsprop smoothing [0.99]", parse_hyper},
    {"--rho", "X", DPT_OPT_CUSTOM, 0, 0, 0, "adadelta rho [0.9]", parse_hyper},
    {"--trust-coefficient", "X", DPT_OPT_CUSTOM, 0, 0, 0, "lars eta [1e-3]", parse_hyper},
    {"--amsgrad", "0|1", DPT_OPT_CUSTOM, 0, 0, 0, "adam/adamw AMSGrad [0]", parse_flag_hyper},
    {"--centered", "0|1", DPT_OPT_CUSTOM, 0, 0, 0, "centered rmsprop [0]", parse_flag_hyper},
    {"--no-decay", "ROLES", DPT_OPT_CUSTOM, 0, 0, 0,
     "parameter roles without weight decay: bias,norm,weight or none", parse_no_decay},
    {"--no-adapt", "ROLES", DPT_OPT_CUSTOM, 0, 0, 0,
     "roles without the LARS/LAMB trust ratio [bias,norm]", parse_no_decay},
    {"--schedule", "KIND", DPT_OPT_CUSTOM, 0, 0, 0, "constant, step, exponential, cosine "
     "[constant]", parse_schedule},
    {"--gamma", "X", DPT_OPT_DOUBLE, FIELD(gamma), 1e-12, 1, "decay factor of step (per period) "
     "and exponential (per epoch) schedules [0.1]", NULL},
    {"--step-epochs", "E", DPT_OPT_DOUBLE, FIELD(step_epochs), 1e-6, 1e9,
     "step schedule period in epochs", NULL},
    {"--final-lr", "X", DPT_OPT_DOUBLE, FIELD(final_lr), 0, 1e9, "cosine end value [0]", NULL},
    {"--warmup-epochs", "E", DPT_OPT_DOUBLE, FIELD(warmup_epochs), 0, 1e9,
     "linear warmup length in epochs [0]", NULL},
    {"--warmup-start", "F", DPT_OPT_DOUBLE, FIELD(warmup_start), 1e-9, 1,
     "warmup start fraction of the lr [1/3]", NULL},
    {"--lr-ref-batch", "B", DPT_OPT_INT64, FIELD(lr_ref_batch), 1, 1e9,
     "the batch --lr is tuned for: lr is scaled to --batch by --lr-scaling", NULL},
    {"--lr-scaling", "RULE", DPT_OPT_CUSTOM, 0, 0, 0,
     "linear (lr * batch / B), sqrt (lr * sqrt(batch / B)) or none [linear]",
     parse_lr_scaling},
    {"--clip-norm", "X", DPT_OPT_DOUBLE, FIELD(clip_norm), 1e-30, 1e30,
     "clip gradients to this global L2 norm", NULL},
    {"--clip-value", "X", DPT_OPT_DOUBLE, FIELD(clip_value), 1e-30, 1e30,
     "clamp each gradient to [-X, X]", NULL},
    {"--val-fraction", "F", DPT_OPT_DOUBLE, FIELD(val_fraction), 0, 0.99,
     "stratified validation split of the training set [0]", NULL},
    {"--early-stop", "P", DPT_OPT_INT64, FIELD(early_stop), 1, 1e6,
     "stop after P epochs without a better validation loss (needs --val-fraction); keeps the "
     "best weights; OUT/checkpoints/best.h5 is the best epoch's full state, final.h5 after an "
     "early stop the best weights with the last epoch's optimizer state and metrics", NULL},
    {"--flip", "P", DPT_OPT_FLOAT, FIELD(augment.flip_prob), 0, 1,
     "random horizontal flip probability [0]", NULL},
    {"--shift", "N", DPT_OPT_INT64, FIELD(augment.shift), 0, 1e4,
     "random shift / padded crop of up to N pixels [0]", NULL},
    {"--cutout", "N", DPT_OPT_INT64, FIELD(augment.cutout), 0, 1e4, "cutout box side [0]", NULL},
    {"--noise", "STD", DPT_OPT_FLOAT, FIELD(augment.noise_std), 0, 1e3,
     "Gaussian input noise std [0]", NULL},
    {"--mixup", "ALPHA", DPT_OPT_FLOAT, FIELD(augment.mixup_alpha), 0, 1e3,
     "mixup Beta(alpha, alpha) [off]", NULL},
    {"--cutmix", "ALPHA", DPT_OPT_FLOAT, FIELD(augment.cutmix_alpha), 0, 1e3,
     "cutmix Beta(alpha, alpha); with --mixup each sample uses one of the two, 50/50 [off]",
     NULL},
    {"--label-smoothing", "E", DPT_OPT_DOUBLE, FIELD(label_smoothing), 0, 0.999,
     "label smoothing epsilon [0]", NULL},
    {"--bn", "MODE", DPT_OPT_CUSTOM, 0, 0, 0, "batch norm statistics: local, sync, ghost:G "
     "[local]", parse_bn},
    {"--bucket-mb", "MB", DPT_OPT_DOUBLE, FIELD(bucket_mb), 1e-6, 1e4,
     "gradient allreduce bucket size [a quarter of the gradient, 0.5 to 25]", NULL},
    {"--no-overlap", NULL, DPT_OPT_FLAG, FIELD(no_overlap), 0, 0,
     "one blocking allreduce after backward instead of overlapped buckets", NULL},
    {"--deterministic", NULL, DPT_OPT_FLAG, FIELD(deterministic), 0, 0,
     "exact fixed-point gradient sums: bit-identical results for any rank count", NULL},
    {"--collective-timeout", "S", DPT_OPT_CUSTOM, 0, 0, 0,
     "seconds a rank waits in a collective (gradient allreduce, metric sums, ...) for the others; "
     "then one line names the ranks that did not arrive and every rank exits non-zero. Must "
     "exceed the longest lag of a healthy rank (a checkpoint write, an evaluation, the first "
     "step); 0: wait forever (docs/resume.md) [300]", parse_collective_timeout},
    {"--noise-scale-every", "N", DPT_OPT_INT64, FIELD(noise_scale_every), 1, 1e12,
     "estimate the gradient noise scale every N steps; logs grad_sq, trace_sigma, b_simple to "
     "metrics.csv (docs/noise-scale.md) [off]", NULL},
    {"--profile", NULL, DPT_OPT_FLAG, FIELD(profile), 0, 0, "print where the time went", NULL},
    {"--checkpoint-every", "N{steps|epochs}", DPT_OPT_CUSTOM, 0, 0, 0,
     "full-state checkpoint OUT/checkpoints/step-NNNNNN.h5 every N optimizer steps (50steps) or "
     "epochs (1epochs), for --resume [off; final.h5 is always full-state]",
     parse_checkpoint_every},
    {"--keep", "K", DPT_OPT_INT64, FIELD(keep), 1, 1e6, "periodic checkpoints kept, the newest [3]",
     NULL},
    {"--resume", "RUN|CKPT", DPT_OPT_STRING, offsetof(train_options, resume), 0, 0,
     "continue a run (its newest readable checkpoint, or this file) to its configured end, bit "
     "for bit; options not given are the checkpoint's, and only --epochs, --max-steps (not with "
     "a cosine schedule), --out, --quiet, --no-progress, --profile, --checkpoint-every, --keep, "
     "--skip-nonfinite, --test-samples, --eval-batch, --data-copy, --stream may differ [--out: the run's "
     "directory]",
     NULL},
    {"--skip-nonfinite", "N", DPT_OPT_INT64, FIELD(skip_nonfinite), 0, 1e9,
     "skip a step whose loss or gradient is NaN/Inf on any rank (no update), up to N in a row, "
     "then stop [0: stop at once, naming the step and the layer]", NULL},
    {"--ensemble", "KIND", DPT_OPT_CUSTOM, 0, 0, 0,
     "bagging or boosting: an ensemble trained in rank groups (docs/ensembles.md)",
     parse_ensemble},
    {"--members", "G", DPT_OPT_INT, ENS(members), 1, 4096,
     "bagging: members, trained by min(G, ranks) groups in parallel", NULL},
    {"--max-samples", "F", DPT_OPT_DOUBLE, ENS(max_samples), 1e-9, 1,
     "bagging: each member draws floor(F x n) samples [1.0]", NULL},
    {"--no-bootstrap", NULL, DPT_OPT_FLAG, ENS(no_bootstrap), 0, 0,
     "bagging: draw without replacement", NULL},
    {"--vote", "RULE", DPT_OPT_CUSTOM, 0, 0, 0, "bagging: soft (mean probability) or hard "
     "(majority) [soft]", parse_vote},
    {"--rounds", "T", DPT_OPT_INT, ENS(rounds), 1, 4096, "boosting: SAMME rounds", NULL},
    {"--boost-lr", "ETA", DPT_OPT_DOUBLE, ENS(boost_lr), 1e-9, 1e9,
     "boosting: learning rate eta of alpha [1.0]", NULL},
    {"--folds", "K", DPT_OPT_INT, ENS(folds), 2, 256, "cv: folds (one rank group each)", NULL},
    {"--stratified", NULL, DPT_OPT_FLAG, ENS(stratified), 0, 0,
     "cv: StratifiedKFold (class proportions kept in every fold)", NULL},
    {"--shuffle", NULL, DPT_OPT_FLAG, ENS(shuffle), 0, 0, "cv: shuffle before folding", NULL},
    {"--quiet", NULL, DPT_OPT_FLAG, FIELD(quiet), 0, 0, "no per-epoch lines", NULL},
    {"--no-progress", NULL, DPT_OPT_FLAG, offsetof(train_options, no_progress), 0, 0,
     "no progress line (under mpirun output to a file still looks like a terminal)", NULL},
    {"--threads", "T", DPT_OPT_INT, FIELD(threads), 1, DPT_POOL_MAX_THREADS,
     "threads per rank (ranks x threads <= cores; bind with mpirun --map-by ppr:R:node:pe=T or "
     "--bind-to none). Results are bit-identical for any T [DPT_THREADS or 1]", NULL},
    {"--print-model", NULL, DPT_OPT_FLAG, offsetof(train_options, print_model), 0, 0,
     "print the layer table and exit", NULL},
    {"--overwrite", NULL, DPT_OPT_FLAG, offsetof(train_options, overwrite), 0, 0,
     "replace the earlier run in --out (its metrics.csv, checkpoints/, members/, results) "
     "[refused: a new run never mixes its files with an earlier run's]", NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

static const char train_usage[] = "mpirun -np R dptrain train [OPTIONS]";

static const char train_epilogue[] =
    "\nSIGTERM, SIGINT or SIGUSR1 (mpirun forwards SIGUSR1; Slurm: --signal=B:USR1@120) stops at\n"
    "the next step on every rank, writes OUT/checkpoints/step-NNNNNN.h5 and exits with status 75\n"
    "(EX_TEMPFAIL): resume with `dptrain train --resume OUT` (docs/resume.md).\n";

/* ---- resume: the options a resumed run may change, the others compared --------------------- */

/* May differ from the checkpoint's: they do not change the trained weights (or, for --epochs and
 * --max-steps, only where the run ends; not under a cosine schedule, whose length they set). */
static const char *const may_change[] = {
    "--out", "--quiet", "--no-progress", "--profile", "--checkpoint-every", "--keep", "--resume",
    "--skip-nonfinite", "--test-samples", "--eval-batch", "--print-model", "--collective-timeout",
    "--overwrite", "--data-copy", "--stream", "--threads",
    NULL};

static int in_list(const char *const *list, const char *name) {
    for (; *list; list++)
        if (!strcmp(*list, name))
            return 1;
    return 0;
}

/* Appends "NAME VALUE\n" to the growing buffer *s (of *len bytes). */
static dpt_status add_setting(char **s, size_t *len, const char *name, const char *value) {
    size_t n = strlen(name) + strlen(value) + 3;
    char *p = realloc(*s, *len + n);
    if (!p)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the settings");
    *s = p;
    *len += (size_t)snprintf(p + *len, n, "%s %s\n", name, value);
    return DPT_OK;
}

/* The resolved options that decide the trained weights, one "--name value" a line, from the
 * option table (so a new option is compared without further code) and, for the optimizer, from
 * its resolved hyper-parameters (torch's defaults filled in: "--lr 0.001" whether given or not). */
static dpt_status settings_text(const train_options *o, int all, char **out) {
    const dpt_train_cfg *c = &o->train;
    char *s = calloc(1, 1), v[256];
    size_t len = 0;
    dpt_status st = s ? DPT_OK : dpt_errorf(DPT_ENOMEM, "cannot allocate the settings");
    for (const dpt_cli_option *t = train_table; t->name && st == DPT_OK; t++) {
        const char *field = (const char *)o + t->offset;
        int length_of_run = !strcmp(t->name, "--epochs") || !strcmp(t->name, "--max-steps");
        /* an ensemble's or cv's own options, compared when it resumes; a plain run has none */
        int ensemble = t->offset >= offsetof(train_options, ens) &&
                       t->offset < offsetof(train_options, ensemble_set) && t->type != DPT_OPT_CUSTOM;
        int plain = !o->ensemble_set && !o->ens.folds;
        if (!all && (in_list(may_change, t->name) || (ensemble && plain) ||
                     (length_of_run && c->schedule != DPT_SCHED_COSINE)))
            continue;
        switch (t->type) {
        case DPT_OPT_INT64: snprintf(v, sizeof v, "%lld", (long long)*(const int64_t *)field); break;
        case DPT_OPT_UINT32: snprintf(v, sizeof v, "%u", *(const uint32_t *)field); break;
        case DPT_OPT_INT: snprintf(v, sizeof v, "%d", *(const int *)field); break;
        case DPT_OPT_DOUBLE: snprintf(v, sizeof v, "%.17g", *(const double *)field); break;
        case DPT_OPT_FLOAT: snprintf(v, sizeof v, "%.9g", (double)*(const float *)field); break;
        case DPT_OPT_STRING:
            snprintf(v, sizeof v, "%s", *(const char *const *)field ? *(const char *const *)field
                                                                     : "");
            break;
        case DPT_OPT_FLAG: snprintf(v, sizeof v, "%d", *(const int *)field); break;
        case DPT_OPT_CUSTOM:
            if (t->parse == parse_optim)
                snprintf(v, sizeof v, "%s", dpt_optim_kind_name(c->optim.kind));
            else if (t->parse == parse_schedule)
                snprintf(v, sizeof v, "%s", dpt_schedule_kind_name(c->schedule));
            else if (t->parse == parse_lr_scaling)
                snprintf(v, sizeof v, "%s", c->lr_ref_batch > 0 ? (const char *[]){
                    "linear", "sqrt", "none"}[c->lr_scaling] : "none");
            else if (t->parse == parse_bn && c->bn == DPT_BN_GHOST)
                snprintf(v, sizeof v, "ghost:%lld", (long long)c->bn_ghost);
            else if (t->parse == parse_bn)
                snprintf(v, sizeof v, "%s", c->bn == DPT_BN_LOCAL ? "local" : "sync");
            else if (t->parse == parse_data_copy)
                snprintf(v, sizeof v, "%s", c->data_copy == DPT_DATA_COPY_RANK ? "rank" : "node");
            else if (t->parse == parse_keep_last)
                snprintf(v, sizeof v, "%d", !c->drop_last);
            else if (t->parse == parse_checkpoint_every && c->checkpoint_every > 0)
                snprintf(v, sizeof v, "%lld%s", (long long)c->checkpoint_every,
                         c->checkpoint_epochs ? "epochs" : "steps");
            else if (t->parse == parse_ensemble && o->ensemble_set)
                snprintf(v, sizeof v, "%s", o->ens.kind == DPT_ENS_BAGGING ? "bagging"
                                                                            : "boosting");
            else if (t->parse == parse_vote && o->ensemble_set)
                snprintf(v, sizeof v, "%s", o->ens.vote == DPT_VOTE_HARD ? "hard" : "soft");
            else
                continue; /* the optimizer's, below */
            break;
        }
        st = add_setting(&s, &len, t->name, v);
    }
    dpt_optim *opt = NULL;
    if (st == DPT_OK && dpt_optim_create(&opt, &c->optim, 1, NULL, 0) == DPT_OK) {
        const char *names[32];
        double values[32];
        int n = dpt_optim_hparams(dpt_optim_config(opt), names, values, 32);
        for (int i = 0; i < n && i < 32 && st == DPT_OK; i++) {
            char name[64];
            snprintf(name, sizeof name, "--%s", names[i]);
            for (char *p = name; *p; p++)
                *p = *p == '_' ? '-' : *p;
            snprintf(v, sizeof v, "%.17g", values[i]);
            st = add_setting(&s, &len, name, v);
        }
    }
    dpt_optim_destroy(opt); /* bad values are reported by the run itself */
    if (st != DPT_OK)
        free(s), s = NULL;
    *out = s;
    return st;
}

/* The first line of `now` that differs from the checkpoint's settings, as an error. */
static dpt_status compare_settings(const char *now, const char *saved, const char *ckpt) {
    for (const char *line = now; *line;) {
        size_t n = strcspn(line, "\n");
        const char *sp = memchr(line, ' ', n);
        size_t key = sp ? (size_t)(sp - line) + 1 : n; /* "--lr " */
        const char *found = NULL;
        for (const char *l = saved; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
            if (!strncmp(l, line, key)) {
                found = l;
                break;
            }
        size_t fn = found ? strcspn(found, "\n") : 0;
        if (!found || fn != n || strncmp(found, line, n) != 0)
            return dpt_errorf(DPT_EINVAL, "--resume: %.*s differs from the checkpoint's %.*s (%s; "
                                          "see --resume in dptrain train --help)",
                              (int)n, line, found ? (int)(fn - key) : 9,
                              found ? found + key : "(absent)", ckpt);
        line += n + (line[n] != 0);
    }
    return DPT_OK;
}

/* argv[first..argc) without --resume and its value, joined by '\x1f' (for /config/argv). */
static char *join_args(int argc, char **argv, int first) {
    size_t n = 1;
    for (int i = first; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    *p = '\0';
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--resume=", 9))
            continue;
        p += sprintf(p, "%s%s", p == s ? "" : "\x1f", argv[i]);
    }
    return s;
}

/* --max-steps 0 given on the command line: the library reads 0 as "no limit", the CLI says
 * omit it instead (0 stays allowed with --resume, to lift the checkpoint's limit). */
static int gives_zero_max_steps(int argc, char **argv, int first) {
    for (int i = first; i < argc; i++) {
        const char *v = !strcmp(argv[i], "--max-steps") && i + 1 < argc ? argv[i + 1]
                        : !strncmp(argv[i], "--max-steps=", 12)        ? argv[i] + 12
                                                                       : NULL;
        char *end = NULL;
        if (v && strtod(v, &end) == 0 && end != v && *end == '\0')
            return 1;
    }
    return 0;
}

static dpt_status zero_max_steps(void) {
    return dpt_errorf(DPT_EINVAL, "--max-steps: 0 is out of range (N >= 1; omit it for no "
                                  "limit)");
}

static int gives_out(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--out") || !strncmp(argv[i], "--out=", 6))
            return 1;
    return 0;
}

/* A resumed run: argv[0] "train", the checkpoint's options, then this command line's (which win
 * where allowed); *merged (and the strings in it) must outlive the run. */
static dpt_status merge_args(const char *saved, int argc, char **argv, int *n_out,
                             char ***merged, char **storage) {
    int n = 1 + argc;
    for (const char *p = saved; *p; p++)
        n += *p == '\x1f';
    char **m = calloc((size_t)n + 2, sizeof *m);
    char *copy = malloc(strlen(saved) + 1);
    if (!m || !copy) {
        free(m), free(copy);
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the merged options");
    }
    strcpy(copy, saved);
    int k = 0;
    m[k++] = argv[0];
    for (char *tok = copy; *copy && tok;) {
        char *sep = strchr(tok, '\x1f');
        if (sep)
            *sep = '\0';
        m[k++] = tok;
        tok = sep ? sep + 1 : NULL;
    }
    for (int i = 1; i < argc; i++)
        m[k++] = argv[i];
    *n_out = k;
    *merged = m;
    *storage = copy;
    return DPT_OK;
}

static dpt_status print_model(const dpt_train_cfg *c, const dpt_group *g) {
    dpt_data d = {0};
    dpt_status st = dpt_train_open_data(c, &d);
    dpt_model *m = NULL;
    if (st == DPT_OK) {
        const dpt_dataset *ds = &d.train;
        dpt_shape in = ds->sdims == 1   ? dpt_shape_make(2, (int64_t[]){ds->C, ds->W})
                       : ds->sdims == 2 ? dpt_shape_make(3, (int64_t[]){ds->C, ds->H, ds->W})
                                        : dpt_shape_make(4, (int64_t[]){ds->C, ds->D, ds->H, ds->W});
        dpt_model_cfg mc = {.max_batch = dpt_train_model_rows(c, g->size),
                            .num_classes = ds->K,
                            .seed = c->seed,
                            .threads = c->threads};
        st = dpt_model_create(&m, c->model, in, &mc);
    }
    if (st == DPT_OK && g->world_rank == 0) {
        int n = dpt_model_summary(m, NULL, 0);
        char *buf = malloc((size_t)n + 1);
        if (buf) {
            dpt_model_summary(m, buf, (size_t)n + 1);
            fputs(buf, stdout);
            free(buf);
        }
    }
    dpt_model_destroy(m);
    dpt_data_free(&d);
    return st;
}

/* The optimizer's own check names its field ("adam: lr = -1: must be >= 0"), right for the
 * library; here the message names the option. Each hyper-parameter is tried alone with the kind
 * (defaults for the rest), so the one at fault is known; a combination that fails only together
 * (nesterov's momentum and dampening) keeps the optimizer's text after --optim. */
static dpt_status check_hypers(const train_options *o) {
    const dpt_optim_cfg *c = &o->train.optim;
    dpt_optim *opt = NULL;
    if (dpt_optim_create(&opt, c, 1, NULL, 0) == DPT_OK) {
        dpt_optim_destroy(opt);
        return DPT_OK;
    }
    char whole[512];
    snprintf(whole, sizeof whole, "%s", dpt_last_error());
    const char *kind = dpt_optim_kind_name(c->kind);
    if (strstr(whole, " is required"))
        return dpt_errorf(DPT_EINVAL, "--optim %s needs --lr (torch.optim.SGD has no default for "
                                      "it)", kind);
    /* add the given values one by one (--lr first): the first that fails is the culprit */
    dpt_optim_cfg some = {.kind = c->kind};
    for (size_t i = 0; i < N_HYPER; i++) {
        if (!(o->hyper_given & (1u << i)))
            continue;
        double v = o->hyper_value[i];
        dpt_optim_cfg_set(&some, hyper_map[i].name, v);
        if (dpt_optim_create(&opt, &some, 1, NULL, 0) == DPT_OK) {
            dpt_optim_destroy(opt);
            continue;
        }
        const char *why = dpt_last_error(), *must = strstr(why, ": must be ");
        if (strstr(why, " is required"))
            continue; /* sgd before its --lr: not this option's fault */
        if (strstr(why, "is not a hyper-parameter"))
            return dpt_errorf(DPT_EINVAL, "%s: %s has no %s (drop the option or pick an "
                                          "optimizer that uses it)",
                              hyper_map[i].opt, kind, hyper_map[i].name);
        if (must && strstr(why, hyper_map[i].name))
            return dpt_errorf(DPT_EINVAL, "%s: %g is out of range (%s needs %s %s)",
                              hyper_map[i].opt, v, kind, hyper_map[i].name,
                              must + strlen(": must be "));
        return dpt_errorf(DPT_EINVAL, "%s %g: %s", hyper_map[i].opt, v, why);
    }
    return dpt_errorf(DPT_EINVAL, "--optim %s: %s", kind, whole);
}

/* Options that only mean something together: an unused one is an error naming its partner. */
static dpt_status check_combination(const train_options *o, int cv) {
    const dpt_ensemble_cfg *e = &o->ens;
    int bagging = o->ensemble_set && e->kind == DPT_ENS_BAGGING;
    int boosting = o->ensemble_set && e->kind == DPT_ENS_BOOSTING;
    if (cv && o->ensemble_set)
        return dpt_errorf(DPT_EINVAL, "--ensemble: not with dptrain cv (cross-validate one model)");
    if (cv && e->folds == 0)
        return dpt_errorf(DPT_EINVAL, "cv needs --folds K");
    if (cv && o->train.val_fraction > 0)
        return dpt_errorf(DPT_EINVAL, "--val-fraction: not with dptrain cv (each fold is the "
                                      "validation set of its model)");
    if (!cv && (e->folds || e->stratified || e->shuffle))
        return dpt_errorf(DPT_EINVAL, "%s is an option of dptrain cv",
                          e->folds ? "--folds" : e->stratified ? "--stratified" : "--shuffle");
    if (bagging && e->members == 0)
        return dpt_errorf(DPT_EINVAL, "--ensemble bagging needs --members G");
    if (boosting && e->rounds == 0)
        return dpt_errorf(DPT_EINVAL, "--ensemble boosting needs --rounds T");
    if (!bagging && (e->members || e->max_samples > 0 || e->no_bootstrap || e->vote))
        return dpt_errorf(DPT_EINVAL, "%s needs --ensemble bagging",
                          e->members ? "--members" : e->max_samples > 0 ? "--max-samples"
                                                   : e->no_bootstrap   ? "--no-bootstrap"
                                                                       : "--vote");
    if (!boosting && (e->rounds || e->boost_lr > 0))
        return dpt_errorf(DPT_EINVAL, "%s needs --ensemble boosting",
                          e->rounds ? "--rounds" : "--boost-lr");
    if (o->train.stream_window > 0 && !o->train.stream)
        return dpt_errorf(DPT_EINVAL, "--stream-window needs --stream");
    if (o->train.stream && (o->ensemble_set || cv))
        return dpt_errorf(DPT_EINVAL, "--stream: not with %s (members read the training samples "
                                      "at random; docs/streaming.md)",
                          cv ? "dptrain cv" : "--ensemble");
    if ((o->ensemble_set || cv) && (!o->train.out || !*o->train.out))
        return dpt_errorf(DPT_EINVAL, "%s needs --out DIR (members' checkpoints, results.h5)",
                          cv ? "cv" : "--ensemble");
    return check_hypers(o);
}

/* OUT/args.txt (leader): the command line and every option's resolved value, so a run folder
 * says how it was made without opening a checkpoint. */
static dpt_status write_args(const train_options *o, const char *config) {
    const char *out = o->train.out;
    char path[4200];
    if (snprintf(path, sizeof path, "%s/args.txt", out) >= (int)sizeof path)
        return dpt_errorf(DPT_EINVAL, "--out: path too long");
    char *all = NULL;
    dpt_status st = settings_text(o, 1, &all);
    if (st != DPT_OK)
        return st;
    FILE *f = fopen(path, "w");
    if (!f) {
        free(all);
        return dpt_errorf(DPT_EIO, "%s: cannot create: %s", path, strerror(errno));
    }
    fprintf(f, "# command line\n%s\n# resolved configuration (defaults filled in)\n%s", config,
            all);
    free(all);
    if (fclose(f) != 0)
        return dpt_errorf(DPT_EIO, "%s: cannot write: %s", path, strerror(errno));
    return DPT_OK;
}

/* Whether two paths name one folder (a resumed run writing into its own run directory). */
static int same_dir(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The command line as one line of text, for checkpoints. */
static char *command_line(int argc, char **argv) {
    size_t n = 16;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "dptrain");
    for (int i = 0; i < argc; i++)
        p += sprintf(p, " %s", argv[i]);
    return s;
}

/* The defaults, DPT_THREADS from the environment among them (--threads overrides it). */
static dpt_status train_defaults(train_options *o, const char *search_path) {
    memset(o, 0, sizeof *o);
    dpt_train_cfg_defaults(&o->train);
    o->train.data_search = search_path;
    return dpt_pool_threads_from_env(&o->train.threads);
}

static int run_train_or_cv(dpt_group *g, int argc, char **argv, const char *search_path, int cv) {
    train_options o;
    dpt_status st = train_defaults(&o, search_path);
    const char *pos[1];
    int n_pos = 0, help = 0;
    const char *usage = cv ? "mpirun -np R dptrain cv --folds K [--stratified] [--shuffle] "
                             "--out DIR [OPTIONS]"
                           : train_usage;
    if (st == DPT_OK)
        st = dpt_cli_parse(train_table, &o, argc, argv, 1, pos, 0, &n_pos, &help);
    if (st == DPT_OK && !help && !o.resume && gives_zero_max_steps(argc, argv, 1))
        st = zero_max_steps();
    if (st == DPT_OK && !help && !o.resume) /* a resume checks the merged options below */
        st = check_combination(&o, cv);
    if (st != DPT_OK)
        return dpt__cli_fail(g, dpt_errorf(st, "%s (see dptrain %s --help)", dpt_last_error(),
                                           cv ? "cv" : "train"));
    if (help) {
        if (g->world_rank == 0) {
            dpt_cli_print_help(stdout, usage, train_table);
            if (!cv)
                fputs(train_epilogue, stdout);
        }
        return 0;
    }
    if (o.print_model)
        return dpt__cli_finish(g, print_model(&o.train, g));
    char ckpt[4096] = "", run_dir[4096] = "", *saved_argv = NULL, *saved_settings = NULL;
    char **merged = NULL, *merged_storage = NULL, *settings = NULL;
    int n_merged = argc;
    if (o.resume && o.overwrite)
        st = dpt_errorf(DPT_EINVAL, "--overwrite: not with --resume (which continues the run)");
    int resume_jobs = 0; /* --resume of an ensemble or cv run: each member continues */
    if (st == DPT_OK && o.resume) {
        resume_jobs = dpt_train_is_jobs_dir(o.resume);
        if (!resume_jobs && (cv || o.ensemble_set))
            st = dpt_errorf(DPT_EINVAL, "--resume %s: not the folder of %s run (it has no "
                                        "members/)",
                            o.resume, cv ? "a dptrain cv" : "an ensemble");
        if (st == DPT_OK && resume_jobs) {
            snprintf(run_dir, sizeof run_dir, "%s", o.resume);
            st = dpt_train_resume_jobs_config(o.resume, ckpt, sizeof ckpt, &saved_argv,
                                              &saved_settings);
        } else if (st == DPT_OK) {
            st = dpt_train_resume_select(o.resume, g->world_rank == 0 ? stderr : NULL, ckpt,
                                         sizeof ckpt, run_dir, sizeof run_dir, &saved_argv,
                                         &saved_settings);
        }
        if (st == DPT_OK)
            st = merge_args(saved_argv, argc, argv, &n_merged, &merged, &merged_storage);
        if (st == DPT_OK) {
            /* the checkpoint's options first, then this command line's */
            st = train_defaults(&o, search_path);
            if (st == DPT_OK)
                st = dpt_cli_parse(train_table, &o, n_merged, merged, 1, pos, 0, &n_pos, &help);
            if (st != DPT_OK)
                st = dpt_errorf(st, "--resume %s: %s", ckpt, dpt_last_error());
            o.overwrite = 0; /* the first run's --overwrite is not this one's (refused above) */
        }
        if (st == DPT_OK && resume_jobs && (cv != 0) == (o.ensemble_set != 0))
            st = dpt_errorf(DPT_EINVAL, "--resume %s: %s run; continue it with dptrain %s "
                                        "--resume %s",
                            o.resume, cv ? "an ensemble" : "a dptrain cv", cv ? "train" : "cv",
                            o.resume);
        if (st == DPT_OK)
            st = check_combination(&o, cv);
        if (st == DPT_OK && !gives_out(argc, argv))
            o.train.out = run_dir;
        o.train.resume_from = resume_jobs ? NULL : ckpt;
        o.train.resume_jobs = resume_jobs ? run_dir : NULL;
        argc = n_merged, argv = merged;
    }
    if (st == DPT_OK && o.train.checkpoint_every > 0 && (!o.train.out || !*o.train.out))
        st = dpt_errorf(DPT_EINVAL, "--checkpoint-every needs --out DIR");
    if (st == DPT_OK)
        st = settings_text(&o, 0, &settings);
    if (st == DPT_OK && o.resume)
        st = compare_settings(settings, saved_settings, ckpt);
    char *config = st == DPT_OK ? command_line(argc, argv) : NULL;
    char *config_argv = st == DPT_OK ? join_args(argc, argv, 1) : NULL;
    if (st == DPT_OK && (!config || !config_argv))
        st = dpt_errorf(DPT_ENOMEM, "cannot allocate the configuration text");
    free(saved_argv), free(saved_settings);
    dpt_run_lock lock = {0};
    if (st == DPT_OK && g->world_rank == 0 && o.train.out && *o.train.out) {
        dpt_run_mode mode = o.overwrite                              ? DPT_RUN_OVERWRITE
                            : o.resume && same_dir(o.train.out, run_dir) ? DPT_RUN_CONTINUE
                                                                     : DPT_RUN_NEW;
        st = dpt_run_dir_lock(&lock, o.train.out, mode, config);
        if (st == DPT_OK)
            st = write_args(&o, config);
    }
    if ((st = dpt_group_agree(g, st)) != DPT_OK) {
        dpt_run_dir_unlock(&lock);
        free(merged), free(merged_storage), free(settings), free(config), free(config_argv);
        return dpt__cli_fail(g, st);
    }
    dpt_group_set_timeout(g, o.collective_timeout); /* equal on every rank (main.c hashes argv) */
    o.train.config_text = config;
    o.train.config_argv = config_argv;
    o.train.config_settings = settings;
    dpt_cli_progress progress;
    int several = cv || (o.ensemble_set && o.ens.kind == DPT_ENS_BAGGING);
    o.train.progress = dpt_cli_progress_init(&progress, stdout, o.train.quiet, o.no_progress,
                                             several);
    o.train.stop_request = dpt__cli_signals_install();
    if (cv || o.ensemble_set) {
        if (cv)
            o.ens.kind = DPT_ENS_CV;
        int preempted = 0;
        st = dpt_ensemble_run(&o.train, &o.ens, g, &preempted);
        if (st == DPT_OK && preempted && g->world_rank == 0)
            printf("dptrain: stopped by %s: every %s in training wrote its checkpoint; resume "
                   "with dptrain %s --resume %s (exit status %d)\n",
                   dpt__cli_signal_received() ? dpt__cli_signal_name(dpt__cli_signal_received())
                                              : "a signal on another rank",
                   cv ? "fold" : "member", cv ? "cv" : "train", o.train.out ? o.train.out : "DIR",
                   DPT_EXIT_PREEMPTED);
        fflush(stdout);
        dpt_run_dir_unlock(&lock);
        free(config), free(config_argv), free(settings);
        free(merged), free(merged_storage);
        int rc = dpt__cli_finish(g, st);
        return rc == 0 && preempted ? DPT_EXIT_PREEMPTED : rc;
    }
    if (g->world_rank == 0 && o.resume && !o.train.quiet)
        printf("dptrain: resuming from %s\n", ckpt);
    dpt_train_result res;
    st = dpt_train_run(&o.train, g, &res);
    if (st == DPT_OK && g->leader && res.preempted) {
        printf("dptrain: stopped by %s after step %lld: %s%s; resume with dptrain train --resume "
               "%s (exit status %d)\n",
               dpt__cli_signal_received() ? dpt__cli_signal_name(dpt__cli_signal_received())
                                          : "a signal on another rank",
               (long long)res.steps, res.checkpoint[0] ? "checkpoint " : "no --out: nothing saved",
               res.checkpoint, o.train.out ? o.train.out : "DIR", DPT_EXIT_PREEMPTED);
    } else if (st == DPT_OK && g->leader) {
        printf("final test accuracy %.4f (loss %.4f) after %lld epochs, %lld steps, %.1f s, "
               "%.0f images/s\n",
               res.test_acc, res.test_loss, (long long)res.epochs_run, (long long)res.steps,
               res.seconds, res.images_per_s);
        if (res.checkpoint[0])
            printf("model saved to %s; run directory %s\n", res.checkpoint, o.train.out);
    }
    fflush(stdout);
    dpt_run_dir_unlock(&lock);
    free(config), free(config_argv), free(settings);
    free(merged), free(merged_storage);
    int rc = dpt__cli_finish(g, st);
    return rc == 0 && res.preempted ? DPT_EXIT_PREEMPTED : rc;
}

dpt_status dpt__cli_parse_point(int argc, char **argv, const char *search_path,
                                dpt_train_cfg *cfg, int *no_progress) {
    train_options o;
    const char *pos[1];
    int n_pos = 0, help = 0;
    dpt_status st = train_defaults(&o, search_path);
    if (st == DPT_OK)
        st = dpt_cli_parse(train_table, &o, argc, argv, 0, pos, 0, &n_pos, &help);
    if (st == DPT_OK && gives_zero_max_steps(argc, argv, 0))
        st = zero_max_steps();
    if (st == DPT_OK && (o.ensemble_set || o.print_model || help))
        st = dpt_errorf(DPT_EINVAL, "%s: not in a sweep",
                        o.ensemble_set ? "--ensemble" : o.print_model ? "--print-model" : "--help");
    if (st == DPT_OK && o.resume) /* docs/resume.md: a sweep does not resume */
        st = dpt_errorf(DPT_EINVAL, "--resume: a sweep does not resume; rerun it with --overwrite "
                                    "(or its unfinished points as plain runs)");
    if (st == DPT_OK)
        st = check_combination(&o, 0);
    *cfg = o.train;
    *no_progress = o.no_progress;
    return st;
}

void dpt__cli_print_train_options(FILE *out, const char *usage) {
    dpt_cli_print_help(out, usage, train_table);
}

int dpt__cli_train(dpt_group *g, int argc, char **argv, const char *search_path) {
    return run_train_or_cv(g, argc, argv, search_path, 0);
}

int dpt__cli_cv(dpt_group *g, int argc, char **argv, const char *search_path) {
    return run_train_or_cv(g, argc, argv, search_path, 1);
}
