/* The trainer object (train): one model trained by one rank group over borrowed data and index
 * lists, following DESIGN §2: sampler -> augment -> forward -> loss -> backward with bucketed
 * allreduce -> one shared optimizer step. An epoch ends with evaluation (validation list, test
 * split), a metrics row, and early stopping. Plain runs, ensemble members, folds and sweep points
 * are all a dpt_trainer; the drivers around it choose the data and the identity. Parses no
 * arguments; talks to MPI only through comm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>

#include "dpt/checkpoint.h"
#include "dpt/conv.h"
#include "dpt/loss.h"
#include "dpt/ops.h"
#include "dpt/metrics_log.h"
#include "dpt/run_dir.h"
#include "dpt/noise_scale.h"
#include "dpt/sampler.h"
#include "dpt/stream.h"
#include "dpt/timer.h"
#include "train_impl.h"

void dpt_train_cfg_defaults(dpt_train_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->model = "fmnist-cnn";
    cfg->data = "fashion-mnist";
    cfg->epochs = 10;
    cfg->batch = 128;
    cfg->seed = 1;
    cfg->drop_last = 1;
    cfg->optim = (dpt_optim_cfg){.kind = DPT_OPTIM_ADAM};
    cfg->schedule = DPT_SCHED_CONSTANT;
    cfg->bn = DPT_BN_LOCAL;
}

/* metrics.csv columns, in dpt_epoch_report order; the first two print as integers. */
enum { N_COLS = 14 };
static const char *const col_names[N_COLS] = {
    "epoch",    "step",      "lr",       "train_loss", "train_acc", "val_loss",
    "val_acc",  "test_loss", "test_acc", "images_per_s", "seconds", "grad_sq",
    "trace_sigma", "b_simple"};

/* This rank's running training sums of the epoch in progress. */
typedef struct {
    double loss_sum;   /* sum over samples of the per-sample loss */
    int64_t correct, count;
} epoch_sums;

struct dpt_trainer {
    const dpt_train_cfg *cfg;
    dpt_group *g;
    FILE *log;
    const dpt_data *data;
    const int64_t *train_idx, *val_idx;
    int64_t n_train, n_val;
    uint32_t member;
    char label[64];
    char *out;                /* NULL: nothing written */
    char *resume_from;        /* the checkpoint this run continues from; NULL: none */
    dpt_sampler sampler;
    dpt_stream *stream;      /* --stream: the data's reader of train's samples; NULL otherwise */
    dpt_dataset view;        /* --stream: the samples of the step in progress (dpt_stream_take) */
    int64_t *stream_rows;    /* --stream: scratch for a request, the slice and its mix partners */
    dpt_augment aug;
    int mixing;
    dpt_model *model;
    dpt_optim *optim;
    dpt_schedule sched;
    dpt_bucketer bucketer;
    int bucketer_ready;
    dpt_exact_acc exact;
    float *chunk_grads;      /* deterministic mode: this rank's chunk gradients */
    int64_t micro;           /* rows per forward */
    int64_t *layer_offset;   /* first parameter offset of layers >= l (n_params if none) */
    int n_layers;
    float *params, *grads, *buffers;
    int64_t n_params, n_buffers;
    float *x, *soft;         /* batch buffers: (micro, sample), (micro, K) */
    int32_t *labels;
    int64_t *partner;
    double *buffer_sums;     /* scratch of sync_buffers */
    dpt_metrics_log history;
    dpt_early_stop early;
    dpt_eval_scratch eval;
    dpt_phase_timer timer;
    dpt_noise_ema noise;     /* --noise-scale-every: moving averages of |G|^2 and tr(Sigma) */
    int in_last_micro;       /* backward of the last micro-batch: the hook marks buckets */
    int64_t epoch, gstep, images; /* next epoch (0-based), optimizer steps, images trained */
    int64_t epoch_step;      /* steps of `epoch` done: with `epoch`, the sampler's position */
    epoch_sums sums;         /* this rank's running sums of `epoch` */
    double last_lr;          /* lr of the last step */
    double train_seconds, t_start;
    double elapsed_before;   /* wall time of the runs this one resumes */
    int64_t skipped_in_row, skipped_total; /* --skip-nonfinite */
    float *step_buffers;     /* --skip-nonfinite: the buffers before the step, restored on a skip */
    float *gathered_buffers; /* (size, n_buffers): every rank's buffers for a mid-epoch checkpoint */
    double *gathered_sums;   /* (size, 3): every rank's running sums, likewise */
    int early_stopped, preempted;
    char last_checkpoint[4096]; /* the leader's last periodic checkpoint */
    int done;
};

static int is_leader(const dpt_trainer *t) { return t->g->leader; }
static void report_message(dpt_trainer *t, const char *text);

/* ---- setup --------------------------------------------------------------------------------- */

static void backward_hook(void *ctx, int layer) {
    dpt_trainer *t = ctx;
    if (!t->in_last_micro || !t->bucketer_ready)
        return;
    if (t->layer_offset[layer] < t->n_params)
        dpt_bucketer_mark_from(&t->bucketer, t->layer_offset[layer]);
    dpt_bucketer_progress(&t->bucketer);
}

static dpt_status build_model(dpt_trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    const dpt_dataset *ds = &t->data->train;
    dpt_shape input = dpt__sample_shape(ds);
    dpt_model_cfg mc = {
        .max_batch = dpt_train_model_rows(c, t->g->size),
        .num_classes = ds->K,
        .bn_ghost = c->bn == DPT_BN_GHOST ? c->bn_ghost : 0,
        .seed = c->seed,
        .member = t->member,
        .threads = c->threads,
    };
    dpt_status st = dpt_model_create(&t->model, c->model, input, &mc);
    if (st != DPT_OK)
        return st;
    if (c->bn == DPT_BN_SYNC)
        dpt_model_set_bn_reducer(t->model, dpt_group_bn_reduce, t->g);
    t->params = dpt_model_params(t->model, &t->n_params);
    t->grads = dpt_model_grads(t->model, &t->n_params);
    t->buffers = dpt_model_buffers(t->model, &t->n_buffers);
    /* Identical seeding on every rank; verified, so a replica can never start apart. */
    st = dpt_group_check_same(t->g, DPT_SCOPE_GROUP, t->params,
                              (size_t)t->n_params * sizeof(float), "initial parameters");
    if (st == DPT_OK && c->deterministic) {
        /* Bit-identical replicas and results need the same arithmetic on every rank: a rank on
         * other OpenBLAS kernels (another CPU, another OPENBLAS_CORETYPE) or another convolution
         * kernel (DPT_KERNEL) rounds differently, and its replica's hash would still match. */
        char kernels[192];
        snprintf(kernels, sizeof kernels, "OpenBLAS %s, convolution %s", dpt_gemm_core(),
                 dpt_conv_default_description());
        st = dpt_group_check_same(t->g, DPT_SCOPE_GROUP, kernels, strlen(kernels),
                                  "--deterministic: the OpenBLAS core (OPENBLAS_CORETYPE) or "
                                  "the convolution kernel (DPT_KERNEL)");
    }
    if (st != DPT_OK)
        return st;

    int n_segs;
    const dpt_model_segment *segs = dpt_model_param_segments(t->model, &n_segs);
    t->n_layers = dpt_model_num_layers(t->model);
    t->layer_offset = malloc((size_t)(t->n_layers + 1) * sizeof(int64_t));
    dpt_optim_segment *osegs = calloc((size_t)(n_segs > 0 ? n_segs : 1), sizeof *osegs);
    dpt_comm_segment *dsegs = calloc((size_t)(n_segs > 0 ? n_segs : 1), sizeof *dsegs);
    if (!t->layer_offset || !osegs || !dsegs) {
        free(osegs), free(dsegs);
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the segment tables");
    }
    for (int l = t->n_layers; l >= 0; l--) {
        t->layer_offset[l] = l == t->n_layers ? t->n_params : t->layer_offset[l + 1];
        for (int s = 0; s < n_segs; s++)
            if (segs[s].layer == l && segs[s].offset < t->layer_offset[l])
                t->layer_offset[l] = segs[s].offset;
    }
    for (int s = 0; s < n_segs; s++) {
        osegs[s] = (dpt_optim_segment){
            .offset = segs[s].offset,
            .length = segs[s].count,
            .role = segs[s].kind == DPT_PARAM_WEIGHT ? DPT_ROLE_WEIGHT
                    : segs[s].kind == DPT_PARAM_BIAS ? DPT_ROLE_BIAS
                                                     : DPT_ROLE_NORM,
            .name = segs[s].name,
        };
        dsegs[s] = (dpt_comm_segment){.offset = segs[s].offset, .count = segs[s].count};
    }
    st = dpt_optim_create(&t->optim, &c->optim, t->n_params, osegs, n_segs);
    if (st == DPT_OK)
        dpt_optim_set_pool(t->optim, dpt_model_pool(t->model));
    if (st == DPT_OK && !c->deterministic && t->g->size > 1) {
        dpt_bucketer_cfg bc = {.bucket_bytes = (int64_t)(c->bucket_mb * (1 << 20)),
                               .blocking = c->no_overlap};
        st = dpt_bucketer_init(&t->bucketer, t->g, t->grads, t->n_params, dsegs, n_segs, &bc);
        if (st == DPT_OK && t->bucketer.n_buckets == 1 && !bc.blocking) {
            /* One bucket completes only when backward is over: nothing to overlap, and Open
             * MPI's blocking allreduce beats its non-blocking one (lenet5: 38k vs 33k img/s). */
            dpt_bucketer_free(&t->bucketer);
            bc.blocking = 1;
            st = dpt_bucketer_init(&t->bucketer, t->g, t->grads, t->n_params, dsegs, n_segs, &bc);
        }
        t->bucketer_ready = st == DPT_OK;
    }
    free(osegs);
    free(dsegs);
    if (st != DPT_OK)
        return st;
    dpt_model_set_backward_hook(t->model, backward_hook, t);
    return DPT_OK;
}

/* A rank's T threads need T CPUs of their own. Open MPI binds each rank to one core by default
 * (with 2 or fewer ranks), where the threads would take turns on it: the group's leader says so
 * once, with how many ranks are short. */
static dpt_status warn_if_threads_share_cpus(const dpt_trainer *t) {
    const int threads = t->cfg->threads > 1 ? t->cfg->threads : 1;
    int64_t short_ranks = threads > dpt_pool_cpus_available();
    dpt_status st = dpt_group_sum_i64(t->g, DPT_SCOPE_GROUP, &short_ranks, 1);
    if (st == DPT_OK && short_ranks > 0 && is_leader(t))
        fprintf(stderr,
                "dptrain: warning: --threads %d, but %lld of %d ranks may run on fewer CPUs than "
                "that (their affinity): the threads will share them. Launch with mpirun "
                "--bind-to none or --map-by ppr:R:node:pe=%d (docs/threads.md)\n",
                threads, (long long)short_ranks, t->g->size, threads);
    return st;
}

static dpt_status make_schedule(dpt_trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    double spe = (double)dpt_sampler_steps(&t->sampler);
    int64_t total = (int64_t)(spe * (double)c->epochs);
    if (c->max_steps > 0 && c->max_steps < total)
        total = c->max_steps;
    dpt_schedule_cfg sc = {
        .kind = c->schedule,
        /* the optimizer's lr (torch's default when not given), scaled by the linear scaling
         * rule when asked: lr * batch / ref_batch (Goyal et al. 2017) */
        .base_lr = c->lr_ref_batch > 0 ? dpt_schedule_scaled_lr(dpt_optim_base_lr(t->optim),
                                                                c->lr_scaling, c->batch,
                                                                c->lr_ref_batch)
                                       : dpt_optim_base_lr(t->optim),
        .gamma = c->schedule == DPT_SCHED_EXPONENTIAL && c->gamma > 0 ? pow(c->gamma, 1.0 / spe)
                 : c->schedule == DPT_SCHED_STEP                    ? c->gamma
                                                                    : 0,
        .step_size = c->schedule == DPT_SCHED_STEP ? (int64_t)fmax(1, round(c->step_epochs * spe))
                                                   : 0,
        .total_steps = c->schedule == DPT_SCHED_COSINE ? (total > 0 ? total : 1) : 0,
        .final_lr = c->schedule == DPT_SCHED_COSINE ? c->final_lr : 0,
        .warmup_steps = (int64_t)round(c->warmup_epochs * spe),
        .warmup_start = c->warmup_start,
    };
    return dpt_schedule_init(&t->sched, &sc);
}

/* Rows per forward in training: --micro-batch, else the rank's share of the batch. */
static int64_t micro_rows(const dpt_train_cfg *c, int ranks) {
    const int64_t local_max = (c->batch + ranks - 1) / ranks;
    return c->micro_batch > 0 && c->micro_batch < local_max ? c->micro_batch : local_max;
}

int64_t dpt_train_model_rows(const dpt_train_cfg *c, int ranks) {
    const int64_t micro = micro_rows(c, ranks);
    const int64_t eval = c->eval_batch > 0 ? c->eval_batch : DPT_EVAL_BATCH_DEFAULT;
    return micro > eval ? micro : eval;
}

static dpt_status allocate_batch(dpt_trainer *t) {
    const dpt_dataset *ds = &t->data->train;
    int64_t sample = dpt_dataset_sample_numel(ds);
    t->micro = micro_rows(t->cfg, t->g->size);
    t->x = dpt_alloc_aligned(dpt_size_mul((size_t)(t->micro * sample), sizeof(float)));
    t->soft = dpt_alloc_aligned(dpt_size_mul((size_t)(t->micro * ds->K), sizeof(float)));
    t->labels = malloc((size_t)t->micro * sizeof(int32_t));
    t->partner = malloc((size_t)t->micro * sizeof(int64_t));
    if (!t->x || !t->soft || !t->labels || !t->partner)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the batch buffers");
    return dpt__eval_scratch_init(&t->eval, t->cfg->eval_batch, sample);
}

static dpt_status check_config(dpt_trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    if (c->epochs < 1)
        return dpt_errorf(DPT_EINVAL, "--epochs must be at least 1");
    if (c->batch < t->g->size)
        return dpt_errorf(DPT_EINVAL, "--batch %lld is smaller than the %d ranks of the group",
                          (long long)c->batch, t->g->size);
    if (c->bn == DPT_BN_GHOST && c->bn_ghost < 1)
        return dpt_errorf(DPT_EINVAL, "--bn ghost:G needs G >= 1");
    if (c->deterministic) {
        int64_t chunk = c->micro_batch;
        if (chunk < 1 || c->batch % ((int64_t)t->g->size * chunk) != 0)
            return dpt_errorf(DPT_EINVAL,
                              "--deterministic needs --micro-batch C with --batch divisible by "
                              "ranks x C (here %lld, %d ranks, C = %lld)",
                              (long long)c->batch, t->g->size, (long long)chunk);
        if (c->bn == DPT_BN_SYNC || (c->bn == DPT_BN_GHOST && chunk % c->bn_ghost != 0))
            return dpt_errorf(DPT_EINVAL, "--deterministic needs --bn ghost:G with G dividing "
                                          "--micro-batch (or a model without batch norm)");
        if (!c->drop_last)
            return dpt_errorf(DPT_EINVAL, "--deterministic: not with --keep-last (the partial "
                                          "last batch breaks the fixed chunks)");
    }
    /* options that would silently do nothing: name the missing partner */
    if (c->early_stop > 0 && t->n_val == 0)
        return dpt_errorf(DPT_EINVAL, "--early-stop needs a validation set: add --val-fraction F");
    if (c->step_epochs > 0 && c->schedule != DPT_SCHED_STEP)
        return dpt_errorf(DPT_EINVAL, "--step-epochs needs --schedule step");
    if (c->final_lr > 0 && c->schedule != DPT_SCHED_COSINE)
        return dpt_errorf(DPT_EINVAL, "--final-lr needs --schedule cosine");
    if (c->gamma > 0 && c->schedule != DPT_SCHED_STEP && c->schedule != DPT_SCHED_EXPONENTIAL)
        return dpt_errorf(DPT_EINVAL, "--gamma needs --schedule step or exponential");
    if (c->warmup_epochs > (double)c->epochs)
        return dpt_errorf(DPT_EINVAL, "--warmup-epochs %g is longer than the run (--epochs %lld)",
                          c->warmup_epochs, (long long)c->epochs);
    /* larger than the per-rank slice is fine (the slice is one pass; the slice shrinks with the
     * rank count), larger than the whole batch is a mistake */
    if (c->micro_batch > c->batch)
        return dpt_errorf(DPT_EINVAL, "--micro-batch %lld is larger than --batch %lld",
                          (long long)c->micro_batch, (long long)c->batch);
    if (c->noise_scale_every > 0 && t->g->size == 1 &&
        !(c->micro_batch > 0 && c->micro_batch < c->batch))
        return dpt_errorf(DPT_EINVAL, "--noise-scale-every needs two batch sizes: run on 2 or more "
                                      "ranks, or split the batch with --micro-batch M < --batch "
                                      "(the first micro-batch is then the small batch)");
    return DPT_OK;
}

/* ---- one step -------------------------------------------------------------------------------- */

/* Forward + loss + backward of rows [off, off + m) of this rank's slice. The loss is divided by
 * the global batch b, so the group sum of the gradients is the gradient of the global mean. */
static dpt_status micro_step(dpt_trainer *t, const int64_t *idx, int64_t first, int64_t off,
                             int64_t m, int64_t step, int64_t gstep, int64_t b, uint32_t epoch,
                             epoch_sums *sums) {
    const dpt_train_cfg *c = t->cfg;
    const dpt_dataset *ds = t->stream ? &t->view : &t->data->train;
    dpt_phase_begin(&t->timer, DPT_PHASE_DATA);
    if (t->mixing)
        for (int64_t j = 0; j < m; j++)
            t->partner[j] = dpt_sampler_partner(&t->sampler, step, first + off + j);
    dpt_augment_fill(&t->aug, t->x, t->labels, t->mixing ? t->soft : NULL, ds, idx + off,
                     t->partner, m, epoch);
    dpt_phase_end(&t->timer);

    dpt_phase_begin(&t->timer, DPT_PHASE_FORWARD);
    dpt_model_rng rng = {.seed = c->seed, .member = t->member, .step = (uint32_t)gstep, .sample = idx + off};
    dpt_status st = dpt_model_forward(t->model, t->x, m, 1, &rng);
    float *dl = dpt_model_dlogits_buffer(t->model);
    const float *logits = dpt_model_logits(t->model);
    int64_t correct = 0;
    double loss;
    if (t->mixing) {
        loss = dpt_soft_xent_forward_backward(dl, logits, t->soft, m, ds->K, (double)b);
        dpt_xent_forward_backward(NULL, &correct, logits, t->labels, m, ds->K, 0, 1);
    } else {
        loss = dpt_xent_forward_backward(dl, &correct, logits, t->labels, m, ds->K,
                                         c->label_smoothing, (double)b);
    }
    dpt_phase_end(&t->timer);
    if (st != DPT_OK)
        return st;
    sums->loss_sum += loss * (double)b;
    sums->correct += correct;
    sums->count += m;
    dpt_phase_begin(&t->timer, DPT_PHASE_BACKWARD);
    st = dpt_model_backward(t->model, dl);
    dpt_phase_end(&t->timer);
    return st;
}

/* An Inf or a NaN has every exponent bit set. Tested on the bits: a chain of float adds (one
 * add's latency per element) took about 1 % of a fmnist-cnn step, on one thread while the others
 * wait; this takes half of that. */
static int grads_finite(const float *g, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &g[i], sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* local_sumsq (NULL: not wanted) receives the squared norm of this rank's own gradient, the sum
 * of its chunks: the exact partial sum before the allreduce, rounded to float in t->grads, which
 * the allreduced result overwrites next. */
static dpt_status deterministic_reduce(dpt_trainer *t, int64_t n_chunks_local, int64_t b,
                                       double *local_sumsq) {
    double maxabs = dpt_exact_maxabs(t->chunk_grads, n_chunks_local * t->n_params);
    dpt_exact_scale scale;
    dpt_status st = dpt_exact_agree(t->g, maxabs, b / t->cfg->micro_batch, &scale);
    if (st != DPT_OK)
        return st;
    dpt_exact_acc_begin(&t->exact, &scale);
    for (int64_t k = 0; k < n_chunks_local && st == DPT_OK; k++)
        st = dpt_exact_acc_add_chunk(&t->exact, t->chunk_grads + k * t->n_params);
    if (st == DPT_OK && local_sumsq) {
        dpt_exact_acc_result(&t->exact, t->grads, 1.0);
        double norm = dpt_norm2(t->grads, t->n_params);
        *local_sumsq = norm * norm;
    }
    if (st == DPT_OK)
        st = dpt_exact_acc_allreduce(&t->exact, t->g);
    if (st == DPT_OK)
        dpt_exact_acc_result(&t->exact, t->grads, 1.0);
    return st;
}

/* One estimate of the noise scale from this step (McCandlish et al. 2018, appendix A.1;
 * docs/noise-scale.md). small_sq: |g|^2 of the gradient this rank's small batch of b_small samples
 * left (per-sample gradients summed, divided by the global batch b, as the loss scales them);
 * t->grads: the allreduced mean over the global batch. Every rank with 0 < b_small < b makes its
 * own unbiased pair with its own b_small (slices differ by one when R does not divide b), and the
 * pairs are averaged over the group: a mean of unbiased estimates is unbiased, with up to R times
 * less variance. One allreduce of 3 doubles. */
static dpt_status noise_update(dpt_trainer *t, double small_sq, int64_t b_small, int64_t b) {
    double big = dpt_norm2(t->grads, t->n_params);
    double sum[3] = {0, 0, 0}; /* grad_sq, trace, ranks contributing */
    if (b_small > 0 && b_small < b) {
        double up = (double)b / (double)b_small; /* sum / b -> mean over the small batch */
        dpt_noise_estimate e = dpt_noise_estimate_make(small_sq * up * up, b_small, big * big, b);
        sum[0] = e.grad_sq, sum[1] = e.trace, sum[2] = 1;
    }
    dpt_status st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, sum, 3);
    if (st == DPT_OK && sum[2] > 0)
        dpt_noise_ema_update(&t->noise, (dpt_noise_estimate){.grad_sq = sum[0] / sum[2],
                                                             .trace = sum[1] / sum[2]});
    return st;
}

/* The first parameter segment (in layer order) holding a NaN or Inf on some rank: the reduced
 * gradients, or this rank's chunk gradients before an exact sum that refused them. Collective
 * (one allreduce of a flag per segment), on the failure path only. */
static dpt_status first_nonfinite_segment(dpt_trainer *t, int64_t n_chunks, const char **name) {
    int n_segs;
    const dpt_model_segment *segs = dpt_model_param_segments(t->model, &n_segs);
    double *bad = calloc((size_t)n_segs + 1, sizeof *bad);
    if (!bad)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the non-finite search");
    const float *base = n_chunks > 0 ? t->chunk_grads : t->grads;
    for (int64_t k = 0; k < (n_chunks > 0 ? n_chunks : 1); k++)
        for (int s = 0; s < n_segs; s++)
            if (!grads_finite(base + k * t->n_params + segs[s].offset, segs[s].count))
                bad[s] = 1;
    dpt_status st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, bad, n_segs);
    *name = "(unknown)";
    for (int s = n_segs - 1; st == DPT_OK && s >= 0; s--)
        if (bad[s] > 0)
            *name = segs[s].name;
    free(bad);
    return st;
}

/* A step whose loss (on some rank) or reduced gradient is not finite: every rank gets here
 * together. With --skip-nonfinite N it is skipped (no update) up to N times in a row. */
static dpt_status nonfinite_step(dpt_trainer *t, int grad_bad, int64_t n_chunks, int64_t gstep,
                                 uint32_t epoch) {
    const char *layer = NULL;
    dpt_status st = grad_bad ? first_nonfinite_segment(t, n_chunks, &layer) : DPT_OK;
    if (st != DPT_OK)
        return st;
    char what[200];
    if (grad_bad)
        snprintf(what, sizeof what, "non-finite gradient, first in layer %s", layer);
    else
        snprintf(what, sizeof what, "non-finite training loss");
    if (t->skipped_in_row < t->cfg->skip_nonfinite) {
        t->skipped_in_row++, t->skipped_total++;
        char text[320];
        snprintf(text, sizeof text, "step %lld (epoch %u): %s: skipped (%lld of %lld in a row)",
                 (long long)gstep + 1, epoch + 1, what, (long long)t->skipped_in_row,
                 (long long)t->cfg->skip_nonfinite);
        report_message(t, text);
        return DPT_OK;
    }
    if (t->cfg->skip_nonfinite > 0)
        return dpt_errorf(DPT_ENONFINITE, "step %lld (epoch %u): %s after %lld skipped steps in a "
                                          "row (--skip-nonfinite %lld); lower --lr or enable "
                                          "--clip-norm",
                          (long long)gstep + 1, epoch + 1, what, (long long)t->skipped_in_row,
                          (long long)t->cfg->skip_nonfinite);
    return dpt_errorf(DPT_ENONFINITE, "step %lld (epoch %u): %s; lower --lr, enable --clip-norm "
                                      "or skip such steps with --skip-nonfinite N",
                      (long long)gstep + 1, epoch + 1, what);
}

/* Parameters after the last update, before anything is evaluated or saved: a blow-up on the
 * last step is otherwise never seen by a later step's loss check. Same on every rank (replicas
 * are bit-identical), so no agreement is needed. */
static dpt_status check_params_finite(dpt_trainer *t) {
    if (grads_finite(t->params, t->n_params))
        return DPT_OK;
    int n_segs;
    const dpt_model_segment *segs = dpt_model_param_segments(t->model, &n_segs);
    const char *layer = "(unknown)";
    for (int s = n_segs - 1; s >= 0; s--)
        if (!grads_finite(t->params + segs[s].offset, segs[s].count))
            layer = segs[s].name;
    return dpt_errorf(DPT_ENONFINITE, "step %lld (epoch %lld): non-finite parameters after the "
                                      "update, first in layer %s; nothing saved; lower --lr or "
                                      "enable --clip-norm",
                      (long long)t->gstep, (long long)t->epoch + 1, layer);
}

/* --stream: asks the reader for this rank's rows of `step` (its slice and, with mixup or cutmix,
 * the slice's partners, which may lie in other ranks' slices). */
static void stream_post(dpt_trainer *t, int64_t step) {
    const int64_t *idx;
    int64_t first;
    int64_t n = dpt_sampler_slice(&t->sampler, step, t->g->rank, t->g->size, &idx, &first);
    memcpy(t->stream_rows, idx, (size_t)n * sizeof(int64_t));
    for (int64_t j = 0; t->mixing && j < n; j++)
        t->stream_rows[n + j] = dpt_sampler_partner(&t->sampler, step, first + j);
    dpt_stream_post(t->stream, t->stream_rows, t->mixing ? 2 * n : n);
}

/* --stream: the rows of `step` (posted during the step before) become t->view, and the next
 * step's are requested, to be read while this one computes. A failed read on any rank stops
 * every rank here, before the step's collectives. */
static dpt_status stream_step(dpt_trainer *t, int64_t step, int64_t gstep) {
    dpt_phase_begin(&t->timer, DPT_PHASE_DATA);
    dpt_status st = dpt_stream_take(t->stream, &t->data->train, &t->view);
    int last = step + 1 >= dpt_sampler_steps(&t->sampler) ||
               (t->cfg->max_steps > 0 && gstep + 1 >= t->cfg->max_steps);
    if (st == DPT_OK && !last)
        stream_post(t, step + 1);
    dpt_phase_end(&t->timer);
    return dpt_group_agree(t->g, st);
}

/* One optimizer step on every rank. *stop: a stop was requested on some rank (agreed). A step
 * skipped by --skip-nonfinite leaves the weights, the optimizer, the buffers and `sums` as they
 * were. */
static dpt_status train_step(dpt_trainer *t, int64_t step, int64_t gstep, uint32_t epoch,
                             epoch_sums *sums, double *lr_out, int *stop) {
    const dpt_train_cfg *c = t->cfg;
    const epoch_sums sums_before = *sums;
    if (t->step_buffers)
        memcpy(t->step_buffers, t->buffers, (size_t)t->n_buffers * sizeof(float));
    const int64_t *idx;
    int64_t first;
    int64_t b = dpt_sampler_batch_size(&t->sampler, step);
    int64_t n = dpt_sampler_slice(&t->sampler, step, t->g->rank, t->g->size, &idx, &first);
    dpt_status st = DPT_OK;
    dpt_group_set_step(t->g, gstep); /* names this step in collective-timeout messages */
    if (t->stream && (st = stream_step(t, step, gstep)) != DPT_OK)
        return st;
    dpt_model_zero_grad(t->model);
    /* Noise-scale steps: the small batch is this rank's slice; with one rank, the first
     * micro-batch (check_config asks for one). */
    int noise = c->noise_scale_every > 0 && gstep % c->noise_scale_every == 0;
    int64_t b_small = t->g->size > 1 ? n : t->micro < n ? t->micro : 0;
    double small_sq = 0;
    if (t->bucketer_ready && noise)
        dpt_bucketer_begin_sumsq(&t->bucketer, 1.0);
    else if (t->bucketer_ready)
        dpt_bucketer_begin(&t->bucketer, 1.0);
    int64_t chunks = 0;
    for (int64_t off = 0; off < n && st == DPT_OK; off += t->micro) {
        int64_t m = n - off < t->micro ? n - off : t->micro;
        t->in_last_micro = off + m >= n;
        if (c->deterministic)
            dpt_model_zero_grad(t->model);
        st = micro_step(t, idx, first, off, m, step, gstep, b, epoch, sums);
        if (noise && t->g->size == 1 && off == 0 && st == DPT_OK) {
            double norm = dpt_norm2(t->grads, t->n_params);
            small_sq = norm * norm;
        }
        if (c->deterministic && st == DPT_OK)
            memcpy(t->chunk_grads + chunks++ * t->n_params, t->grads,
                   (size_t)t->n_params * sizeof(float));
    }
    t->in_last_micro = 0;
    dpt_phase_begin(&t->timer, DPT_PHASE_COMM_WAIT);
    if (st == DPT_OK && c->deterministic)
        st = deterministic_reduce(t, chunks, b, noise && t->g->size > 1 ? &small_sq : NULL);
    else if (t->bucketer_ready) {
        dpt_status wst = dpt_bucketer_wait(&t->bucketer); /* always: no request left in flight */
        st = st == DPT_OK ? wst : st;
        if (noise)
            small_sq = t->bucketer.local_sumsq;
    }
    dpt_phase_end(&t->timer);
    /* dpt_exact_agree refuses non-finite chunks with this status on every rank together */
    int grad_bad = c->deterministic && st == DPT_ENONFINITE;
    if (grad_bad)
        st = DPT_OK;
    if (st != DPT_OK)
        return st;
    /* Every rank holds the same reduced gradients, so this check is the same on every rank. */
    grad_bad = grad_bad || !grads_finite(t->grads, t->n_params);
    /* The loss is each rank's own, and so is a signal: one allreduce of two flags per step makes
     * both collective (docs/resume.md measures its cost). */
    double flags[2] = {c->stop_request && *c->stop_request ? 1 : 0,
                       isfinite(sums->loss_sum - sums_before.loss_sum) ? 0 : 1};
    dpt_phase_begin(&t->timer, DPT_PHASE_COMM_WAIT);
    st = dpt_group_sum_flags(t->g, flags, 2);
    dpt_phase_end(&t->timer);
    if (st != DPT_OK)
        return st;
    *stop = flags[0] > 0;
    *lr_out = dpt_schedule_lr(&t->sched, gstep);
    if (grad_bad || flags[1] > 0) {
        st = nonfinite_step(t, grad_bad, c->deterministic ? chunks : 0, gstep, epoch);
        *sums = sums_before;
        if (t->step_buffers)
            memcpy(t->buffers, t->step_buffers, (size_t)t->n_buffers * sizeof(float));
        return st;
    }
    t->skipped_in_row = 0;
    if (noise) {
        dpt_phase_begin(&t->timer, DPT_PHASE_COMM_WAIT);
        st = noise_update(t, small_sq, b_small, b);
        dpt_phase_end(&t->timer);
        if (st != DPT_OK)
            return st;
    }
    dpt_phase_begin(&t->timer, DPT_PHASE_OPTIM);
    if (c->clip_norm > 0)
        st = dpt_clip_grad_norm(t->grads, t->n_params, c->clip_norm, NULL);
    if (st == DPT_OK && c->clip_value > 0)
        st = dpt_clip_grad_value(t->grads, t->n_params, c->clip_value);
    if (st == DPT_OK)
        st = dpt_optim_step(t->optim, t->params, t->grads, *lr_out);
    dpt_phase_end(&t->timer);
    return st;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Batch-norm running statistics are per rank with local BN: average them over the group so that
 * evaluation and checkpoints use one model. */
static dpt_status sync_buffers(dpt_trainer *t) {
    if (t->g->size == 1 || t->n_buffers == 0)
        return DPT_OK;
    double *sum = t->buffer_sums;
    for (int64_t i = 0; i < t->n_buffers; i++)
        sum[i] = t->buffers[i];
    dpt_status st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, sum, t->n_buffers);
    for (int64_t i = 0; st == DPT_OK && i < t->n_buffers; i++)
        t->buffers[i] = (float)(sum[i] / t->g->size);
    return st;
}

dpt_status dpt_trainer_evaluate(dpt_trainer *t, const dpt_dataset *ds, const int64_t *idx,
                                int64_t n, float *probs, dpt_eval_result *res) {
    return dpt__evaluate(t->model, t->g, ds, idx, n, &t->eval, probs, res);
}

/* Test samples evaluated: all, or the first --test-samples. */
static int64_t n_test(const dpt_trainer *t) {
    int64_t n = t->data->test.N, limit = t->cfg->test_samples;
    return limit > 0 && limit < n ? limit : n;
}

/* ---- output ---------------------------------------------------------------------------------- */

/* mkdir -p DIR/checkpoints; the error names the folder and the system's reason. */
static dpt_status make_dirs(const char *out) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/checkpoints", out) >= (int)sizeof path)
        return dpt_errorf(DPT_EINVAL, "%.200s...: path too long", out);
    return dpt_run_dir_make(path);
}

/* The /train state at this step boundary; the per-rank part is the caller's (ranks 0). */
static void fill_state(const dpt_trainer *t, dpt_checkpoint_state *s) {
    int best = t->early.best_epoch >= 1 && t->early.params;
    *s = (dpt_checkpoint_state){
        .global_step = t->gstep, .epoch = t->epoch, .epoch_step = t->epoch_step,
        .member = t->member, .images = t->images,
        .train_seconds = t->train_seconds, .elapsed = dpt_now() - t->t_start,
        .last_lr = t->last_lr,
        .skipped_in_row = t->skipped_in_row, .skipped_total = t->skipped_total,
        .early_stopped = t->early_stopped,
        .es_since_best = t->early.since_best, .es_best_epoch = t->early.best_epoch,
        .es_best_loss = t->early.best_loss,
        .es_params = best ? t->early.params : NULL, .es_buffers = best ? t->early.buffers : NULL,
        .noise_decay = t->noise.decay, .noise_grad_sq = t->noise.grad_sq,
        .noise_trace = t->noise.trace, .noise_decay_pow = t->noise.decay_pow,
        .noise_count = t->noise.count,
    };
}

static dpt_status write_checkpoint(dpt_trainer *t, const char *path, const dpt_member_info *member,
                                   const dpt_checkpoint_state *state) {
    dpt_checkpoint ck = {
        .model = t->model,
        .optim = t->optim,
        .epoch = t->history.rows > 0 ? (int64_t)t->history.cols[0][t->history.rows - 1] : 0,
        .step = t->gstep,
        .seed = t->cfg->seed,
        .config = t->cfg->config_text,
        .data_source = t->data->source,
        .channels = t->data->train.C,
        .norm_mean = t->data->train.norm_mean,
        .norm_std = t->data->train.norm_std,
        .n_metrics = N_COLS,
        .metric_rows = t->history.rows,
        .metric_names = col_names,
        .metric_values = (const double *const *)t->history.cols,
    };
    if (member && member->kind) {
        ck.member_kind = member->kind;
        ck.member_id = member->id;
        ck.member_train_idx = member->train_idx;
        ck.member_n_train = member->n_train;
        ck.member_heldout_idx = member->heldout_idx;
        ck.member_n_heldout = member->n_heldout;
        ck.member_alpha = member->alpha;
    }
    ck.state = state;
    ck.config_argv = t->cfg->config_argv;
    ck.config_settings = t->cfg->config_settings;
    return dpt_checkpoint_save(path, &ck);
}

dpt_status dpt_trainer_save(dpt_trainer *t, const char *name, const dpt_member_info *member,
                            char *path_out, size_t path_size) {
    if (!is_leader(t) || !t->out)
        return DPT_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints/%s", t->out, name);
    /* called between epochs: every rank has the same buffers and no running sums */
    dpt_checkpoint_state state;
    fill_state(t, &state);
    dpt_status st = check_params_finite(t);
    if (st == DPT_OK)
        st = write_checkpoint(t, path, member, &state);
    if (st == DPT_OK && path_out)
        snprintf(path_out, path_size, "%s", path);
    return st;
}

/* Collective: a periodic (or pre-emption) checkpoint OUT/checkpoints/step-NNNNNN.h5. Inside an
 * epoch it gathers every rank's buffers and running sums first (exact: one non-zero contribution
 * per element), so that a resume at the same rank count gives each rank its own back; /buffers
 * holds their average, for evaluation and for a resume at another rank count. The leader writes,
 * prunes to --keep, and the group agrees, so a failed write stops every rank. */
static dpt_status save_periodic(dpt_trainer *t, char *path_out, size_t path_size) {
    dpt_checkpoint_state state;
    fill_state(t, &state);
    dpt_status st = check_params_finite(t); /* identical on every rank: no agreement needed */
    if (st != DPT_OK)
        return st;
    int64_t R = t->g->size, nb = t->n_buffers, r = t->g->rank;
    if (t->epoch_step > 0) {
        memset(t->gathered_buffers, 0, (size_t)(R * nb + 1) * sizeof(float));
        memset(t->gathered_sums, 0, (size_t)R * 3 * sizeof(double));
        if (nb > 0)
            memcpy(t->gathered_buffers + r * nb, t->buffers, (size_t)nb * sizeof(float));
        t->gathered_sums[3 * r] = t->sums.loss_sum;
        t->gathered_sums[3 * r + 1] = (double)t->sums.correct;
        t->gathered_sums[3 * r + 2] = (double)t->sums.count;
        if (R > 1 && nb > 0)
            st = dpt_group_sum_f32(t->g, DPT_SCOPE_GROUP, t->gathered_buffers, R * nb);
        if (st == DPT_OK && R > 1)
            st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, t->gathered_sums, R * 3);
        state.ranks = R;
        state.rank_buffers = t->gathered_buffers;
        state.rank_sums = t->gathered_sums;
    }
    if (st == DPT_OK && is_leader(t) && t->out) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/checkpoints/step-%06lld.h5", t->out,
                     (long long)t->gstep) >= (int)sizeof path)
            return dpt_group_agree(t->g, dpt_errorf(DPT_EINVAL, "%.200s...: path too long",
                                                    t->out));
        int averaged = t->epoch_step > 0 && R > 1 && nb > 0;
        for (int64_t i = 0; averaged && i < nb; i++) {
            double sum = 0;
            for (int64_t k = 0; k < R; k++)
                sum += t->gathered_buffers[k * nb + i];
            t->buffers[i] = (float)(sum / (double)R);
        }
        st = write_checkpoint(t, path, NULL, &state);
        if (averaged) /* the leader's own statistics back */
            memcpy(t->buffers, t->gathered_buffers, (size_t)nb * sizeof(float));
        if (st == DPT_OK)
            st = dpt_train_prune_checkpoints(t->out, t->cfg->keep > 0 ? t->cfg->keep
                                                                      : DPT_KEEP_DEFAULT);
        if (st == DPT_OK && path_out)
            snprintf(path_out, path_size, "%s", path);
    }
    return dpt_group_agree(t->g, st);
}

/* Collective: continues from t->resume_from (every rank reads the file). */
static dpt_status restore(dpt_trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    const char *from = t->resume_from;
    dpt_checkpoint_state s;
    dpt_status st = dpt_checkpoint_load_state(from, t->model, t->optim, N_COLS, col_names,
                                              t->n_params, &s);
    if (st != DPT_OK)
        return st;
    int64_t steps = dpt_sampler_steps(&t->sampler), nb = t->n_buffers, r = t->g->rank;
    if (s.member != t->member)
        st = dpt_errorf(DPT_EINVAL, "%s: a checkpoint of member %u, this run trains member %u",
                        from, s.member, t->member);
    else if (s.epoch_step > steps)
        st = dpt_errorf(DPT_EINVAL, "%s: taken after step %lld of an epoch, which now has %lld "
                                    "steps",
                        from, (long long)s.epoch_step, (long long)steps);
    if (st != DPT_OK) {
        dpt_checkpoint_state_free(&s);
        return st;
    }
    t->gstep = s.global_step, t->epoch = s.epoch, t->epoch_step = s.epoch_step;
    t->images = s.images, t->train_seconds = s.train_seconds, t->elapsed_before = s.elapsed;
    t->last_lr = s.last_lr;
    t->skipped_in_row = s.skipped_in_row, t->skipped_total = s.skipped_total;
    t->early_stopped = (int)s.early_stopped;
    if (s.ranks == t->g->size) {
        /* the same rank count: every rank continues with its own statistics and sums */
        if (nb > 0)
            memcpy(t->buffers, s.rank_buffers + r * nb, (size_t)nb * sizeof(float));
        t->sums = (epoch_sums){s.rank_sums[3 * r], (int64_t)s.rank_sums[3 * r + 1],
                               (int64_t)s.rank_sums[3 * r + 2]};
    } else if (s.ranks > 0 && r == 0) {
        /* another rank count: the average buffers (loaded), and the sums on one rank */
        for (int64_t k = 0; k < s.ranks; k++) {
            t->sums.loss_sum += s.rank_sums[3 * k];
            t->sums.correct += (int64_t)s.rank_sums[3 * k + 1];
            t->sums.count += (int64_t)s.rank_sums[3 * k + 2];
        }
    }
    t->early.since_best = s.es_since_best, t->early.best_epoch = s.es_best_epoch;
    t->early.best_loss = s.es_best_loss;
    if (s.es_params && t->early.params)
        memcpy(t->early.params, s.es_params, (size_t)t->n_params * sizeof(float));
    if (s.es_buffers && t->early.buffers && nb > 0)
        memcpy(t->early.buffers, s.es_buffers, (size_t)nb * sizeof(float));
    t->noise.decay = s.noise_decay, t->noise.grad_sq = s.noise_grad_sq;
    t->noise.trace = s.noise_trace, t->noise.decay_pow = s.noise_decay_pow;
    t->noise.count = s.noise_count;
    for (int64_t row = 0; row < s.metric_rows && st == DPT_OK; row++) {
        double cols[N_COLS];
        for (int k = 0; k < N_COLS; k++)
            cols[k] = s.metrics[k * s.metric_rows + row];
        st = dpt_metrics_log_append(&t->history, cols);
    }
    t->done = t->early_stopped || t->epoch >= c->epochs ||
              (c->max_steps > 0 && t->gstep >= c->max_steps);
    dpt_checkpoint_state_free(&s);
    return st;
}

/* Mean over the group of each phase's seconds (ranks run in lock step, so the mean is typical). */
static dpt_status print_profile(dpt_trainer *t, double total) {
    double s[DPT_PHASE_COUNT];
    for (int p = 0; p < DPT_PHASE_COUNT; p++)
        s[p] = t->timer.seconds[p];
    dpt_status st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, s, DPT_PHASE_COUNT);
    if (st != DPT_OK || !is_leader(t))
        return st;
    fprintf(t->log, "profile (seconds, mean over %d rank%s; wall %.2f):\n", t->g->size,
            t->g->size > 1 ? "s" : "", total);
    for (int p = 0; p < DPT_PHASE_COUNT; p++) {
        double v = s[p] / t->g->size;
        fprintf(t->log, "  %-15s %9.3f  %5.1f%%\n", dpt_phase_name((dpt_phase)p), v,
                total > 0 ? 100 * v / total : 0);
    }
    return DPT_OK;
}

/* ---- create / destroy -------------------------------------------------------------------- */

static dpt_status setup(dpt_trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    dpt_status st = check_config(t);
    if (st != DPT_OK)
        return st;
    if (t->data->train.K < 2)
        return dpt_errorf(DPT_EINVAL, "%s: %lld class%s in the training labels; classification "
                                      "needs at least 2",
                          t->data->source, (long long)t->data->train.K,
                          t->data->train.K == 1 ? "" : "es");
    dpt_sampler_cfg sc = {.global_batch = c->batch, .seed = c->seed, .member = t->member,
                          .drop_last = c->drop_last};
    t->stream = t->data->stream;
    if (t->data->train.streamed != (t->stream != NULL)) /* dpt__train_prepare_data opens it */
        return dpt_errorf(DPT_EINVAL, "--stream: the training samples are %s",
                          t->stream ? "in memory" : "streamed but no reader was opened");
    if (t->stream && c->stream_window > 0) {
        sc.block_rows = dpt_stream_chunk_rows(t->stream);
        sc.window_blocks = c->stream_window;
    }
    if (t->stream) {
        int64_t local_max = (c->batch + t->g->size - 1) / t->g->size;
        t->stream_rows = malloc((size_t)(2 * local_max) * sizeof(int64_t));
        if (!t->stream_rows)
            return dpt_errorf(DPT_ENOMEM, "cannot allocate the stream requests");
    }
    if ((st = dpt_sampler_init(&t->sampler, &sc, t->train_idx, t->n_train)) != DPT_OK)
        return st;
    dpt_augment_cfg ac = c->augment;
    ac.seed = c->seed;
    ac.member = t->member;
    t->mixing = ac.mixup_alpha > 0 || ac.cutmix_alpha > 0;
    if ((st = dpt_augment_init(&t->aug, &ac, &t->data->train)) != DPT_OK)
        return st;
    if ((st = allocate_batch(t)) != DPT_OK || (st = build_model(t)) != DPT_OK ||
        (st = make_schedule(t)) != DPT_OK || (st = warn_if_threads_share_cpus(t)) != DPT_OK)
        return st;
    if (c->deterministic) {
        int64_t local_chunks = c->batch / t->g->size / c->micro_batch;
        t->chunk_grads = dpt_alloc_aligned(
            dpt_size_mul((size_t)(local_chunks * t->n_params), sizeof(float)));
        if (!t->chunk_grads)
            return dpt_errorf(DPT_ENOMEM, "cannot allocate the chunk gradients");
        if ((st = dpt_exact_acc_init(&t->exact, t->n_params)) != DPT_OK)
            return st;
    }
    dpt_noise_ema_init(&t->noise, DPT_NOISE_EMA_DECAY_DEFAULT);
    if ((st = dpt_metrics_log_init(&t->history, N_COLS, col_names, 2, c->epochs)) != DPT_OK)
        return st;
    if (!(t->buffer_sums = malloc((size_t)(t->n_buffers + 1) * sizeof(double))))
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the buffer reduction");
    if ((st = dpt__early_stop_init(&t->early, t->n_val > 0 ? c->early_stop : 0, t->n_params,
                                   t->n_buffers)) != DPT_OK)
        return st;
    t->gathered_buffers = malloc((size_t)(t->g->size * t->n_buffers + 1) * sizeof(float));
    t->gathered_sums = malloc((size_t)t->g->size * 3 * sizeof(double));
    if (c->skip_nonfinite > 0)
        t->step_buffers = malloc((size_t)(t->n_buffers + 1) * sizeof(float));
    if (!t->gathered_buffers || !t->gathered_sums || (c->skip_nonfinite > 0 && !t->step_buffers))
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the checkpoint buffers");
    if (t->resume_from && (st = restore(t)) != DPT_OK)
        return st;
    if (is_leader(t) && t->out)
        st = make_dirs(t->out);
    return st;
}

void dpt_trainer_destroy(dpt_trainer *t) {
    if (!t)
        return;
    if (t->stream) /* no read in flight once the trainer is gone: its owner may call HDF5 */
        dpt_stream_drain(t->stream);
    free(t->stream_rows);
    dpt_sampler_free(&t->sampler);
    dpt_augment_free(&t->aug);
    if (t->bucketer_ready)
        dpt_bucketer_free(&t->bucketer);
    dpt_exact_acc_free(&t->exact);
    dpt_free_aligned(t->chunk_grads);
    dpt_model_destroy(t->model);
    dpt_optim_destroy(t->optim);
    free(t->layer_offset);
    dpt_free_aligned(t->x), dpt_free_aligned(t->soft);
    free(t->labels), free(t->partner);
    free(t->buffer_sums);
    free(t->gathered_buffers), free(t->gathered_sums), free(t->step_buffers);
    dpt_metrics_log_free(&t->history);
    dpt__early_stop_free(&t->early);
    dpt__eval_scratch_free(&t->eval);
    free(t->out), free(t->resume_from);
    free(t);
}

dpt_status dpt_trainer_create(dpt_trainer **out, const dpt_train_cfg *cfg, dpt_group *g,
                              const dpt_trainer_job *job) {
    *out = NULL;
    dpt_trainer *t = calloc(1, sizeof *t);
    dpt_status st = t ? DPT_OK : dpt_errorf(DPT_ENOMEM, "cannot allocate the trainer");
    if (t) {
        t->cfg = cfg;
        t->g = g;
        t->log = cfg->log ? cfg->log : stdout;
        t->data = job->data;
        t->train_idx = job->train_idx, t->n_train = job->n_train;
        t->val_idx = job->val_idx, t->n_val = job->val_idx ? job->n_val : 0;
        t->member = job->member;
        snprintf(t->label, sizeof t->label, "%s", job->label ? job->label : "");
        dpt_phase_timer_init(&t->timer);
        if (job->out && *job->out && !(t->out = strdup(job->out)))
            st = dpt_errorf(DPT_ENOMEM, "cannot copy the run directory name");
        const char *from = job->resume_from ? job->resume_from : cfg->resume_from;
        if (st == DPT_OK && from && !(t->resume_from = strdup(from)))
            st = dpt_errorf(DPT_ENOMEM, "cannot copy the checkpoint name");
        if (st == DPT_OK)
            st = setup(t);
    }
    if ((st = dpt_group_agree(g, st)) != DPT_OK) {
        dpt_trainer_destroy(t);
        return st;
    }
    t->t_start = dpt_now() - t->elapsed_before;
    *out = t;
    return DPT_OK;
}

dpt_model *dpt_trainer_model(dpt_trainer *t) { return t->model; }
const dpt_metrics_log *dpt_trainer_history(const dpt_trainer *t) { return &t->history; }
int64_t dpt_trainer_steps_per_epoch(const dpt_trainer *t) { return dpt_sampler_steps(&t->sampler); }

/* ---- one epoch ------------------------------------------------------------------------------ */

/* first: the epoch's first step of this process (a resumed epoch starts late) */
static void report_step(dpt_trainer *t, int64_t step, int64_t first, int64_t steps,
                        const epoch_sums *s, double t0) {
    if (!is_leader(t) || !t->cfg->progress.step)
        return;
    double el = dpt_now() - t0;
    double frac = (double)(step + 1 - first) / (double)(steps - first);
    dpt_step_report r = {
        .label = t->label,
        .epoch = t->epoch, .epochs = t->cfg->epochs,
        .step = step, .steps = steps, .global_step = t->gstep,
        .loss = s->count ? s->loss_sum / (double)s->count : 0,
        .acc = s->count ? (double)s->correct / (double)s->count : 0,
        .images_per_s = el > 0 ? (double)(step + 1 - first) * (double)t->cfg->batch / el : 0,
        .eta_seconds = frac > 0 ? el / frac - el : 0,
    };
    t->cfg->progress.step(t->cfg->progress.ctx, &r);
}

static void report_message(dpt_trainer *t, const char *text) {
    if (is_leader(t) && t->cfg->progress.message)
        t->cfg->progress.message(t->cfg->progress.ctx, t->label, text);
}

dpt_status dpt_trainer_epoch(dpt_trainer *t, dpt_epoch_report *row, int *done) {
    const dpt_train_cfg *c = t->cfg;
    *done = t->done;
    memset(row, 0, sizeof *row);
    if (t->done)
        return DPT_OK;
    uint32_t e = (uint32_t)t->epoch;
    dpt_sampler_set_epoch(&t->sampler, e);
    int64_t steps = dpt_sampler_steps(&t->sampler), images_before = t->images;
    int64_t first = t->epoch_step; /* > 0 when resumed inside the epoch, with its sums restored */
    if (first == 0)
        t->sums = (epoch_sums){0};
    double t0 = dpt_now();
    dpt_status st = DPT_OK;
    int stop = 0;
    if (t->stream && t->epoch_step < steps && !(c->max_steps > 0 && t->gstep >= c->max_steps))
        stream_post(t, t->epoch_step);
    while (t->epoch_step < steps && st == DPT_OK && !stop) {
        if (c->max_steps > 0 && t->gstep >= c->max_steps)
            break;
        int64_t s = t->epoch_step;
        st = train_step(t, s, t->gstep, e, &t->sums, &t->last_lr, &stop);
        t->images += dpt_sampler_batch_size(&t->sampler, s);
        t->gstep++;
        t->epoch_step++;
        report_step(t, s, first, steps, &t->sums, t0);
        int due = c->checkpoint_every > 0 && !c->checkpoint_epochs &&
                  t->gstep % c->checkpoint_every == 0;
        if (t->stream && st == DPT_OK && (due || stop))
            dpt_stream_drain(t->stream); /* HDF5 is not thread-safe: the reader pauses */
        if (st == DPT_OK && (due || stop))
            st = save_periodic(t, t->last_checkpoint, sizeof t->last_checkpoint);
    }
    if (t->stream)
        dpt_stream_drain(t->stream);
    double epoch_seconds = dpt_now() - t0;
    t->train_seconds += epoch_seconds;
    if ((st = dpt_group_agree(t->g, st)) != DPT_OK)
        return st;
    if (stop) {
        /* pre-empted: the checkpoint is written; the epoch's end belongs to the resumed run */
        t->preempted = t->done = *done = 1;
        char text[4300];
        snprintf(text, sizeof text, "stop requested: checkpoint %s after step %lld",
                 t->last_checkpoint, (long long)t->gstep);
        report_message(t, text);
        return DPT_OK;
    }
    if ((st = check_params_finite(t)) != DPT_OK)
        return st;
    double red[3] = {t->sums.loss_sum, (double)t->sums.correct, (double)t->sums.count};
    dpt_phase_begin(&t->timer, DPT_PHASE_EVAL);
    /* The shared optimizer step keeps replicas bit-identical; a hash per epoch proves it. */
    st = dpt_group_check_same(t->g, DPT_SCOPE_GROUP, t->params,
                              (size_t)t->n_params * sizeof(float), "parameters after an epoch");
    if (st == DPT_OK)
        st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, red, 3);
    if (st == DPT_OK)
        st = sync_buffers(t);
    dpt_eval_result val = {.loss = NAN, .acc = NAN}, test = {0};
    if (st == DPT_OK && t->n_val > 0)
        st = dpt_trainer_evaluate(t, &t->data->train, t->val_idx, t->n_val, NULL, &val);
    if (st == DPT_OK)
        st = dpt_trainer_evaluate(t, &t->data->test, NULL, n_test(t), NULL, &test);
    dpt_phase_end(&t->timer);
    if (st != DPT_OK)
        return st;
    /* finite weights can still overflow the logits: a NaN loss must not be logged and saved */
    if (!isfinite(test.loss) || (t->n_val > 0 && !isfinite(val.loss)))
        return dpt_errorf(DPT_ENONFINITE, "step %lld (epoch %lld): the %s loss is %g (the model "
                                          "diverged); nothing saved; lower --lr or enable "
                                          "--clip-norm",
                          (long long)t->gstep, (long long)t->epoch + 1,
                          isfinite(test.loss) ? "validation" : "test",
                          isfinite(test.loss) ? val.loss : test.loss);
    t->epoch++;
    t->epoch_step = 0;
    t->sums = (epoch_sums){0};
    dpt_noise_estimate noise = dpt_noise_ema_value(&t->noise);
    *row = (dpt_epoch_report){
        .epoch = t->epoch, .step = t->gstep, .lr = t->last_lr,
        .train_loss = red[2] > 0 ? red[0] / red[2] : NAN,
        .train_acc = red[2] > 0 ? red[1] / red[2] : NAN,
        .val_loss = val.loss, .val_acc = val.acc,
        .test_loss = test.loss, .test_acc = test.acc,
        .images_per_s = epoch_seconds > 0 ? (double)(t->images - images_before) / epoch_seconds : 0,
        .seconds = dpt_now() - t->t_start,
        .grad_sq = noise.grad_sq, .trace_sigma = noise.trace,
        .b_simple = dpt_noise_ema_b_simple(&t->noise),
    };
    double cols[N_COLS] = {(double)row->epoch,  (double)row->step, row->lr,
                           row->train_loss,     row->train_acc,    row->val_loss,
                           row->val_acc,        row->test_loss,    row->test_acc,
                           row->images_per_s,   row->seconds,      row->grad_sq,
                           row->trace_sigma,    row->b_simple};
    st = dpt_metrics_log_append(&t->history, cols);
    if (st == DPT_OK && is_leader(t) && c->progress.epoch)
        c->progress.epoch(c->progress.ctx, t->label, row);
    if (st == DPT_OK && is_leader(t) && t->out) {
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.csv", t->out);
        st = dpt_metrics_log_write_csv(&t->history, path);
    }
    if ((st = dpt_group_agree(t->g, st)) != DPT_OK)
        return st;
    stop = t->n_val > 0 && dpt__early_stop_update(&t->early, t->epoch, val.loss, t->params,
                                                  t->buffers);
    if (t->early.patience > 0 && t->early.best_epoch == t->epoch) {
        /* a new best: checkpoints/best.h5 is that epoch's full state (weights, buffers,
         * optimizer, metrics, epoch), consistent on its own; final.h5 after an early stop holds
         * the best weights but the last epoch's optimizer state and metrics */
        st = dpt_trainer_save(t, "best.h5", NULL, NULL, 0);
        if ((st = dpt_group_agree(t->g, st)) != DPT_OK)
            return st;
    }
    if (stop) {
        char text[160];
        snprintf(text, sizeof text, "early stop: validation loss has not improved for %lld "
                                    "epochs; restoring epoch %lld",
                 (long long)t->early.since_best, (long long)t->early.best_epoch);
        report_message(t, text);
    }
    t->early_stopped = stop;
    t->done = stop || t->epoch >= c->epochs || (c->max_steps > 0 && t->gstep >= c->max_steps);
    if (t->done && dpt__early_stop_restore(&t->early, t->params, t->buffers)) {
        /* the kept weights' own numbers, so the result matches `dptrain eval` of them */
        if (t->n_val > 0)
            st = dpt_trainer_evaluate(t, &t->data->train, t->val_idx, t->n_val, NULL, &val);
        if (st == DPT_OK)
            st = dpt_trainer_evaluate(t, &t->data->test, NULL, n_test(t), NULL, &test);
        row->val_loss = val.loss, row->val_acc = val.acc;
        row->test_loss = test.loss, row->test_acc = test.acc;
    }
    if (st == DPT_OK && !t->done && c->checkpoint_every > 0 && c->checkpoint_epochs &&
        t->epoch % c->checkpoint_every == 0)
        st = save_periodic(t, t->last_checkpoint, sizeof t->last_checkpoint);
    *done = t->done;
    return st;
}

dpt_status dpt_trainer_fit(dpt_trainer *t, dpt_train_result *res) {
    memset(res, 0, sizeof *res);
    res->best_epoch = -1;
    dpt_status st = DPT_OK;
    dpt_epoch_report row = {.train_loss = NAN, .train_acc = NAN, .val_loss = NAN, .val_acc = NAN,
                            .test_loss = NAN, .test_acc = NAN};
    const dpt_metrics_log *h = &t->history;
    if (h->rows > 0) { /* a resumed run that is already over reports its last epoch */
        int64_t r = h->rows - 1;
        row.train_loss = h->cols[3][r], row.train_acc = h->cols[4][r];
        row.val_loss = h->cols[5][r], row.val_acc = h->cols[6][r];
        row.test_loss = h->cols[7][r], row.test_acc = h->cols[8][r];
    }
    for (int done = 0; !done && st == DPT_OK;) {
        dpt_epoch_report r;
        st = dpt_trainer_epoch(t, &r, &done);
        if (st == DPT_OK)
            row = r;
    }
    res->epochs_run = t->epoch;
    res->steps = t->gstep;
    res->train_loss = row.train_loss, res->train_acc = row.train_acc;
    res->val_loss = row.val_loss, res->val_acc = row.val_acc;
    res->test_loss = row.test_loss, res->test_acc = row.test_acc;
    res->best_epoch = t->early.patience > 0 ? t->early.best_epoch : -1;
    res->preempted = t->preempted;
    res->skipped_steps = t->skipped_total;
    if (t->preempted)
        snprintf(res->checkpoint, sizeof res->checkpoint, "%s", t->last_checkpoint);
    res->seconds = dpt_now() - t->t_start;
    res->images_per_s = t->train_seconds > 0 ? (double)t->images / t->train_seconds : 0;
    if (st == DPT_OK && t->cfg->profile)
        st = print_profile(t, res->seconds);
    return st;
}

/* ---- data --------------------------------------------------------------------------------- */

/* The class count the data must have: --classes, else the model's last dense(N) (0: the data's
 * own count). */
static dpt_status data_classes(const dpt_train_cfg *c, int64_t *K) {
    int64_t from_model = 0;
    dpt_status st = dpt_model_spec_classes(c->model, &from_model);
    if (st != DPT_OK)
        return st;
    if (c->classes > 0 && from_model > 0 && c->classes != from_model)
        return dpt_errorf(DPT_EINVAL, "--classes %lld: the model's last layer dense(%lld) has %lld "
                                      "outputs",
                          (long long)c->classes, (long long)from_model, (long long)from_model);
    *K = c->classes > 0 ? c->classes : from_model;
    return DPT_OK;
}

/* dpt_train_open_data with the block from `alloc` (NULL: this rank's own memory). */
static dpt_status open_data(const dpt_train_cfg *c, dpt_data *data, dpt_data_alloc_fn alloc,
                            void *alloc_ctx) {
    memset(data, 0, sizeof *data);
    int64_t K = 0;
    dpt_status st = data_classes(c, &K);
    if (st != DPT_OK)
        return st;
    dpt_data_opts opts = {.search_path = c->data_search, .classes = K, .alloc = alloc,
                          .alloc_ctx = alloc_ctx, .stream_train = c->stream};
    st = dpt_data_load(data, c->data, &opts);
    if (st == DPT_OK && !data->classes_declared) {
        st = dpt_errorf(DPT_EINVAL,
                        "--data %.200s: the class count is not known (the data does not declare "
                        "it and the model ends in dense(classes)); give --classes K",
                        c->data);
        dpt_data_free(data);
    }
    return st;
}

dpt_status dpt_train_open_data(const dpt_train_cfg *c, dpt_data *data) {
    return open_data(c, data, NULL, NULL);
}

int dpt__train_same_data(const dpt_train_cfg *a, const dpt_train_cfg *b) {
    int64_t ka = 0, kb = 0;
    if (data_classes(a, &ka) != DPT_OK || data_classes(b, &kb) != DPT_OK)
        return 0;
    const char *sa = a->data_search ? a->data_search : "", *sb = b->data_search ? b->data_search
                                                                                 : "";
    return a->data && b->data && !strcmp(a->data, b->data) && !strcmp(sa, sb) && ka == kb &&
           a->data_copy == b->data_copy && a->stream == b->stream;
}

/* --data-copy node: the node-shared buffer behind a dpt_data, released by dpt_data_free. */
typedef struct {
    dpt_node_buffer buf;
    int allocated; /* the loader asked for the block */
} node_copy;

static dpt_status node_copy_alloc(void *ctx, size_t bytes, void **out) {
    node_copy *nc = ctx;
    nc->allocated = 1;
    dpt_status st = dpt_node_buffer_alloc(&nc->buf, bytes);
    *out = nc->buf.base;
    if (st == DPT_ENOMEM)
        st = dpt_errorf(st, "--data-copy node: %s (--data-copy rank keeps a copy per rank in "
                            "private memory)",
                        dpt_last_error());
    return st;
}

static void node_copy_release(void *ctx) {
    node_copy *nc = ctx;
    dpt_node_buffer_free(&nc->buf);
    free(nc);
}

/* The node leader reads the files straight into the node's buffer; the others wait in the
 * buffer's collectives (which poll, so they leave the cores to the reader) and then view it. */
static dpt_status open_data_node(const dpt_train_cfg *c, dpt_group *g, dpt_data *data) {
    memset(data, 0, sizeof *data);
    node_copy *nc = calloc(1, sizeof *nc);
    if (!nc) /* without it this rank cannot take part in the node's collectives */
        dpt_group_abort(g, dpt_errorf(DPT_ENOMEM, "--data-copy node: out of memory"));
    dpt_status st = dpt_group_agree(g, dpt_node_buffer_init(&nc->buf, g));
    if (st != DPT_OK) {
        node_copy_release(nc);
        return st;
    }
    if (nc->buf.rank == 0) {
        st = open_data(c, data, node_copy_alloc, nc);
        if (!nc->allocated) { /* failed before: tell the others there is nothing to map */
            dpt_status a = dpt_node_buffer_alloc(&nc->buf, 0);
            st = st != DPT_OK ? st : a;
        }
    } else {
        st = dpt_node_buffer_alloc(&nc->buf, 0);
    }
    dpt_status published = dpt_node_buffer_publish(&nc->buf);
    st = dpt_group_agree(g, st != DPT_OK ? st : published);
    if (st == DPT_OK && nc->buf.rank != 0)
        st = dpt_data_attach(data, nc->buf.base, nc->buf.bytes);
    st = dpt_group_agree(g, st);
    if (st != DPT_OK) {
        dpt_data_free(data);
        node_copy_release(nc);
        return st;
    }
    data->release = node_copy_release;
    data->release_ctx = nc;
    return DPT_OK;
}

dpt_status dpt__train_open_data(const dpt_train_cfg *c, dpt_group *g, dpt_data *data) {
    if (c->data_copy == DPT_DATA_COPY_RANK)
        return dpt_train_open_data(c, data);
    return open_data_node(c, g, data);
}

dpt_status dpt_train_load_data(const dpt_train_cfg *c, dpt_group *g, dpt_data *data,
                               int64_t **train_idx, int64_t *n_train, int64_t **val_idx,
                               int64_t *n_val) {
    return dpt__train_prepare_data(c, g, NULL, data, train_idx, n_train, val_idx, n_val);
}

/* --stream: every rank opens its reader of train's samples; the group's leader computes the
 * normalization statistics in a streaming pass (the in-memory bits) and broadcasts them. */
static dpt_status open_stream(const dpt_train_cfg *c, dpt_group *g, dpt_data *data,
                              const int64_t *train_idx, int64_t n_train) {
    if (c->val_fraction > 0) /* validation would read the training file at random */
        return dpt_errorf(DPT_EINVAL, "--stream: not with --val-fraction (docs/streaming.md)");
    int mixing = c->augment.mixup_alpha > 0 || c->augment.cutmix_alpha > 0;
    int64_t local_max = (c->batch + g->size - 1) / g->size;
    dpt_stream_cfg sc = {.max_rows = (mixing ? 2 : 1) * (local_max > 0 ? local_max : 1),
                         .window_chunks = c->stream_window};
    dpt_status st = dpt_group_agree(g, dpt_stream_open(&data->stream, data->source, &data->train,
                                                       &sc));
    if (st != DPT_OK)
        return st;
    const int64_t C = data->train.C;
    double *stats = calloc((size_t)(2 * C), sizeof(double));
    if (!stats)
        st = dpt_errorf(DPT_ENOMEM, "cannot allocate the normalization statistics");
    else if (g->leader)
        st = dpt_stream_channel_stats(data->stream, &data->train, train_idx, n_train, stats,
                                      stats + C);
    st = dpt_group_agree(g, st);
    if (st == DPT_OK)
        st = dpt_group_bcast_f64(g, stats, 2 * C);
    if (st == DPT_OK)
        st = dpt_dataset_normalize(&data->train, stats, stats + C);
    if (st == DPT_OK)
        st = dpt_dataset_normalize(&data->test, stats, stats + C);
    free(stats);
    return st;
}

dpt_status dpt__train_prepare_data(const dpt_train_cfg *c, dpt_group *g, const dpt_data *base,
                                   dpt_data *data, int64_t **train_idx, int64_t *n_train,
                                   int64_t **val_idx, int64_t *n_val) {
    *train_idx = *val_idx = NULL;
    *n_train = *n_val = 0;
    dpt_status st = base ? dpt_data_attach(data, base->block, base->block_bytes)
                         : dpt__train_open_data(c, g, data);
    int64_t n = st == DPT_OK ? data->train.N : 0;
    if (st == DPT_OK) {
        *train_idx = malloc((size_t)n * sizeof(int64_t));
        if (c->val_fraction > 0)
            *val_idx = malloc((size_t)n * sizeof(int64_t));
        if (!*train_idx || (c->val_fraction > 0 && !*val_idx))
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the index lists");
    }
    if (st == DPT_OK && c->val_fraction > 0) {
        st = dpt_resample_split(*train_idx, n_train, *val_idx, n_val, NULL, n, data->train.y,
                                data->train.K, c->val_fraction, c->seed, 0);
    } else if (st == DPT_OK) {
        for (int64_t i = 0; i < n; i++)
            (*train_idx)[i] = i;
        *n_train = n;
    }
    if (st == DPT_OK && data->train.streamed)
        st = open_stream(c, g, data, *train_idx, *n_train);
    else if (st == DPT_OK)
        st = dpt_data_normalize(data, *train_idx, *n_train);
    st = dpt_group_agree(g, st);
    if (st != DPT_OK) {
        free(*train_idx), free(*val_idx);
        *train_idx = *val_idx = NULL;
        dpt_data_free(data);
    }
    return st;
}

static void print_header(const dpt_trainer *t) {
    if (!is_leader(t) || t->cfg->quiet)
        return;
    fprintf(t->log,
            "dptrain: %s on %s (%lld train, %lld val, %lld test), %d rank%s x %d thread%s, global "
            "batch %lld, %lld steps/epoch, %lld parameters, conv kernel %s\n",
            dpt_model_spec(t->model), t->data->source, (long long)t->n_train, (long long)t->n_val,
            (long long)n_test(t), t->g->size, t->g->size > 1 ? "s" : "",
            t->cfg->threads > 1 ? t->cfg->threads : 1, t->cfg->threads > 1 ? "s" : "",
            (long long)t->cfg->batch, (long long)dpt_sampler_steps(&t->sampler),
            (long long)t->n_params, dpt_conv_default_description());
    fflush(t->log);
}

dpt_status dpt_train_run(const dpt_train_cfg *cfg, dpt_group *g, dpt_train_result *res) {
    memset(res, 0, sizeof *res);
    dpt_data data = {0};
    int64_t *train_idx, *val_idx, n_train, n_val;
    dpt_status st = dpt_train_load_data(cfg, g, &data, &train_idx, &n_train, &val_idx, &n_val);
    if (st != DPT_OK)
        return st;
    dpt_trainer_job job = {.data = &data, .train_idx = train_idx, .n_train = n_train,
                           .val_idx = val_idx, .n_val = n_val, .out = cfg->out};
    dpt_trainer *t = NULL;
    st = dpt_trainer_create(&t, cfg, g, &job);
    if (st == DPT_OK) {
        print_header(t);
        st = dpt_trainer_fit(t, res);
        if (st == DPT_OK && !res->preempted)
            st = dpt_trainer_save(t, "final.h5", NULL, res->checkpoint, sizeof res->checkpoint);
        st = dpt_group_agree(g, st);
    }
    dpt_trainer_destroy(t);
    free(train_idx), free(val_idx);
    dpt_data_free(&data);
    return st;
}
