/* Models (nn): an ordered list of layers built from a spec string, one flat parameter buffer, one
 * flat gradient buffer (every layer's tensors are views into them, in layer order), one flat
 * buffer of batch-norm running statistics, and activations preallocated for a maximum batch.
 * dpt_model_create allocates everything; forward and backward allocate nothing. nn knows no MPI
 * and no files: collectives come in through the hooks below.
 *
 * Spec grammar: layers separated by blanks, each `name` or `name(arg, ..., key=value, ...)`:
 *   conv1d|conv2d|conv3d(out, k, stride=1, pad=0, dilation=1, groups=1, bias=1)
 *   dense(out, bias=1)                 out may be `classes` (the cfg's num_classes)
 *   maxpool[1d|2d|3d](k, stride=k, pad=0)   avgpool[1d|2d|3d](k, stride=k, pad=0,
 *                                                               count_include_pad=1)
 *   bn | batchnorm[1d|2d|3d](eps=1e-5, momentum=0.1)
 *   dropout(p=0.5)  flatten  relu  leaky_relu(slope=0.01)  sigmoid  tanh  elu(alpha=1)  gelu
 * Per-dimension values (k, stride, pad, dilation) are one integer for every dimension or one per
 * dimension in (D, H, W) order joined by 'x': "3x5". Pools and batch norm without a suffix take
 * their dimensionality from their input. Semantics are PyTorch's (nn.Conv2d, nn.Linear,
 * nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d, nn.Dropout, nn.Flatten, ...). A spec may also be
 * a preset name (dpt_model_preset). Errors name the offending token. */
#ifndef DPT_MODEL_H
#define DPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dpt/conv.h"
#include "dpt/pool.h"
#include "dpt/status.h"
#include "dpt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dpt_model dpt_model;

/* Sums `n` doubles in place over every rank that shares batch statistics (synced batch norm).
 * Called in training mode when cfg.bn_ghost is 0: once per batch-norm layer in forward (per-channel
 * sums, sums of squares, then the element count: n = 2C + 1) and once in backward (the per-channel
 * sums of dy and dy*xhat: n = 2C; skipped for a batch norm that needs no input gradient, i.e. the
 * first layer), in layer order. The model is the same on every rank of a group, so every rank
 * calls it in the same sequence. A non-OK status aborts the pass and is returned. */
typedef dpt_status (*dpt_bn_reduce_fn)(void *ctx, double *buf, int64_t n);

/* Called by dpt_model_backward as soon as layer `layer` has finished its backward pass: from
 * then on the gradients of that layer's segments are final for this step. Layers finish last to
 * first, so the finished gradients always form a suffix of the flat buffer. */
typedef void (*dpt_backward_hook)(void *ctx, int layer);

/* Zero fields take the defaults given. */
typedef struct {
    int64_t max_batch;   /* rows per forward at most; required, >= 1 */
    int64_t num_classes; /* 0: no check; else the output must be (num_classes) and `classes`
                          * in the spec means it */
    int64_t bn_ghost;    /* > 0: batch norm takes statistics over consecutive sub-batches of this
                          * many rows (ghost batch norm; the reducer is not used); 0: over all
                          * rows, summed through the reducer */
    uint32_t seed;       /* initialization key (seed, DPT_RNG_INIT, member) */
    uint32_t member;
    int input_grad; /* 1: backward also computes d(loss)/d(input) (dpt_model_input_grad) */
    int no_fusion;  /* 1: run every layer on its own. By default a batch norm followed by a ReLU
                     * runs as one fused layer (bit-identical results; the batch norm's
                     * dpt_model_layer_output is then the ReLU's output) */
    int threads;    /* threads that run each pass (a dpt_pool the model owns; 0 means 1). The
                     * results are bit-identical for every count (dpt/pool.h). <= 1024 */
    const dpt_conv_impl *conv; /* the convolution implementation; NULL: dpt_conv_default() */
} dpt_model_cfg;

/* Builds the model for per-sample input shape `input`: (C), (C, L), (C, H, W) or (C, D, H, W).
 * `spec` is a spec string or a preset name. Parameters are initialized as PyTorch does by default
 * (dpt_model_init). DPT_EINVAL naming the token for a bad spec or a shape that does not fit;
 * DPT_ENOMEM. *out is NULL on failure. */
dpt_status dpt_model_create(dpt_model **out, const char *spec, dpt_shape input,
                            const dpt_model_cfg *cfg);
void dpt_model_destroy(dpt_model *m); /* NULL is fine */

/* The class count `spec` (a spec or a preset name) fixes: N when its last layer is dense(N); 0
 * when it is dense(classes) or not a dense layer (the caller's class count decides). A bad spec
 * is an error naming the token, as in dpt_model_create. */
dpt_status dpt_model_spec_classes(const char *spec, int64_t *classes);

/* Re-initializes parameters from the key (seed, DPT_RNG_INIT, member): conv and dense weights and
 * biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (torch's kaiming_uniform_(a=sqrt(5)) and bias
 * rule), batch norm weight 1 and bias 0, running mean 0 and variance 1. Segment s draws from the
 * counter (epoch 0, index s), so each tensor is independent of the others. */
void dpt_model_init(dpt_model *m, uint32_t seed, uint32_t member);

/* The randomness of one training forward (dropout). Masks come from the key
 * (seed, DPT_RNG_DROPOUT, member) and the counter (step, global sample index, layer), so a sample
 * gets the same mask whichever rank or batch row processes it. */
typedef struct {
    uint32_t seed, member;
    uint32_t step;         /* optimizer step (or any per-step counter the caller keeps) */
    const int64_t *sample; /* global sample index of each row, < 2^48; NULL: the row number */
} dpt_model_rng;

/* x: (n, input...), 1 <= n <= max_batch (asserted). Borrows x until the next backward returns.
 * training = 1: batch-norm batch statistics (running statistics updated), dropout masks from
 * `rng` (may be NULL when the model has no dropout); 0: running statistics, no dropout.
 * Non-OK only from the batch-norm reducer or a batch-norm layer with a single value per channel
 * in training. */
dpt_status dpt_model_forward(dpt_model *m, const float *x, int64_t n, int training,
                             const dpt_model_rng *rng);
/* dlogits: (n, output...) for the n of the last forward. Backpropagates through every layer,
 * ACCUMULATING (+=) into the flat gradient buffer (zero it once per step: dpt_model_zero_grad),
 * calling the backward hook after each layer. Uses the mode of the last forward. One backward
 * per forward (DPT_EINVAL otherwise): it writes gradients over layer outputs that only it would
 * read, so afterwards only the logits of that forward are still valid. */
dpt_status dpt_model_backward(dpt_model *m, const float *dlogits);
/* The model's threads (NULL when it runs on one), for the caller's own passes over the same
 * data (the loss, the optimizer step) while no forward or backward runs. */
dpt_pool *dpt_model_pool(dpt_model *m);
void dpt_model_zero_grad(dpt_model *m);

/* Installs the hooks (fn NULL: none / local statistics). ctx is borrowed. */
void dpt_model_set_backward_hook(dpt_model *m, dpt_backward_hook fn, void *ctx);
void dpt_model_set_bn_reducer(dpt_model *m, dpt_bn_reduce_fn fn, void *ctx);

/* Outputs of the last forward: (n, output...). dpt_model_dlogits_buffer is scratch of
 * max_batch * numel(output) floats the caller may use for dlogits. */
const float *dpt_model_logits(const dpt_model *m);
float *dpt_model_dlogits_buffer(dpt_model *m);
/* (n, input...) after a backward, when cfg.input_grad was set; NULL otherwise. */
const float *dpt_model_input_grad(const dpt_model *m);

/* Per-sample shapes (without the batch dimension) and sizes. */
dpt_shape dpt_model_input_shape(const dpt_model *m);
dpt_shape dpt_model_output_shape(const dpt_model *m);
int64_t dpt_model_max_batch(const dpt_model *m);
int64_t dpt_model_batch(const dpt_model *m); /* n of the last forward; 0 before the first */
int dpt_model_training(const dpt_model *m);  /* mode of the last forward */
/* Forward FLOPs per sample (2 per multiply-add; 1 per elementwise operation). */
double dpt_model_flops(const dpt_model *m);
/* The canonical spec: every layer with its resolved kind and non-default options. Building from
 * it gives the same model; it is what a checkpoint records. Owned by m. */
const char *dpt_model_spec(const dpt_model *m);

/* The flat buffers, owned by m, valid until destroy; *count receives their length. */
float *dpt_model_params(dpt_model *m, int64_t *count);
float *dpt_model_grads(dpt_model *m, int64_t *count);
float *dpt_model_buffers(dpt_model *m, int64_t *count); /* batch-norm running statistics */

typedef enum {
    DPT_PARAM_WEIGHT, /* conv and dense weights */
    DPT_PARAM_BIAS,   /* conv and dense biases */
    DPT_PARAM_NORM,   /* batch-norm weight (gamma) and bias (beta); running statistics */
} dpt_param_kind;

/* One named tensor inside a flat buffer, in PyTorch's layout (conv weight (O, C/groups, k...),
 * dense weight (out, in)). Names follow DESIGN §5: "00_conv2d/weight", "01_batchnorm2d/bias",
 * "01_batchnorm2d/running_mean". */
typedef struct {
    char name[64];
    int64_t offset, count; /* in floats, into the flat buffer */
    dpt_shape shape;
    int layer; /* index of the owning layer */
    dpt_param_kind kind;
    int no_decay; /* biases and norm parameters: no weight decay, no LARS/LAMB ratio */
} dpt_model_segment;

/* Segments of the parameter (and gradient) buffer, in layer order, tiling it without gaps; and
 * of the buffer of running statistics. *n receives the count. Owned by m. */
const dpt_model_segment *dpt_model_param_segments(const dpt_model *m, int *n);
const dpt_model_segment *dpt_model_buffer_segments(const dpt_model *m, int *n);

/* Layers: count, name ("03_maxpool2d"), and the output of the last forward with its per-sample
 * shape (a view: flatten returns its input's memory); valid until the next backward. */
int dpt_model_num_layers(const dpt_model *m);
const char *dpt_model_layer_name(const dpt_model *m, int layer);
const float *dpt_model_layer_output(const dpt_model *m, int layer, dpt_shape *shape);

/* The table printed by `dptrain train --print-model`: one line per layer (name, canonical token,
 * output shape, parameters, MFLOPs per sample), a total, and the model's memory. snprintf
 * semantics: writes at most n bytes (NUL included) and returns the length the whole table needs. */
int dpt_model_summary(const dpt_model *m, char *buf, size_t n);

/* The model's one block of memory (bytes, alignment included) for batches of up to `rows`. */
typedef struct {
    int64_t rows;      /* cfg.max_batch */
    size_t outputs;    /* every layer output that is not a view, kept for backward */
    size_t gradients;  /* backward's ping-pong buffers and dlogits (most dx reuse outputs) */
    size_t state;      /* max-pool indices, dropout masks, batch-norm statistics */
    size_t workspace;  /* the largest scratch of one pass, one per thread */
    size_t prepared;   /* conv weights as one pass's kernels read them (the Winograd transform),
                          one copy for all threads */
    size_t parameters; /* parameters, their gradients, running statistics */
} dpt_model_memory;
void dpt_model_memory_of(const dpt_model *m, dpt_model_memory *out);

/* The spec string of a preset: "lenet5", "fmnist-cnn", "mlp", "cnn1d" (sequences (C, L)),
 * "cnn3d" (volumes (C, D, H, W)); NULL for an unknown name. dpt_model_preset_names lists them,
 * comma-separated, for help texts. */
const char *dpt_model_preset(const char *name);
const char *dpt_model_preset_names(void);

#ifdef __cplusplus
}
#endif
#endif
