/* Checkpoint save/load in the layout of DESIGN §5 (io), on top of the atomic HDF5 writer. Knows
 * the model's segment table and the optimizer's state export, nothing of the training loop. */
#include "dpt/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

dpt_status dpt_checkpoint_save(const char *path, const dpt_checkpoint *c) {
    dpt_h5w w;
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
