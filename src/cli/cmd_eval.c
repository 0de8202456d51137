/* `dptrain eval` (cli): a checkpoint or an ensemble manifest on a split of a data source; the
 * accuracy and loss, per-class accuracy, the confusion matrix, and optionally every sample's class
 * probabilities and predicted label in an HDF5 file. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dpt/h5file.h"
#include "options.h"

typedef struct {
    const char *data;
    const char *predictions;
    dpt_split split;
    int64_t max_samples;
} eval_options;

static dpt_status parse_split(void *cfg, const char *opt, const char *value) {
    static const char *const splits[] = {"test", "train", "val", NULL}; /* dpt_split order */
    int k;
    dpt_status st = dpt_cli_choice(opt, value, splits, &k);
    if (st == DPT_OK)
        ((eval_options *)cfg)->split = (dpt_split)k;
    return st;
}

static const dpt_cli_option eval_table[] = {
    {"--data", "SRC", DPT_OPT_STRING, offsetof(eval_options, data), 0, 0,
     "fashion-mnist, sample, a directory of IDX files or an .h5 file [fashion-mnist]", NULL},
    {"--split", "SPLIT", DPT_OPT_CUSTOM, 0, 0, 0,
     "test, train (in evaluation mode), or val (a member's held-out samples) [test]",
     parse_split},
    {"--test-samples", "N", DPT_OPT_INT64, offsetof(eval_options, max_samples), 1, 1e12,
     "only the first N samples of the split (as training's --test-samples) [all]", NULL},
    {"--predictions", "FILE.h5", DPT_OPT_STRING, offsetof(eval_options, predictions), 0, 0,
     "write probs (n, K), pred (n) and labels (n) of every sample", NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

static const char *split_name(dpt_split s) {
    return s == DPT_SPLIT_TEST ? "test" : s == DPT_SPLIT_TRAIN ? "train" : "val";
}

static void print_report(const dpt_predictions *p, dpt_split split) {
    int64_t K = p->K;
    int64_t *conf = calloc((size_t)(K * K), sizeof *conf);
    if (!conf)
        return;
    for (int64_t i = 0; i < p->n; i++)
        conf[p->labels[i] * K + p->pred[i]]++;
    if (p->n_members > 1) {
        printf("ensemble of %d members:", p->n_members);
        for (int m = 0; m < p->n_members; m++)
            printf(" %.4f", p->member_acc[m]);
        printf("\n");
    }
    printf("per-class accuracy (rows: true class, columns: predicted):\n  class  samples  "
           "accuracy |");
    for (int64_t k = 0; k < K; k++)
        printf(" %6lld", (long long)k);
    printf("\n");
    for (int64_t c = 0; c < K; c++) {
        int64_t total = 0;
        for (int64_t k = 0; k < K; k++)
            total += conf[c * K + k];
        printf("  %5lld  %7lld  %8.4f |", (long long)c, (long long)total,
               total ? (double)conf[c * K + c] / (double)total : 0.0);
        for (int64_t k = 0; k < K; k++)
            printf(" %6lld", (long long)conf[c * K + k]);
        printf("\n");
    }
    if (p->loss == p->loss)
        printf("%s accuracy %.4f (loss %.4f) on %lld samples\n", split_name(split), p->acc,
               p->loss, (long long)p->n);
    else
        printf("%s accuracy %.4f on %lld samples\n", split_name(split), p->acc, (long long)p->n);
    free(conf);
}

static dpt_status write_predictions(const char *path, const dpt_predictions *p) {
    dpt_h5w w;
    if (dpt_h5w_open(&w, path) != DPT_OK)
        return w.st;
    int64_t nk[2] = {p->n, p->K};
    dpt_h5w_f32(&w, "probs", p->probs, 2, nk);
    int64_t *v = malloc((size_t)(p->n > 0 ? p->n : 1) * sizeof *v);
    if (!v) {
        dpt_h5w_close(&w, 0);
        return dpt_errorf(DPT_ENOMEM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < p->n; i++)
        v[i] = p->pred[i];
    dpt_h5w_i64(&w, "pred", v, 1, nk);
    for (int64_t i = 0; i < p->n; i++)
        v[i] = p->labels[i];
    dpt_h5w_i64(&w, "labels", v, 1, nk);
    free(v);
    return dpt_h5w_close(&w, 1);
}

int dpt__cli_eval(dpt_group *g, int argc, char **argv, const char *search_path) {
    eval_options o = {.data = "fashion-mnist", .split = DPT_SPLIT_TEST};
    const char *pos[1];
    int help = 0;
    dpt_status st = dpt_cli_parse_files(
        eval_table, &o, argc, argv, "eval", "one checkpoint or manifest",
        "dptrain eval CKPT.h5|ENSEMBLE.h5 [--data SRC] [--split SPLIT] [--predictions FILE.h5]",
        g->world_rank == 0, pos, 1, &help);
    if (help)
        return 0;
    st = dpt_group_agree(g, st);
    dpt_predictions p;
    memset(&p, 0, sizeof p);
    if (st == DPT_OK)
        st = dpt_predict(pos[0], o.data, search_path, o.split, o.max_samples, g, &p);
    if (st == DPT_OK && g->world_rank == 0) {
        print_report(&p, o.split);
        if (o.predictions)
            st = write_predictions(o.predictions, &p);
    }
    dpt_predictions_free(&p);
    return dpt__cli_finish(g, st);
}
