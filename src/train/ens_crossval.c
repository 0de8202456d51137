/* K-fold cross-validation (train): one fold per rank group, folds as scikit-learn's KFold or
 * StratifiedKFold assign them; per-fold validation loss and accuracy, their mean and standard
 * deviation (population, numpy's default ddof = 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/h5file.h"
#include "dpt/sampler.h"
#include "ens_impl.h"

enum { F_VAL_ACC, F_VAL_LOSS, F_TEST_ACC, F_TEST_LOSS, F_EPOCHS, F_N_VAL, N_FOLD_SCALARS };

typedef struct {
    int32_t *fold_of;        /* (n_pool) */
    int64_t *train, *heldout; /* scratch, n_pool each */
    double (*scalars)[N_FOLD_SCALARS]; /* per fold */
} crossval;

static dpt_status train_fold(dpt_ens *e, void *ctx, dpt_group *g, int k) {
    crossval *cv = ctx;
    int64_t n_train = 0, n_val = 0;
    dpt_resample_fold(cv->train, &n_train, cv->heldout, &n_val, cv->fold_of, e->pool, e->n_pool,
                      k);
    float *test_probs = malloc((size_t)(e->n_test * e->K) * sizeof(float));
    dpt_status st = test_probs ? DPT_OK : dpt_errorf(DPT_ENOMEM, "cannot allocate fold results");
    st = dpt_group_agree(g, st);
    dpt_trainer *t = NULL;
    dpt_train_result res;
    if (st == DPT_OK)
        st = dpt__ens_train(e, g, k, cv->train, n_train, cv->heldout, n_val, test_probs, &t,
                            &res);
    if (st == DPT_OK && e->preempted) { /* its checkpoint is written; resumed later */
        free(test_probs);
        dpt_trainer_destroy(t);
        return DPT_OK;
    }
    if (st == DPT_OK) {
        dpt_member_info info = {.kind = "cv", .id = k, .train_idx = cv->train,
                                .n_train = n_train, .heldout_idx = cv->heldout,
                                .n_heldout = n_val, .alpha = NAN};
        st = dpt_group_agree(g, dpt_trainer_save(t, "final.h5", &info, NULL, 0));
    }
    if (st == DPT_OK) {
        double *s = cv->scalars[k];
        s[F_VAL_ACC] = res.val_acc, s[F_VAL_LOSS] = res.val_loss;
        s[F_TEST_ACC] = res.test_acc, s[F_TEST_LOSS] = res.test_loss;
        s[F_EPOCHS] = (double)res.epochs_run, s[F_N_VAL] = (double)n_val;
    }
    free(test_probs);
    dpt_trainer_destroy(t);
    return st;
}

static void mean_std(const double *x, int n, double *mean, double *std) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += x[i];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = sqrt(v / n);
}

static dpt_status report(const dpt_ens *e, const crossval *cv) {
    int K = e->n_jobs;
    double *acc = malloc(2 * (size_t)K * sizeof(double)), *loss = acc ? acc + K : NULL;
    if (!acc)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the fold results");
    for (int k = 0; k < K; k++)
        acc[k] = cv->scalars[k][F_VAL_ACC], loss[k] = cv->scalars[k][F_VAL_LOSS];
    double mean_acc, std_acc, mean_loss, std_loss;
    mean_std(acc, K, &mean_acc, &std_acc);
    mean_std(loss, K, &mean_loss, &std_loss);
    FILE *f = e->log;
    fprintf(f, "cv: %d folds (%s%s)\n", K, e->ec->stratified ? "stratified" : "plain",
            e->ec->shuffle ? ", shuffled" : "");
    fprintf(f, "  fold  val samples  val acc  val loss  test acc  epochs\n");
    for (int k = 0; k < K; k++)
        fprintf(f, "  %4d  %11.0f  %7.4f  %8.4f  %8.4f  %6.0f\n", k, cv->scalars[k][F_N_VAL],
                acc[k], loss[k], cv->scalars[k][F_TEST_ACC], cv->scalars[k][F_EPOCHS]);
    fprintf(f, "cv validation accuracy %.4f +- %.4f, loss %.4f +- %.4f (mean +- std over %d "
               "folds)\n",
            mean_acc, std_acc, mean_loss, std_loss, K);
    fflush(f);
    dpt_status st = DPT_OK;
    if (e->cfg->out && *e->cfg->out) {
        char path[4096];
        snprintf(path, sizeof path, "%s/results.h5", e->cfg->out);
        dpt_h5w w;
        if (dpt_h5w_open(&w, path) == DPT_OK) {
            int64_t len = K, one = 1;
            double test_acc[256];
            for (int k = 0; k < K && k < 256; k++)
                test_acc[k] = cv->scalars[k][F_TEST_ACC];
            dpt_h5w_str(&w, "cv/kind", e->ec->stratified ? "StratifiedKFold" : "KFold");
            dpt_h5w_f64(&w, "cv/fold_val_acc", acc, 1, &len);
            dpt_h5w_f64(&w, "cv/fold_val_loss", loss, 1, &len);
            dpt_h5w_f64(&w, "cv/fold_test_acc", test_acc, 1, &len);
            dpt_h5w_f64(&w, "cv/mean_val_acc", &mean_acc, 0, &one);
            dpt_h5w_f64(&w, "cv/std_val_acc", &std_acc, 0, &one);
            dpt_h5w_f64(&w, "cv/mean_val_loss", &mean_loss, 0, &one);
            dpt_h5w_f64(&w, "cv/std_val_loss", &std_loss, 0, &one);
            st = dpt_h5w_close(&w, 1);
        } else {
            st = w.st;
        }
    }
    free(acc);
    return st;
}

dpt_status dpt__ens_crossval(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                             dpt_group *world, int *preempted) {
    if (ec->folds > 256)
        return dpt_group_agree(world, dpt_errorf(DPT_EINVAL, "--folds %d: at most 256",
                                                 ec->folds));
    dpt_ens e;
    crossval cv = {0};
    dpt_status st = dpt__ens_open(&e, cfg, ec, world, ec->folds, "fold", "members", DPT_ENS_GROUPS);
    if (st == DPT_OK) {
        cv.fold_of = malloc((size_t)e.n_pool * sizeof(int32_t));
        cv.train = malloc((size_t)e.n_pool * sizeof(int64_t));
        cv.heldout = malloc((size_t)e.n_pool * sizeof(int64_t));
        cv.scalars = calloc((size_t)ec->folds, sizeof *cv.scalars);
        if (!cv.fold_of || !cv.train || !cv.heldout || !cv.scalars)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the folds");
        if (st == DPT_OK)
            st = dpt_resample_kfold(cv.fold_of, e.pool, e.n_pool,
                                    ec->stratified ? e.data.train.y : NULL, e.K, ec->folds,
                                    ec->shuffle, cfg->seed, 0);
    }
    if ((st = dpt_group_agree(world, st)) == DPT_OK)
        st = dpt__ens_run_jobs(&e, train_fold, &cv);
    *preempted = e.preempted;
    for (int k = 0; st == DPT_OK && !e.preempted && k < e.n_jobs; k++)
        st = dpt_rank_groups_to_root(&e.rg, k, cv.scalars[k], sizeof cv.scalars[k]);
    st = dpt_group_agree(world, st);
    if (st == DPT_OK && !e.preempted && world->world_rank == 0)
        st = report(&e, &cv);
    st = dpt_group_agree(world, st);
    free(cv.fold_of), free(cv.train), free(cv.heldout), free(cv.scalars);
    dpt__ens_close(&e);
    return st;
}
