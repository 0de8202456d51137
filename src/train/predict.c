/* Predictions of saved models (train): a checkpoint, or an ensemble manifest whose members are
 * checkpoints, evaluated on a split of a data source exactly as training evaluated them (the
 * recorded normalization, the fixed evaluation chunks of dpt__evaluate, dpt_ensemble_combine in
 * member order), so `dptrain eval` reproduces logged accuracies bit for bit. */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/checkpoint.h"
#include "dpt/h5file.h"
#include "train_impl.h"

typedef struct {
    char **paths;
    double *weights;
    int n;
    dpt_vote vote;
} manifest;

static void manifest_free(manifest *m) {
    for (int i = 0; m->paths && i < m->n; i++)
        free(m->paths[i]);
    free(m->paths), free(m->weights);
    memset(m, 0, sizeof *m);
}

/* *is_manifest = 0 for anything that is not a manifest (a checkpoint or a bad file: the
 * checkpoint loader names the problem). */
static dpt_status read_manifest(const char *path, manifest *m, int *is_manifest) {
    memset(m, 0, sizeof *m);
    *is_manifest = 0;
    dpt_h5r r;
    if (dpt_h5r_open(&r, path) != DPT_OK)
        return DPT_OK;
    char format[64] = "", vote[16] = "";
    dpt_status st = DPT_OK;
    if (!dpt_h5r_attr_exists(&r, "/", "format") ||
        dpt_h5r_attr_str(&r, "/", "format", format, sizeof format) != DPT_OK ||
        strcmp(format, DPT_MANIFEST_FORMAT) != 0)
        goto out;
    *is_manifest = 1;
    int64_t version = 0, n = 0;
    if ((st = dpt_h5r_attr_i64(&r, "/", "version", &version)) != DPT_OK)
        goto out;
    if (version != DPT_MANIFEST_VERSION) {
        st = dpt_errorf(DPT_EFORMAT, "%s: manifest version %lld, this dptrain reads %d", path,
                        (long long)version, DPT_MANIFEST_VERSION);
        goto out;
    }
    if ((st = dpt_h5r_attr_i64(&r, "/", "n_members", &n)) != DPT_OK ||
        (st = dpt_h5r_attr_str(&r, "/", "vote", vote, sizeof vote)) != DPT_OK)
        goto out;
    if (n < 1 || n > 100000) {
        st = dpt_errorf(DPT_EFORMAT, "%s: %lld members", path, (long long)n);
        goto out;
    }
    m->vote = !strcmp(vote, "hard") ? DPT_VOTE_HARD : DPT_VOTE_SOFT;
    m->paths = calloc((size_t)n, sizeof *m->paths);
    m->weights = malloc((size_t)n * sizeof *m->weights);
    if (!m->paths || !m->weights) {
        st = dpt_errorf(DPT_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    m->n = (int)n;
    if ((st = dpt_h5r_f64(&r, "weights", m->weights, n)) != DPT_OK)
        goto out;
    char *copy = strdup(path);
    const char *dir = copy ? dirname(copy) : ".";
    for (int i = 0; i < m->n && st == DPT_OK; i++) {
        char obj[64], rel[1024];
        snprintf(obj, sizeof obj, "members/%02d", i);
        if ((st = dpt_h5r_attr_str(&r, obj, "path", rel, sizeof rel)) != DPT_OK)
            break;
        size_t len = strlen(dir) + strlen(rel) + 2;
        if (!(m->paths[i] = malloc(len))) {
            st = dpt_errorf(DPT_ENOMEM, "%s: out of memory", path);
            break;
        }
        snprintf(m->paths[i], len, "%s/%s", rel[0] == '/' ? "" : dir, rel);
        if (!(m->weights[i] >= 0 && isfinite(m->weights[i])))
            st = dpt_errorf(DPT_EFORMAT, "%s: member %d has weight %g", path, i, m->weights[i]);
    }
    free(copy);
out:
    dpt_h5r_close(&r);
    if (st != DPT_OK)
        manifest_free(m);
    return st;
}

/* The samples of a split: the test split, all of train, or the held-out list of the checkpoint
 * (its fold or out-of-bag samples). */
static dpt_status split_list(const char *ckpt, dpt_split split, const dpt_data *d,
                             const dpt_dataset **ds, int64_t **idx, int64_t *n) {
    *idx = NULL;
    if (split == DPT_SPLIT_TEST) {
        *ds = &d->test, *n = d->test.N;
        return DPT_OK;
    }
    *ds = &d->train, *n = d->train.N;
    if (split == DPT_SPLIT_TRAIN)
        return DPT_OK;
    dpt_h5r r;
    dpt_status st = dpt_h5r_open(&r, ckpt);
    if (st != DPT_OK)
        return st;
    int nd = 0;
    int64_t dims[8];
    if (!dpt_h5r_exists(&r, "member/heldout_indices"))
        st = dpt_errorf(DPT_EINVAL, "%s: --split val needs a held-out list (a cv fold or a "
                                    "bagging member); this checkpoint has none",
                        ckpt);
    else if ((st = dpt_h5r_shape(&r, "member/heldout_indices", &nd, dims)) == DPT_OK) {
        *n = nd == 1 ? dims[0] : 0;
        *idx = malloc((size_t)(*n > 0 ? *n : 1) * sizeof(int64_t));
        st = *idx ? dpt_h5r_i64(&r, "member/heldout_indices", *idx, *n)
                  : dpt_errorf(DPT_ENOMEM, "%s: out of memory", ckpt);
        for (int64_t i = 0; st == DPT_OK && i < *n; i++)
            if ((*idx)[i] < 0 || (*idx)[i] >= d->train.N)
                st = dpt_errorf(DPT_ERANGE, "%s: held-out index %lld is outside the %lld training "
                                            "samples of the data",
                                ckpt, (long long)(*idx)[i], (long long)d->train.N);
    }
    dpt_h5r_close(&r);
    return st;
}

dpt_status dpt__load_model_and_data(const char *ckpt, const char *data, const char *search,
                                    int64_t max_batch, dpt_model **m, dpt_checkpoint_info *info,
                                    dpt_data *d) {
    *m = NULL;
    memset(d, 0, sizeof *d);
    dpt_status st = dpt_checkpoint_load(ckpt, max_batch, m, info);
    /* the class count is the model's output width, never the largest label in the data */
    dpt_data_opts opts = {.search_path = search, .classes = st == DPT_OK ? info->num_classes : 0};
    if (st == DPT_OK)
        st = dpt_data_load(d, data, &opts);
    if (st == DPT_OK) {
        dpt_shape want = dpt_model_input_shape(*m), have = dpt__sample_shape(&d->train);
        if (!dpt_shape_equal(&want, &have)) {
            char a[64], b[64];
            dpt_shape_format(&want, a, sizeof a);
            dpt_shape_format(&have, b, sizeof b);
            st = dpt_errorf(DPT_ESHAPE, "%s: the model takes samples of shape %s, %s has %s",
                            ckpt, a, d->source, b);
        } else if (info->num_classes != d->train.K) {
            st = dpt_errorf(DPT_ESHAPE, "%s: the model predicts %lld classes, %s has %lld", ckpt,
                            (long long)info->num_classes, d->source, (long long)d->train.K);
        }
    }
    if (st == DPT_OK && info->channels > 0) {
        if (info->channels != d->train.C)
            st = dpt_errorf(DPT_ESHAPE, "%s: trained on %lld channels, %s has %lld", ckpt,
                            (long long)info->channels, d->source, (long long)d->train.C);
        if (st == DPT_OK)
            st = dpt_dataset_normalize(&d->train, info->norm_mean, info->norm_std);
        if (st == DPT_OK)
            st = dpt_dataset_normalize(&d->test, info->norm_mean, info->norm_std);
    }
    if (st != DPT_OK) {
        dpt_model_destroy(*m);
        *m = NULL;
        dpt_data_free(d);
    }
    return st;
}

/* Probabilities of one checkpoint on a split. *n_out and *K_out give the table's size; labels are
 * filled. */
static dpt_status predict_checkpoint(const char *ckpt, const char *data, const char *search,
                                     dpt_split split, int64_t max_samples, dpt_group *g,
                                     float **probs, int32_t **labels, int64_t *n_out,
                                     int64_t *K_out, dpt_eval_result *res) {
    dpt_model *m = NULL;
    dpt_checkpoint_info info;
    dpt_data d = {0};
    int64_t *idx = NULL, n = 0;
    const dpt_dataset *ds = NULL;
    dpt_eval_scratch s = {0};
    dpt_status st = dpt__load_model_and_data(ckpt, data, search, DPT_EVAL_BATCH_DEFAULT, &m,
                                             &info, &d);
    if (st == DPT_OK)
        st = split_list(ckpt, split, &d, &ds, &idx, &n);
    if (st == DPT_OK && max_samples > 0 && max_samples < n)
        n = max_samples;
    if (st == DPT_OK)
        st = dpt__eval_scratch_init(&s, DPT_EVAL_BATCH_DEFAULT, dpt_dataset_sample_numel(ds));
    if (st == DPT_OK) {
        *probs = malloc((size_t)(n * ds->K) * sizeof(float));
        *labels = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
        if (!*probs || !*labels)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate %lld predictions", (long long)n);
    }
    st = dpt_group_agree(g, st);
    if (st == DPT_OK) {
        st = dpt__evaluate(m, g, ds, idx, n, &s, *probs, res);
        for (int64_t i = 0; i < n; i++)
            (*labels)[i] = ds->y[idx ? idx[i] : i];
        *n_out = n, *K_out = ds->K;
    }
    dpt__eval_scratch_free(&s);
    free(idx);
    dpt_data_free(&d);
    dpt_model_destroy(m);
    return st;
}

void dpt_predictions_free(dpt_predictions *p) {
    free(p->probs), free(p->pred), free(p->labels), free(p->member_acc);
    memset(p, 0, sizeof *p);
}

dpt_status dpt_predict(const char *path, const char *data, const char *data_search, dpt_split split,
                       int64_t max_samples, dpt_group *g, dpt_predictions *out) {
    memset(out, 0, sizeof *out);
    manifest man;
    int is_manifest = 0;
    dpt_status st = dpt_group_agree(g, read_manifest(path, &man, &is_manifest));
    if (st != DPT_OK)
        return st;
    if (!is_manifest) {
        dpt_eval_result res;
        out->n_members = 1;
        out->member_acc = malloc(sizeof(double));
        st = predict_checkpoint(path, data, data_search, split, max_samples, g, &out->probs, &out->labels,
                                &out->n, &out->K, &res);
        if (st == DPT_OK && out->member_acc) {
            out->loss = res.loss, out->acc = res.acc, out->member_acc[0] = res.acc;
            out->pred = malloc((size_t)(out->n > 0 ? out->n : 1) * sizeof(int32_t));
            for (int64_t i = 0; out->pred && i < out->n; i++)
                out->pred[i] = dpt_argmax_f32(out->probs + i * out->K, out->K);
            if (!out->pred)
                st = dpt_errorf(DPT_ENOMEM, "cannot allocate the predictions");
        }
        if (st != DPT_OK)
            dpt_predictions_free(out);
        return st;
    }
    if (split == DPT_SPLIT_VAL)
        st = dpt_errorf(DPT_EINVAL, "%s: --split val is per member (each has its own held-out "
                                    "samples); evaluate a member's checkpoint instead",
                        path);
    float **probs = calloc((size_t)man.n, sizeof *probs);
    out->member_acc = calloc((size_t)man.n, sizeof(double));
    if (st == DPT_OK && (!probs || !out->member_acc))
        st = dpt_errorf(DPT_ENOMEM, "cannot allocate the members' predictions");
    st = dpt_group_agree(g, st);
    for (int i = 0; i < man.n && st == DPT_OK; i++) {
        int32_t *labels = NULL;
        int64_t n = 0, K = 0;
        dpt_eval_result res;
        st = predict_checkpoint(man.paths[i], data, data_search, split, max_samples,
                                g, &probs[i], &labels, &n,
                                &K, &res);
        if (st == DPT_OK && i > 0 && (n != out->n || K != out->K))
            st = dpt_errorf(DPT_ESHAPE, "%s: member %d predicts %lld x %lld, member 0 %lld x %lld",
                            path, i, (long long)n, (long long)K, (long long)out->n,
                            (long long)out->K);
        if (st == DPT_OK) {
            out->member_acc[i] = res.acc;
            if (i == 0)
                out->labels = labels, out->n = n, out->K = K;
            else
                free(labels);
        } else {
            free(labels);
        }
        st = dpt_group_agree(g, st);
    }
    if (st == DPT_OK) {
        out->n_members = man.n;
        out->probs = malloc((size_t)(out->n * out->K) * sizeof(float));
        out->pred = malloc((size_t)(out->n > 0 ? out->n : 1) * sizeof(int32_t));
        if (!out->probs || !out->pred)
            st = dpt_errorf(DPT_ENOMEM, "cannot allocate the ensemble's predictions");
    }
    if (st == DPT_OK) {
        dpt_ensemble_combine(out->probs, out->pred, (const float *const *)probs, man.weights,
                             man.n, out->n, out->K, man.vote);
        out->acc = dpt_accuracy(out->pred, out->labels, out->n);
        out->loss = NAN;
    }
    for (int i = 0; probs && i < man.n; i++)
        free(probs[i]);
    free(probs);
    manifest_free(&man);
    if (st != DPT_OK)
        dpt_predictions_free(out);
    return dpt_group_agree(g, st);
}

dpt_status dpt_train_eval_checkpoint(const char *ckpt, const char *data, const char *data_search,
                                     dpt_group *g, double *loss, double *acc, int64_t *n) {
    dpt_predictions p;
    dpt_status st = dpt_predict(ckpt, data, data_search, DPT_SPLIT_TEST, 0, g, &p);
    if (st == DPT_OK)
        *loss = p.loss, *acc = p.acc, *n = p.n;
    dpt_predictions_free(&p);
    return st;
}
