/* Checkpoints (io): the HDF5 layout of DESIGN §5, written atomically (NAME.tmp, fsync, rename)
 * and read back with validation of format, version and every shape. Readable with h5py/h5dump:
 *   /                 attrs format="dptrain-checkpoint", version, model_spec, input_shape,
 *                     epoch, step, seed, config, data_source
 *   /params/NN_kind/{weight,bias}     PyTorch layouts (a view per model segment)
 *   /buffers/NN_kind/{running_mean,running_var}
 *   /data/norm_mean, /data/norm_std   the input normalization the model was trained with
 *   /optimizer        attrs kind, step, hyper-parameters; one dataset per state slot
 *   /metrics/<column> per-epoch history (float64)
 *   /member           attrs kind ("bagging", "boosting", "cv"), id, alpha (boosting);
 *                     datasets train_indices (in-bag draws or the fold's training samples, in
 *                     the order trained) and heldout_indices (out of bag, or the fold)
 *   /train            (full-state checkpoints, docs/resume.md) attrs: the position (global_step,
 *                     epoch, epoch_step), RNG member, early stopping, noise-scale averages,
 *                     counters; datasets best_params, best_buffers (early stopping's copy),
 *                     rank_buffers (R, n_buffers) and rank_sums (R, 3) when taken mid-epoch
 *   /config           attrs argv (the train options, '\x1f'-separated) and settings (the
 *                     resolved options a resume must not change, one "--name value" a line)
 * io knows the model's segment table but nothing of training logic. */
#ifndef DPT_CHECKPOINT_H
#define DPT_CHECKPOINT_H

#include <stdint.h>

#include "dpt/model.h"
#include "dpt/optim.h"
#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DPT_CHECKPOINT_FORMAT "dptrain-checkpoint"
#define DPT_CHECKPOINT_VERSION 1

typedef struct {
    const dpt_model *model;   /* required */
    const dpt_optim *optim;   /* NULL: no /optimizer group */
    int64_t epoch, step;
    uint32_t seed;
    const char *config;       /* the full configuration as text; NULL: "" */
    const char *data_source;  /* NULL: "" */
    int64_t channels;         /* entries of norm_mean / norm_std; 0: none */
    const double *norm_mean, *norm_std;
    int n_metrics;            /* columns of the per-epoch history */
    int64_t metric_rows;
    const char *const *metric_names;
    const double *const *metric_values; /* metric_values[col][row] */
    const char *member_kind;  /* NULL: no /member group */
    int64_t member_id;
    const int64_t *member_train_idx, *member_heldout_idx;
    int64_t member_n_train, member_n_heldout;
    double member_alpha;      /* NaN: not written */
    const struct dpt_checkpoint_state *state; /* NULL: no /train group (weights only) */
    const char *config_argv;     /* NULL: no /config group */
    const char *config_settings; /* NULL: "" */
} dpt_checkpoint;

/* Everything beyond weights, optimizer and history that a bit-exact continuation needs. The
 * sampler, augmentation and dropout are counter-based (keys (seed, purpose, member), counters
 * (epoch or global step, sample index)), so the position and the member are their whole state.
 * Saving borrows the arrays; dpt_checkpoint_load_state allocates them (free with
 * dpt_checkpoint_state_free). */
typedef struct dpt_checkpoint_state {
    int64_t global_step;    /* optimizer steps done: schedule position, dropout counter */
    int64_t epoch;          /* epoch in progress, 0-based: sampler and augmentation counter */
    int64_t epoch_step;     /* steps of that epoch done (0 .. steps per epoch) */
    uint32_t member;        /* RNG key member (the seed is the root attribute) */
    int64_t images;         /* images trained so far */
    double train_seconds, elapsed; /* training time and wall time so far (metrics.csv) */
    double last_lr;         /* lr of the last step (the epoch row's lr) */
    int64_t skipped_in_row, skipped_total; /* --skip-nonfinite counters */
    int64_t early_stopped;  /* 1: early stopping ended the run */
    int64_t es_since_best, es_best_epoch;
    double es_best_loss;
    float *es_params, *es_buffers; /* early stopping's best weights; NULL: none */
    double noise_decay, noise_grad_sq, noise_trace, noise_decay_pow; /* dpt_noise_ema */
    int64_t noise_count;
    /* Per rank, for checkpoints taken inside an epoch: batch-norm running statistics are still
     * each rank's own there (local BN syncs at the epoch's end), and so are the running sums of
     * the epoch's training loss. ranks 0: an epoch boundary (every rank alike, sums zero). */
    int64_t ranks;
    float *rank_buffers;    /* (ranks, n_buffers) */
    double *rank_sums;      /* (ranks, 3): loss sum, correct, count */
    /* filled by dpt_checkpoint_load_state: the history (n_metrics columns of metric_rows) */
    int64_t metric_rows;
    double *metrics;        /* metrics[col * metric_rows + row] */
} dpt_checkpoint_state;

/* Writes `c` to `path` atomically. Errors name the file; on error nothing exists under `path`
 * that was not there before (an older checkpoint stays intact). */
dpt_status dpt_checkpoint_save(const char *path, const dpt_checkpoint *c);

/* What dpt_checkpoint_load returns besides the model. */
typedef struct {
    int64_t epoch, step;
    uint32_t seed;
    int64_t channels;
    double norm_mean[16], norm_std[16];
    char data_source[512];
    int64_t num_classes;      /* extent of the model's output */
    char member_kind[32];     /* "" when the checkpoint has no /member group */
    int64_t member_id;
    double member_alpha;      /* NaN when absent */
} dpt_checkpoint_info;

/* Builds the model recorded in `path` (its spec and input shape) for batches of up to
 * `max_batch` rows and loads its parameters and buffers, validating format, version and every
 * shape. *out is NULL on error; the message names the file and the object. */
dpt_status dpt_checkpoint_load(const char *path, int64_t max_batch, dpt_model **out,
                               dpt_checkpoint_info *info);

/* Loads the full state of `path` into an existing model and optimizer for a resumed run:
 * parameters, buffers (the group average; per-rank rows are in st->rank_buffers), optimizer
 * slots and step (dpt_optim_state_import validates kind, hyper-parameters, slot names, sizes),
 * the /train state and the history columns `metric_names`. The model spec must equal the
 * saved one. DPT_EFORMAT naming the file when the checkpoint holds no /train group (a weights-only
 * file). Local. On error st holds nothing to free. */
dpt_status dpt_checkpoint_load_state(const char *path, dpt_model *m, dpt_optim *o, int n_metrics,
                                     const char *const *metric_names, int64_t n_params,
                                     dpt_checkpoint_state *st);
void dpt_checkpoint_state_free(dpt_checkpoint_state *st);

/* Reads what choosing a checkpoint to resume from needs, opening the file (a truncated file fails
 * here) and reading every dataset of it: the global step of /train, and malloc'd copies of
 * /config's argv and settings. Local. */
dpt_status dpt_checkpoint_read_config(const char *path, int64_t *global_step, char **argv,
                                      char **settings);

/* Test hook (docs/resume.md): when the environment variable DPT_TEST_SLOW_SAVE_MS is a positive
 * number, dpt_checkpoint_save sleeps that long after writing everything to NAME.tmp and before
 * closing, fsyncing and renaming it, so that a kill in tests/cli/test_resume.sh lands inside a
 * checkpoint write about half of the time. */
#define DPT_TEST_SLOW_SAVE_ENV "DPT_TEST_SLOW_SAVE_MS"

#ifdef __cplusplus
}
#endif
#endif
