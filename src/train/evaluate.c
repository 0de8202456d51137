/* Evaluation (train): loss, accuracy and per-sample class probabilities of a model over an index
 * list, sharded over a rank group in fixed chunks so the numbers do not depend on the group
 * size. Used by the trainer, the ensemble drivers and `dptrain eval`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/ensemble.h"
#include "dpt/loss.h"
#include "dpt/ops.h"
#include "train_impl.h"

dpt_shape dpt__sample_shape(const dpt_dataset *ds) {
    if (ds->sdims == 1)
        return dpt_shape_make(2, (int64_t[]){ds->C, ds->W});
    if (ds->sdims == 2)
        return dpt_shape_make(3, (int64_t[]){ds->C, ds->H, ds->W});
    return dpt_shape_make(4, (int64_t[]){ds->C, ds->D, ds->H, ds->W});
}

dpt_status dpt__eval_scratch_init(dpt_eval_scratch *s, int64_t eval_batch, int64_t sample) {
    memset(s, 0, sizeof *s);
    s->eval_batch = eval_batch > 0 ? eval_batch : DPT_EVAL_BATCH_DEFAULT;
    s->x = dpt_alloc_aligned(dpt_size_mul((size_t)(s->eval_batch * sample), sizeof(float)));
    s->labels = malloc((size_t)s->eval_batch * sizeof(int32_t));
    if (!s->x || !s->labels)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the evaluation batch");
    return DPT_OK;
}

void dpt__eval_scratch_free(dpt_eval_scratch *s) {
    dpt_free_aligned(s->x);
    free(s->labels);
    free(s->probs);
    free(s->chunk_loss);
    memset(s, 0, sizeof *s);
}

static dpt_status reserve(dpt_eval_scratch *s, int64_t probs, int64_t chunks) {
    if (probs > s->probs_cap) {
        float *p = realloc(s->probs, (size_t)probs * sizeof(float));
        if (!p)
            return dpt_errorf(DPT_ENOMEM, "cannot allocate %lld evaluation probabilities",
                              (long long)probs);
        s->probs = p, s->probs_cap = probs;
    }
    if (chunks > s->chunks_cap) {
        double *p = realloc(s->chunk_loss, (size_t)chunks * 2 * sizeof(double));
        if (!p)
            return dpt_errorf(DPT_ENOMEM, "cannot allocate the evaluation sums");
        s->chunk_loss = p, s->chunks_cap = chunks;
    }
    return DPT_OK;
}

/* Chunk c (rows [c*B, c*B + m)) belongs to group rank c % size. Each rank fills only its chunks'
 * rows of the zeroed probability table and its chunks' (loss, correct) pairs; a SUM over the
 * group then adds exact zeros everywhere else, so every rank ends with the same bits as one rank
 * computing everything. The loss is summed over chunks in chunk order afterwards. */
dpt_status dpt__evaluate(dpt_model *m, const dpt_group *g, const dpt_dataset *ds,
                         const int64_t *idx, int64_t n, dpt_eval_scratch *s, float *probs,
                         dpt_eval_result *res) {
    memset(res, 0, sizeof *res);
    res->n = n;
    const int64_t B = s->eval_batch, K = ds->K;
    const int64_t chunks = (n + B - 1) / B;
    dpt_status st = reserve(s, n * K, chunks > 0 ? chunks : 1);
    if (st != DPT_OK)
        return st;
    float *p = probs ? probs : s->probs;
    memset(p, 0, (size_t)(n * K) * sizeof(float));
    memset(s->chunk_loss, 0, (size_t)chunks * 2 * sizeof(double));
    for (int64_t c = g->rank; c < chunks && st == DPT_OK; c += g->size) {
        int64_t first = c * B, rows = n - first < B ? n - first : B;
        dpt_dataset_gather(ds, s->x, idx, first, rows);
        for (int64_t j = 0; j < rows; j++)
            s->labels[j] = ds->y[idx ? idx[first + j] : first + j];
        if ((st = dpt_model_forward(m, s->x, rows, 0, NULL)) != DPT_OK)
            break;
        const float *logits = dpt_model_logits(m);
        double loss = dpt_xent_forward_backward(NULL, NULL, logits, s->labels, rows, K, 0, 1.0);
        float *pc = p + first * K;
        dpt_softmax_forward(pc, logits, rows, K, 1);
        int64_t correct = 0;
        for (int64_t j = 0; j < rows; j++)
            correct += dpt_argmax_f32(pc + j * K, K) == s->labels[j];
        s->chunk_loss[2 * c] = loss;
        s->chunk_loss[2 * c + 1] = (double)correct;
    }
    st = dpt_group_agree(g, st);
    if (st != DPT_OK)
        return st;
    if (g->size > 1) {
        if ((st = dpt_group_sum_f32(g, DPT_SCOPE_GROUP, p, n * K)) != DPT_OK ||
            (st = dpt_group_sum_f64(g, DPT_SCOPE_GROUP, s->chunk_loss, 2 * chunks)) != DPT_OK)
            return st;
    }
    double loss = 0, correct = 0;
    for (int64_t c = 0; c < chunks; c++) {
        loss += s->chunk_loss[2 * c];
        correct += s->chunk_loss[2 * c + 1];
    }
    res->correct = (int64_t)correct;
    res->loss = n > 0 ? loss / (double)n : NAN;
    res->acc = n > 0 ? correct / (double)n : NAN;
    return DPT_OK;
}
