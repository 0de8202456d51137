/* Internal pieces of the train module shared by its files. */
#ifndef DPT_TRAIN_IMPL_H
#define DPT_TRAIN_IMPL_H

#include "dpt/checkpoint.h"
#include "dpt/data.h"
#include "dpt/comm.h"
#include "dpt/model.h"
#include "dpt/train.h"

/* Rows per evaluation forward. The model's arena holds every layer output for max(micro-batch,
 * evaluation batch) rows, so this is the usual per-rank batch: larger, it would size the arena of
 * every rank for rows training never uses (docs/memory.md). Fixed, since a forward pass is not
 * row-independent in the last bit. */
#define DPT_EVAL_BATCH_DEFAULT 64

/* Patience on the validation loss (train/early_stop.c). Keeps a copy of the best parameters and
 * buffers; a loss that is not strictly lower counts as no improvement. */
typedef struct {
    int64_t patience;   /* epochs without improvement before stopping; 0: off */
    int64_t since_best; /* epochs since the best one */
    int64_t best_epoch; /* 1-based; -1 before the first */
    double best_loss;
    float *params, *buffers;
    int64_t n_params, n_buffers;
} dpt_early_stop;

dpt_status dpt__early_stop_init(dpt_early_stop *es, int64_t patience, int64_t n_params,
                                int64_t n_buffers);
void dpt__early_stop_free(dpt_early_stop *es);
/* Records epoch `epoch` (1-based) with validation loss val_loss and the current weights; returns
 * 1 when patience has run out (then the best copy should be restored). */
int dpt__early_stop_update(dpt_early_stop *es, int64_t epoch, double val_loss,
                           const float *params, const float *buffers);
/* Copies the best weights back; returns 0 when there is nothing to restore. */
int dpt__early_stop_restore(const dpt_early_stop *es, float *params, float *buffers);

/* Scratch of dpt__evaluate: one evaluation batch of inputs and labels. */
typedef struct {
    int64_t eval_batch; /* rows per forward: the fixed chunk size */
    float *x;           /* (eval_batch, sample) */
    int32_t *labels;    /* (eval_batch) */
    float *probs;       /* (n, K) scratch reduced over the group, grown on demand */
    double *chunk_loss; /* per-chunk loss sums, grown on demand */
    int64_t probs_cap, chunks_cap;
} dpt_eval_scratch;

dpt_status dpt__eval_scratch_init(dpt_eval_scratch *s, int64_t eval_batch, int64_t sample);
void dpt__eval_scratch_free(dpt_eval_scratch *s);

/* The evaluation of dpt_trainer_evaluate for any model (training or loaded from a checkpoint):
 * fixed chunks of s->eval_batch in list order, dealt to the group's ranks round robin.
 * Collective over g->comm. */
dpt_status dpt__evaluate(dpt_model *m, const dpt_group *g, const dpt_dataset *ds,
                         const int64_t *idx, int64_t n, dpt_eval_scratch *s, float *probs,
                         dpt_eval_result *res);

/* The samples of cfg->data without split or normalization: with DPT_DATA_COPY_NODE collective
 * over g->world (one reader per node, the others map its buffer; the status is agreed over
 * g->world, and dpt_data_free of the result is collective over the node's ranks), with
 * DPT_DATA_COPY_RANK local (this rank reads its own copy; the caller agrees). */
dpt_status dpt__train_open_data(const dpt_train_cfg *cfg, dpt_group *g, dpt_data *data);
/* dpt_train_load_data over the samples of `base` (an opened dpt_data, or NULL to open them):
 * *data is then a view of base's block with its own normalization (dpt_data_attach), so that jobs
 * of several rank groups (sweep points) share one copy; base must outlive *data, and freeing
 * *data is local. */
dpt_status dpt__train_prepare_data(const dpt_train_cfg *cfg, dpt_group *g, const dpt_data *base,
                                   dpt_data *data, int64_t **train_idx, int64_t *n_train,
                                   int64_t **val_idx, int64_t *n_val);
/* 1 when the two configurations read the same samples: the same --data, search path, class
 * count (--classes or the model's) and --data-copy. */
int dpt__train_same_data(const dpt_train_cfg *a, const dpt_train_cfg *b);

/* Loads the checkpoint's model (for batches of up to max_batch rows) and the data source, checks
 * the sample shape and the class count against the model, and normalizes both splits with the
 * checkpoint's statistics (train/predict.c). On error nothing is left allocated. Local. */
dpt_status dpt__load_model_and_data(const char *ckpt, const char *data, const char *search,
                                    int64_t max_batch, dpt_model **m, dpt_checkpoint_info *info,
                                    dpt_data *d);

/* Input shape a model sees for samples of ds: (C, L), (C, H, W) or (C, D, H, W). */
dpt_shape dpt__sample_shape(const dpt_dataset *ds);

#endif
