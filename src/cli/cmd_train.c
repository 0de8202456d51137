/* `dptrain train` and `dptrain eval` (cli): the option table, validation, and the hand-off to
 * train/. Every rank parses the same arguments; the ranks check that they did (hash). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dpt/data.h"
#include "dpt/model.h"
#include "options.h"

/* The table writes into train_options; the training configuration comes first. */
typedef struct {
    dpt_train_cfg train;
    int print_model;
} train_options;

#define FIELD(f) offsetof(train_options, train.f)

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
     "linear scaling rule: lr *= batch / B", NULL},
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
    {"--profile", NULL, DPT_OPT_FLAG, FIELD(profile), 0, 0, "print where the time went", NULL},
    {"--quiet", NULL, DPT_OPT_FLAG, FIELD(quiet), 0, 0, "no per-epoch lines", NULL},
    {"--no-progress", NULL, DPT_OPT_FLAG, FIELD(no_progress), 0, 0,
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

int dpt__cli_train(dpt_group *g, int argc, char **argv, const char *search_path) {
    train_options o;
    dpt_train_cfg_defaults(&o.train);
    o.print_model = 0;
    o.train.data_search = search_path;
    const char *pos[1];
    int n_pos = 0, help = 0;
    dpt_status st = dpt_cli_parse(train_table, &o, argc, argv, 1, pos, 0, &n_pos, &help);
    if (st != DPT_OK)
        return dpt__cli_fail(g, dpt_errorf(st, "%s (see dptrain train --help)",
                                           dpt_last_error()));
    if (help) {
        if (g->world_rank == 0)
            dpt_cli_print_help(stdout, train_usage, train_table);
        return 0;
    }
    if (o.print_model)
        return dpt__cli_finish(g, print_model(&o.train, g));
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
    return dpt__cli_finish(g, st);
}

static const dpt_cli_option eval_table[] = {
    {"--data", "SRC", DPT_OPT_STRING, 0, 0, 0,
     "fashion-mnist, sample, a directory of IDX files or an .h5 file [fashion-mnist]", NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

int dpt__cli_eval(dpt_group *g, int argc, char **argv, const char *search_path) {
    const char *data = "fashion-mnist";
    const char *pos[1];
    int n_pos = 0, help = 0;
    dpt_status st = dpt_cli_parse(eval_table, &data, argc, argv, 1, pos, 1, &n_pos, &help);
    if (help) {
        if (g->world_rank == 0)
            dpt_cli_print_help(stdout, "dptrain eval CKPT.h5 [--data SRC]", eval_table);
        return 0;
    }
    if (st == DPT_OK && n_pos != 1)
        st = dpt_errorf(DPT_EINVAL, "eval: give one checkpoint file (see dptrain eval --help)");
    double loss = 0, acc = 0;
    int64_t n = 0;
    if (st == DPT_OK)
        st = dpt_train_eval_checkpoint(pos[0], data, search_path, g, &loss, &acc, &n);
    if (st == DPT_OK && g->world_rank == 0)
        printf("test accuracy %.4f (loss %.4f) on %lld samples\n", acc, loss, (long long)n);
    return dpt__cli_finish(g, st);
}
