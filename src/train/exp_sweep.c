/* Sweeps (train): the points of a grid of batch sizes and options trained side by side in rank
 * groups, all from the same initial weights, each measured the same way: train metrics in
 * evaluation mode on the whole training set (not the running average over an epoch of changing
 * weights), test metrics, the generalization gap, steps and time. Keskar et al. 2017's small- vs
 * large-batch comparison is a sweep of two points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/h5file.h"
#include "dpt/metrics_log.h"
#include "ens_impl.h"

enum {
    P_BATCH, P_LR, P_EPOCHS, P_STEPS, P_TRAIN_LOSS, P_TRAIN_ACC, P_TEST_LOSS, P_TEST_ACC,
    P_BEST_TEST_ACC, P_BEST_TEST_LOSS, P_GAP_ACC, P_GAP_LOSS, P_SECONDS, P_CHECKSUM_HI,
    P_CHECKSUM_LO, N_POINT_COLS
};
static const char *const point_cols[N_POINT_COLS] = {
    "batch",         "lr",        "epochs",         "steps",          "train_loss",
    "train_acc",     "test_loss", "test_acc",       "best_test_acc",  "best_test_loss",
    "gap_acc",       "gap_loss",  "seconds",        "init_checksum_hi", "init_checksum_lo"};

typedef struct {
    const dpt_sweep_cfg *sc;
    double (*rows)[N_POINT_COLS];
    int64_t min_batch;
    const dpt_data *base; /* the samples every point reads, opened once over the world; NULL
                           * when points read different data (each then opens its own) */
} sweep;

/* Hoffer et al.'s "train longer": the steps the smallest batch takes in --epochs epochs. */
static void scale_epochs(const sweep *s, dpt_train_cfg *c, int64_t n_train) {
    int64_t spe_min = n_train / s->min_batch, spe = n_train / c->batch;
    if (spe_min < 1 || spe < 1)
        return; /* the sampler reports a batch larger than the data */
    int64_t steps = c->epochs * spe_min;
    if (c->max_steps > 0 && c->max_steps < steps)
        steps = c->max_steps;
    c->max_steps = steps;
    c->epochs = (steps + spe - 1) / spe;
}

static dpt_status train_point(dpt_ens *e, void *ctx, dpt_group *g, int p) {
    sweep *s = ctx;
    dpt_train_cfg c = s->sc->points[p];
    c.out = s->sc->out;
    c.log = e->log;
    dpt_data data = {0};
    int64_t *train_idx = NULL, *val_idx = NULL, n_train = 0, n_val = 0;
    dpt_status st =
        dpt__train_prepare_data(&c, g, s->base, &data, &train_idx, &n_train, &val_idx, &n_val);
    if (st != DPT_OK)
        return st;
    if (s->sc->epochs_scaling_steps)
        scale_epochs(s, &c, n_train);
    char dir[4096], label[96];
    dpt__ens_member_dir(e, p, dir, sizeof dir);
    snprintf(label, sizeof label, "point %d", p);
    /* member 0 for every point: the same initial weights and data order */
    dpt_trainer_job job = {.data = &data, .train_idx = train_idx, .n_train = n_train,
                           .val_idx = val_idx, .n_val = n_val, .member = 0, .label = label,
                           .out = dir[0] ? dir : NULL};
    dpt_trainer *t = NULL;
    dpt_train_result res;
    st = dpt_trainer_create(&t, &c, g, &job);
    uint64_t checksum = 0;
    if (st == DPT_OK) {
        int64_t n_params;
        const float *params = dpt_model_params(dpt_trainer_model(t), &n_params);
        checksum = dpt_hash64(params, (size_t)n_params * sizeof(float));
        st = dpt_trainer_fit(t, &res);
    }
    dpt_eval_result tr = {0}, te = {0};
    if (st == DPT_OK)
        st = dpt_trainer_evaluate(t, &data.train, train_idx, n_train, NULL, &tr);
    int64_t n_test = c.test_samples > 0 && c.test_samples < data.test.N ? c.test_samples
                                                                         : data.test.N;
    if (st == DPT_OK)
        st = dpt_trainer_evaluate(t, &data.test, NULL, n_test, NULL, &te);
    if (st == DPT_OK)
        st = dpt_group_agree(g, dpt_trainer_save(t, "final.h5", NULL, NULL, 0));
    if (st == DPT_OK) {
        const dpt_metrics_log *h = dpt_trainer_history(t);
        double best_acc = -INFINITY, best_loss = INFINITY;
        for (int64_t r = 0; r < h->rows; r++) { /* columns 7, 8: test_loss, test_acc */
            best_loss = fmin(best_loss, h->cols[7][r]);
            best_acc = fmax(best_acc, h->cols[8][r]);
        }
        double *row = s->rows[p];
        row[P_BATCH] = (double)c.batch;
        row[P_LR] = h->rows > 0 ? h->cols[2][0] : NAN;
        row[P_EPOCHS] = (double)res.epochs_run;
        row[P_STEPS] = (double)res.steps;
        row[P_TRAIN_LOSS] = tr.loss, row[P_TRAIN_ACC] = tr.acc;
        row[P_TEST_LOSS] = te.loss, row[P_TEST_ACC] = te.acc;
        row[P_BEST_TEST_ACC] = best_acc, row[P_BEST_TEST_LOSS] = best_loss;
        row[P_GAP_ACC] = tr.acc - te.acc, row[P_GAP_LOSS] = te.loss - tr.loss;
        row[P_SECONDS] = res.seconds;
        row[P_CHECKSUM_HI] = (double)(checksum >> 32);
        row[P_CHECKSUM_LO] = (double)(checksum & 0xffffffffu);
    }
    dpt_trainer_destroy(t);
    free(train_idx), free(val_idx);
    dpt_data_free(&data);
    return st;
}

/* Points that build the same model must have started from the same weights. */
static dpt_status check_same_start(const dpt_sweep_cfg *sc, double (*rows)[N_POINT_COLS]) {
    for (int p = 1; p < sc->n_points; p++)
        for (int q = 0; q < p; q++)
            if (!strcmp(sc->points[p].model, sc->points[q].model) &&
                sc->points[p].seed == sc->points[q].seed &&
                (rows[p][P_CHECKSUM_HI] != rows[q][P_CHECKSUM_HI] ||
                 rows[p][P_CHECKSUM_LO] != rows[q][P_CHECKSUM_LO]))
                return dpt_errorf(DPT_EINVAL, "sweep: points %d (%s) and %d (%s) share the model "
                                              "and seed but started from different weights",
                                  q, sc->labels[q], p, sc->labels[p]);
    return DPT_OK;
}

static void print_table(FILE *f, const dpt_sweep_cfg *sc, double (*rows)[N_POINT_COLS]) {
    int distinct = 0;
    for (int p = 0; p < sc->n_points; p++) {
        int seen = 0;
        for (int q = 0; q < p && !seen; q++)
            seen = rows[q][P_CHECKSUM_HI] == rows[p][P_CHECKSUM_HI] &&
                   rows[q][P_CHECKSUM_LO] == rows[p][P_CHECKSUM_LO];
        distinct += !seen;
    }
    if (distinct == 1)
        fprintf(f, "sweep: %d points, all from the same initial weights (checksum %08llx%08llx)\n",
                sc->n_points, (unsigned long long)rows[0][P_CHECKSUM_HI],
                (unsigned long long)rows[0][P_CHECKSUM_LO]);
    else
        fprintf(f, "sweep: %d points from %d initial weights (one per model and seed, checked)\n",
                sc->n_points, distinct);
    int width = 5;
    for (int p = 0; p < sc->n_points; p++) {
        int len = (int)strlen(sc->labels[p]);
        width = len > width ? (len < 60 ? len : 60) : width;
    }
    fprintf(f, "  point  %-*s  steps  train acc  test acc  gap acc  train loss  test loss  "
               "gap loss  best test  seconds\n",
            width, "label");
    for (int p = 0; p < sc->n_points; p++) {
        const double *r = rows[p];
        fprintf(f, "  %5d  %-*.*s  %5.0f  %9.4f  %8.4f  %7.4f  %10.4f  %9.4f  %8.4f  %9.4f  "
                   "%7.1f\n",
                p, width, width, sc->labels[p], r[P_STEPS], r[P_TRAIN_ACC], r[P_TEST_ACC],
                r[P_GAP_ACC],
                r[P_TRAIN_LOSS], r[P_TEST_LOSS], r[P_GAP_LOSS], r[P_BEST_TEST_ACC],
                r[P_SECONDS]);
    }
    fflush(f);
}

static dpt_status write_results(const dpt_sweep_cfg *sc, double (*rows)[N_POINT_COLS]) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.csv", sc->out);
    FILE *f = fopen(path, "w");
    if (!f)
        return dpt_errorf(DPT_EIO, "%s: cannot write", path);
    fprintf(f, "point,label");
    for (int c = 0; c < N_POINT_COLS - 2; c++)
        fprintf(f, ",%s", point_cols[c]);
    fprintf(f, ",init_checksum,checkpoint\n");
    for (int p = 0; p < sc->n_points; p++) {
        fprintf(f, "%d,\"%s\"", p, sc->labels[p]);
        for (int c = 0; c < N_POINT_COLS - 2; c++)
            fprintf(f, ",%.9g", rows[p][c]);
        fprintf(f, ",%08llx%08llx,%s/points/%02d/checkpoints/final.h5\n",
                (unsigned long long)rows[p][P_CHECKSUM_HI],
                (unsigned long long)rows[p][P_CHECKSUM_LO], sc->out, p);
    }
    if (fclose(f) != 0)
        return dpt_errorf(DPT_EIO, "%s: write failed", path);
    snprintf(path, sizeof path, "%s/results.h5", sc->out);
    dpt_h5w w;
    if (dpt_h5w_open(&w, path) != DPT_OK)
        return w.st;
    int64_t n = sc->n_points;
    double *col = malloc((size_t)n * sizeof *col);
    if (!col) {
        dpt_h5w_close(&w, 0);
        return dpt_errorf(DPT_ENOMEM, "%s: out of memory", path);
    }
    for (int c = 0; c < N_POINT_COLS; c++) {
        char obj[96];
        snprintf(obj, sizeof obj, "sweep/%s", point_cols[c]);
        for (int p = 0; p < n; p++)
            col[p] = rows[p][c];
        dpt_h5w_f64(&w, obj, col, 1, &n);
    }
    free(col);
    dpt_h5w_group(&w, "sweep/labels");
    for (int p = 0; p < n; p++) {
        char obj[64];
        snprintf(obj, sizeof obj, "sweep/labels/%02d", p);
        dpt_h5w_str(&w, obj, sc->labels[p]);
    }
    return dpt_h5w_close(&w, 1);
}

dpt_status dpt_sweep_run(const dpt_sweep_cfg *sc, dpt_group *world) {
    dpt_train_cfg base = sc->points[0];
    base.out = sc->out;
    base.log = sc->log;
    base.quiet = sc->quiet;
    dpt_ensemble_cfg ec = {0};
    dpt_ens e;
    sweep s = {.sc = sc};
    s.min_batch = sc->points[0].batch;
    for (int p = 1; p < sc->n_points; p++)
        if (sc->points[p].batch < s.min_batch)
            s.min_batch = sc->points[p].batch;
    dpt_status st = dpt__ens_open(&e, &base, &ec, world, sc->n_points, "point", "points",
                                  DPT_ENS_GROUPS | DPT_ENS_NO_DATA | DPT_ENS_FIT);
    /* Points that read the same samples (the usual sweep) share one copy, opened here over the
     * whole world: with --data-copy node one per node, whichever group a rank trains in. */
    int same = 1;
    for (int p = 1; p < sc->n_points; p++)
        same &= dpt__train_same_data(&sc->points[0], &sc->points[p]);
    dpt_data data = {0};
    if (st == DPT_OK && same) {
        st = dpt_group_agree(world, dpt__train_open_data(&sc->points[0], world, &data));
        s.base = st == DPT_OK ? &data : NULL;
    }
    if (st == DPT_OK && world->world_rank == 0 && !sc->quiet) {
        for (int p = 0; p < sc->n_points; p++)
            fprintf(e.log, "  point %d: %s\n", p, sc->labels[p]);
        fflush(e.log);
    }
    if (st == DPT_OK && !(s.rows = calloc((size_t)sc->n_points, sizeof *s.rows)))
        st = dpt_errorf(DPT_ENOMEM, "cannot allocate the sweep results");
    if ((st = dpt_group_agree(world, st)) == DPT_OK)
        st = dpt__ens_run_jobs(&e, train_point, &s);
    for (int p = 0; st == DPT_OK && p < sc->n_points; p++)
        st = dpt_rank_groups_to_root(&e.rg, p, s.rows[p], sizeof s.rows[p]);
    st = dpt_group_agree(world, st);
    if (st == DPT_OK && world->world_rank == 0) {
        print_table(e.log, sc, s.rows);
        st = check_same_start(sc, s.rows);
        if (st == DPT_OK && sc->out && *sc->out)
            st = write_results(sc, s.rows);
    }
    st = dpt_group_agree(world, st);
    free(s.rows);
    dpt__ens_close(&e);
    dpt_data_free(&data); /* every rank of the world, after every group finished */
    return st;
}
