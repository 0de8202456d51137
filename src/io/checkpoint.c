/* Checkpoint save/load in the layout of DESIGN §5 (io), on top of the atomic HDF5 writer. Knows
 * the model's segment table and the optimizer's state export, nothing of the training loop. */
#include "dpt/checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpt/h5file.h"

static void write_segments(dpt_h5w *w, const char *group, const float *flat,
                           const dpt_model_segment *segs, int n) {
    for (int i = 0; i < n; i++) {
        char obj[128];
        snprintf(obj, sizeof obj, "%s/%s", group, segs[i].name);
        dpt_h5w_f32(w, obj, flat + segs[i].offset, segs[i].shape.ndim, segs[i].shape.d);
    }
}

static void write_optimizer(dpt_h5w *w, const dpt_optim *o) {
    dpt_optim_state st;
    dpt_optim_state_export(o, &st);
    dpt_h5w_group(w, "optimizer");
    dpt_h5w_attr_str(w, "optimizer", "kind", dpt_optim_kind_name(st.cfg.kind));
    dpt_h5w_attr_i64(w, "optimizer", "step", st.steps);
    /* exactly the hyper-parameters this kind uses, under the names dpt_optim_cfg_set takes */
    const char *names[32];
    double values[32];
    int n = dpt_optim_hparams(&st.cfg, names, values, 32);
    for (int i = 0; i < n && i < 32; i++)
        dpt_h5w_attr_f64(w, "optimizer", names[i], values[i]);
    for (int s = 0; s < st.n_slots; s++) {
        char obj[96];
        snprintf(obj, sizeof obj, "optimizer/%s", st.names[s]);
        dpt_h5w_f32(w, obj, st.slots[s], 1, &st.n);
    }
}

/* /train: the i64 and f64 attributes of dpt_checkpoint_state, by name, in one table so that the
 * writer and the reader cannot drift apart. */
#define STATE_I64(X)                                                                               \
    X(global_step) X(epoch) X(epoch_step) X(images) X(skipped_in_row) X(skipped_total)            \
    X(early_stopped) X(es_since_best) X(es_best_epoch) X(noise_count) X(ranks)
#define STATE_F64(X)                                                                               \
    X(train_seconds) X(elapsed) X(last_lr) X(es_best_loss) X(noise_decay) X(noise_grad_sq)        \
    X(noise_trace) X(noise_decay_pow)

static void write_state(dpt_h5w *w, const dpt_checkpoint_state *s, int64_t n_params,
                        int64_t n_buffers) {
    dpt_h5w_group(w, "train");
#define WRITE_I64(f) dpt_h5w_attr_i64(w, "train", #f, s->f);
#define WRITE_F64(f) dpt_h5w_attr_f64(w, "train", #f, s->f);
    STATE_I64(WRITE_I64)
    STATE_F64(WRITE_F64)
#undef WRITE_I64
#undef WRITE_F64
    dpt_h5w_attr_i64(w, "train", "member", s->member);
    if (s->es_params)
        dpt_h5w_f32(w, "train/best_params", s->es_params, 1, &n_params);
    if (s->es_buffers && n_buffers > 0)
        dpt_h5w_f32(w, "train/best_buffers", s->es_buffers, 1, &n_buffers);
    if (s->ranks > 0 && n_buffers > 0)
        dpt_h5w_f32(w, "train/rank_buffers", s->rank_buffers, 2,
                    (int64_t[]){s->ranks, n_buffers});
    if (s->ranks > 0)
        dpt_h5w_f64(w, "train/rank_sums", s->rank_sums, 2, (int64_t[]){s->ranks, 3});
}

/* The test hook of checkpoint.h: a pause with everything written to NAME.tmp, before the close,
 * fsync and rename. */
static void test_slow_save(void) {
    const char *v = getenv(DPT_TEST_SLOW_SAVE_ENV);
    long ms = v ? strtol(v, NULL, 10) : 0;
    if (ms > 0) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ; /* a signal only sets the trainer's flag: finish the write */
    }
}

static dpt_status save(const char *path, const dpt_checkpoint *c);

dpt_status dpt_checkpoint_save(const char *path, const dpt_checkpoint *c) {
    dpt_status st = save(path, c);
    if (st != DPT_OK && errno != 0) {
        /* HDF5 reports "cannot write" or "cannot close"; the system's reason (ENOSPC, EDQUOT,
         * EIO) is what the user can act on. */
        int err = errno;
        st = dpt_errorf(st, "%s: cannot write the checkpoint: %s (%s)", path, strerror(err),
                        dpt_last_error());
    }
    return st;
}

static dpt_status save(const char *path, const dpt_checkpoint *c) {
    dpt_h5w w;
    errno = 0;
    if (dpt_h5w_open(&w, path) != DPT_OK)
        return w.st;
    dpt_model *m = (dpt_model *)c->model; /* read-only use of the flat buffers */
    dpt_h5w_attr_str(&w, "/", "format", DPT_CHECKPOINT_FORMAT);
    dpt_h5w_attr_i64(&w, "/", "version", DPT_CHECKPOINT_VERSION);
    dpt_h5w_attr_str(&w, "/", "model_spec", dpt_model_spec(m));
    dpt_shape in = dpt_model_input_shape(m);
    int64_t in_dims = in.ndim;
    dpt_h5w_i64(&w, "input_shape", in.d, 1, &in_dims);
    dpt_h5w_attr_i64(&w, "/", "epoch", c->epoch);
    dpt_h5w_attr_i64(&w, "/", "step", c->step);
    dpt_h5w_attr_i64(&w, "/", "seed", c->seed);
    dpt_h5w_attr_str(&w, "/", "config", c->config ? c->config : "");
    dpt_h5w_attr_str(&w, "/", "data_source", c->data_source ? c->data_source : "");
    int n_segs;
    int64_t count;
    const dpt_model_segment *segs = dpt_model_param_segments(m, &n_segs);
    dpt_h5w_group(&w, "params");
    write_segments(&w, "params", dpt_model_params(m, &count), segs, n_segs);
    segs = dpt_model_buffer_segments(m, &n_segs);
    dpt_h5w_group(&w, "buffers");
    write_segments(&w, "buffers", dpt_model_buffers(m, &count), segs, n_segs);
    if (c->channels > 0) {
        dpt_h5w_f64(&w, "data/norm_mean", c->norm_mean, 1, &c->channels);
        dpt_h5w_f64(&w, "data/norm_std", c->norm_std, 1, &c->channels);
    }
    if (c->optim)
        write_optimizer(&w, c->optim);
    dpt_h5w_group(&w, "metrics");
    for (int i = 0; i < c->n_metrics; i++) {
        char obj[96];
        snprintf(obj, sizeof obj, "metrics/%s", c->metric_names[i]);
        dpt_h5w_f64(&w, obj, c->metric_values[i], 1, &c->metric_rows);
    }
    if (c->member_kind) {
        dpt_h5w_group(&w, "member");
        dpt_h5w_attr_str(&w, "member", "kind", c->member_kind);
        dpt_h5w_attr_i64(&w, "member", "id", c->member_id);
        if (!isnan(c->member_alpha))
            dpt_h5w_attr_f64(&w, "member", "alpha", c->member_alpha);
        if (c->member_train_idx)
            dpt_h5w_i64(&w, "member/train_indices", c->member_train_idx, 1, &c->member_n_train);
        if (c->member_heldout_idx)
            dpt_h5w_i64(&w, "member/heldout_indices", c->member_heldout_idx, 1,
                        &c->member_n_heldout);
    }
    if (c->state) {
        int64_t n_params, n_buffers;
        dpt_model_params(m, &n_params);
        dpt_model_buffers(m, &n_buffers);
        write_state(&w, c->state, n_params, n_buffers);
    }
    if (c->config_argv) {
        dpt_h5w_group(&w, "config");
        dpt_h5w_attr_str(&w, "config", "argv", c->config_argv);
        dpt_h5w_attr_str(&w, "config", "settings",
                         c->config_settings ? c->config_settings : "");
    }
    if (w.st == DPT_OK)
        errno = 0; /* from here on a failure's errno is the close, fsync or rename's */
    test_slow_save();
    return dpt_h5w_close(&w, 1);
}

static dpt_status read_segments(dpt_h5r *r, const char *group, float *flat,
                                const dpt_model_segment *segs, int n) {
    for (int i = 0; i < n; i++) {
        char obj[128];
        snprintf(obj, sizeof obj, "%s/%s", group, segs[i].name);
        int nd;
        int64_t dims[8];
        dpt_status st = dpt_h5r_shape(r, obj, &nd, dims);
        if (st != DPT_OK)
            return st;
        dpt_shape got = dpt_shape_make(nd <= DPT_MAX_DIMS ? nd : DPT_MAX_DIMS, dims);
        if (nd > DPT_MAX_DIMS || !dpt_shape_equal(&got, &segs[i].shape)) {
            char want[64], have[64];
            dpt_shape_format(&segs[i].shape, want, sizeof want);
            dpt_shape_format(&got, have, sizeof have);
            return dpt_errorf(DPT_ESHAPE, "%s: %s has shape %s, the model needs %s", r->path, obj,
                              have, want);
        }
        if ((st = dpt_h5r_f32(r, obj, flat + segs[i].offset, segs[i].count)) != DPT_OK)
            return st;
        /* a NaN weight would load fine and poison every prediction: refuse it here */
        for (int64_t j = 0; j < segs[i].count; j++)
            if (!isfinite(flat[segs[i].offset + j]))
                return dpt_errorf(DPT_ENONFINITE, "%s: %s[%lld] is %g (non-finite weights)",
                                  r->path, obj, (long long)j, (double)flat[segs[i].offset + j]);
    }
    return DPT_OK;
}

dpt_status dpt_checkpoint_load(const char *path, int64_t max_batch, dpt_model **out,
                               dpt_checkpoint_info *info) {
    *out = NULL;
    memset(info, 0, sizeof *info);
    dpt_h5r r;
    dpt_status st = dpt_h5r_open(&r, path);
    if (st != DPT_OK)
        return st;
    char format[64] = "", *spec = NULL;
    int64_t version = 0, in_dims[8], seed = 0;
    int nd = 0;
    dpt_model *m = NULL;
    if ((st = dpt_h5r_attr_str(&r, "/", "format", format, sizeof format)) != DPT_OK)
        goto out;
    if (strcmp(format, DPT_CHECKPOINT_FORMAT) != 0) {
        st = dpt_errorf(DPT_EFORMAT, "%s: not a dptrain checkpoint (format '%s')", path, format);
        goto out;
    }
    if ((st = dpt_h5r_attr_i64(&r, "/", "version", &version)) != DPT_OK)
        goto out;
    if (version != DPT_CHECKPOINT_VERSION) {
        st = dpt_errorf(DPT_EFORMAT, "%s: checkpoint version %lld, this dptrain reads %d", path,
                        (long long)version, DPT_CHECKPOINT_VERSION);
        goto out;
    }
    if ((st = dpt_h5r_attr_strdup(&r, "/", "model_spec", &spec)) != DPT_OK ||
        (st = dpt_h5r_shape(&r, "input_shape", &nd, in_dims)) != DPT_OK)
        goto out;
    if (nd != 1 || in_dims[0] < 1 || in_dims[0] > 4) {
        st = dpt_errorf(DPT_EFORMAT, "%s: input_shape must list 1 to 4 extents", path);
        goto out;
    }
    int64_t in[4];
    if ((st = dpt_h5r_i64(&r, "input_shape", in, in_dims[0])) != DPT_OK)
        goto out;
    dpt_model_cfg mc = {.max_batch = max_batch};
    if ((st = dpt_model_create(&m, spec, dpt_shape_make((int)in_dims[0], in), &mc)) != DPT_OK) {
        st = dpt_errorf(st, "%s: model_spec: %s", path, dpt_last_error());
        goto out;
    }
    int n_segs;
    int64_t count;
    const dpt_model_segment *segs = dpt_model_param_segments(m, &n_segs);
    if ((st = read_segments(&r, "params", dpt_model_params(m, &count), segs, n_segs)) != DPT_OK)
        goto out;
    segs = dpt_model_buffer_segments(m, &n_segs);
    if ((st = read_segments(&r, "buffers", dpt_model_buffers(m, &count), segs, n_segs)) != DPT_OK)
        goto out;
    dpt_h5r_attr_i64(&r, "/", "epoch", &info->epoch);
    dpt_h5r_attr_i64(&r, "/", "step", &info->step);
    dpt_h5r_attr_i64(&r, "/", "seed", &seed);
    info->seed = (uint32_t)seed;
    dpt_h5r_attr_str(&r, "/", "data_source", info->data_source, sizeof info->data_source);
    {
        dpt_shape outs = dpt_model_output_shape(m);
        info->num_classes = outs.ndim == 1 ? outs.d[0] : 0;
    }
    info->member_alpha = NAN;
    if (dpt_h5r_exists(&r, "member")) {
        if ((st = dpt_h5r_attr_str(&r, "member", "kind", info->member_kind,
                                   sizeof info->member_kind)) != DPT_OK ||
            (st = dpt_h5r_attr_i64(&r, "member", "id", &info->member_id)) != DPT_OK)
            goto out;
        if (dpt_h5r_attr_exists(&r, "member", "alpha") &&
            (st = dpt_h5r_attr_f64(&r, "member", "alpha", &info->member_alpha)) != DPT_OK)
            goto out;
    }
    if (dpt_h5r_exists(&r, "data/norm_mean")) {
        int64_t dims[8];
        if ((st = dpt_h5r_shape(&r, "data/norm_mean", &nd, dims)) != DPT_OK)
            goto out;
        if (nd != 1 || dims[0] < 1 || dims[0] > 16) {
            st = dpt_errorf(DPT_EFORMAT, "%s: data/norm_mean must have 1 to 16 entries", path);
            goto out;
        }
        info->channels = dims[0];
        if ((st = dpt_h5r_f64(&r, "data/norm_mean", info->norm_mean, dims[0])) != DPT_OK ||
            (st = dpt_h5r_f64(&r, "data/norm_std", info->norm_std, dims[0])) != DPT_OK)
            goto out;
    }
out:
    free(spec);
    dpt_h5r_close(&r);
    if (st != DPT_OK)
        dpt_model_destroy(m);
    else
        *out = m;
    return st;
}

/* ---- full state for --resume ------------------------------------------------------------- */

void dpt_checkpoint_state_free(dpt_checkpoint_state *st) {
    free(st->es_params), free(st->es_buffers);
    free(st->rank_buffers), free(st->rank_sums);
    free(st->metrics);
    memset(st, 0, sizeof *st);
}

/* A float dataset of `count` elements into a new allocation (count 0: nothing). */
static dpt_status read_f32_alloc(dpt_h5r *r, const char *obj, int64_t count, float **out) {
    *out = NULL;
    if (count == 0)
        return DPT_OK;
    dpt_status st = dpt_h5r_check_count(r, obj, count);
    if (st != DPT_OK)
        return st;
    if (!(*out = malloc((size_t)count * sizeof(float))))
        return dpt_errorf(DPT_ENOMEM, "%s: cannot allocate %s", r->path, obj);
    return dpt_h5r_f32(r, obj, *out, count);
}

static dpt_status read_optimizer(dpt_h5r *r, dpt_optim *o) {
    dpt_optim_state mine, saved;
    dpt_optim_state_export(o, &mine);
    char kind[32];
    dpt_status st = dpt_h5r_attr_str(r, "optimizer", "kind", kind, sizeof kind);
    saved = (dpt_optim_state){.n = mine.n, .n_slots = mine.n_slots};
    if (st == DPT_OK && (st = dpt_optim_kind_parse(kind, &saved.cfg.kind)) != DPT_OK)
        st = dpt_errorf(DPT_EFORMAT, "%s: optimizer: %s", r->path, dpt_last_error());
    if (st == DPT_OK)
        st = dpt_h5r_attr_i64(r, "optimizer", "step", &saved.steps);
    const char *names[32];
    double values[32];
    int n = dpt_optim_hparams(dpt_optim_config(o), names, values, 32);
    for (int i = 0; i < n && i < 32 && st == DPT_OK; i++) {
        double v;
        if ((st = dpt_h5r_attr_f64(r, "optimizer", names[i], &v)) == DPT_OK)
            st = dpt_optim_cfg_set(&saved.cfg, names[i], v);
    }
    for (int k = 0; k < mine.n_slots; k++) {
        char obj[96];
        snprintf(obj, sizeof obj, "optimizer/%s", mine.names[k]);
        saved.names[k] = mine.names[k];
        if (st == DPT_OK)
            st = read_f32_alloc(r, obj, mine.n, &saved.slots[k]);
    }
    if (st == DPT_OK && (st = dpt_optim_state_import(o, &saved)) != DPT_OK)
        st = dpt_errorf(st, "%s: %s", r->path, dpt_last_error());
    for (int k = 0; k < mine.n_slots; k++)
        free(saved.slots[k]);
    return st;
}

static dpt_status read_state(dpt_h5r *r, int64_t n_params, int64_t n_buffers,
                             dpt_checkpoint_state *s) {
    dpt_status st = DPT_OK;
    if (!dpt_h5r_exists(r, "train"))
        return dpt_errorf(DPT_EFORMAT, "%s: no /train group: a weights-only checkpoint cannot be "
                                       "resumed",
                          r->path);
#define READ_I64(f)                                                                                \
    if (st == DPT_OK)                                                                              \
        st = dpt_h5r_attr_i64(r, "train", #f, &s->f);
#define READ_F64(f)                                                                                \
    if (st == DPT_OK)                                                                              \
        st = dpt_h5r_attr_f64(r, "train", #f, &s->f);
    STATE_I64(READ_I64)
    STATE_F64(READ_F64)
#undef READ_I64
#undef READ_F64
    int64_t member = 0;
    if (st == DPT_OK && (st = dpt_h5r_attr_i64(r, "train", "member", &member)) == DPT_OK)
        s->member = (uint32_t)member;
    if (st != DPT_OK)
        return st;
    if (s->global_step < 0 || s->epoch < 0 || s->epoch_step < 0 || s->ranks < 0 ||
        s->ranks > (1 << 24))
        return dpt_errorf(DPT_EFORMAT, "%s: /train: a negative position or rank count", r->path);
    if (dpt_h5r_exists(r, "train/best_params") &&
        (st = read_f32_alloc(r, "train/best_params", n_params, &s->es_params)) != DPT_OK)
        return st;
    if (dpt_h5r_exists(r, "train/best_buffers") &&
        (st = read_f32_alloc(r, "train/best_buffers", n_buffers, &s->es_buffers)) != DPT_OK)
        return st;
    if (s->ranks > 0 && n_buffers > 0 &&
        (st = read_f32_alloc(r, "train/rank_buffers", s->ranks * n_buffers, &s->rank_buffers)) !=
            DPT_OK)
        return st;
    if (s->ranks > 0) {
        if ((st = dpt_h5r_check_count(r, "train/rank_sums", s->ranks * 3)) != DPT_OK)
            return st;
        if (!(s->rank_sums = malloc((size_t)s->ranks * 3 * sizeof(double))))
            return dpt_errorf(DPT_ENOMEM, "%s: cannot allocate train/rank_sums", r->path);
        st = dpt_h5r_f64(r, "train/rank_sums", s->rank_sums, s->ranks * 3);
    }
    return st;
}

static dpt_status read_metrics(dpt_h5r *r, int n, const char *const *names,
                               dpt_checkpoint_state *s) {
    int nd;
    int64_t dims[8];
    char obj[96];
    s->metric_rows = 0;
    if (n == 0)
        return DPT_OK;
    snprintf(obj, sizeof obj, "metrics/%s", names[0]);
    dpt_status st = dpt_h5r_shape(r, obj, &nd, dims);
    if (st != DPT_OK)
        return st;
    if (nd != 1)
        return dpt_errorf(DPT_EFORMAT, "%s: %s must be one-dimensional", r->path, obj);
    if ((uint64_t)dims[0] > (SIZE_MAX / sizeof(double) - 1) / (uint64_t)n) /* n * rows + 1 */
        return dpt_errorf(DPT_EFORMAT, "%s: %s has %llu rows, more than memory holds", r->path,
                          obj, (unsigned long long)dims[0]);
    s->metric_rows = dims[0];
    if (!(s->metrics = malloc((size_t)(n * s->metric_rows + 1) * sizeof(double))))
        return dpt_errorf(DPT_ENOMEM, "%s: cannot allocate the history", r->path);
    for (int c = 0; c < n && st == DPT_OK; c++) {
        snprintf(obj, sizeof obj, "metrics/%s", names[c]);
        st = dpt_h5r_f64(r, obj, s->metrics + c * s->metric_rows, s->metric_rows);
    }
    return st;
}

dpt_status dpt_checkpoint_load_state(const char *path, dpt_model *m, dpt_optim *o, int n_metrics,
                                     const char *const *metric_names, int64_t n_params,
                                     dpt_checkpoint_state *s) {
    memset(s, 0, sizeof *s);
    dpt_h5r r;
    dpt_status st = dpt_h5r_open(&r, path);
    char *spec = NULL, format[64] = "";
    int64_t version = 0, count, n_buffers;
    if (st == DPT_OK && (st = dpt_h5r_attr_str(&r, "/", "format", format, sizeof format)) ==
                            DPT_OK && strcmp(format, DPT_CHECKPOINT_FORMAT) != 0)
        st = dpt_errorf(DPT_EFORMAT, "%s: not a dptrain checkpoint (format '%s')", path, format);
    if (st == DPT_OK && (st = dpt_h5r_attr_i64(&r, "/", "version", &version)) == DPT_OK &&
        version != DPT_CHECKPOINT_VERSION)
        st = dpt_errorf(DPT_EFORMAT, "%s: checkpoint version %lld, this dptrain reads %d", path,
                        (long long)version, DPT_CHECKPOINT_VERSION);
    if (st == DPT_OK && (st = dpt_h5r_attr_strdup(&r, "/", "model_spec", &spec)) == DPT_OK &&
        strcmp(spec, dpt_model_spec(m)) != 0)
        st = dpt_errorf(DPT_EINVAL, "%s: the model '%s' is not the checkpoint's '%s'", path,
                        dpt_model_spec(m), spec);
    int n_segs;
    const dpt_model_segment *segs = dpt_model_param_segments(m, &n_segs);
    float *params = dpt_model_params(m, &count);
    if (st == DPT_OK)
        st = read_segments(&r, "params", params, segs, n_segs);
    segs = dpt_model_buffer_segments(m, &n_segs);
    float *buffers = dpt_model_buffers(m, &n_buffers);
    if (st == DPT_OK)
        st = read_segments(&r, "buffers", buffers, segs, n_segs);
    if (st == DPT_OK)
        st = read_state(&r, n_params, n_buffers, s);
    if (st == DPT_OK && o)
        st = read_optimizer(&r, o);
    if (st == DPT_OK)
        st = read_metrics(&r, n_metrics, metric_names, s);
    free(spec);
    dpt_h5r_close(&r);
    if (st != DPT_OK)
        dpt_checkpoint_state_free(s);
    return st;
}

/* H5Ovisit2 callback: reads every dataset once, so that a file whose data was cut short fails
 * here, when another checkpoint can still be chosen, and not half-way through a resume. */
static herr_t read_dataset_cb(hid_t loc, const char *name, const H5O_info_t *info, void *ctx) {
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds >= 0 && !dpt__h5_dataset_stored(ds)) { /* before its size is allocated */
        H5Dclose(ds);
        ds = -1;
    }
    hid_t ft = ds < 0 ? -1 : H5Dget_type(ds);
    hid_t mt = ft < 0 ? -1 : H5Tget_native_type(ft, H5T_DIR_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t size = mt < 0 ? 0 : H5Tget_size(mt);
    void *buf = n >= 0 && size > 0 && (uint64_t)n <= (SIZE_MAX - 1) / size
                    ? malloc((size_t)n * size + 1)
                    : NULL;
    herr_t rc = buf ? H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : -1;
    /* variable-length data (HDF5 counts variable-length strings as strings) was allocated by
     * H5Dread for us */
    if (rc >= 0 && (H5Tdetect_class(mt, H5T_VLEN) > 0 || H5Tdetect_class(mt, H5T_STRING) > 0))
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
    free(buf);
    if (sp >= 0)
        H5Sclose(sp);
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    if (ds >= 0)
        H5Dclose(ds);
    if (rc < 0)
        snprintf(ctx, 256, "%s", name);
    return rc < 0 ? 1 : 0;
}

dpt_status dpt_checkpoint_read_config(const char *path, int64_t *global_step, char **argv,
                                      char **settings) {
    *argv = *settings = NULL;
    dpt_h5r r;
    dpt_status st = dpt_h5r_open(&r, path);
    char bad[256] = "";
    if (st == DPT_OK && H5Ovisit2(r.file, H5_INDEX_NAME, H5_ITER_NATIVE, read_dataset_cb, bad,
                                  H5O_INFO_BASIC) != 0)
        st = dpt_errorf(DPT_EFORMAT, "%s: cannot read %s (truncated or corrupt)", path,
                        bad[0] ? bad : "the file's objects");
    if (st == DPT_OK && !dpt_h5r_exists(&r, "config"))
        st = dpt_errorf(DPT_EFORMAT, "%s: no /config group: not a checkpoint a run can resume "
                                     "from",
                        path);
    if (st == DPT_OK)
        st = dpt_h5r_attr_i64(&r, "train", "global_step", global_step);
    if (st == DPT_OK)
        st = dpt_h5r_attr_strdup(&r, "config", "argv", argv);
    if (st == DPT_OK)
        st = dpt_h5r_attr_strdup(&r, "config", "settings", settings);
    if (r.file >= 0)
        dpt_h5r_close(&r);
    if (st != DPT_OK) {
        free(*argv), free(*settings);
        *argv = *settings = NULL;
    }
    return st;
}
