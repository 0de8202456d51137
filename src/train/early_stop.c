/* Early stopping on the validation loss (train): patience counting and the best-weights copy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train_impl.h"

dpt_status dpt__early_stop_init(dpt_early_stop *es, int64_t patience, int64_t n_params,
                                int64_t n_buffers) {
    memset(es, 0, sizeof *es);
    es->patience = patience;
    es->best_epoch = -1;
    es->best_loss = INFINITY;
    es->n_params = n_params;
    es->n_buffers = n_buffers;
    if (patience <= 0)
        return DPT_OK;
    es->params = malloc((size_t)(n_params > 0 ? n_params : 1) * sizeof(float));
    es->buffers = malloc((size_t)(n_buffers > 0 ? n_buffers : 1) * sizeof(float));
    if (!es->params || !es->buffers)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the early-stopping copy");
    return DPT_OK;
}

void dpt__early_stop_free(dpt_early_stop *es) {
    free(es->params);
    free(es->buffers);
    memset(es, 0, sizeof *es);
}

int dpt__early_stop_update(dpt_early_stop *es, int64_t epoch, double val_loss,
                           const float *params, const float *buffers) {
    if (es->patience <= 0)
        return 0;
    if (val_loss < es->best_loss) {
        es->best_loss = val_loss;
        es->best_epoch = epoch;
        es->since_best = 0;
        memcpy(es->params, params, (size_t)es->n_params * sizeof(float));
        memcpy(es->buffers, buffers, (size_t)es->n_buffers * sizeof(float));
        return 0;
    }
    return ++es->since_best >= es->patience;
}

int dpt__early_stop_restore(const dpt_early_stop *es, float *params, float *buffers) {
    if (es->patience <= 0 || es->best_epoch < 1)
        return 0;
    memcpy(params, es->params, (size_t)es->n_params * sizeof(float));
    memcpy(buffers, es->buffers, (size_t)es->n_buffers * sizeof(float));
    return 1;
}
