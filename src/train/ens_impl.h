/* Shared machinery of the ensemble and cross-validation drivers (train, internal): the data every
 * rank loads once, the rank groups, the job queue, one member's training and the files. */
#ifndef DPT_ENS_IMPL_H
#define DPT_ENS_IMPL_H

#include "train_impl.h"

typedef struct {
    const dpt_train_cfg *cfg;
    const dpt_ensemble_cfg *ec;
    dpt_group *world;
    FILE *log;
    dpt_data data;
    int64_t *pool, n_pool; /* training samples left after the validation split */
    int64_t *val, n_val;   /* the shared validation split (early stopping); may be empty */
    int64_t n_test, K;
    dpt_rank_groups rg;
    int n_jobs;
    const char *job_name;  /* "member", "round", "fold", "point" */
    const char *dir;       /* "members", "points" */
    int preempted;         /* a stop request ended a job of this rank's group; after
                            * dpt__ens_run_jobs: of any group (equal on every rank) */
} dpt_ens;

enum {
    DPT_ENS_GROUPS = 1,  /* one group per job, min(jobs, ranks) groups; else one group of all */
    DPT_ENS_NO_DATA = 2, /* jobs load their own data (their options may differ) */
    DPT_ENS_FIT = 4,     /* fewer groups when min(jobs, ranks) does not divide the ranks */
};
/* Collective over world: loads the data (unless DPT_ENS_NO_DATA), forms the groups and prints the
 * layout on world rank 0. Jobs write into OUT/DIR/NN (dir: "members", "points"). */
dpt_status dpt__ens_open(dpt_ens *e, const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                         dpt_group *world, int n_jobs, const char *job_name, const char *dir,
                         int flags);
void dpt__ens_close(dpt_ens *e);

typedef dpt_status (*dpt_ens_job_fn)(dpt_ens *e, void *ctx, dpt_group *g, int job);
/* Runs this rank's jobs in order on its group; a failed job aborts the launch naming it, a
 * pre-empted one (e->preempted) ends the group's queue. Then waits for every group and agrees
 * on e->preempted over the world: when set, the drivers write no results. */
dpt_status dpt__ens_run_jobs(dpt_ens *e, dpt_ens_job_fn fn, void *ctx);

/* OUT/DIR/NN, or "" without --out. */
void dpt__ens_member_dir(const dpt_ens *e, int job, char *buf, size_t n);

/* Trains one job's model on group g: a trainer over train_idx (val_idx for metrics and early
 * stopping), fitted; then test probabilities (n_test, K) into test_probs. The caller saves and
 * destroys *out. When a stop request ended the training (res->preempted, the checkpoint is
 * written), e->preempted is set and nothing is evaluated: the caller stops too. Collective over
 * g. */
dpt_status dpt__ens_train(dpt_ens *e, dpt_group *g, int job, const int64_t *train_idx,
                          int64_t n_train, const int64_t *val_idx, int64_t n_val,
                          float *test_probs, dpt_trainer **out, dpt_train_result *res);

/* Writes OUT/ensemble.h5: the member checkpoints (relative to OUT) and their weights, the vote.
 * World rank 0 only; DPT_OK elsewhere or without --out. */
dpt_status dpt__ens_write_manifest(const dpt_ens *e, const char *kind, dpt_vote vote,
                                   const int *jobs, const double *weight, int n);

/* The drivers (ens_bagging.c, ens_boosting.c, ens_crossval.c), dispatched by dpt_ensemble_run. */
dpt_status dpt__ens_bagging(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec, dpt_group *world,
                            int *preempted);
dpt_status dpt__ens_boosting(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                             dpt_group *world, int *preempted);
dpt_status dpt__ens_crossval(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                             dpt_group *world, int *preempted);

#endif
