/* The training loop of DESIGN §2 over one rank group (train): sampler -> augment -> forward ->
 * loss -> backward with bucketed allreduce -> one shared optimizer step; evaluation, early
 * stopping, metrics.csv and the final checkpoint. Parses no arguments; talks to MPI only
 * through dist. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpt/checkpoint.h"
#include "dpt/conv.h"
#include "dpt/data.h"
#include "dpt/dist.h"
#include "dpt/loss.h"
#include "dpt/model.h"
#include "dpt/sampler.h"
#include "dpt/timer.h"
#include "dpt/train.h"

#define EVAL_BATCH_DEFAULT 256

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

/* Per-epoch history, for metrics.csv and the checkpoint. */
enum {
    COL_EPOCH, COL_STEP, COL_LR, COL_TRAIN_LOSS, COL_TRAIN_ACC, COL_VAL_LOSS, COL_VAL_ACC,
    COL_TEST_LOSS, COL_TEST_ACC, COL_IMAGES_PER_S, COL_SECONDS, N_COLS
};
static const char *const col_names[N_COLS] = {
    "epoch",    "step",      "lr",       "train_loss", "train_acc", "val_loss",
    "val_acc",  "test_loss", "test_acc", "images_per_s", "seconds"};

typedef struct {
    const dpt_train_cfg *cfg;
    dpt_group *g;
    FILE *log;
    dpt_data data;
    int64_t *train_idx, *val_idx, n_train, n_val;
    dpt_sampler sampler;
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
    float *best_params, *best_buffers;
    double *buffer_sums;     /* scratch of sync_buffers */
    double *history[N_COLS];
    int64_t history_rows;
    dpt_phase_timer timer;
    int in_last_micro;       /* backward of the last micro-batch: the hook marks buckets */
} trainer;

static int is_leader(const trainer *t) { return t->g->leader; }

/* ---- setup --------------------------------------------------------------------------------- */

static dpt_status load_data(trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    dpt_data_opts opts = {.search_path = c->data_search};
    dpt_status st = dpt_data_load(&t->data, c->data, &opts);
    if (st != DPT_OK)
        return st;
    int64_t n = t->data.train.N;
    t->train_idx = malloc((size_t)n * sizeof(int64_t));
    t->val_idx = malloc((size_t)n * sizeof(int64_t));
    if (!t->train_idx || !t->val_idx)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the index lists");
    if (c->val_fraction > 0) {
        st = dpt_resample_split(t->train_idx, &t->n_train, t->val_idx, &t->n_val, NULL, n,
                                t->data.train.y, t->data.train.K, c->val_fraction, c->seed, 0);
        if (st != DPT_OK)
            return st;
    } else {
        for (int64_t i = 0; i < n; i++)
            t->train_idx[i] = i;
        t->n_train = n;
    }
    return dpt_data_normalize(&t->data, t->train_idx, t->n_train);
}

static void backward_hook(void *ctx, int layer) {
    trainer *t = ctx;
    if (!t->in_last_micro || !t->bucketer_ready)
        return;
    if (t->layer_offset[layer] < t->n_params)
        dpt_bucketer_mark_from(&t->bucketer, t->layer_offset[layer]);
    dpt_bucketer_progress(&t->bucketer);
}

static dpt_status build_model(trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    const dpt_dataset *ds = &t->data.train;
    int64_t in[4] = {ds->C, ds->D, ds->H, ds->W};
    dpt_shape input;
    if (ds->sdims == 1)
        input = dpt_shape_make(2, (int64_t[]){ds->C, ds->W});
    else if (ds->sdims == 2)
        input = dpt_shape_make(3, (int64_t[]){ds->C, ds->H, ds->W});
    else
        input = dpt_shape_make(4, in);
    int64_t eval_batch = c->eval_batch > 0 ? c->eval_batch : EVAL_BATCH_DEFAULT;
    dpt_model_cfg mc = {
        .max_batch = t->micro > eval_batch ? t->micro : eval_batch,
        .num_classes = ds->K,
        .bn_ghost = c->bn == DPT_BN_GHOST ? c->bn_ghost : 0,
        .seed = c->seed,
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
    if (st != DPT_OK)
        return st;

    int n_segs;
    const dpt_model_segment *segs = dpt_model_param_segments(t->model, &n_segs);
    t->n_layers = dpt_model_num_layers(t->model);
    t->layer_offset = malloc((size_t)(t->n_layers + 1) * sizeof(int64_t));
    dpt_optim_segment *osegs = calloc((size_t)(n_segs > 0 ? n_segs : 1), sizeof *osegs);
    dpt_dist_segment *dsegs = calloc((size_t)(n_segs > 0 ? n_segs : 1), sizeof *dsegs);
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
        dsegs[s] = (dpt_dist_segment){.offset = segs[s].offset, .count = segs[s].count};
    }
    st = dpt_optim_create(&t->optim, &c->optim, t->n_params, osegs, n_segs);
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

static dpt_status make_schedule(trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    double spe = (double)dpt_sampler_steps(&t->sampler);
    int64_t total = (int64_t)(spe * (double)c->epochs);
    if (c->max_steps > 0 && c->max_steps < total)
        total = c->max_steps;
    dpt_schedule_cfg sc = {
        .kind = c->schedule,
        /* the optimizer's lr (torch's default when not given), scaled by the linear scaling
         * rule when asked: lr * batch / ref_batch (Goyal et al. 2017) */
        .base_lr = c->lr_ref_batch > 0 ? dpt_schedule_linear_scaling(dpt_optim_base_lr(t->optim),
                                                                     c->batch, c->lr_ref_batch)
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

static dpt_status allocate_batch(trainer *t) {
    const dpt_dataset *ds = &t->data.train;
    int64_t sample = dpt_dataset_sample_numel(ds);
    int64_t local_max = (t->cfg->batch + t->g->size - 1) / t->g->size;
    t->micro = t->cfg->micro_batch > 0 && t->cfg->micro_batch < local_max ? t->cfg->micro_batch
                                                                          : local_max;
    int64_t eval_batch = t->cfg->eval_batch > 0 ? t->cfg->eval_batch : EVAL_BATCH_DEFAULT;
    int64_t rows = t->micro > eval_batch ? t->micro : eval_batch; /* x serves evaluation too */
    t->x = dpt_alloc_aligned(dpt_size_mul((size_t)(rows * sample), sizeof(float)));
    t->soft = dpt_alloc_aligned(dpt_size_mul((size_t)(t->micro * ds->K), sizeof(float)));
    t->labels = malloc((size_t)rows * sizeof(int32_t));
    t->partner = malloc((size_t)t->micro * sizeof(int64_t));
    if (!t->x || !t->soft || !t->labels || !t->partner)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the batch buffers");
    return DPT_OK;
}

static dpt_status check_config(trainer *t) {
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
            return dpt_errorf(DPT_EINVAL, "--deterministic needs --drop-last");
    }
    return DPT_OK;
}

/* ---- one step -------------------------------------------------------------------------------- */

typedef struct {
    double loss_sum;   /* sum over samples of the per-sample loss */
    int64_t correct, count;
} epoch_sums;

/* Forward + loss + backward of rows [off, off + m) of this rank's slice. The loss is divided by
 * the global batch b, so the group sum of the gradients is the gradient of the global mean. */
static dpt_status micro_step(trainer *t, const int64_t *idx, int64_t first, int64_t off,
                             int64_t m, int64_t step, int64_t gstep, int64_t b, uint32_t epoch,
                             epoch_sums *sums) {
    const dpt_train_cfg *c = t->cfg;
    const dpt_dataset *ds = &t->data.train;
    dpt_phase_begin(&t->timer, DPT_PHASE_DATA);
    if (t->mixing)
        for (int64_t j = 0; j < m; j++)
            t->partner[j] = dpt_sampler_partner(&t->sampler, step, first + off + j);
    dpt_augment_fill(&t->aug, t->x, t->labels, t->mixing ? t->soft : NULL, ds, idx + off,
                     t->partner, m, epoch);
    dpt_phase_end(&t->timer);

    dpt_phase_begin(&t->timer, DPT_PHASE_FORWARD);
    dpt_model_rng rng = {.seed = c->seed, .step = (uint32_t)gstep, .sample = idx + off};
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

static int grads_finite(const float *g, int64_t n) {
    float acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc += g[i] * 0.0f; /* NaN or Inf anywhere makes this NaN */
    return acc == 0.0f;
}

static dpt_status deterministic_reduce(trainer *t, int64_t n_chunks_local, int64_t b) {
    double maxabs = dpt_exact_maxabs(t->chunk_grads, n_chunks_local * t->n_params);
    dpt_exact_scale scale;
    dpt_status st = dpt_exact_agree(t->g, maxabs, b / t->cfg->micro_batch, &scale);
    if (st != DPT_OK)
        return st;
    dpt_exact_acc_begin(&t->exact, &scale);
    for (int64_t k = 0; k < n_chunks_local && st == DPT_OK; k++)
        st = dpt_exact_acc_add_chunk(&t->exact, t->chunk_grads + k * t->n_params);
    if (st == DPT_OK)
        st = dpt_exact_acc_allreduce(&t->exact, t->g);
    if (st == DPT_OK)
        dpt_exact_acc_result(&t->exact, t->grads, 1.0);
    return st;
}

static dpt_status train_step(trainer *t, int64_t step, int64_t gstep, uint32_t epoch,
                             epoch_sums *sums, double *lr_out) {
    const dpt_train_cfg *c = t->cfg;
    const int64_t *idx;
    int64_t first;
    int64_t b = dpt_sampler_batch_size(&t->sampler, step);
    int64_t n = dpt_sampler_slice(&t->sampler, step, t->g->rank, t->g->size, &idx, &first);
    dpt_status st = DPT_OK;
    dpt_model_zero_grad(t->model);
    if (t->bucketer_ready)
        dpt_bucketer_begin(&t->bucketer, 1.0);
    int64_t chunks = 0;
    for (int64_t off = 0; off < n && st == DPT_OK; off += t->micro) {
        int64_t m = n - off < t->micro ? n - off : t->micro;
        t->in_last_micro = off + m >= n;
        if (c->deterministic)
            dpt_model_zero_grad(t->model);
        st = micro_step(t, idx, first, off, m, step, gstep, b, epoch, sums);
        if (c->deterministic && st == DPT_OK)
            memcpy(t->chunk_grads + chunks++ * t->n_params, t->grads,
                   (size_t)t->n_params * sizeof(float));
    }
    t->in_last_micro = 0;
    dpt_phase_begin(&t->timer, DPT_PHASE_COMM_WAIT);
    if (st == DPT_OK && c->deterministic)
        st = deterministic_reduce(t, chunks, b);
    else if (t->bucketer_ready) {
        dpt_status wst = dpt_bucketer_wait(&t->bucketer); /* always: no request left in flight */
        st = st == DPT_OK ? wst : st;
    }
    dpt_phase_end(&t->timer);
    if (st != DPT_OK)
        return st;
    /* Every rank holds the same reduced gradients, so this check stops all ranks together. */
    if (!grads_finite(t->grads, t->n_params))
        return dpt_errorf(DPT_ENONFINITE, "non-finite gradient at step %lld (epoch %u); lower "
                                          "--lr or enable --clip-norm",
                          (long long)gstep + 1, epoch + 1);
    dpt_phase_begin(&t->timer, DPT_PHASE_OPTIM);
    if (c->clip_norm > 0)
        st = dpt_clip_grad_norm(t->grads, t->n_params, c->clip_norm, NULL);
    if (st == DPT_OK && c->clip_value > 0)
        st = dpt_clip_grad_value(t->grads, t->n_params, c->clip_value);
    double lr = dpt_schedule_lr(&t->sched, gstep);
    if (st == DPT_OK)
        st = dpt_optim_step(t->optim, t->params, t->grads, lr);
    dpt_phase_end(&t->timer);
    *lr_out = lr;
    return st;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Batch-norm running statistics are per rank with local BN: average them over the group so that
 * evaluation and checkpoints use one model. */
static dpt_status sync_buffers(trainer *t) {
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

/* Loss and accuracy of `model` over ds samples idx[0..n) (NULL: all), sharded over the group. */
static dpt_status evaluate_model(dpt_model *model, const dpt_group *g, const dpt_dataset *ds,
                                 const int64_t *idx, int64_t n, int64_t eval_batch, float *x,
                                 int32_t *labels, double *loss, double *acc) {
    int64_t begin, count;
    dpt_shard_range(n, g->rank, g->size, &begin, &count);
    int64_t sample = dpt_dataset_sample_numel(ds);
    double sums[2] = {0, 0};
    dpt_status st = DPT_OK;
    for (int64_t off = 0; off < count && st == DPT_OK; off += eval_batch) {
        int64_t m = count - off < eval_batch ? count - off : eval_batch;
        for (int64_t j = 0; j < m; j++) {
            int64_t s = idx ? idx[begin + off + j] : begin + off + j;
            memcpy(x + j * sample, ds->x + s * sample, (size_t)sample * sizeof(float));
            labels[j] = ds->y[s];
        }
        if ((st = dpt_model_forward(model, x, m, 0, NULL)) != DPT_OK)
            break;
        int64_t correct = 0;
        sums[0] += dpt_xent_forward_backward(NULL, &correct, dpt_model_logits(model), labels, m,
                                             ds->K, 0, 1.0);
        sums[1] += (double)correct;
    }
    dpt_status rst = dpt_group_sum_f64(g, DPT_SCOPE_GROUP, sums, 2);
    st = st == DPT_OK ? rst : st;
    *loss = n > 0 ? sums[0] / (double)n : NAN;
    *acc = n > 0 ? sums[1] / (double)n : NAN;
    return st;
}

/* Test samples evaluated: all, or the first --test-samples. */
static int64_t n_test(const trainer *t) {
    int64_t n = t->data.test.N, limit = t->cfg->test_samples;
    return limit > 0 && limit < n ? limit : n;
}

/* ---- output ---------------------------------------------------------------------------------- */

/* At most one refresh per PROGRESS_PERIOD seconds: under mpirun a rank's stdout looks like a
 * terminal even when mpirun's output goes to a file (--no-progress turns it off there). */
#define PROGRESS_PERIOD 0.5

static void progress_line(trainer *t, int64_t epoch, int64_t step, int64_t steps,
                          const epoch_sums *s, double t0, int tty, double *last) {
    if (!tty || !is_leader(t) || t->cfg->quiet || t->cfg->no_progress)
        return;
    double now = dpt_now();
    if (now - *last < PROGRESS_PERIOD && step + 1 < steps)
        return;
    *last = now;
    double el = now - t0;
    double frac = (double)(step + 1) / (double)steps;
    double ips = el > 0 ? (double)(step + 1) * (double)t->cfg->batch / el : 0;
    double eta = frac > 0 ? el / frac - el : 0;
    fprintf(t->log, "\repoch %lld/%lld %3.0f%%  loss %.4f  acc %.4f  %6.0f img/s  ETA %3.0fs ",
            (long long)epoch + 1, (long long)t->cfg->epochs, 100 * frac,
            s->count ? s->loss_sum / (double)s->count : 0,
            s->count ? (double)s->correct / (double)s->count : 0, ips, eta);
    fflush(t->log);
}

static dpt_status make_dirs(const char *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s", out);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0777);
            *p = '/';
        }
    if (mkdir(path, 0777) != 0 && access(path, W_OK) != 0)
        return dpt_errorf(DPT_EIO, "%s: cannot create the run directory", out);
    snprintf(path, sizeof path, "%s/checkpoints", out);
    if (mkdir(path, 0777) != 0 && access(path, W_OK) != 0)
        return dpt_errorf(DPT_EIO, "%s: cannot create the checkpoint directory", path);
    return DPT_OK;
}

static dpt_status write_metrics_csv(const trainer *t) {
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.csv", t->cfg->out);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dpt_errorf(DPT_EIO, "%s: cannot write", tmp);
    for (int c = 0; c < N_COLS; c++)
        fprintf(f, "%s%s", col_names[c], c + 1 < N_COLS ? "," : "\n");
    for (int64_t r = 0; r < t->history_rows; r++)
        for (int c = 0; c < N_COLS; c++)
            fprintf(f, c <= COL_STEP ? "%.0f%s" : "%.9g%s", t->history[c][r],
                    c + 1 < N_COLS ? "," : "\n");
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0)
        return dpt_errorf(DPT_EIO, "%s: write failed", path);
    return DPT_OK;
}

static dpt_status save_checkpoint(trainer *t, const char *name, int64_t epoch, int64_t step,
                                  char *path_out, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints/%s", t->cfg->out, name);
    const double *cols[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        cols[c] = t->history[c];
    dpt_checkpoint ck = {
        .model = t->model,
        .optim = t->optim,
        .epoch = epoch,
        .step = step,
        .seed = t->cfg->seed,
        .data_source = t->data.source,
        .channels = t->data.train.C,
        .norm_mean = t->data.train.norm_mean,
        .norm_std = t->data.train.norm_std,
        .n_metrics = N_COLS,
        .metric_rows = t->history_rows,
        .metric_names = col_names,
        .metric_values = cols,
    };
    dpt_status st = dpt_checkpoint_save(path, &ck);
    if (st == DPT_OK && path_out)
        snprintf(path_out, n, "%s", path);
    return st;
}

/* Mean over the group of each phase's seconds (ranks run in lock step, so the mean is typical). */
static dpt_status print_profile(trainer *t, double total) {
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

/* ---- the loop -------------------------------------------------------------------------------- */

static dpt_status setup(trainer *t) {
    const dpt_train_cfg *c = t->cfg;
    dpt_status st = check_config(t);
    if (st == DPT_OK)
        st = load_data(t);
    if ((st = dpt_group_agree(t->g, st)) != DPT_OK)
        return st;
    dpt_sampler_cfg sc = {.global_batch = c->batch, .seed = c->seed, .drop_last = c->drop_last};
    if ((st = dpt_sampler_init(&t->sampler, &sc, t->train_idx, t->n_train)) != DPT_OK)
        return st;
    dpt_augment_cfg ac = c->augment;
    ac.seed = c->seed;
    ac.member = 0;
    t->mixing = ac.mixup_alpha > 0 || ac.cutmix_alpha > 0;
    if ((st = dpt_augment_init(&t->aug, &ac, &t->data.train)) != DPT_OK)
        return st;
    if ((st = allocate_batch(t)) != DPT_OK || (st = build_model(t)) != DPT_OK ||
        (st = make_schedule(t)) != DPT_OK)
        return st;
    if (c->deterministic) {
        int64_t local_chunks = c->batch / t->g->size / c->micro_batch;
        t->chunk_grads = dpt_alloc_aligned(
            dpt_size_mul((size_t)(local_chunks * t->n_params), sizeof(float)));
        if (!t->chunk_grads)
            return DPT_ENOMEM;
        if ((st = dpt_exact_acc_init(&t->exact, t->n_params)) != DPT_OK)
            return st;
    }
    for (int col = 0; col < N_COLS; col++)
        if (!(t->history[col] = calloc((size_t)c->epochs, sizeof(double))))
            return dpt_errorf(DPT_ENOMEM, "cannot allocate the metrics history");
    if (!(t->buffer_sums = malloc((size_t)(t->n_buffers + 1) * sizeof(double))))
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the buffer reduction");
    if (c->early_stop > 0) {
        t->best_params = malloc((size_t)t->n_params * sizeof(float));
        t->best_buffers = malloc((size_t)(t->n_buffers + 1) * sizeof(float));
        if (!t->best_params || !t->best_buffers)
            return dpt_errorf(DPT_ENOMEM, "cannot allocate the early-stopping copy");
    }
    if (is_leader(t) && c->out && *c->out)
        st = make_dirs(c->out);
    return st;
}

static void free_trainer(trainer *t) {
    dpt_data_free(&t->data);
    free(t->train_idx), free(t->val_idx);
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
    free(t->best_params), free(t->best_buffers), free(t->buffer_sums);
    for (int c = 0; c < N_COLS; c++)
        free(t->history[c]);
}

static dpt_status run_epochs(trainer *t, dpt_train_result *res) {
    const dpt_train_cfg *c = t->cfg;
    const dpt_dataset *ds = &t->data.train;
    int tty = isatty(fileno(t->log));
    int64_t eval_batch = c->eval_batch > 0 ? c->eval_batch : EVAL_BATCH_DEFAULT;
    double best_val = INFINITY, train_seconds = 0, t_start = dpt_now();
    int64_t gstep = 0, since_best = 0, images = 0;
    dpt_status st = DPT_OK;
    res->best_epoch = -1;
    for (int64_t e = 0; e < c->epochs && st == DPT_OK; e++) {
        dpt_sampler_set_epoch(&t->sampler, (uint32_t)e);
        int64_t steps = dpt_sampler_steps(&t->sampler);
        epoch_sums sums = {0};
        double lr = 0, t0 = dpt_now(), last_progress = 0;
        int64_t images_before = images;
        for (int64_t s = 0; s < steps && st == DPT_OK; s++) {
            if (c->max_steps > 0 && gstep >= c->max_steps)
                break;
            st = train_step(t, s, gstep, (uint32_t)e, &sums, &lr);
            images += dpt_sampler_batch_size(&t->sampler, s);
            gstep++;
            progress_line(t, e, s, steps, &sums, t0, tty, &last_progress);
        }
        double epoch_seconds = dpt_now() - t0;
        train_seconds += epoch_seconds;
        if ((st = dpt_group_agree(t->g, st)) != DPT_OK)
            break;
        if (tty && is_leader(t) && !c->quiet && !c->no_progress)
            fprintf(t->log, "\r\033[K");
        /* epoch metrics, reduced over the group */
        double red[3] = {sums.loss_sum, (double)sums.correct, (double)sums.count};
        dpt_phase_begin(&t->timer, DPT_PHASE_EVAL);
        /* The shared optimizer step keeps replicas bit-identical; a hash per epoch proves it. */
        st = dpt_group_check_same(t->g, DPT_SCOPE_GROUP, t->params,
                                  (size_t)t->n_params * sizeof(float), "parameters after an epoch");
        if (st == DPT_OK)
            st = dpt_group_sum_f64(t->g, DPT_SCOPE_GROUP, red, 3);
        if (st == DPT_OK)
            st = sync_buffers(t);
        double val_loss = NAN, val_acc = NAN, test_loss = NAN, test_acc = NAN;
        if (st == DPT_OK && t->n_val > 0)
            st = evaluate_model(t->model, t->g, ds, t->val_idx, t->n_val, eval_batch, t->x,
                                t->labels, &val_loss, &val_acc);
        if (st == DPT_OK)
            st = evaluate_model(t->model, t->g, &t->data.test, NULL, n_test(t), eval_batch, t->x,
                                t->labels, &test_loss, &test_acc);
        dpt_phase_end(&t->timer);
        if (st != DPT_OK)
            break;
        int64_t r = t->history_rows++;
        double row[N_COLS] = {
            (double)(e + 1), (double)gstep, lr, red[2] > 0 ? red[0] / red[2] : NAN,
            red[2] > 0 ? red[1] / red[2] : NAN, val_loss, val_acc, test_loss, test_acc,
            (double)images / train_seconds, dpt_now() - t_start};
        for (int col = 0; col < N_COLS; col++)
            t->history[col][r] = row[col];
        res->epochs_run = e + 1;
        res->steps = gstep;
        res->train_loss = row[COL_TRAIN_LOSS], res->train_acc = row[COL_TRAIN_ACC];
        res->val_loss = val_loss, res->val_acc = val_acc;
        res->test_loss = test_loss, res->test_acc = test_acc;
        if (is_leader(t) && !c->quiet) {
            char val[64] = "";
            if (t->n_val > 0)
                snprintf(val, sizeof val, "  val loss %.4f acc %.4f", val_loss, val_acc);
            fprintf(t->log,
                    "epoch %3lld  step %6lld  lr %.3g  train loss %.4f acc %.4f%s  test loss "
                    "%.4f acc %.4f  %.0f img/s  %.1fs\n",
                    (long long)e + 1, (long long)gstep, lr, row[COL_TRAIN_LOSS],
                    row[COL_TRAIN_ACC], val, test_loss, test_acc,
                    (double)(images - images_before) / epoch_seconds, epoch_seconds);
        }
        if (is_leader(t) && c->out && *c->out)
            st = write_metrics_csv(t);
        if ((st = dpt_group_agree(t->g, st)) != DPT_OK)
            break;
        if (c->early_stop > 0 && t->n_val > 0) {
            if (val_loss < best_val) {
                best_val = val_loss;
                since_best = 0;
                res->best_epoch = e + 1;
                memcpy(t->best_params, t->params, (size_t)t->n_params * sizeof(float));
                memcpy(t->best_buffers, t->buffers, (size_t)t->n_buffers * sizeof(float));
            } else if (++since_best >= c->early_stop) {
                if (is_leader(t) && !c->quiet)
                    fprintf(t->log, "early stop: validation loss has not improved for %lld "
                                    "epochs; restoring epoch %lld\n",
                            (long long)since_best, (long long)res->best_epoch);
                break;
            }
        }
        if (c->max_steps > 0 && gstep >= c->max_steps)
            break;
    }
    if (st == DPT_OK && res->best_epoch > 0) {
        memcpy(t->params, t->best_params, (size_t)t->n_params * sizeof(float));
        memcpy(t->buffers, t->best_buffers, (size_t)t->n_buffers * sizeof(float));
        st = evaluate_model(t->model, t->g, &t->data.test, NULL, n_test(t), eval_batch, t->x,
                            t->labels, &res->test_loss, &res->test_acc);
    }
    res->seconds = dpt_now() - t_start;
    res->images_per_s = train_seconds > 0 ? (double)images / train_seconds : 0;
    return st;
}

dpt_status dpt_train_run(const dpt_train_cfg *cfg, dpt_group *g, dpt_train_result *res) {
    trainer t = {.cfg = cfg, .g = g, .log = cfg->log ? cfg->log : stdout};
    memset(res, 0, sizeof *res);
    dpt_phase_timer_init(&t.timer);
    dpt_status st = setup(&t);
    if ((st = dpt_group_agree(g, st)) == DPT_OK) {
        if (is_leader(&t) && !cfg->quiet)
            fprintf(t.log,
                    "dptrain: %s on %s (%lld train, %lld val, %lld test), %d rank%s, global "
                    "batch %lld, %lld steps/epoch, %lld parameters, conv kernel %s\n",
                    dpt_model_spec(t.model), t.data.source, (long long)t.n_train,
                    (long long)t.n_val, (long long)n_test(&t), g->size, g->size > 1 ? "s" : "",
                    (long long)cfg->batch, (long long)dpt_sampler_steps(&t.sampler),
                    (long long)t.n_params, dpt_conv_default_description());
        st = run_epochs(&t, res);
        st = dpt_group_agree(g, st);
    }
    if (st == DPT_OK && is_leader(&t) && cfg->out && *cfg->out)
        st = save_checkpoint(&t, "final.h5", res->epochs_run, res->steps, res->checkpoint,
                             sizeof res->checkpoint);
    st = dpt_group_agree(g, st);
    if (st == DPT_OK && cfg->profile)
        st = print_profile(&t, res->seconds);
    free_trainer(&t);
    return st;
}

dpt_status dpt_train_eval_checkpoint(const char *ckpt, const char *data, const char *data_search,
                                     dpt_group *g, double *loss, double *acc, int64_t *n) {
    dpt_model *m = NULL;
    dpt_checkpoint_info info;
    dpt_data d = {0};
    float *x = NULL;
    int32_t *labels = NULL;
    int64_t eval_batch = EVAL_BATCH_DEFAULT;
    dpt_status st = dpt_checkpoint_load(ckpt, eval_batch, &m, &info);
    dpt_data_opts opts = {.search_path = data_search};
    if (st == DPT_OK)
        st = dpt_data_load(&d, data, &opts);
    if (st == DPT_OK && info.channels != d.test.C && info.channels != 0)
        st = dpt_errorf(DPT_ESHAPE, "%s: trained on %lld channels, %s has %lld", ckpt,
                        (long long)info.channels, data, (long long)d.test.C);
    if (st == DPT_OK && info.channels > 0) {
        /* the training run's normalization, applied through the dataset's own code path */
        st = dpt_dataset_normalize(&d.test, info.norm_mean, info.norm_std);
    }
    if (st == DPT_OK) {
        int64_t sample = dpt_dataset_sample_numel(&d.test);
        x = dpt_alloc_aligned(dpt_size_mul((size_t)(eval_batch * sample), sizeof(float)));
        labels = malloc((size_t)eval_batch * sizeof(int32_t));
        if (!x || !labels)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the evaluation batch");
    }
    st = dpt_group_agree(g, st);
    if (st == DPT_OK) {
        st = evaluate_model(m, g, &d.test, NULL, d.test.N, eval_batch, x, labels, loss, acc);
        *n = d.test.N;
    }
    dpt_free_aligned(x);
    free(labels);
    dpt_data_free(&d);
    dpt_model_destroy(m);
    return dpt_group_agree(g, st);
}
