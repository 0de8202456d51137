/* Boosting (train): SAMME (Zhu, Zou, Rosset, Hastie 2009) as scikit-learn's
 * AdaBoostClassifier(algorithm="SAMME") computes it, with a CNN as the weak learner. Each round
 * is trained by every rank of the launch. Sample weights enter by weighted resampling: round m
 * trains on n draws from the pool with probabilities w (round 0, with equal weights, on the pool
 * itself). Resampling keeps the per-sample loss scale, the rank-invariant sampler and bounded
 * gradient variance (Schwenk & Bengio 2000 found it the better choice for neural networks); the
 * weighted error and the weight update use the exact weights on the whole pool. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/h5file.h"
#include "dpt/sampler.h"
#include "ens_impl.h"

typedef struct {
    double *w;                  /* (n_pool) sample weights, sum 1 */
    int64_t *drawn;             /* (n_pool) this round's training list */
    float *pool_probs;          /* (n_pool, K) */
    unsigned char *incorrect;   /* (n_pool) */
    float **test_probs;         /* per kept round, (n_test, K) */
    dpt_samme_round *rounds;    /* per round tried */
    double *member_acc, *staged_acc;
    int kept, tried;
    int stop;
} boosting;

static int uniform(const double *w, int64_t n) {
    for (int64_t i = 1; i < n; i++)
        if (w[i] != w[0])
            return 0;
    return 1;
}

static dpt_status train_round(dpt_ens *e, void *ctx, dpt_group *g, int m) {
    boosting *b = ctx;
    if (b->stop)
        return DPT_OK;
    const int64_t n = e->n_pool, K = e->K;
    dpt_status st = DPT_OK;
    const int64_t *train = e->pool;
    if (!uniform(b->w, n)) {
        st = dpt_resample_weighted(b->drawn, n, b->w, e->pool, n, e->cfg->seed, (uint32_t)m);
        train = b->drawn;
    }
    float *test_probs = malloc((size_t)(e->n_test * K) * sizeof(float));
    if (st == DPT_OK && !test_probs)
        st = dpt_errorf(DPT_ENOMEM, "cannot allocate the round's test probabilities");
    dpt_trainer *t = NULL;
    dpt_train_result res;
    if ((st = dpt_group_agree(g, st)) == DPT_OK)
        st = dpt__ens_train(e, g, m, train, n, e->val, e->n_val, test_probs, &t, &res);
    if (st == DPT_OK && e->preempted) { /* its checkpoint is written; resumed later */
        free(test_probs);
        dpt_trainer_destroy(t);
        return DPT_OK;
    }
    dpt_eval_result ev;
    if (st == DPT_OK)
        st = dpt_trainer_evaluate(t, &e->data.train, e->pool, n, b->pool_probs, &ev);
    dpt_samme_round r = {0};
    if (st == DPT_OK) {
        for (int64_t i = 0; i < n; i++)
            b->incorrect[i] = dpt_argmax_f32(b->pool_probs + i * K, K) != e->data.train.y[e->pool[i]];
        st = dpt_samme_update(b->w, b->incorrect, n, K, e->ec->boost_lr > 0 ? e->ec->boost_lr : 1.0,
                              m == e->n_jobs - 1, &r);
        if (st == DPT_ENONFINITE) { /* weights overflowed: keep this round, stop (scikit-learn) */
            st = DPT_OK;
            b->stop = 1;
        }
    }
    if (st == DPT_OK && r.outcome == DPT_SAMME_TOO_WEAK && m == 0)
        st = dpt_errorf(DPT_EINVAL, "round 0 has weighted training error %.4f >= 1 - 1/%lld: the "
                                    "learner is worse than chance, boosting cannot start",
                        r.err, (long long)K);
    b->rounds[m] = r;
    b->tried = m + 1;
    if (st == DPT_OK && r.outcome != DPT_SAMME_TOO_WEAK) {
        dpt_member_info info = {.kind = "boosting", .id = m, .train_idx = train, .n_train = n,
                                .alpha = r.alpha};
        st = dpt_group_agree(g, dpt_trainer_save(t, "final.h5", &info, NULL, 0));
        if (st == DPT_OK) {
            int64_t correct = 0;
            for (int64_t i = 0; i < e->n_test; i++)
                correct += dpt_argmax_f32(test_probs + i * K, K) == e->data.test.y[i];
            b->member_acc[b->kept] = (double)correct / (double)e->n_test;
            b->test_probs[b->kept++] = test_probs;
            test_probs = NULL;
        }
    }
    if (r.outcome != DPT_SAMME_CONTINUE)
        b->stop = 1;
    if (st == DPT_OK && g->leader && !e->cfg->quiet) {
        fprintf(e->log, "[round %d] weighted training error %.4f, alpha %.4f%s\n", m, r.err,
                r.alpha,
                r.outcome == DPT_SAMME_TOO_WEAK ? " (worse than chance: discarded, stopping)"
                : r.outcome == DPT_SAMME_PERFECT ? " (perfect: kept, stopping)"
                                                 : "");
        fflush(e->log);
    }
    free(test_probs);
    dpt_trainer_destroy(t);
    return st;
}

static dpt_status report(const dpt_ens *e, boosting *b) {
    int T = b->kept;
    int64_t n = e->n_test, K = e->K;
    double *alpha = malloc((size_t)T * sizeof(double)), *err = malloc((size_t)T * sizeof(double));
    int32_t *pred = malloc((size_t)n * sizeof(int32_t));
    int *ids = malloc((size_t)T * sizeof(int));
    dpt_status st = alpha && err && pred && ids ? DPT_OK
                                                : dpt_errorf(DPT_ENOMEM, "cannot allocate results");
    for (int m = 0, k = 0; st == DPT_OK && m < b->tried; m++)
        if (b->rounds[m].outcome != DPT_SAMME_TOO_WEAK)
            alpha[k] = b->rounds[m].alpha, err[k] = b->rounds[m].err, ids[k++] = m;
    for (int m = 1; st == DPT_OK && m <= T; m++) { /* staged: the first m rounds */
        dpt_ensemble_combine(NULL, pred, (const float *const *)b->test_probs, alpha, m, n, K,
                             DPT_VOTE_HARD);
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++)
            c += pred[i] == e->data.test.y[i];
        b->staged_acc[m - 1] = (double)c / (double)n;
    }
    if (st == DPT_OK) {
        FILE *f = e->log;
        fprintf(f, "boosting (SAMME): %d round%s kept of %d tried\n", T, T > 1 ? "s" : "",
                b->tried);
        fprintf(f, "  round  weighted err   alpha  round test acc  ensemble test acc\n");
        for (int k = 0; k < T; k++)
            fprintf(f, "  %5d  %12.4f  %6.4f  %14.4f  %17.4f\n", ids[k], err[k], alpha[k],
                    b->member_acc[k], b->staged_acc[k]);
        fprintf(f, "ensemble test accuracy %.4f (first round %.4f)\n", b->staged_acc[T - 1],
                b->member_acc[0]);
        fflush(f);
    }
    if (st == DPT_OK && e->cfg->out && *e->cfg->out) {
        char path[4096];
        snprintf(path, sizeof path, "%s/results.h5", e->cfg->out);
        dpt_h5w w;
        if (dpt_h5w_open(&w, path) == DPT_OK) {
            int64_t len = T, one = 1;
            dpt_h5w_str(&w, "ensemble/kind", "boosting");
            dpt_h5w_str(&w, "ensemble/vote", "hard");
            dpt_h5w_f64(&w, "ensemble/test_acc", &b->staged_acc[T - 1], 0, &one);
            dpt_h5w_f64(&w, "ensemble/member_test_acc", b->member_acc, 1, &len);
            dpt_h5w_f64(&w, "ensemble/acc_by_members", b->staged_acc, 1, &len);
            dpt_h5w_f64(&w, "ensemble/alpha", alpha, 1, &len);
            dpt_h5w_f64(&w, "ensemble/weighted_error", err, 1, &len);
            st = dpt_h5w_close(&w, 1);
        } else {
            st = w.st;
        }
    }
    if (st == DPT_OK)
        st = dpt__ens_write_manifest(e, "boosting", DPT_VOTE_HARD, ids, alpha, T);
    free(alpha), free(err), free(pred), free(ids);
    return st;
}

dpt_status dpt__ens_boosting(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                             dpt_group *world, int *preempted) {
    dpt_ens e;
    boosting b = {0};
    dpt_status st = dpt__ens_open(&e, cfg, ec, world, ec->rounds, "round", "members", 0);
    if (st == DPT_OK) {
        int64_t n = e.n_pool, T = ec->rounds;
        b.w = malloc((size_t)n * sizeof(double));
        b.drawn = malloc((size_t)n * sizeof(int64_t));
        b.pool_probs = malloc((size_t)(n * e.K) * sizeof(float));
        b.incorrect = malloc((size_t)n);
        b.test_probs = calloc((size_t)T, sizeof *b.test_probs);
        b.rounds = calloc((size_t)T, sizeof *b.rounds);
        b.member_acc = calloc(2 * (size_t)T, sizeof(double));
        if (!b.w || !b.drawn || !b.pool_probs || !b.incorrect || !b.test_probs || !b.rounds ||
            !b.member_acc)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the boosting state");
        else
            b.staged_acc = b.member_acc + T;
        for (int64_t i = 0; st == DPT_OK && i < n; i++)
            b.w[i] = 1.0 / (double)n;
    }
    if ((st = dpt_group_agree(world, st)) == DPT_OK)
        st = dpt__ens_run_jobs(&e, train_round, &b);
    *preempted = e.preempted;
    st = dpt_group_agree(world, st);
    if (st == DPT_OK && !e.preempted && world->world_rank == 0)
        st = report(&e, &b);
    st = dpt_group_agree(world, st);
    for (int m = 0; b.test_probs && m < ec->rounds; m++)
        free(b.test_probs[m]);
    free(b.w), free(b.drawn), free(b.pool_probs), free(b.incorrect), free(b.test_probs);
    free(b.rounds), free(b.member_acc);
    dpt__ens_close(&e);
    return st;
}
