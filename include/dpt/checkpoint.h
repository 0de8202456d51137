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
} dpt_checkpoint;

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

#ifdef __cplusplus
}
#endif
#endif
