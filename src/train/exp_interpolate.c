/* The loss along the line between two minima (train): Goodfellow et al. 2015, Keskar et al.
 * 2017 Fig. 3. Every parameter moves on x(alpha) = alpha x_B + (1 - alpha) x_A; batch-norm
 * statistics either move with them or are re-estimated at each alpha. Evaluation is the one of
 * `dptrain eval` (evaluation mode, fixed chunks), so the endpoints reproduce it exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/h5file.h"
#include "train_impl.h"

enum { BN_BATCH = 256 };

static void lerp(float *out, const float *a, const float *b, int64_t n, double alpha) {
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)((1.0 - alpha) * (double)a[i] + alpha * (double)b[i]);
}

/* Running statistics from a forward pass in training mode over the first n training samples,
 * from mean 0 and variance 1 (their initial values). Every rank runs the same batches, so the
 * statistics are the same on every rank with no communication. */
static dpt_status recompute_bn(dpt_model *m, const dpt_dataset *ds, int64_t n, float *x,
                               int32_t *labels) {
    int n_segs;
    int64_t count;
    const dpt_model_segment *segs = dpt_model_buffer_segments(m, &n_segs);
    float *buf = dpt_model_buffers(m, &count);
    for (int s = 0; s < n_segs; s++) {
        float init = strstr(segs[s].name, "running_var") ? 1.0f : 0.0f;
        for (int64_t i = 0; i < segs[s].count; i++)
            buf[segs[s].offset + i] = init;
    }
    int64_t idx[BN_BATCH];
    dpt_status st = DPT_OK;
    for (int64_t first = 0; first < n && st == DPT_OK; first += BN_BATCH) {
        int64_t rows = n - first < BN_BATCH ? n - first : BN_BATCH;
        if (rows < 2)
            break; /* batch statistics need two samples */
        dpt_dataset_gather(ds, x, NULL, first, rows);
        for (int64_t j = 0; j < rows; j++) {
            idx[j] = first + j;
            labels[j] = ds->y[first + j];
        }
        dpt_model_rng rng = {.seed = 0, .step = (uint32_t)(first / BN_BATCH), .sample = idx};
        st = dpt_model_forward(m, x, rows, 1, &rng);
    }
    return st;
}

void dpt_interp_result_free(dpt_interp_result *r) {
    free(r->alpha);
    memset(r, 0, sizeof *r);
}

static dpt_status write_outputs(const dpt_interp_cfg *c, const dpt_interp_result *r) {
    if (c->csv) {
        FILE *f = fopen(c->csv, "w");
        if (!f)
            return dpt_errorf(DPT_EIO, "%s: cannot write", c->csv);
        fprintf(f, "alpha,train_loss,train_acc,test_loss,test_acc\n");
        for (int i = 0; i < r->n; i++)
            fprintf(f, "%.9g,%.9g,%.9g,%.9g,%.9g\n", r->alpha[i], r->train_loss[i],
                    r->train_acc[i], r->test_loss[i], r->test_acc[i]);
        if (fclose(f) != 0)
            return dpt_errorf(DPT_EIO, "%s: write failed", c->csv);
    }
    if (c->h5) {
        dpt_h5w w;
        if (dpt_h5w_open(&w, c->h5) != DPT_OK)
            return w.st;
        int64_t n = r->n;
        const double *cols[5] = {r->alpha, r->train_loss, r->train_acc, r->test_loss, r->test_acc};
        static const char *const names[5] = {"alpha", "train_loss", "train_acc", "test_loss",
                                             "test_acc"};
        for (int k = 0; k < 5; k++) {
            char obj[64];
            snprintf(obj, sizeof obj, "interpolation/%s", names[k]);
            dpt_h5w_f64(&w, obj, cols[k], 1, &n);
        }
        dpt_h5w_str(&w, "interpolation/a", c->a);
        dpt_h5w_str(&w, "interpolation/b", c->b);
        dpt_h5w_str(&w, "interpolation/bn", c->bn_recompute ? "recompute" : "keep");
        return dpt_h5w_close(&w, 1);
    }
    return DPT_OK;
}

dpt_status dpt_interpolate(const dpt_interp_cfg *c, dpt_group *g, dpt_interp_result *r) {
    memset(r, 0, sizeof *r);
    dpt_model *m = NULL, *mb = NULL;
    dpt_checkpoint_info ia, ib;
    dpt_data d = {0};
    dpt_eval_scratch s = {0};
    float *pa = NULL, *ba = NULL;
    dpt_status st = DPT_OK;
    if (c->points < 2 || !(c->alpha_max > c->alpha_min))
        st = dpt_errorf(DPT_EINVAL, "interpolate: %d points over [%g, %g]", c->points,
                        c->alpha_min, c->alpha_max);
    if (st == DPT_OK)
        st = dpt__load_model_and_data(c->a, c->data, c->data_search, BN_BATCH, &m, &ia, &d);
    if (st == DPT_OK)
        st = dpt_checkpoint_load(c->b, 1, &mb, &ib);
    if (st == DPT_OK && strcmp(dpt_model_spec(m), dpt_model_spec(mb)) != 0)
        st = dpt_errorf(DPT_ESHAPE, "%s and %s hold different models (%s / %s)", c->a, c->b,
                        dpt_model_spec(m), dpt_model_spec(mb));
    if (st == DPT_OK && (ia.channels != ib.channels ||
                         memcmp(ia.norm_mean, ib.norm_mean, sizeof ia.norm_mean) != 0 ||
                         memcmp(ia.norm_std, ib.norm_std, sizeof ia.norm_std) != 0))
        st = dpt_errorf(DPT_EINVAL, "%s and %s were trained on differently normalized data", c->a,
                        c->b);
    int64_t n_params = 0, n_buffers = 0;
    float *params = NULL, *buffers = NULL;
    if (st == DPT_OK) {
        params = dpt_model_params(m, &n_params);
        buffers = dpt_model_buffers(m, &n_buffers);
        pa = malloc((size_t)(n_params + n_buffers + 1) * sizeof(float));
        r->alpha = malloc(5 * (size_t)c->points * sizeof(double));
        if (!pa || !r->alpha)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the interpolation");
    }
    if (st == DPT_OK) {
        ba = pa + n_params;
        memcpy(pa, params, (size_t)n_params * sizeof(float));
        memcpy(ba, buffers, (size_t)n_buffers * sizeof(float));
        st = dpt__eval_scratch_init(&s, DPT_EVAL_BATCH_DEFAULT,
                                    dpt_dataset_sample_numel(&d.train));
    }
    st = dpt_group_agree(g, st);
    if (st == DPT_OK) {
        r->n = c->points;
        r->train_loss = r->alpha + r->n, r->train_acc = r->alpha + 2 * r->n;
        r->test_loss = r->alpha + 3 * r->n, r->test_acc = r->alpha + 4 * r->n;
        int64_t want = c->train_samples > 0 ? c->train_samples : 10000;
        r->n_train = want < d.train.N ? want : d.train.N;
        r->n_test = c->test_samples > 0 && c->test_samples < d.test.N ? c->test_samples
                                                                      : d.test.N;
    }
    const float *pb = mb ? dpt_model_params(mb, &n_params) : NULL;
    const float *bb = mb ? dpt_model_buffers(mb, &n_buffers) : NULL;
    int64_t bn_n = c->bn_samples > 0 ? c->bn_samples : 25600;
    if (st == DPT_OK && bn_n > d.train.N)
        bn_n = d.train.N;
    for (int i = 0; i < r->n && st == DPT_OK; i++) {
        double alpha = c->alpha_min + (c->alpha_max - c->alpha_min) * i / (r->n - 1);
        r->alpha[i] = alpha;
        lerp(params, pa, pb, n_params, alpha);
        if (c->bn_recompute && n_buffers > 0)
            st = recompute_bn(m, &d.train, bn_n, s.x, s.labels);
        else
            lerp(buffers, ba, bb, n_buffers, alpha);
        dpt_eval_result tr, te;
        if (st == DPT_OK)
            st = dpt__evaluate(m, g, &d.train, NULL, r->n_train, &s, NULL, &tr);
        if (st == DPT_OK)
            st = dpt__evaluate(m, g, &d.test, NULL, r->n_test, &s, NULL, &te);
        r->train_loss[i] = tr.loss, r->train_acc[i] = tr.acc;
        r->test_loss[i] = te.loss, r->test_acc[i] = te.acc;
        st = dpt_group_agree(g, st);
    }
    if (st == DPT_OK && g->world_rank == 0)
        st = write_outputs(c, r);
    st = dpt_group_agree(g, st);
    free(pa);
    dpt__eval_scratch_free(&s);
    dpt_model_destroy(m), dpt_model_destroy(mb);
    dpt_data_free(&d);
    if (st != DPT_OK)
        dpt_interp_result_free(r);
    return st;
}
