/* Internal layer interface (nn): one vtable per layer kind and one struct for every layer. The
 * model (model.c) owns all memory; a layer only records what it needs (parameter and buffer
 * shapes, state and scratch sizes) and later holds views into the model's arena. Layers never
 * allocate, know no MPI and no files. */
#ifndef DPT_NN_LAYER_H
#define DPT_NN_LAYER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dpt/conv.h"
#include "dpt/model.h"
#include "dpt/ops.h"
#include "dpt/pool.h"
#include "dpt/rng.h"
#include "dpt/tensor.h"

#define DPT__ARGS_MAX 8
#define DPT__ARG_LEN 32
#define DPT__TOKEN_LEN 128

/* One spec token split into arguments: "conv2d(32,3,pad=1)" -> name "conv2d", positional
 * {"32", "3"}, keyed {pad: "1"}. The dpt__arg_* readers consume arguments; dpt__args_done fails
 * on any that nobody consumed. */
typedef struct {
    char name[DPT__ARG_LEN];
    int npos, nkw;
    char pos[DPT__ARGS_MAX][DPT__ARG_LEN];
    char key[DPT__ARGS_MAX][DPT__ARG_LEN];
    char val[DPT__ARGS_MAX][DPT__ARG_LEN];
    unsigned pos_used, kw_used; /* bit masks */
} dpt__args;

/* What every layer may consult while inferring its shapes. */
typedef struct {
    int64_t max_batch;
    int64_t num_classes;
    int64_t bn_ghost;
    const dpt_conv_impl *conv; /* the implementation conv layers will run */
    int threads;               /* l->work_floats is scratch for one thread; the model gives each its own */
} dpt__build;

/* What forward and backward see besides their tensors. */
typedef struct {
    int64_t n; /* rows in this pass */
    int training;
    const dpt_conv_impl *conv; /* the conv implementation of the model */
    float *work;               /* scratch of thread t: work + t * work_floats */
    size_t work_floats;
    float *prepared; /* read by every thread of one pass: the largest layer's prepared_floats */
    size_t prepared_floats;
    dpt_pool *pool;            /* the model's threads; NULL: one */
    const dpt_model_rng *rng; /* NULL when the caller gave none */
    int64_t bn_ghost;
    dpt_bn_reduce_fn reduce; /* NULL: local statistics */
    void *reduce_ctx;
} dpt__run;

typedef struct dpt__layer dpt__layer;

typedef struct {
    /* Reads the hyper-parameters from the token's arguments (l->keyword, l->dims are set). */
    dpt_status (*configure)(dpt__layer *l, dpt__args *a);
    /* l->in is set: checks it, fills l->out, kind, params, buffers, flops, state_bytes and
     * work_floats for batches up to b->max_batch. Errors name the token (dpt__layer_error). */
    dpt_status (*infer)(dpt__layer *l, const dpt__build *b);
    /* Initializes parameters and buffers from the key; NULL: nothing to initialize. */
    void (*init)(dpt__layer *l, dpt_rng_key key);
    /* y: (n, out...) written from x: (n, in...). Not called for views (is_view). */
    dpt_status (*forward)(dpt__layer *l, const dpt__run *r, float *y, const float *x);
    /* dx (NULL: not needed) written from dy; parameter gradients accumulated (+=). */
    dpt_status (*backward)(dpt__layer *l, const dpt__run *r, float *dx, const float *dy,
                           const float *x, const float *y);
    /* The canonical spec token; snprintf semantics. */
    int (*describe)(const dpt__layer *l, char *buf, size_t n);
} dpt__layer_ops;

#define DPT__LAYER_MAX_TENSORS 2

typedef struct {
    const char *name; /* "weight", "bias", "running_mean", ... (static) */
    dpt_shape shape;
    dpt_param_kind kind;
    float *v; /* view into the model's flat buffer */
    float *g; /* gradient view (parameters only) */
} dpt__tensor_slot;

struct dpt__layer {
    const dpt__layer_ops *ops;
    int index;
    char token[DPT__TOKEN_LEN];   /* as written, for messages */
    char keyword[DPT__ARG_LEN];   /* the token's name: "bn", "conv2d", ... */
    char kind[DPT__ARG_LEN];      /* resolved kind: "batchnorm2d" (segment names, summary) */
    char name[DPT__ARG_LEN + 16]; /* "01_batchnorm2d" */
    int dims;                     /* spatial dimensions; 0 = take them from the input */
    int is_view;                  /* output aliases the input (flatten, a fused ReLU) */
    int backward_in_place;        /* backward may write dx over dy (elementwise layers) */
    dpt_shape in, out;            /* per sample */
    double flops;                 /* forward, per sample */

    int nparams, nbuffers;
    int first_segment; /* index of param[0] among the model's parameter segments */
    dpt__tensor_slot param[DPT__LAYER_MAX_TENSORS];
    dpt__tensor_slot buffer[DPT__LAYER_MAX_TENSORS];

    size_t state_bytes; /* private memory kept from forward to backward */
    void *state;        /* 64-byte aligned, in the model's arena */
    size_t work_floats; /* shared scratch needed by one pass */
    size_t prepared_floats; /* weights made once per pass for all its threads (conv) */

    union {
        struct {
            dpt_conv_geom g; /* N = max_batch; passes copy it and set N */
            int64_t out_ch, k[3], stride[3], pad[3], dil[3], groups;
            int bias;
            int64_t partials; /* weight-gradient partial slots in each thread's scratch */
        } conv;
        struct {
            int64_t in, out;
            int bias, out_is_classes;
        } dense;
        struct {
            dpt_pool_geom g;
            int64_t k[3], stride[3], pad[3];
            int k_n, stride_n, pad_n; /* values given (0: absent) */
            int is_max, count_include_pad;
        } pool;
        struct {
            double eps, momentum;
            int64_t C, S, chunks; /* chunks: sub-batches of the largest batch */
            int64_t rows;         /* the largest batch */
            int fused_relu;       /* the next layer is a ReLU run here (it is a view) */
        } bn;
        struct {
            double p;
        } drop;
        struct {
            dpt_act act;
            double param;
            const char *param_name; /* NULL when the activation has none */
            double param_default;
        } act;
    } u;
};

/* ---- threads (model.c) ---------------------------------------------------------------------------
 * Two ways to cut a pass, both giving every thread count T the same bits:
 * - one share per thread (dpt__parallel_split, dpt__parallel_images, dpt__parallel_image_blocks;
 *   T = 1: one call over everything, exactly the single-threaded pass), sized by the threads'
 *   measured speeds. Only for passes whose items (images, channels, elements) are computed
 *   independently, with the same operations wherever the cuts fall: forward and backward-data
 *   passes, per-channel sums, blocks whose partials are summed in block order.
 * - dpt__parallel: fixed blocks of `block` items whose boundaries depend on the batch and the
 *   layer, never on T, claimed by free threads. For GEMMs, whose rounding of a row may depend
 *   on the rows beside it. */
#define DPT__UNIT_IMAGES 16 /* images per block of a conv weight gradient */
#define DPT__SPLIT_ALIGN 64   /* elementwise ranges start at multiples of this (whole vectors) */

/* Calls fn(ctx, start, len, thread) for [start, start + len) = each block of `block` items of
 * [0, count) (the last one shorter), on the model's threads; returns when all are done. */
typedef void (*dpt__range_fn)(void *ctx, int64_t start, int64_t len, int thread);
void dpt__parallel(const dpt__run *r, int64_t count, int64_t block, dpt__range_fn fn, void *ctx);
/* Calls fn(ctx, start, len, t) for contiguous pieces covering [0, count), one per thread t, each
 * starting at a multiple of `align`; shares learnt per fn. */
void dpt__parallel_split(const dpt__run *r, int64_t count, int64_t align, dpt__range_fn fn,
                         void *ctx);
/* The same over the r->n images' items, [0, r->n * per), cut where every per-image pass of the
 * run cuts (moved down to multiples of align): each thread keeps its images from layer to layer. */
void dpt__parallel_images(const dpt__run *r, int64_t per, int64_t align, dpt__range_fn fn,
                          void *ctx);
/* fn(ctx, b0, nb, t): blocks [b0, b0 + nb) of [0, blocks), blocks of consecutive images, cut in
 * the proportions of the images' cut. */
void dpt__parallel_image_blocks(const dpt__run *r, int64_t blocks, dpt__range_fn fn, void *ctx);
/* Scratch of thread t (r->work_floats floats). */
float *dpt__work(const dpt__run *r, int thread);

/* The vtables, one per file. */
extern const dpt__layer_ops dpt__conv_ops;
extern const dpt__layer_ops dpt__dense_ops;
extern const dpt__layer_ops dpt__pool_ops;
extern const dpt__layer_ops dpt__batchnorm_ops;
extern const dpt__layer_ops dpt__dropout_ops;
extern const dpt__layer_ops dpt__activation_ops;
extern const dpt__layer_ops dpt__flatten_ops;

/* ---- model_spec.c: argument readers and messages --------------------------------------------- */

/* Records "model spec: layer N "TOKEN": <message>" and returns st. */
dpt_status dpt__layer_error(const dpt__layer *l, dpt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the message already recorded (by a kernel's geometry check) with the token. */
dpt_status dpt__layer_rethrow(const dpt__layer *l, dpt_status st);

/* DPT_EINVAL unless l->in is (C, spatial...) with `dims` spatial dimensions. */
dpt_status dpt__layer_need_spatial(const dpt__layer *l, int dims);

/* Positional argument `pos` or keyword `key` (pos < 0: keyword only). *text is NULL when the
 * argument is absent; giving it both ways is an error. Marks it consumed. */
dpt_status dpt__arg_text(const dpt__layer *l, dpt__args *a, int pos, const char *key,
                         const char **text);
/* Typed readers over dpt__arg_text: `def` when absent; *found (may be NULL) says whether it was
 * given. Integers must lie in [lo, hi], doubles in [lo, hi]. */
dpt_status dpt__arg_int(const dpt__layer *l, dpt__args *a, int pos, const char *key, int64_t def,
                        int64_t lo, int64_t hi, int64_t *out, int *found);
/* One value for every dimension ("3") or one per dimension in (D, H, W) order ("3x5"); out[3] is
 * right-aligned (a 2-D layer fills out[1], out[2]) and out[0..3-dims) are set to `fill`.
 * *found receives the number of values given (0: absent). dims = 0 (not known yet) accepts 1 to 3
 * values, right-aligned, for the layer to check against its input later. */
dpt_status dpt__arg_dims(const dpt__layer *l, dpt__args *a, int pos, const char *key, int dims,
                         int64_t def, int64_t lo, int64_t fill, int64_t out[3], int *found);
dpt_status dpt__arg_double(const dpt__layer *l, dpt__args *a, int pos, const char *key, double def,
                           double lo, double hi, double *out);
/* DPT_EINVAL naming the first argument nobody consumed. */
dpt_status dpt__args_done(const dpt__layer *l, const dpt__args *a);

/* Formatting helpers for describe(): "3" when all dims agree, else "3x5"; the shortest "%g" that
 * reads back as the same double. Both append to buf at *used (snprintf semantics). */
void dpt__fmt(char *buf, size_t n, int *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void dpt__fmt_dims(char *buf, size_t n, int *used, const int64_t v[3], int dims);
void dpt__fmt_double(char *buf, size_t n, int *used, double v);

/* Splits `spec` into layers: *layers (calloc'd, *count entries) configured from their tokens. */
dpt_status dpt__spec_parse(const char *spec, dpt__layer **layers, int *count);

/* ---- model.c: shared helpers for layers ---------------------------------------------------------
 */

/* Adds a parameter (or buffer) slot of the given shape to l. */
void dpt__layer_add_param(dpt__layer *l, const char *name, dpt_param_kind kind, int ndim,
                          const int64_t *d);
void dpt__layer_add_buffer(dpt__layer *l, const char *name, int ndim, const int64_t *d);
/* torch's default for conv and dense: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * fan_in = numel(weight) / out. */
void dpt__layer_init_kaiming(dpt__layer *l, dpt_rng_key key);

#endif
