/* Bagging (train): G members, each trained by one rank group on its own bootstrap sample (or a
 * subsample without replacement) of the training pool; soft or hard vote; out-of-bag score;
 * bias-variance of the members and of sub-ensembles as members are added. Semantics follow
 * scikit-learn's BaggingClassifier (docs/ensembles.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/h5file.h"
#include "dpt/sampler.h"
#include "ens_impl.h"

enum { S_TEST_ACC, S_TEST_LOSS, S_VAL_ACC, S_VAL_LOSS, S_EPOCHS, S_STEPS, S_SECONDS, S_N_BAG,
       N_SCALARS };

/* One member's result, as it travels to world rank 0. */
typedef struct {
    double *scalars;   /* N_SCALARS */
    float *test_probs; /* (n_test, K) */
    float *pool_probs; /* (n_pool, K): rows of out-of-bag samples, zeros elsewhere */
    int32_t *in_bag;   /* (n_pool): draws of each pool position */
} member_out;

typedef struct {
    int64_t m;        /* draws per member */
    member_out *out;  /* per member; filled on the member's group leader and on world rank 0 */
    char *blob;       /* one contiguous allocation behind out[] */
    size_t bytes;     /* of one member's result */
    int64_t *in_bag_idx, *oob_idx; /* scratch, n_pool each */
} bagging;

static size_t member_bytes(const dpt_ens *e) {
    return N_SCALARS * sizeof(double) + (size_t)(e->n_test + e->n_pool) * (size_t)e->K *
                                            sizeof(float) +
           (size_t)e->n_pool * sizeof(int32_t);
}

static void bind(member_out *o, char *p, const dpt_ens *e) {
    o->scalars = (double *)p;
    o->test_probs = (float *)(p + N_SCALARS * sizeof(double));
    o->pool_probs = o->test_probs + e->n_test * e->K;
    o->in_bag = (int32_t *)(o->pool_probs + e->n_pool * e->K);
}

/* Positions of the pool drawn for member j: in_bag counts and the in-bag/out-of-bag lists. */
static void draw(const dpt_ens *e, const bagging *b, int j, int64_t *in_bag_idx, int64_t *oob_idx,
                 int64_t *n_oob) {
    if (e->ec->no_bootstrap)
        dpt_resample_subsample(in_bag_idx, b->m, oob_idx, n_oob, e->pool, e->n_pool,
                               e->cfg->seed, (uint32_t)j);
    else
        dpt_resample_bootstrap(in_bag_idx, b->m, oob_idx, n_oob, e->pool, e->n_pool,
                               e->cfg->seed, (uint32_t)j);
}

static dpt_status train_member(dpt_ens *e, void *ctx, dpt_group *g, int j) {
    bagging *b = ctx;
    int64_t n_oob = 0;
    draw(e, b, j, b->in_bag_idx, b->oob_idx, &n_oob);
    member_out *o = &b->out[j];
    memset(o->scalars, 0, b->bytes);
    dpt_trainer *t = NULL;
    dpt_train_result res;
    dpt_status st = dpt__ens_train(e, g, j, b->in_bag_idx, b->m, e->val, e->n_val, o->test_probs,
                                   &t, &res);
    if (st == DPT_OK && e->preempted) { /* its checkpoint is written; resumed later */
        dpt_trainer_destroy(t);
        return DPT_OK;
    }
    /* out-of-bag probabilities, scattered to pool positions (the pool is sorted: 0..n-1 or the
     * training part of a validation split, so a position is found by binary search) */
    float *oob_probs = NULL;
    if (st == DPT_OK && n_oob > 0) {
        oob_probs = malloc((size_t)(n_oob * e->K) * sizeof(float));
        dpt_eval_result ev;
        st = oob_probs ? dpt_trainer_evaluate(t, &e->data.train, b->oob_idx, n_oob, oob_probs, &ev)
                       : dpt_errorf(DPT_ENOMEM, "cannot allocate the out-of-bag probabilities");
    }
    if (st == DPT_OK) {
        int64_t pos = 0;
        for (int64_t i = 0; i < n_oob; i++) {
            while (e->pool[pos] != b->oob_idx[i])
                pos++;
            memcpy(o->pool_probs + pos * e->K, oob_probs + i * e->K, (size_t)e->K * sizeof(float));
        }
        pos = 0;
        for (int64_t i = 0; i < b->m; i++) { /* in_bag_idx is sorted by pool position */
            while (e->pool[pos] != b->in_bag_idx[i])
                pos++;
            o->in_bag[pos]++;
        }
        dpt_member_info info = {.kind = "bagging", .id = j, .train_idx = b->in_bag_idx,
                                .n_train = b->m, .heldout_idx = b->oob_idx, .n_heldout = n_oob,
                                .alpha = NAN};
        st = dpt_trainer_save(t, "final.h5", &info, NULL, 0);
        st = dpt_group_agree(g, st);
    }
    if (st == DPT_OK) {
        int64_t correct = 0;
        for (int64_t i = 0; i < e->n_test; i++)
            correct += dpt_argmax_f32(o->test_probs + i * e->K, e->K) == e->data.test.y[i];
        o->scalars[S_TEST_ACC] = (double)correct / (double)e->n_test;
        o->scalars[S_TEST_LOSS] = res.test_loss;
        o->scalars[S_VAL_ACC] = res.val_acc;
        o->scalars[S_VAL_LOSS] = res.val_loss;
        o->scalars[S_EPOCHS] = (double)res.epochs_run;
        o->scalars[S_STEPS] = (double)res.steps;
        o->scalars[S_SECONDS] = res.seconds;
        o->scalars[S_N_BAG] = (double)b->m;
    }
    free(oob_probs);
    dpt_trainer_destroy(t);
    return st;
}

/* ---- results on world rank 0 ---------------------------------------------------------------- */

static int64_t correct_of(const int32_t *pred, const int32_t *y, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += pred[i] == y[i];
    return c;
}

enum { MAX_SIZES = 32 };

typedef struct {
    double test_acc, mean_acc, best_acc;
    double *member_acc, *member_loss, *acc_by_members; /* G each */
    float *score;                                      /* (n_test, K) */
    int32_t *pred;
    dpt_oob_result oob;
    int n_sizes;
    double sizes[MAX_SIZES];
    dpt_bias_variance bv01[MAX_SIZES], bvsq[MAX_SIZES];
} bagging_summary;

static dpt_status summarize(const dpt_ens *e, const bagging *b, bagging_summary *s) {
    const int G = e->n_jobs;
    const int64_t n = e->n_test, K = e->K, n_pool = e->n_pool;
    const int32_t *y = e->data.test.y;
    const float **probs = malloc((size_t)G * sizeof *probs);
    double *oob_sum = calloc((size_t)(n_pool * K), sizeof(double));
    int64_t *oob_count = calloc((size_t)n_pool, sizeof(int64_t));
    int32_t *pool_y = malloc((size_t)n_pool * sizeof(int32_t));
    s->member_acc = malloc(3 * (size_t)G * sizeof(double));
    s->score = malloc((size_t)(n * K) * sizeof(float));
    s->pred = malloc((size_t)n * sizeof(int32_t));
    dpt_status st = DPT_OK;
    if (!probs || !oob_sum || !oob_count || !pool_y || !s->member_acc || !s->score || !s->pred) {
        st = dpt_errorf(DPT_ENOMEM, "cannot allocate the ensemble results");
        goto out;
    }
    s->member_loss = s->member_acc + G;
    s->acc_by_members = s->member_acc + 2 * G;
    s->mean_acc = 0, s->best_acc = 0;
    for (int m = 0; m < G; m++) {
        probs[m] = b->out[m].test_probs;
        s->member_acc[m] = b->out[m].scalars[S_TEST_ACC];
        s->member_loss[m] = b->out[m].scalars[S_TEST_LOSS];
        s->mean_acc += s->member_acc[m] / G;
        s->best_acc = fmax(s->best_acc, s->member_acc[m]);
    }
    for (int m = 1; m <= G; m++) { /* the ensemble of the first m members */
        dpt_ensemble_combine(s->score, s->pred, probs, NULL, m, n, K, e->ec->vote);
        s->acc_by_members[m - 1] = (double)correct_of(s->pred, y, n) / (double)n;
    }
    s->test_acc = s->acc_by_members[G - 1]; /* score and pred now hold all G members' vote */
    for (int m = 0; m < G; m++)
        dpt_oob_add(oob_sum, oob_count, b->out[m].pool_probs, b->out[m].in_bag, n_pool, K);
    for (int64_t i = 0; i < n_pool; i++)
        pool_y[i] = e->data.train.y[e->pool[i]];
    s->oob = dpt_oob_score(NULL, oob_sum, oob_count, pool_y, n_pool, K);
    int sizes[MAX_SIZES];
    s->n_sizes = 0;
    for (int k = 1; k < G && s->n_sizes < MAX_SIZES - 1; k *= 2)
        sizes[s->n_sizes++] = k;
    sizes[s->n_sizes++] = G;
    for (int k = 0; k < s->n_sizes; k++)
        s->sizes[k] = sizes[k];
    st = dpt_bias_variance_by_size(probs, G, y, n, K, e->ec->vote, sizes, s->n_sizes,
                                   e->ec->max_subsets > 0 ? e->ec->max_subsets : 64,
                                   e->cfg->seed, s->bv01, s->bvsq);
out:
    free(probs), free(oob_sum), free(oob_count), free(pool_y);
    return st;
}

static void summary_free(bagging_summary *s) {
    free(s->member_acc), free(s->score), free(s->pred);
}

static void print_summary(const dpt_ens *e, const bagging *b, const bagging_summary *s) {
    FILE *f = e->log;
    int G = e->n_jobs;
    const char *vote = e->ec->vote == DPT_VOTE_SOFT ? "soft" : "hard";
    fprintf(f, "bagging: %d members, %s vote, %lld %s draws from %lld samples each\n", G, vote,
            (long long)b->m, e->ec->no_bootstrap ? "distinct" : "bootstrap",
            (long long)e->n_pool);
    fprintf(f, "  member  test acc  test loss  epochs  in-bag distinct\n");
    for (int m = 0; m < G; m++) {
        int64_t distinct = 0;
        for (int64_t i = 0; i < e->n_pool; i++)
            distinct += b->out[m].in_bag[i] > 0;
        fprintf(f, "  %6d  %8.4f  %9.4f  %6.0f  %lld\n", m, s->member_acc[m], s->member_loss[m],
                b->out[m].scalars[S_EPOCHS], (long long)distinct);
    }
    fprintf(f, "  ensemble of the first m members (test acc):");
    for (int m = 0; m < G; m++)
        fprintf(f, " %d:%.4f", m + 1, s->acc_by_members[m]);
    fprintf(f, "\n  bias-variance on the test set, ensembles of s members (%s vote):\n", vote);
    fprintf(f, "     s  0-1 loss    bias  variance  |  sq loss  bias^2  variance\n");
    for (int k = 0; k < s->n_sizes; k++)
        fprintf(f, "  %4.0f  %8.4f  %6.4f  %8.4f  |  %7.4f  %6.4f  %8.4f\n", s->sizes[k],
                s->bv01[k].loss, s->bv01[k].bias, s->bv01[k].variance, s->bvsq[k].loss,
                s->bvsq[k].bias, s->bvsq[k].variance);
    fprintf(f, "oob score %.4f on %lld samples out of bag at least once (%lld never out of bag)\n",
            s->oob.score, (long long)s->oob.n_scored, (long long)s->oob.n_never);
    fprintf(f, "ensemble test accuracy %.4f (mean member %.4f, best member %.4f)\n", s->test_acc,
            s->mean_acc, s->best_acc);
    fflush(f);
}

static void write_bias_variance(dpt_h5w *w, const char *group, const dpt_bias_variance *bv,
                                int n) {
    double v[3][MAX_SIZES];
    for (int k = 0; k < n; k++)
        v[0][k] = bv[k].loss, v[1][k] = bv[k].bias, v[2][k] = bv[k].variance;
    static const char *const names[3] = {"loss", "bias", "variance"};
    int64_t len = n;
    for (int q = 0; q < 3; q++) {
        char obj[128];
        snprintf(obj, sizeof obj, "ensemble/bias_variance/%s/%s", group, names[q]);
        dpt_h5w_f64(w, obj, v[q], 1, &len);
    }
}

static dpt_status write_results(const dpt_ens *e, const bagging *b, const bagging_summary *s) {
    char path[4096];
    snprintf(path, sizeof path, "%s/results.h5", e->cfg->out);
    dpt_h5w w;
    if (dpt_h5w_open(&w, path) != DPT_OK)
        return w.st;
    int64_t G = e->n_jobs, one = 1, ns = s->n_sizes, nk[2] = {e->n_test, e->K};
    dpt_h5w_str(&w, "ensemble/kind", "bagging");
    dpt_h5w_str(&w, "ensemble/vote", e->ec->vote == DPT_VOTE_SOFT ? "soft" : "hard");
    dpt_h5w_f64(&w, "ensemble/test_acc", &s->test_acc, 0, &one);
    dpt_h5w_f64(&w, "ensemble/member_test_acc", s->member_acc, 1, &G);
    dpt_h5w_f64(&w, "ensemble/member_test_loss", s->member_loss, 1, &G);
    dpt_h5w_f64(&w, "ensemble/acc_by_members", s->acc_by_members, 1, &G);
    dpt_h5w_f64(&w, "ensemble/oob_score", &s->oob.score, 0, &one);
    dpt_h5w_i64(&w, "ensemble/oob_n_scored", &s->oob.n_scored, 0, &one);
    dpt_h5w_i64(&w, "ensemble/oob_n_never", &s->oob.n_never, 0, &one);
    dpt_h5w_f32(&w, "ensemble/test_probs", s->score, 2, nk);
    dpt_h5w_i64(&w, "ensemble/n_test", &nk[0], 0, &one);
    for (int m = 0; m < G; m++) {
        char obj[96];
        snprintf(obj, sizeof obj, "ensemble/member_test_probs/%02d", m);
        dpt_h5w_f32(&w, obj, b->out[m].test_probs, 2, nk);
    }
    dpt_h5w_f64(&w, "ensemble/bias_variance/n_members", s->sizes, 1, &ns);
    write_bias_variance(&w, "zero_one", s->bv01, s->n_sizes);
    write_bias_variance(&w, "squared", s->bvsq, s->n_sizes);
    return dpt_h5w_close(&w, 1);
}

dpt_status dpt__ens_bagging(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                            dpt_group *world, int *preempted) {
    dpt_ens e;
    bagging b = {0};
    dpt_status st = dpt__ens_open(&e, cfg, ec, world, ec->members, "member", "members", DPT_ENS_GROUPS);
    if (st == DPT_OK) {
        double f = ec->max_samples > 0 ? ec->max_samples : 1.0;
        b.m = (int64_t)floor(f * (double)e.n_pool);
        if (b.m < 1 || (ec->no_bootstrap && b.m > e.n_pool))
            st = dpt_errorf(DPT_EINVAL, "--max-samples %g: %lld draws from %lld samples", f,
                            (long long)b.m, (long long)e.n_pool);
    }
    /* every rank keeps slots for all members: filled on their leaders and on world rank 0 */
    if (st == DPT_OK) {
        b.bytes = member_bytes(&e);
        b.blob = calloc((size_t)e.n_jobs, b.bytes);
        b.out = calloc((size_t)e.n_jobs, sizeof *b.out);
        b.in_bag_idx = malloc((size_t)(b.m > e.n_pool ? b.m : e.n_pool) * sizeof(int64_t));
        b.oob_idx = malloc((size_t)e.n_pool * sizeof(int64_t));
        if (!b.blob || !b.out || !b.in_bag_idx || !b.oob_idx)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the results of %d members", e.n_jobs);
        for (int j = 0; st == DPT_OK && j < e.n_jobs; j++)
            bind(&b.out[j], b.blob + (size_t)j * b.bytes, &e);
    }
    if ((st = dpt_group_agree(world, st)) == DPT_OK)
        st = dpt__ens_run_jobs(&e, train_member, &b);
    *preempted = e.preempted;
    for (int j = 0; st == DPT_OK && !e.preempted && j < e.n_jobs; j++)
        st = dpt_rank_groups_to_root(&e.rg, j, b.out[j].scalars, b.bytes);
    st = dpt_group_agree(world, st);
    if (st == DPT_OK && !e.preempted && world->world_rank == 0) {
        bagging_summary s = {0};
        st = summarize(&e, &b, &s);
        if (st == DPT_OK)
            print_summary(&e, &b, &s);
        if (st == DPT_OK && cfg->out && *cfg->out)
            st = write_results(&e, &b, &s);
        if (st == DPT_OK) {
            int *ids = malloc((size_t)e.n_jobs * sizeof *ids);
            double *weights = malloc((size_t)e.n_jobs * sizeof *weights);
            for (int j = 0; ids && weights && j < e.n_jobs; j++)
                ids[j] = j, weights[j] = 1.0;
            st = ids && weights ? dpt__ens_write_manifest(&e, "bagging", ec->vote, ids, weights,
                                                          e.n_jobs)
                                : dpt_errorf(DPT_ENOMEM, "cannot allocate the manifest");
            free(ids), free(weights);
        }
        summary_free(&s);
    }
    st = dpt_group_agree(world, st);
    free(b.blob), free(b.out), free(b.in_bag_idx), free(b.oob_idx);
    dpt__ens_close(&e);
    return st;
}
