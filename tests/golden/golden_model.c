/* model_step.h5 handler of the golden test (README §4.8): one training step of a small CNN
 * against PyTorch. The network is built by the real spec parser from the `layers` group's
 * attributes; the file's weights and running statistics are loaded into the flat buffers; every
 * layer's output, the running statistics, logits, loss, every parameter gradient, and the
 * parameters after one SGD(momentum) step and one Adam step (dpt_optim, fresh state each) are
 * compared under the file's tolerance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/conv.h"
#include "dpt/loss.h"
#include "dpt/model.h"
#include "dpt/optim.h"
#include "golden.h"

/* Appends the spec token for one layer group; 0 on success. */
static int append_token(golden_case *c, hid_t lg, const char *lname, char *spec, size_t n) {
    char type[32], tok[256];
    int k[2], s[2], p[2], d[2], v[2];
    double eps, momentum;
    if (golden_attr_str(c, lg, "type", type, sizeof type) < 0)
        return -1;
    if (strcmp(type, "conv2d") == 0) {
        if (golden_attr_ints(c, lg, "out_channels", &v[0], 1) != 1 ||
            golden_attr_ints(c, lg, "kernel", k, 2) != 2 ||
            golden_attr_ints(c, lg, "stride", s, 2) != 2 ||
            golden_attr_ints(c, lg, "padding", p, 2) != 2 ||
            golden_attr_ints(c, lg, "dilation", d, 2) != 2 ||
            golden_attr_ints(c, lg, "groups", &v[1], 1) != 1)
            return -1;
        int bias;
        if (golden_attr_ints(c, lg, "has_bias", &bias, 1) != 1)
            return -1;
        snprintf(tok, sizeof tok,
                 "conv2d(%d,%dx%d,stride=%dx%d,pad=%dx%d,dilation=%dx%d,groups=%d,bias=%d)", v[0],
                 k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], v[1], bias);
    } else if (strcmp(type, "batchnorm2d") == 0) {
        if (golden_attr_doubles(c, lg, "eps", &eps, 1) != 1 ||
            golden_attr_doubles(c, lg, "momentum", &momentum, 1) != 1)
            return -1;
        snprintf(tok, sizeof tok, "batchnorm2d(eps=%.17g,momentum=%.17g)", eps, momentum);
    } else if (strcmp(type, "maxpool2d") == 0) {
        if (golden_attr_ints(c, lg, "kernel", k, 2) != 2 ||
            golden_attr_ints(c, lg, "stride", s, 2) != 2 ||
            golden_attr_ints(c, lg, "padding", p, 2) != 2)
            return -1;
        snprintf(tok, sizeof tok, "maxpool2d(%dx%d,stride=%dx%d,pad=%dx%d)", k[0], k[1], s[0], s[1],
                 p[0], p[1]);
    } else if (strcmp(type, "dense") == 0) {
        if (golden_attr_ints(c, lg, "out_features", &v[0], 1) != 1)
            return -1;
        snprintf(tok, sizeof tok, "dense(%d)", v[0]);
    } else if (strcmp(type, "relu") == 0 || strcmp(type, "flatten") == 0) {
        snprintf(tok, sizeof tok, "%s", type);
    } else {
        golden_fail(c, "layer %s: unknown type '%s'", lname, type);
        return -1;
    }
    size_t used = strlen(spec);
    snprintf(spec + used, n - used, "%s%s", used ? " " : "", tok);
    return 0;
}

/* The spec of the case's network, from the layer groups in name order; also checks num_layers. */
static int read_spec(golden_case *c, hid_t layers, char *spec, size_t n) {
    H5G_info_t gi;
    int want = -1;
    spec[0] = '\0';
    if (H5Gget_info(layers, &gi) < 0 || golden_attr_ints(c, layers, "num_layers", &want, 1) != 1)
        return -1;
    if ((int)gi.nlinks != want) {
        golden_fail(c, "layers: %d groups but num_layers = %d", (int)gi.nlinks, want);
        return -1;
    }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[64];
        H5Lget_name_by_idx(layers, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                           H5P_DEFAULT);
        hid_t lg = H5Gopen2(layers, name, H5P_DEFAULT);
        int rc = lg < 0 ? -1 : append_token(c, lg, name, spec, n);
        if (lg >= 0)
            H5Gclose(lg);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* The file's name for the tensor of a segment: batch norm's weight and bias are gamma and beta. */
static const char *file_tensor(const dpt_model_segment *s) {
    const char *t = strchr(s->name, '/') + 1;
    if (s->kind == DPT_PARAM_NORM && strcmp(t, "weight") == 0)
        return "gamma";
    if (s->kind == DPT_PARAM_NORM && strcmp(t, "bias") == 0)
        return "beta";
    return t;
}

/* The layer group a segment belongs to (its name up to the '/'). */
static hid_t open_layer(hid_t layers, const dpt_model_segment *s) {
    char lname[64];
    snprintf(lname, sizeof lname, "%.*s", (int)(strchr(s->name, '/') - s->name), s->name);
    return H5Gopen2(layers, lname, H5P_DEFAULT);
}

/* Copies the "in" dataset `prefix + tensor` of every segment into the flat buffer `dst`. */
static int load_segments(golden_case *c, hid_t layers, const dpt_model_segment *segs, int nsegs,
                         float *dst) {
    for (int i = 0; i < nsegs; i++) {
        hid_t lg = open_layer(layers, &segs[i]);
        golden_dims d;
        float *v = lg < 0 ? NULL : golden_read_f32(c, lg, file_tensor(&segs[i]), &d);
        int ok = v && d.count == segs[i].count && d.rank == segs[i].shape.ndim;
        for (int k = 0; ok && k < d.rank; k++)
            ok = (int64_t)d.dims[k] == segs[i].shape.d[k];
        if (v && !ok)
            golden_fail(c, "%s: file shape does not match the model's", segs[i].name);
        if (ok)
            memcpy(dst + segs[i].offset, v, (size_t)d.count * sizeof *v);
        free(v);
        if (lg >= 0)
            H5Gclose(lg);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Compares every segment of `got` with the reference dataset `prefix + tensor + suffix`. */
static void check_segments(golden_case *c, const char *impl, hid_t layers,
                           const dpt_model_segment *segs, int nsegs, const float *got,
                           const char *prefix, const char *suffix) {
    for (int i = 0; i < nsegs; i++) {
        char ds[64], what[128];
        snprintf(ds, sizeof ds, "%s%s%s", prefix, file_tensor(&segs[i]), suffix);
        hid_t lg = open_layer(layers, &segs[i]);
        double *ref = lg < 0 ? NULL : golden_read_f64(c, lg, ds, NULL);
        snprintf(what, sizeof what, "%.*s/%s", (int)(strchr(segs[i].name, '/') - segs[i].name),
                 segs[i].name, ds);
        if (ref)
            golden_check_values(c, impl, what, got + segs[i].offset, ref, segs[i].count);
        free(ref);
        if (lg >= 0)
            H5Gclose(lg);
    }
}

/* One optimizer step from the loaded parameters with the computed gradients, compared with
 * after_<name>_*. `attrs` are the case attributes (prefixed "<name>_") that configure it. */
static void check_step(golden_case *c, const char *impl, hid_t layers, dpt_model *m,
                       dpt_optim_kind kind, const char *name, const char *const *attrs) {
    dpt_optim_cfg cfg = {.kind = kind};
    double wd = 0.0;
    if (golden_attr_doubles(c, c->group, "weight_decay", &wd, 1) != 1)
        return;
    dpt_status st = dpt_optim_cfg_set(&cfg, "weight_decay", wd);
    for (int i = 0; attrs[i] && st == DPT_OK; i++) {
        char key[64];
        double v[2];
        snprintf(key, sizeof key, "%s_%s", name, attrs[i]);
        int nv = golden_attr_doubles(c, c->group, key, v, 2);
        if (nv < 1)
            return;
        if (strcmp(attrs[i], "betas") == 0 && nv == 2) {
            st = dpt_optim_cfg_set(&cfg, "beta1", v[0]);
            if (st == DPT_OK)
                st = dpt_optim_cfg_set(&cfg, "beta2", v[1]);
        } else {
            st = dpt_optim_cfg_set(&cfg, attrs[i], v[0]);
        }
    }
    int64_t n = 0;
    const float *p0 = dpt_model_params(m, &n);
    const float *g = dpt_model_grads(m, &n);
    float *p = malloc((size_t)n * sizeof *p);
    dpt_optim *o = NULL;
    if (st == DPT_OK)
        st = dpt_optim_create(&o, &cfg, n, NULL, 0);
    if (st == DPT_OK && p) {
        memcpy(p, p0, (size_t)n * sizeof *p);
        st = dpt_optim_step(o, p, g, dpt_optim_base_lr(o));
    }
    if (st != DPT_OK || !p) {
        golden_fail(c, "%s optimizer: %s", name, p ? dpt_last_error() : "out of memory");
    } else {
        int nsegs = 0;
        const dpt_model_segment *segs = dpt_model_param_segments(m, &nsegs);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "after_%s_", name);
        check_segments(c, impl, layers, segs, nsegs, p, prefix, "");
    }
    dpt_optim_destroy(o);
    free(p);
}

/* Forward, loss, backward and the two optimizer steps of a built model with loaded weights. */
static void check_step_all(golden_case *c, hid_t layers, dpt_model *m, const float *x,
                           const int32_t *labels, int64_t N, int64_t K, const char *impl) {
    if (dpt_model_forward(m, x, N, 1, NULL) != DPT_OK) {
        golden_fail(c, "forward: %s", dpt_last_error());
        return;
    }
    for (int i = 0; i < dpt_model_num_layers(m); i++) {
        dpt_shape s, s_next;
        const float *out = dpt_model_layer_output(m, i, &s);
        /* A layer whose output memory the next layer reuses (batch norm fused with its ReLU,
         * flatten) is checked through that next layer's reference. */
        if (i + 1 < dpt_model_num_layers(m) && dpt_model_layer_output(m, i + 1, &s_next) == out)
            continue;
        char what[96];
        snprintf(what, sizeof what, "%s/out", dpt_model_layer_name(m, i));
        hid_t lg = H5Gopen2(layers, dpt_model_layer_name(m, i), H5P_DEFAULT);
        golden_dims d;
        double *ref = lg < 0 ? NULL : golden_read_f64(c, lg, "out", &d);
        if (ref && d.count != N * dpt_shape_count(&s))
            golden_fail(c, "%s has %lld elements, the model produced %lld", what,
                        (long long)d.count, (long long)(N * dpt_shape_count(&s)));
        else if (ref)
            golden_check_values(c, impl, what, out, ref, d.count);
        free(ref);
        if (lg >= 0)
            H5Gclose(lg);
    }
    int nb = 0, np = 0;
    int64_t count = 0;
    const dpt_model_segment *bsegs = dpt_model_buffer_segments(m, &nb);
    check_segments(c, impl, layers, bsegs, nb, dpt_model_buffers(m, &count), "", "_out");

    golden_check(c, c->group, impl, "logits", dpt_model_logits(m), N * K);
    float *dlogits = dpt_model_dlogits_buffer(m);
    const float loss = (float)dpt_xent_forward_backward(dlogits, NULL, dpt_model_logits(m), labels,
                                                        N, K, 0.0, (double)N);
    golden_check(c, c->group, impl, "loss", &loss, 1);

    dpt_model_zero_grad(m);
    if (dpt_model_backward(m, dlogits) != DPT_OK) {
        golden_fail(c, "backward: %s", dpt_last_error());
        return;
    }
    const dpt_model_segment *psegs = dpt_model_param_segments(m, &np);
    check_segments(c, impl, layers, psegs, np, dpt_model_grads(m, &count), "grad_", "");

    static const char *const sgd_attrs[] = {"lr", "momentum", "dampening", "nesterov", NULL};
    static const char *const adam_attrs[] = {"lr", "betas", "eps", NULL};
    check_step(c, impl, layers, m, DPT_OPTIM_SGD, "sgd", sgd_attrs);
    check_step(c, impl, layers, m, DPT_OPTIM_ADAM, "adam", adam_attrs);
}

static void run_model_step(golden_case *c) {
    char loss_fn[32], reduction[16], spec[4096];
    int K = 0;
    if (golden_attr_str(c, c->group, "loss_fn", loss_fn, sizeof loss_fn) < 0 ||
        golden_attr_str(c, c->group, "reduction", reduction, sizeof reduction) < 0 ||
        golden_attr_ints(c, c->group, "num_classes", &K, 1) != 1)
        return;
    if (strcmp(loss_fn, "cross_entropy") != 0 || strcmp(reduction, "mean") != 0) {
        golden_fail(c, "unsupported loss '%s' with reduction '%s'", loss_fn, reduction);
        return;
    }
    hid_t layers = H5Gopen2(c->group, "layers", H5P_DEFAULT);
    if (layers < 0) {
        golden_fail(c, "no 'layers' group");
        return;
    }
    golden_dims xd, ld;
    float *x = golden_read_f32(c, c->group, "x", &xd);
    int32_t *labels = golden_read_i32(c, c->group, "labels", &ld);
    /* Twice: every layer on its own (each layer's output against its reference), then as
     * dptrain runs it (batch norm + ReLU fused). */
    for (int fused = 0; fused <= 1 && x && labels; fused++) {
        dpt_model *m = NULL;
        char impl[64];
        snprintf(impl, sizeof impl, "%s%s", dpt_conv_default()->name, fused ? "+fused" : "");
        if (read_spec(c, layers, spec, sizeof spec) == 0) {
            int64_t in[DPT_MAX_DIMS];
            for (int i = 1; i < xd.rank; i++)
                in[i - 1] = (int64_t)xd.dims[i];
            const int64_t N = (int64_t)xd.dims[0];
            dpt_model_cfg cfg = {.max_batch = N, .num_classes = K, .no_fusion = !fused};
            if (xd.rank < 2 || ld.count != N)
                golden_fail(c, "x and labels disagree on the batch size");
            else if (dpt_model_create(&m, spec, dpt_shape_make(xd.rank - 1, in), &cfg) != DPT_OK)
                golden_fail(c, "spec \"%s\": %s", spec, dpt_last_error());
        }
        if (m) {
            int np = 0, nb = 0;
            int64_t count = 0;
            const dpt_model_segment *ps = dpt_model_param_segments(m, &np);
            const dpt_model_segment *bs = dpt_model_buffer_segments(m, &nb);
            if (load_segments(c, layers, ps, np, dpt_model_params(m, &count)) == 0 &&
                load_segments(c, layers, bs, nb, dpt_model_buffers(m, &count)) == 0)
                check_step_all(c, layers, m, x, labels, (int64_t)xd.dims[0], K, impl);
        }
        dpt_model_destroy(m);
    }
    free(x);
    free(labels);
    H5Gclose(layers);
}

const golden_handler golden_model_handlers[] = {
    {"model_step", run_model_step, 1e-4, 1e-4},
    {NULL, NULL, 0, 0},
};
