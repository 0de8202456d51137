/* Training (train): the step loop of DESIGN §2 over one rank group, evaluation, early stopping,
 * the final checkpoint. Does no argument parsing: the CLI fills dpt_train_cfg. Collective over
 * the group: every rank must pass an equal configuration (the CLI checks this by hash). */
#ifndef DPT_TRAIN_H
#define DPT_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "dpt/augment.h"
#include "dpt/optim.h"
#include "dpt/schedule.h"
#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DPT_BN_LOCAL, /* per-rank batch statistics (PyTorch DDP's default) */
    DPT_BN_SYNC,  /* statistics summed over the group (SyncBatchNorm) */
    DPT_BN_GHOST, /* statistics over fixed ghost batches of bn_ghost samples (Hoffer et al.) */
} dpt_bn_mode;

typedef struct {
    const char *model;      /* spec or preset name */
    const char *data;       /* --data value (fashion-mnist, sample, a directory, an .h5 file) */
    const char *data_search;/* search path for "sample" */
    const char *out;        /* run directory; NULL or "" writes nothing */
    int64_t epochs;
    int64_t batch;          /* global batch b_g */
    int64_t micro_batch;    /* 0: the whole local slice in one pass */
    int64_t eval_batch;     /* rows per evaluation forward; 0: 256 */
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
    int64_t lr_ref_batch;   /* > 0: linear scaling rule lr = lr * batch / lr_ref_batch */
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
    int profile;            /* print the per-phase time breakdown at the end */
    int quiet;              /* no per-epoch lines */
    int no_progress;        /* no progress line, even on a terminal */
    FILE *log;              /* rank 0's output; NULL: stdout */
} dpt_train_cfg;

/* Fills the defaults of every field (epochs 10, batch 128, adam lr 1e-3, seed 1, ...). */
void dpt_train_cfg_defaults(dpt_train_cfg *cfg);

typedef struct {
    int64_t epochs_run, steps;
    double train_loss, train_acc;
    double val_loss, val_acc;     /* NaN without a validation split */
    double test_loss, test_acc;
    double seconds, images_per_s;
    int64_t best_epoch;           /* epoch whose weights were kept (early stopping) */
    char checkpoint[4096];        /* path of the final model file, "" if none was written */
} dpt_train_result;

struct dpt_group;
/* Trains on the group `g`. Collective over the group; `cfg` is global input. */
dpt_status dpt_train_run(const dpt_train_cfg *cfg, struct dpt_group *g, dpt_train_result *res);

/* Recomputes loss and accuracy of a checkpoint on the test split of `data`. Collective. */
dpt_status dpt_train_eval_checkpoint(const char *ckpt, const char *data, const char *data_search,
                                     struct dpt_group *g, double *loss, double *acc, int64_t *n);

#ifdef __cplusplus
}
#endif
#endif
