/* `dptrain interpolate A.h5 B.h5` (cli): the loss and accuracy along the line between two
 * minima, one row per alpha. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

static dpt_status parse_range(void *cfg, const char *opt, const char *value) {
    dpt_interp_cfg *c = cfg;
    char *comma = strchr(value, ',');
    if (!comma)
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not LO,HI", opt, value);
    char lo[64];
    snprintf(lo, sizeof lo, "%.*s", (int)(comma - value), value);
    dpt_status st = dpt_cli_number(opt, lo, -1e6, 1e6, &c->alpha_min);
    if (st == DPT_OK)
        st = dpt_cli_number(opt, comma + 1, -1e6, 1e6, &c->alpha_max);
    if (st == DPT_OK && !(c->alpha_max > c->alpha_min))
        st = dpt_errorf(DPT_EINVAL, "%s: '%s' is empty (HI must exceed LO)", opt, value);
    return st;
}

static dpt_status parse_bn(void *cfg, const char *opt, const char *value) {
    static const char *const modes[] = {"keep", "recompute", NULL};
    return dpt_cli_choice(opt, value, modes, &((dpt_interp_cfg *)cfg)->bn_recompute);
}

static const dpt_cli_option table[] = {
    {"--data", "SRC", DPT_OPT_STRING, offsetof(dpt_interp_cfg, data), 0, 0,
     "the data both models were trained on [fashion-mnist]", NULL},
    {"--points", "N", DPT_OPT_INT, offsetof(dpt_interp_cfg, points), 2, 100000,
     "alphas evenly spaced over the range [25]", NULL},
    {"--range", "LO,HI", DPT_OPT_CUSTOM, 0, 0, 0, "alpha range; 0 is A, 1 is B [-1,2]",
     parse_range},
    {"--bn", "MODE", DPT_OPT_CUSTOM, 0, 0, 0,
     "keep: interpolate batch-norm statistics too; recompute: re-estimate them at each alpha "
     "[keep]",
     parse_bn},
    {"--bn-samples", "N", DPT_OPT_INT64, offsetof(dpt_interp_cfg, bn_samples), 2, 1e12,
     "training samples of the re-estimation pass [25600]", NULL},
    {"--train-samples", "N", DPT_OPT_INT64, offsetof(dpt_interp_cfg, train_samples), 1, 1e12,
     "the first N training samples are evaluated [10000]", NULL},
    {"--test-samples", "N", DPT_OPT_INT64, offsetof(dpt_interp_cfg, test_samples), 1, 1e12,
     "the first N test samples are evaluated [all]", NULL},
    {"--csv", "FILE", DPT_OPT_STRING, offsetof(dpt_interp_cfg, csv), 0, 0,
     "write the rows as CSV", NULL},
    {"--h5", "FILE", DPT_OPT_STRING, offsetof(dpt_interp_cfg, h5), 0, 0,
     "write /interpolation/{alpha,train_loss,train_acc,test_loss,test_acc}", NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

int dpt__cli_interpolate(dpt_group *g, int argc, char **argv, const char *search_path) {
    dpt_interp_cfg c = {.data = "fashion-mnist", .data_search = search_path, .points = 25,
                        .alpha_min = -1, .alpha_max = 2};
    const char *pos[2];
    int help = 0;
    dpt_status st = dpt_cli_parse_files(table, &c, argc, argv, "interpolate",
                                        "two checkpoints A.h5 B.h5",
                                        "mpirun -np R dptrain interpolate A.h5 B.h5 [OPTIONS]",
                                        g->world_rank == 0, pos, 2, &help);
    if (help)
        return 0;
    st = dpt_group_agree(g, st);
    dpt_interp_result r = {0};
    if (st == DPT_OK) {
        c.a = pos[0], c.b = pos[1];
        st = dpt_interpolate(&c, g, &r);
    }
    if (st == DPT_OK && g->world_rank == 0) {
        printf("interpolation from %s (alpha 0) to %s (alpha 1), batch norm %s; %lld train, "
               "%lld test samples\n",
               c.a, c.b, c.bn_recompute ? "re-estimated" : "interpolated", (long long)r.n_train,
               (long long)r.n_test);
        printf("   alpha  train loss  train acc  test loss  test acc\n");
        for (int i = 0; i < r.n; i++)
            printf("%8.4f  %10.4f  %9.4f  %9.4f  %8.4f\n", r.alpha[i], r.train_loss[i],
                   r.train_acc[i], r.test_loss[i], r.test_acc[i]);
    }
    dpt_interp_result_free(&r);
    return dpt__cli_finish(g, st);
}
