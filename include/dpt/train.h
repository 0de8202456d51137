/* Training (train): the step loop of DESIGN §2 over one rank group, evaluation, early stopping,
 * the final checkpoint. Does no argument parsing: the CLI fills dpt_train_cfg. Collective over
 * the group: every rank must pass an equal configuration (the CLI checks this by hash). */
#ifndef DPT_TRAIN_H
#define DPT_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "dpt/augment.h"
#include "dpt/ensemble.h"
#include "dpt/data.h"
#include "dpt/model.h"
#include "dpt/optim.h"
#include "dpt/schedule.h"
#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dpt_group;

/* ---- Progress (the CLI draws it; train only reports numbers) ---------------------------- */

typedef struct {
    const char *label;   /* "member 3" inside an ensemble, "" for a plain run */
    int64_t epoch, epochs;          /* 0-based epoch, configured epochs */
    int64_t step, steps;            /* 0-based step within the epoch, steps per epoch */
    int64_t global_step;            /* optimizer steps done, after this step */
    double loss, acc;               /* running training means of this epoch */
    double images_per_s, eta_seconds;
} dpt_step_report;

/* One row of metrics.csv: the trainer's per-epoch history. */
typedef struct {
    int64_t epoch, step; /* 1-based epoch, optimizer steps done */
    double lr;
    double train_loss, train_acc; /* running means over the epoch's training batches */
    double val_loss, val_acc;     /* NaN without a validation list */
    double test_loss, test_acc;
    double images_per_s, seconds; /* training throughput of the epoch, wall time since start */
    /* Gradient noise scale (--noise-scale-every, docs/noise-scale.md): moving averages of |G|^2
     * and tr(Sigma) at the epoch's end, and B_simple = trace_sigma / grad_sq; NaN when off. */
    double grad_sq, trace_sigma, b_simple;
} dpt_epoch_report;

/* Called on the group leader only, never inside a collective. NULL members: nothing shown. */
typedef struct {
    void (*step)(void *ctx, const dpt_step_report *r);
    void (*epoch)(void *ctx, const char *label, const dpt_epoch_report *r);
    void (*message)(void *ctx, const char *label, const char *text); /* early stop etc. */
    void *ctx;
} dpt_progress;

typedef enum {
    DPT_BN_LOCAL, /* per-rank batch statistics (PyTorch DDP's default) */
    DPT_BN_SYNC,  /* statistics summed over the group (SyncBatchNorm) */
    DPT_BN_GHOST, /* statistics over fixed ghost batches of bn_ghost samples (Hoffer et al.) */
} dpt_bn_mode;

/* Where the ranks keep the samples (--data-copy). */
typedef enum {
    DPT_DATA_COPY_NODE = 0, /* one copy per node, in shared memory, read by the node's ranks */
    DPT_DATA_COPY_RANK = 1, /* every rank reads the files into its own memory */
} dpt_data_copy;

typedef struct {
    const char *model;      /* spec or preset name */
    const char *data;       /* --data value (fashion-mnist, sample, a directory, an .h5 file) */
    const char *data_search;/* search path for "sample" */
    dpt_data_copy data_copy;/* node (default) or rank; the samples are the same bits either way */
    int stream;             /* 1: train's samples stay in the .h5 --data file, read per step */
    int64_t stream_window;  /* with stream: > 0 shuffles chunks, then within windows of this
                             * many chunks (dpt_sampler_cfg.window_blocks); 0: exact shuffle */
    int64_t classes;        /* --classes; 0: the model's last dense(N), else the data's own count */
    const char *out;        /* run directory; NULL or "" writes nothing */
    int64_t epochs;
    int64_t batch;          /* global batch b_g */
    int64_t micro_batch;    /* 0: the whole local slice in one pass */
    int64_t eval_batch;     /* rows per evaluation forward; 0: 64 */
    int64_t test_samples;   /* > 0: evaluate on the first this many test samples only */
    int64_t max_steps;      /* > 0: stop after this many optimizer steps (tests, smoke runs) */
    uint32_t seed;
    int drop_last;
    dpt_optim_cfg optim;
    /* LR schedule in epochs, converted to optimizer steps once the steps per epoch are known. */
    dpt_schedule_kind schedule;
    double gamma;           /* step / exponential decay factor (per epoch for exponential) */
    double step_epochs;     /* step decay period */
    double final_lr;        /* cosine end value */
    double warmup_epochs;   /* linear warmup length; 0: none */
    double warmup_start;    /* warmup start fraction; 0: 1/3 (torch) */
    int64_t lr_ref_batch;   /* > 0: scale lr from this batch to `batch` by lr_scaling */
    dpt_lr_scaling lr_scaling; /* linear (default), sqrt or none */
    double clip_norm, clip_value; /* 0: off */
    double val_fraction;    /* stratified held-out fraction of train; 0: none */
    int64_t early_stop;     /* patience in epochs on validation loss; 0: off */
    dpt_augment_cfg augment;/* seed and member are filled from this config */
    double label_smoothing;
    dpt_bn_mode bn;
    int64_t bn_ghost;       /* ghost batch size for DPT_BN_GHOST */
    double bucket_mb;       /* gradient bucket size; 0: the default */
    int no_overlap;         /* 1: one blocking allreduce after backward */
    int deterministic;      /* exact fixed-point gradient sums: bit-identical across rank counts */
    int threads;            /* threads per rank (dpt_model_cfg.threads); 0 means 1 */
    int64_t noise_scale_every; /* > 0: estimate the gradient noise scale every this many steps */
    int profile;            /* print the per-phase time breakdown at the end */
    int quiet;              /* no run header, no profile */
    FILE *log;              /* the leader's output (header, profile); NULL: stdout */
    dpt_progress progress;  /* per-step and per-epoch reports to the CLI; zero: none */
    const char *config_text;/* the command line and resolved options, for checkpoints */
    /* Full-state checkpoints, resume, pre-emption, divergence (docs/resume.md). */
    int64_t checkpoint_every;   /* > 0: OUT/checkpoints/step-NNNNNN.h5 every this many units */
    int checkpoint_epochs;      /* the unit: 1 epochs, 0 optimizer steps */
    int64_t keep;               /* periodic checkpoints kept (the newest); 0: DPT_KEEP_DEFAULT */
    const char *resume_from;    /* a checkpoint (dpt_train_resume_select) to continue; NULL: none */
    const char *resume_jobs;    /* ensembles and cv: the earlier run's folder; each member or fold
                                 * continues from the newest readable checkpoint in its
                                 * DIR/members/NN (dpt_train_resume_job), else starts; NULL: none */
    const char *config_argv;    /* the train options, '\x1f'-separated: /config/argv */
    const char *config_settings;/* resolved options a resume must not change: /config/settings */
    int64_t skip_nonfinite;     /* > 0: skip up to this many non-finite steps in a row; 0: stop */
    /* Non-zero on any rank (a signal handler sets it): the ranks agree at the next step boundary,
     * write a checkpoint and stop (dpt_train_result.preempted). NULL: not watched. */
    const volatile sig_atomic_t *stop_request;
} dpt_train_cfg;

#define DPT_KEEP_DEFAULT 3

/* Fills the defaults of every field (epochs 10, batch 128, adam lr 1e-3, seed 1, ...). */
void dpt_train_cfg_defaults(dpt_train_cfg *cfg);

/* ---- The trainer object ----------------------------------------------------------------- */

/* What one trainer trains: borrowed data and index lists (dataset indices into data->train;
 * train_idx may repeat an index, as a bootstrap sample does), and who it is. */
typedef struct {
    const dpt_data *data; /* loaded and normalized (dpt_train_load_data) */
    const int64_t *train_idx;     /* n_train >= 1 */
    int64_t n_train;
    const int64_t *val_idx;       /* validation list for metrics and early stopping; may be NULL */
    int64_t n_val;
    uint32_t member;              /* RNG member (< 2^20): initialization, order, augmentation,
                                   * dropout all depend on it; 0 for a plain run */
    const char *label;            /* "member 3" in messages and progress; NULL: "" */
    const char *out;              /* run directory (metrics.csv, checkpoints/); NULL: none */
    const char *resume_from;      /* this job's checkpoint to continue; NULL: cfg->resume_from */
} dpt_trainer_job;

typedef struct dpt_trainer dpt_trainer;

/* Collective over the group g (borrowed; every rank passes equal cfg and job). Builds the model
 * (identical initial weights on every rank, checked), optimizer, schedule, buckets and batch
 * buffers; creates job->out. On failure *out is NULL and the status was agreed over g. */
dpt_status dpt_trainer_create(dpt_trainer **out, const dpt_train_cfg *cfg, struct dpt_group *g,
                              const dpt_trainer_job *job);
void dpt_trainer_destroy(dpt_trainer *t); /* local; NULL is fine */

/* Collective. Trains one epoch and evaluates (validation list, test split), appends the row to
 * the history and rewrites metrics.csv. *done = 1 when training is over: the configured epochs,
 * --max-steps, or early stopping (the best weights are then restored). */
dpt_status dpt_trainer_epoch(dpt_trainer *t, dpt_epoch_report *row, int *done);

/* Loss and accuracy of the current model in evaluation mode on samples idx[0..n) of ds (idx
 * NULL: 0..n-1). Collective over the group. The samples are cut into fixed chunks of eval_batch
 * in list order, dealt to the ranks round robin, so every sample's forward runs in the same
 * batch whatever the rank count: probabilities, correct counts and the loss are bit-identical
 * for any group size. probs: NULL, or (n, K) floats that receive softmax probabilities on every
 * rank. */
typedef struct {
    double loss, acc; /* mean cross-entropy, accuracy (NaN for n == 0) */
    int64_t n, correct;
} dpt_eval_result;
dpt_status dpt_trainer_evaluate(dpt_trainer *t, const dpt_dataset *ds, const int64_t *idx,
                                int64_t n, float *probs, dpt_eval_result *res);

/* Extra identity a member's checkpoint records (DESIGN §5 /member). */
typedef struct {
    const char *kind;              /* "bagging", "boosting", "cv"; NULL: a plain run */
    int64_t id;                    /* member, round or fold */
    const int64_t *train_idx;      /* in-bag / training indices (may repeat) */
    int64_t n_train;
    const int64_t *heldout_idx;    /* out-of-bag / validation fold */
    int64_t n_heldout;
    double alpha;                  /* boosting weight; NaN otherwise */
} dpt_member_info;

/* Local (group leader writes; others return DPT_OK): writes OUT/checkpoints/NAME atomically
 * with the model, optimizer, history, normalization and the member identity (may be NULL). */
dpt_status dpt_trainer_save(dpt_trainer *t, const char *name, const dpt_member_info *member,
                            char *path_out, size_t path_size);

/* Read access for drivers. The history is metrics.csv's table: columns epoch, step, lr,
 * train_loss, train_acc, val_loss, val_acc, test_loss, test_acc, images_per_s, seconds, grad_sq,
 * trace_sigma, b_simple. */
struct dpt_metrics_log;
dpt_model *dpt_trainer_model(dpt_trainer *t);
int64_t dpt_trainer_steps_per_epoch(const dpt_trainer *t);
const struct dpt_metrics_log *dpt_trainer_history(const dpt_trainer *t);

typedef struct {
    int64_t epochs_run, steps;
    double train_loss, train_acc;
    double val_loss, val_acc;     /* NaN without a validation split */
    double test_loss, test_acc;   /* of the final (or restored best) weights */
    double seconds, images_per_s;
    int64_t best_epoch;           /* epoch whose weights were kept (early stopping); -1: last */
    char checkpoint[4096];        /* path of the final model file, "" if none was written */
    int preempted;                /* stopped by cfg->stop_request after writing `checkpoint` */
    int64_t skipped_steps;        /* non-finite steps skipped (--skip-nonfinite) */
} dpt_train_result;

/* Collective. Trains every epoch, prints the profile if asked; fills res. */
dpt_status dpt_trainer_fit(dpt_trainer *t, dpt_train_result *res);

/* ---- Resume (resume.c, docs/resume.md) ----------------------------------------------------- */

/* The checkpoint `what` names: a file, or a run directory whose checkpoints/step-*.h5 and
 * final.h5 are read in full; the one with the most optimizer steps wins. An unreadable candidate
 * (truncated, corrupt, not full-state) is reported on `warn` (one line each; NULL: silent) and
 * skipped. Fills path (the file), *argv and *settings (malloc'd /config attributes) and run_dir
 * (the directory the checkpoint belongs to). Local; every rank may call it. */
dpt_status dpt_train_resume_select(const char *what, FILE *warn, char *path, size_t path_size,
                                   char *run_dir, size_t run_dir_size, char **argv,
                                   char **settings);

/* The checkpoint job `job` of an ensemble or cv run continues from: the newest readable one in
 * RUN/members/NN (dpt_train_resume_select, unreadable candidates reported on `warn`) into path;
 * *found 0 when the job has none yet (it starts afresh). Local; every rank may call it. */
dpt_status dpt_train_resume_job(const char *run, int job, FILE *warn, char *path,
                                size_t path_size, int *found);
/* The options of an ensemble or cv run in folder `run`: the /config attributes (malloc'd) of the
 * first member with a readable checkpoint, whose name goes to path. Local. */
dpt_status dpt_train_resume_jobs_config(const char *run, char *path, size_t path_size,
                                        char **argv, char **settings);
/* 1 when `dir` is the folder of an ensemble or cv run (it holds members/). */
int dpt_train_is_jobs_dir(const char *dir);

/* Removes all but the `keep` newest OUT/checkpoints/step-*.h5. Local (the group leader). */
dpt_status dpt_train_prune_checkpoints(const char *out, int64_t keep);

/* ---- Data ---------------------------------------------------------------------------------- */

/* Loads cfg->data for cfg->model's class count K: --classes, else N when the model ends in
 * dense(N), else the count the data declares (fashion-mnist and sample: 10; an HDF5 file: its
 * n_classes attribute). Never the largest label: data that declares no count (an IDX directory,
 * an HDF5 file without n_classes) under a model ending in dense(classes) is an error that says
 * how to give K, and a label outside [0, K) is named with its file, sample and value. Local. */
dpt_status dpt_train_open_data(const dpt_train_cfg *cfg, dpt_data *data);

/* The rows one forward of a training run on `ranks` ranks may hold: the larger of the micro-batch
 * (cfg->micro_batch, else the rank's share of cfg->batch) and the evaluation batch. The model's
 * memory is sized for them. */
int64_t dpt_train_model_rows(const dpt_train_cfg *cfg, int ranks);

/* Collective over g: loads cfg->data as dpt_train_open_data does, takes the stratified
 * validation split (cfg->val_fraction; *val_idx NULL when 0) and normalizes train and test with
 * the statistics of the training part. *train_idx and *val_idx are malloc'd (free them).
 * cfg->data_copy DPT_DATA_COPY_NODE: per node of g->world, its lowest rank reads the files into
 * a node-shared buffer (comm's dpt_node_buffer) and the node's other ranks map it, so the node
 * holds one copy; the block is released by dpt_data_free, which is then collective over the
 * node's ranks of g->world (free the data where every rank of g->world does). A file the reading
 * rank cannot read fails on every rank with its message. DPT_DATA_COPY_RANK: every rank reads
 * its own copy. Normalization is each rank's own either way. */
dpt_status dpt_train_load_data(const dpt_train_cfg *cfg, struct dpt_group *g,
                               dpt_data *data, int64_t **train_idx, int64_t *n_train,
                               int64_t **val_idx, int64_t *n_val);

/* ---- One plain run ------------------------------------------------------------------------ */

/* Trains on the group `g` (load data, create, fit, final.h5). Collective over the group. */
dpt_status dpt_train_run(const dpt_train_cfg *cfg, struct dpt_group *g, dpt_train_result *res);

/* Recomputes loss and accuracy of a checkpoint on the test split of `data`. Collective. */
dpt_status dpt_train_eval_checkpoint(const char *ckpt, const char *data, const char *data_search,
                                     struct dpt_group *g, double *loss, double *acc, int64_t *n);

/* ---- Ensembles and cross-validation as rank groups (ens_*.c) ------------------------------ */

typedef enum {
    DPT_ENS_BAGGING,  /* --ensemble bagging: G bootstrap members, soft or hard vote, OOB score */
    DPT_ENS_BOOSTING, /* --ensemble boosting: SAMME rounds, each trained by every rank */
    DPT_ENS_CV,       /* dptrain cv: one fold per group */
} dpt_ensemble_kind;

typedef struct {
    dpt_ensemble_kind kind;
    int members;        /* bagging: G >= 1 */
    double max_samples; /* bagging: draws per member = floor(F * n) as scikit-learn; 0: 1.0 */
    int no_bootstrap;   /* bagging: draw without replacement */
    dpt_vote vote;      /* bagging: soft (default) or hard */
    int rounds;         /* boosting: T >= 1 */
    double boost_lr;    /* boosting: eta > 0; 0: 1.0 */
    int folds;          /* cv: K >= 2 */
    int stratified, shuffle; /* cv: StratifiedKFold / KFold, shuffled or not */
    int max_subsets;    /* bias-variance: sub-ensembles per size; 0: 64 */
} dpt_ensemble_cfg;

/* Collective over `world` (every rank of the launch). Trains the members (folds, rounds) in rank
 * groups, writes OUT/members/NN/, OUT/results.h5 and, for ensembles, the manifest
 * OUT/ensemble.h5, and prints the results on world rank 0. An error in one member stops the
 * whole launch naming the member (dpt_rank_groups_abort). A stop request (cfg->stop_request, a
 * signal) stops each group that sees it at its next step with its member's checkpoint; that
 * group takes no further member, and once every group is done *preempted is 1 on every rank
 * and no results are written (resume with --resume OUT). preempted may be NULL. */
dpt_status dpt_ensemble_run(const dpt_train_cfg *cfg, const dpt_ensemble_cfg *ec,
                            struct dpt_group *world, int *preempted);

/* ---- Sweeps: batch sizes and any option on a grid (exp_sweep.c) -------------------------- */

typedef struct {
    int n_points;
    const dpt_train_cfg *points;   /* one full configuration per grid point */
    const char *const *labels;     /* "batch=256 weight-decay=0.0005" */
    int epochs_scaling_steps;      /* 1: every point trains the optimizer steps that the smallest
                                    * batch takes in --epochs epochs (Hoffer et al. 2017) */
    const char *out;               /* OUT: points/NN/, results.h5 /sweep, sweep.csv */
    int quiet;
    FILE *log;
} dpt_sweep_cfg;

/* Collective over `world`. Runs the points in rank groups (min(points, ranks) groups; queued
 * when there are more points), every point from the same initial weights (member 0 of the same
 * seed; their checksums are compared for points with the same model). Per point: final and best
 * test metrics, train loss and accuracy in evaluation mode on the whole training set, the
 * generalization gap, steps, time, checkpoint. */
dpt_status dpt_sweep_run(const dpt_sweep_cfg *sc, struct dpt_group *world);

/* ---- The loss along the line between two minima (exp_interpolate.c) ---------------------- */

typedef struct {
    const char *a, *b;             /* checkpoints of the same model, trained on the same data */
    const char *data, *data_search;
    int points;                    /* alphas, evenly spaced over [alpha_min, alpha_max]; >= 2 */
    double alpha_min, alpha_max;
    int bn_recompute;              /* 1: re-estimate batch-norm statistics at every alpha;
                                    * 0: interpolate them like the weights */
    int64_t bn_samples;            /* samples of the re-estimation pass; 0: 25600 */
    int64_t train_samples;         /* the first N training samples are evaluated; 0: 10000 */
    int64_t test_samples;          /* the first N test samples; 0: all */
    const char *csv, *h5;          /* outputs (NULL: none), written by world rank 0 */
} dpt_interp_cfg;

typedef struct {
    int n;
    double *alpha, *train_loss, *train_acc, *test_loss, *test_acc; /* n each, one allocation */
    int64_t n_train, n_test;
} dpt_interp_result;

/* Collective over g. x(alpha) = alpha * x_B + (1 - alpha) * x_A for every parameter (exact at
 * alpha 0 and 1), evaluated like `dptrain eval` (evaluation mode, fixed chunks): the same numbers
 * for any rank count. The re-estimation pass runs identically on every rank. */
dpt_status dpt_interpolate(const dpt_interp_cfg *c, struct dpt_group *g, dpt_interp_result *r);
void dpt_interp_result_free(dpt_interp_result *r);

/* ---- Saved models: checkpoints and ensemble manifests (predict.c) -------------------------- */

#define DPT_MANIFEST_FORMAT "dptrain-ensemble"
#define DPT_MANIFEST_VERSION 1

typedef enum { DPT_SPLIT_TEST, DPT_SPLIT_TRAIN, DPT_SPLIT_VAL } dpt_split;

typedef struct {
    int64_t n, K;
    float *probs;       /* (n, K): the model's (or the ensemble's combined) scores */
    int32_t *pred;      /* (n) */
    int32_t *labels;    /* (n) */
    double loss;        /* mean cross-entropy of a single model; NaN for an ensemble */
    double acc;
    int n_members;      /* 1 for a checkpoint */
    double *member_acc; /* (n_members) */
} dpt_predictions;

/* Collective over g. Evaluates a checkpoint or an ensemble manifest (recognized by its format
 * attribute) on a split of `data` in evaluation mode, exactly as training evaluated it: the
 * checkpoint's normalization, the same fixed evaluation chunks, the same combination of members.
 * Checks the input shape and the class count against the data first. DPT_SPLIT_VAL is the
 * held-out list a member's checkpoint records (its cv fold, or its out-of-bag samples).
 * max_samples > 0: only the first max_samples samples of the split (training's --test-samples). */
dpt_status dpt_predict(const char *path, const char *data, const char *data_search, dpt_split split,
                       int64_t max_samples, struct dpt_group *g, dpt_predictions *out);
void dpt_predictions_free(dpt_predictions *p);

#ifdef __cplusplus
}
#endif
#endif
