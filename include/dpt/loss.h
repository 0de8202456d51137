/* Losses (nn). Every loss returns the loss in double and writes d(loss)/d(input) for an upstream
 * gradient of 1. `denom` is what the sum over samples is divided by: the local N for a plain mean,
 * the global batch size in data-parallel training, so that the allreduced gradient sum is the
 * gradient of the global mean. https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html */
#ifndef DPT_LOSS_H
#define DPT_LOSS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* logits: (N, K), labels in [0, K) (asserted), label_smoothing in [0, 1], denom > 0.
 * Targets q = (1-eps)*onehot + eps/K. dlogits may alias logits.
 * loss = -(1/denom) sum_n sum_k q log softmax;  dlogits = (softmax - q)/denom. dlogits may be NULL.
 * correct (may be NULL) receives the number of rows whose argmax equals the label. */
double dpt_xent_forward_backward(float *dlogits, int64_t *correct, const float *logits,
                                 const int32_t *labels, int64_t N, int64_t K,
                                 double label_smoothing, double denom);
/* Soft targets t: (N, K), rows >= 0 (mixup/cutmix). dlogits = (softmax * sum_k t - t)/denom,
 * the exact gradient even when a row does not sum to 1. dlogits may be NULL or alias logits. */
double dpt_soft_xent_forward_backward(float *dlogits, const float *logits, const float *targets,
                                      int64_t N, int64_t K, double denom);
/* Mean over all n >= 1 elements of (pred - target)^2; dpred = 2 (pred - target) / n (may be NULL
 * or alias pred). */
double dpt_mse_forward_backward(float *dpred, const float *pred, const float *target, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
