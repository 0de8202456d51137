/* The rank-group runner of ensembles and cross-validation (train): data loaded once per rank,
 * the groups and their job queue, one member's training, the manifest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/h5file.h"
#include "ens_impl.h"

dpt_status dpt__ens_open(dpt_ens *e, const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                         dpt_group *world, int n_jobs, const char *job_name, const char *dir,
                         int flags) {
    memset(e, 0, sizeof *e);
    e->cfg = cfg, e->ec = ec, e->world = world;
    e->log = cfg->log ? cfg->log : stdout;
    e->n_jobs = n_jobs;
    e->job_name = job_name;
    e->dir = dir;
    e->rg.leaders = MPI_COMM_NULL;
    int use_groups = flags & DPT_ENS_GROUPS;
    dpt_status st = DPT_OK;
    if (!(flags & DPT_ENS_NO_DATA)) {
        st = dpt_train_load_data(cfg, world, &e->data, &e->pool, &e->n_pool, &e->val, &e->n_val);
        if (st != DPT_OK)
            return st;
        e->K = e->data.train.K;
        e->n_test = cfg->test_samples > 0 && cfg->test_samples < e->data.test.N
                        ? cfg->test_samples
                        : e->data.test.N;
    }
    char what[64];
    snprintf(what, sizeof what, "%ss", job_name);
    if ((st = dpt_rank_groups_init(&e->rg, world, use_groups ? n_jobs : 1,
                                     (flags & DPT_ENS_FIT) != 0, what)) != DPT_OK)
        return st;
    if (!use_groups)
        e->rg.n_jobs = n_jobs; /* every job on the single group, in order */
    if (world->world_rank == 0 && !cfg->quiet) {
        char layout[4096];
        dpt_rank_groups_describe(&e->rg, job_name, layout, sizeof layout);
        fprintf(e->log, "dptrain: %d %s%s on %d rank%s: %d group%s of %d rank%s\n%s", n_jobs,
                job_name, n_jobs > 1 ? "s" : "", world->world_size,
                world->world_size > 1 ? "s" : "", e->rg.n_groups, e->rg.n_groups > 1 ? "s" : "",
                e->rg.group_size, e->rg.group_size > 1 ? "s" : "", layout);
        if (!(flags & DPT_ENS_NO_DATA))
            fprintf(e->log, "dptrain: %s on %s (%lld train, %lld val, %lld test)\n", cfg->model,
                    e->data.source, (long long)e->n_pool, (long long)e->n_val,
                    (long long)e->n_test);
        fflush(e->log);
    }
    return DPT_OK;
}

void dpt__ens_close(dpt_ens *e) {
    dpt_rank_groups_free(&e->rg);
    free(e->pool), free(e->val);
    dpt_data_free(&e->data);
}

dpt_status dpt__ens_run_jobs(dpt_ens *e, dpt_ens_job_fn fn, void *ctx) {
    for (int j = e->rg.split.group; j < e->n_jobs && !e->preempted; j += e->rg.n_groups) {
        dpt_status st = fn(e, ctx, &e->rg.member, j);
        if (st != DPT_OK) {
            char what[64];
            snprintf(what, sizeof what, "%s %d", e->job_name, j);
            dpt_rank_groups_abort(&e->rg, what, st);
        }
    }
    dpt_status st = dpt_rank_groups_wait_all(&e->rg);
    int64_t stopped = e->preempted && e->rg.member.leader; /* counted once per group */
    if (st == DPT_OK)
        st = dpt_group_sum_i64(e->world, DPT_SCOPE_WORLD, &stopped, 1);
    e->preempted = st == DPT_OK && stopped > 0;
    return st;
}

void dpt__ens_member_dir(const dpt_ens *e, int job, char *buf, size_t n) {
    if (e->cfg->out && *e->cfg->out)
        snprintf(buf, n, "%s/%s/%02d", e->cfg->out, e->dir, job);
    else if (n > 0)
        buf[0] = '\0';
}

dpt_status dpt__ens_train(dpt_ens *e, dpt_group *g, int job, const int64_t *train_idx,
                          int64_t n_train, const int64_t *val_idx, int64_t n_val,
                          float *test_probs, dpt_trainer **out, dpt_train_result *res) {
    char dir[4096], label[64];
    dpt__ens_member_dir(e, job, dir, sizeof dir);
    snprintf(label, sizeof label, "%s %d", e->job_name, job);
    dpt_trainer_job tj = {.data = &e->data, .train_idx = train_idx, .n_train = n_train,
                          .val_idx = val_idx, .n_val = n_val, .member = (uint32_t)job,
                          .label = label, .out = dir[0] ? dir : NULL};
    char from[4600];
    int found = 0;
    if (e->cfg->resume_jobs) {
        /* every rank reads the same files and so picks the same one */
        dpt_train_resume_job(e->cfg->resume_jobs, job, g->leader ? stderr : NULL, from,
                             sizeof from, &found);
        if (found)
            tj.resume_from = from;
        if (g->leader && !e->cfg->quiet) {
            fprintf(e->log, "dptrain: %s: %s%s\n", label, found ? "resuming from " : "starting",
                    found ? from : " (no checkpoint yet)");
            fflush(e->log);
        }
    }
    dpt_status st = dpt_trainer_create(out, e->cfg, g, &tj);
    if (st == DPT_OK)
        st = dpt_trainer_fit(*out, res);
    if (st == DPT_OK && res->preempted) {
        e->preempted = 1;
        return DPT_OK;
    }
    dpt_eval_result ev;
    if (st == DPT_OK)
        st = dpt_trainer_evaluate(*out, &e->data.test, NULL, e->n_test, test_probs, &ev);
    return st;
}

dpt_status dpt__ens_write_manifest(const dpt_ens *e, const char *kind, dpt_vote vote,
                                   const int *jobs, const double *weight, int n) {
    if (e->world->world_rank != 0 || !e->cfg->out || !*e->cfg->out)
        return DPT_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/ensemble.h5", e->cfg->out);
    dpt_h5w w;
    if (dpt_h5w_open(&w, path) != DPT_OK)
        return w.st;
    dpt_h5w_attr_str(&w, "/", "format", DPT_MANIFEST_FORMAT);
    dpt_h5w_attr_i64(&w, "/", "version", DPT_MANIFEST_VERSION);
    dpt_h5w_attr_str(&w, "/", "kind", kind);
    dpt_h5w_attr_str(&w, "/", "vote", vote == DPT_VOTE_SOFT ? "soft" : "hard");
    dpt_h5w_attr_i64(&w, "/", "n_members", n);
    int64_t len = n;
    dpt_h5w_f64(&w, "weights", weight, 1, &len);
    int64_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids) {
        dpt_h5w_close(&w, 0);
        return dpt_errorf(DPT_ENOMEM, "%s: out of memory", path);
    }
    for (int m = 0; m < n; m++)
        ids[m] = jobs[m];
    dpt_h5w_i64(&w, "member_ids", ids, 1, &len);
    free(ids);
    dpt_h5w_group(&w, "members");
    for (int m = 0; m < n; m++) {
        char obj[64], rel[64];
        snprintf(obj, sizeof obj, "members/%02d", m);
        snprintf(rel, sizeof rel, "members/%02d/checkpoints/final.h5", jobs[m]);
        dpt_h5w_group(&w, obj);
        dpt_h5w_attr_str(&w, obj, "path", rel);
        dpt_h5w_attr_f64(&w, obj, "weight", weight[m]);
    }
    return dpt_h5w_close(&w, 1);
}

dpt_status dpt_ensemble_run(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                            dpt_group *world, int *preempted) {
    int ignored;
    if (!preempted)
        preempted = &ignored;
    *preempted = 0;
    switch (ec->kind) {
    case DPT_ENS_BAGGING:
        return dpt__ens_bagging(cfg, ec, world, preempted);
    case DPT_ENS_BOOSTING:
        return dpt__ens_boosting(cfg, ec, world, preempted);
    case DPT_ENS_CV:
        return dpt__ens_crossval(cfg, ec, world, preempted);
    }
    return dpt_group_agree(world, dpt_errorf(DPT_EINVAL, "unknown ensemble kind %d", ec->kind));
}
