/* `dptrain train` and `dptrain cv` (cli): the option table, validation, and the hand-off to
 * train/ (a plain run, an ensemble, or cross-validation). Every rank parses the same arguments;
 * the ranks check that they did (hash). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dpt/data.h"
#include "dpt/model.h"
#include "options.h"
#include "progress.h"

/* The table writes into train_options; the training configuration comes first. */
typedef struct {
    dpt_train_cfg train;
    dpt_ensemble_cfg ens;
    int ensemble_set; /* --ensemble given */
    int print_model;
    int no_progress;
} train_options;

#define FIELD(f) offsetof(train_options, train.f)
#define ENS(f) offsetof(train_options, ens.f)

static dpt_status parse_ensemble(void *cfg, const char *opt, const char *value) {
    train_options *o = cfg;
    if (!strcmp(value, "bagging"))
        o->ens.kind = DPT_ENS_BAGGING;
    else if (!strcmp(value, "boosting"))
        o->ens.kind = DPT_ENS_BOOSTING;
    else
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not one of bagging, boosting", opt, value);
    o->ensemble_set = 1;
    return DPT_OK;
}

static dpt_status parse_vote(void *cfg, const char *opt, const char *value) {
    train_options *o = cfg;
    if (!strcmp(value, "soft"))
        o->ens.vote = DPT_VOTE_SOFT;
    else if (!strcmp(value, "hard"))
        o->ens.vote = DPT_VOTE_HARD;
    else
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not one of soft, hard", opt, value);
    return DPT_OK;
}

static dpt_status parse_optim(void *cfg, const char *opt, const char *value) {
    dpt_train_cfg *c = cfg;
    dpt_status st = dpt_optim_kind_parse(value, &c->optim.kind);
    return st == DPT_OK ? st : dpt_errorf(st, "%s: %s", opt, dpt_last_error());
}

/* --lr, --momentum, ... go through the optimizer's own setter (torch names), which records
 * literal zeros; ranges are checked when the optimizer is created. */
static dpt_status parse_hyper(void *cfg, const char *opt, const char *value) {
    static const struct {
        const char *opt, *name;
    } map[] = {{"--lr", "lr"},
               {"--momentum", "momentum"},
               {"--weight-decay", "weight_decay"},
               {"--eps", "eps"},
               {"--beta1", "beta1"},
               {"--beta2", "beta2"},
               {"--alpha", "alpha"},
               {"--rho", "rho"},
               {"--trust-coefficient", "trust_coefficient"}};
    double v;
    dpt_status st = dpt_cli_number(opt, value, -1e300, 1e300, &v);
    if (st != DPT_OK)
        return st;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].opt, opt)) {
            st = dpt_optim_cfg_set(&((dpt_train_cfg *)cfg)->optim, map[i].name, v);
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
    {"--out", "DIR", DPT_OPT_STRING, FIELD(out), 0, 0,
     "run directory: metrics.csv, checkpoints/final.h5 [none]", NULL},
    {"--epochs", "N", DPT_OPT_INT64, FIELD(epochs), 1, 1e6, "epochs [10]", NULL},
    {"--batch", "N", DPT_OPT_INT64, FIELD(batch), 1, 1e8, "global batch size [128]", NULL},
    {"--micro-batch", "M", DPT_OPT_INT64, FIELD(micro_batch), 0, 1e8,
     "rows per forward/backward; gradients accumulate [whole local slice]", NULL},
    {"--eval-batch", "N", DPT_OPT_INT64, FIELD(eval_batch), 1, 1e6, "rows per evaluation "
     "forward [256]", NULL},
    {"--test-samples", "N", DPT_OPT_INT64, FIELD(test_samples), 1, 1e12,
     "evaluate on the first N test samples only (quick runs) [all]", NULL},
    {"--max-steps", "N", DPT_OPT_INT64, FIELD(max_steps), 0, 1e12,
     "stop after N optimizer steps [no limit]", NULL},
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
     "stop after P epochs without a better validation loss; keep the best weights", NULL},
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
     "cutmix Beta(alpha, alpha) [off]", NULL},
    {"--label-smoothing", "E", DPT_OPT_DOUBLE, FIELD(label_smoothing), 0, 0.999,
     "label smoothing epsilon [0]", NULL},
    {"--bn", "MODE", DPT_OPT_CUSTOM, 0, 0, 0, "batch norm statistics: local, sync, ghost:G "
     "[local]", parse_bn},
    {"--bucket-mb", "MB", DPT_OPT_DOUBLE, FIELD(bucket_mb), 1e-6, 1e4,
     "gradient allreduce bucket size [25]", NULL},
    {"--no-overlap", NULL, DPT_OPT_FLAG, FIELD(no_overlap), 0, 0,
     "one blocking allreduce after backward instead of overlapped buckets", NULL},
    {"--deterministic", NULL, DPT_OPT_FLAG, FIELD(deterministic), 0, 0,
     "exact fixed-point gradient sums: bit-identical results for any rank count", NULL},
    {"--noise-scale-every", "N", DPT_OPT_INT64, FIELD(noise_scale_every), 1, 1e12,
     "estimate the gradient noise scale every N steps; logs grad_sq, trace_sigma, b_simple to "
     "metrics.csv (docs/noise-scale.md) [off]", NULL},
    {"--profile", NULL, DPT_OPT_FLAG, FIELD(profile), 0, 0, "print where the time went", NULL},
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
    {"--print-model", NULL, DPT_OPT_FLAG, offsetof(train_options, print_model), 0, 0,
     "print the layer table and exit", NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

static const char train_usage[] = "mpirun -np R dptrain train [OPTIONS]";

static dpt_status print_model(const dpt_train_cfg *c, const dpt_group *g) {
    dpt_data d = {0};
    dpt_data_opts opts = {.search_path = c->data_search};
    dpt_status st = dpt_data_load(&d, c->data, &opts);
    dpt_model *m = NULL;
    if (st == DPT_OK) {
        const dpt_dataset *ds = &d.train;
        dpt_shape in = ds->sdims == 1   ? dpt_shape_make(2, (int64_t[]){ds->C, ds->W})
                       : ds->sdims == 2 ? dpt_shape_make(3, (int64_t[]){ds->C, ds->H, ds->W})
                                        : dpt_shape_make(4, (int64_t[]){ds->C, ds->D, ds->H, ds->W});
        dpt_model_cfg mc = {.max_batch = 1, .num_classes = ds->K, .seed = c->seed};
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
    if ((o->ensemble_set || cv) && (!o->train.out || !*o->train.out))
        return dpt_errorf(DPT_EINVAL, "%s needs --out DIR (members' checkpoints, results.h5)",
                          cv ? "cv" : "--ensemble");
    return DPT_OK;
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

static int run_train_or_cv(dpt_group *g, int argc, char **argv, const char *search_path, int cv) {
    train_options o;
    memset(&o, 0, sizeof o);
    dpt_train_cfg_defaults(&o.train);
    o.train.data_search = search_path;
    const char *pos[1];
    int n_pos = 0, help = 0;
    const char *usage = cv ? "mpirun -np R dptrain cv --folds K [--stratified] [--shuffle] "
                             "--out DIR [OPTIONS]"
                           : train_usage;
    dpt_status st = dpt_cli_parse(train_table, &o, argc, argv, 1, pos, 0, &n_pos, &help);
    if (st == DPT_OK && !help)
        st = check_combination(&o, cv);
    if (st != DPT_OK)
        return dpt__cli_fail(g, dpt_errorf(st, "%s (see dptrain %s --help)", dpt_last_error(),
                                           cv ? "cv" : "train"));
    if (help) {
        if (g->world_rank == 0)
            dpt_cli_print_help(stdout, usage, train_table);
        return 0;
    }
    if (o.print_model)
        return dpt__cli_finish(g, print_model(&o.train, g));
    char *config = command_line(argc, argv);
    o.train.config_text = config;
    dpt_cli_progress progress;
    int several = cv || (o.ensemble_set && o.ens.kind == DPT_ENS_BAGGING);
    o.train.progress = dpt_cli_progress_init(&progress, stdout, o.train.quiet, o.no_progress,
                                             several);
    if (cv || o.ensemble_set) {
        if (cv)
            o.ens.kind = DPT_ENS_CV;
        st = dpt_ensemble_run(&o.train, &o.ens, g);
        free(config);
        return dpt__cli_finish(g, st);
    }
    dpt_train_result res;
    st = dpt_train_run(&o.train, g, &res);
    if (st == DPT_OK && g->leader) {
        printf("final test accuracy %.4f (loss %.4f) after %lld epochs, %lld steps, %.1f s, "
               "%.0f images/s\n",
               res.test_acc, res.test_loss, (long long)res.epochs_run, (long long)res.steps,
               res.seconds, res.images_per_s);
        if (res.checkpoint[0])
            printf("model saved to %s; run directory %s\n", res.checkpoint, o.train.out);
    }
    free(config);
    return dpt__cli_finish(g, st);
}

dpt_status dpt__cli_parse_point(int argc, char **argv, const char *search_path,
                                dpt_train_cfg *cfg, int *no_progress) {
    train_options o;
    memset(&o, 0, sizeof o);
    dpt_train_cfg_defaults(&o.train);
    o.train.data_search = search_path;
    const char *pos[1];
    int n_pos = 0, help = 0;
    dpt_status st = dpt_cli_parse(train_table, &o, argc, argv, 0, pos, 0, &n_pos, &help);
    if (st == DPT_OK && (o.ensemble_set || o.print_model || help))
        st = dpt_errorf(DPT_EINVAL, "%s: not in a sweep",
                        o.ensemble_set ? "--ensemble" : o.print_model ? "--print-model" : "--help");
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
