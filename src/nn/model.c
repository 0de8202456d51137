/* Models (nn): ordered layers, the flat parameter / gradient / running-statistics buffers and the
 * one arena that holds them with every activation and scratch buffer; weight initialization; the
 * forward and backward passes with their hooks; the summary table. Knows no MPI and no files:
 * the batch-norm reducer and the backward hook are how the comm module gets in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/model.h"
#include "nn/layer.h"

/* Where backward writes a gradient: nowhere, the caller's dlogits, one of the two ping-pong
 * buffers, or bytes [off, off + len) of the arena. */
typedef enum { DX_NONE, DX_DLOGITS, DX_PINGPONG0, DX_PINGPONG1, DX_ARENA } dx_kind;
typedef struct {
    dx_kind kind;
    size_t off, len;
} dx_place;

typedef struct {
    float *y;         /* own output buffer (NULL for views) */
    const float *x;   /* input of the last forward */
    const float *out; /* output of the last forward */
    dx_place dx_at;    /* where backward writes dx (plan_backward) */
    float *dx;         /* that memory; NULL when no dx is needed */
} layer_io;

struct dpt_model {
    int nlayers;
    int first_compute; /* the first layer that is not a view: no dx is needed below it */
    dpt__layer *layers;
    layer_io *io;
    size_t *block_start; /* arena offset of each layer's output and state (carve) */
    dpt_model_cfg cfg;
    dpt_shape input;
    const dpt_conv_impl *conv;
    char *spec; /* canonical */

    float *params, *grads, *buffers;
    int64_t nparams, nbuffers;
    dpt_model_segment *psegs, *bsegs;
    int npsegs, nbsegs;

    float *pingpong[2]; /* backward: gradients that fit nowhere else (plan_backward) */
    dpt_model_memory memory;
    float *work;        /* threads x work_floats: one scratch per thread */
    size_t work_floats; /* per thread, a multiple of 16 (every thread's scratch 64-byte aligned) */
    float *prepared;    /* one pass's prepared weights, all threads' */
    size_t prepared_floats;
    dpt_pool *pool;     /* NULL: one thread */
    int threads;
    float *dlogits;
    const float *input_grad;

    int64_t n;
    int training;
    int backward_ready; /* a forward ran and no backward since: its outputs are intact */
    dpt_backward_hook hook;
    void *hook_ctx;
    dpt_bn_reduce_fn reduce;
    void *reduce_ctx;

    void *arena;
};

/* ---- helpers for layers -------------------------------------------------------------------------
 */

static void add_slot(dpt__tensor_slot *slot, const char *name, dpt_param_kind kind, int ndim,
                     const int64_t *d) {
    memset(slot, 0, sizeof *slot);
    slot->name = name;
    slot->kind = kind;
    slot->shape = dpt_shape_make(ndim, d);
}

void dpt__layer_add_param(dpt__layer *l, const char *name, dpt_param_kind kind, int ndim,
                          const int64_t *d) {
    DPT_ASSERT(l->nparams < DPT__LAYER_MAX_TENSORS);
    add_slot(&l->param[l->nparams++], name, kind, ndim, d);
}

void dpt__layer_add_buffer(dpt__layer *l, const char *name, int ndim, const int64_t *d) {
    DPT_ASSERT(l->nbuffers < DPT__LAYER_MAX_TENSORS);
    add_slot(&l->buffer[l->nbuffers++], name, DPT_PARAM_NORM, ndim, d);
}

void dpt__layer_init_kaiming(dpt__layer *l, dpt_rng_key key) {
    DPT_ASSERT(l->nparams >= 1);
    const dpt_shape *ws = &l->param[0].shape;
    const int64_t fan_in = dpt_shape_count(ws) / ws->d[0];
    const double bound = 1.0 / sqrt((double)fan_in);
    for (int j = 0; j < l->nparams; j++) {
        dpt_rng r;
        dpt_rng_init(&r, key, 0, (uint64_t)(l->first_segment + j));
        const int64_t count = dpt_shape_count(&l->param[j].shape);
        for (int64_t i = 0; i < count; i++)
            l->param[j].v[i] = (float)((2.0 * dpt_rng_uniform(&r) - 1.0) * bound);
    }
}

/* ---- threads ----------------------------------------------------------------------------------
 */

typedef struct {
    dpt__range_fn fn;
    void *ctx;
    int64_t count, block;
} range_job;

static void range_unit(void *ctx, int64_t unit, int thread) {
    const range_job *j = ctx;
    const int64_t start = unit * j->block;
    j->fn(j->ctx, start, j->count - start < j->block ? j->count - start : j->block, thread);
}

void dpt__parallel(const dpt__run *r, int64_t count, int64_t block, dpt__range_fn fn, void *ctx) {
    DPT_ASSERT(count >= 0 && block >= 1);
    range_job j = {.fn = fn, .ctx = ctx, .count = count, .block = block};
    dpt_pool_run(r->pool, (count + block - 1) / block, range_unit, &j);
}

typedef struct {
    dpt__range_fn fn;
    void *ctx;
    int64_t count, align; /* [0, count) in pieces starting at multiples of align */
    int64_t per;          /* per-image passes: items per image, the pool's blocks being images */
} split_job;

/* Aligned blocks [b0, b1) as items. */
static void split_share(void *ctx, int64_t b0, int64_t b1, int thread) {
    const split_job *j = ctx;
    const int64_t start = b0 * j->align, end = b1 * j->align < j->count ? b1 * j->align : j->count;
    j->fn(j->ctx, start, end - start, thread);
}

/* Images [i0, i1) as items, each end moved down to a multiple of align (the last one is count). */
static void images_share(void *ctx, int64_t i0, int64_t i1, int thread) {
    const split_job *j = ctx;
    const int64_t start = i0 * j->per / j->align * j->align;
    const int64_t end = i1 * j->per >= j->count ? j->count : i1 * j->per / j->align * j->align;
    if (end > start)
        j->fn(j->ctx, start, end - start, thread);
}

/* The kind under which the pool learns the threads' shares of the images. */
static const char images_kind;

/* One share per thread, sized by the pool from the threads' speeds on earlier calls: the two
 * cores of a shared machine can differ by a quarter. */
void dpt__parallel_split(const dpt__run *r, int64_t count, int64_t align, dpt__range_fn fn,
                         void *ctx) {
    DPT_ASSERT(count >= 0 && align >= 1);
    split_job j = {.fn = fn, .ctx = ctx, .count = count, .align = align};
    dpt_pool_run_shares(r->pool, (const void *)fn, (count + align - 1) / align, 0, split_share, &j);
}

/* Every per-image pass cuts the batch where the others do, so that the images a thread works on
 * stay in its core's caches from layer to layer: data another core wrote reads at about half the
 * speed (4 MiB on this machine's two cores: 31 against 55 GB/s, tests/bench/bench_cross_core).
 * The images within an eighth of a share of a cut go in pieces to whichever neighbour gets
 * there first: on a shared machine a thread's pass runs late by more than 0.2 ms in one job of
 * seven (memory-bound passes most), which no share learnt from earlier jobs can foresee. A
 * piece is a quarter of such a region, since kernel calls on fewer images pay more fixed costs:
 * one thread with every pass cut into pieces of 4 images trained fmnist-cnn 8-12 % slower, in
 * pieces of 2 images 20-25 % (docs/threads.md). */
void dpt__parallel_images(const dpt__run *r, int64_t per, int64_t align, dpt__range_fn fn,
                          void *ctx) {
    DPT_ASSERT(per >= 1 && align >= 1);
    split_job j = {.fn = fn, .ctx = ctx, .count = r->n * per, .align = align, .per = per};
    const int64_t slack = r->n / (8 * dpt_pool_threads(r->pool));
    dpt_pool_run_shares(r->pool, &images_kind, r->n, slack, images_share, &j);
}

/* Blocks of images run one kernel call each anyway: half of every share is up for claiming. */
void dpt__parallel_image_blocks(const dpt__run *r, int64_t blocks, dpt__range_fn fn, void *ctx) {
    split_job j = {.fn = fn, .ctx = ctx, .count = blocks, .align = 1};
    dpt_pool_run_shares(r->pool, &images_kind, blocks, blocks, split_share, &j);
}

float *dpt__work(const dpt__run *r, int thread) {
    return r->work + (size_t)thread * r->work_floats;
}

/* ---- the arena ----------------------------------------------------------------------------------
 */

/* Two passes over the same carving code: the first (base NULL) measures, the second hands out
 * 64-byte aligned pieces of one block. */
typedef struct {
    char *base;
    size_t used;
    int overflow;
} arena;

/* Every block starts and ends on DPT_ALIGN: its padding counts with it (dpt_model_memory). */
static void *take(arena *a, size_t count, size_t elsize) {
    const size_t bytes = dpt_size_mul(count, elsize);
    const size_t at = a->used;
    if (bytes == SIZE_MAX || at > SIZE_MAX - DPT_ALIGN - bytes) {
        a->overflow = 1;
        return NULL;
    }
    a->used = (at + bytes + DPT_ALIGN - 1) / DPT_ALIGN * DPT_ALIGN;
    return a->base ? a->base + at : NULL;
}

static size_t max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Where backward writes each layer's input gradient dx (io[i].dx), walking down from the logits
 * gradient. Over its own dy when the layer allows it (elementwise layers). Else into the blocks
 * (output and state) of the layers above it, up to the logits: nothing reads those once their
 * backward has run, and they lie back to back in the arena (take() ends every block aligned), so
 * they form one free span that grows as backward goes down, minus where dy is. dx goes to the
 * top of the part above dy, else of the part below it, which keeps the low end free to join the
 * next layer's block. Else into the ping-pong buffer that does not hold dy; pp_floats[] receives
 * what each must hold. fmnist-cnn at 64 rows needs buffers of 12544 and 3136 floats per row
 * instead of two of its largest layer (25088): 8.4 MiB less. The logits stay valid. */
static void plan_backward(dpt_model *m, const size_t *block_start, size_t pp_floats[2]) {
    const int64_t B = m->cfg.max_batch;
    int logits = m->nlayers - 1; /* the layer whose own buffer holds the logits */
    while (logits > 0 && m->layers[logits].is_view)
        logits--;
    const size_t hi = block_start[logits];
    size_t lo = hi; /* the free span [lo, hi): blocks of the layers above the current one */
    dx_place dy = {.kind = DX_DLOGITS};
    pp_floats[0] = pp_floats[1] = 0;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        const dpt__layer *l = &m->layers[i];
        m->io[i].dx_at = (dx_place){.kind = DX_NONE};
        if (l->is_view)
            continue; /* passes dy through */
        for (int j = i + 1; j < logits; j++) /* their backward has run */
            if (!m->layers[j].is_view) {
                lo = block_start[j];
                break;
            }
        if (!(i > m->first_compute || m->cfg.input_grad))
            continue; /* the first layer needs no dx */
        const size_t need = dpt_size_mul((size_t)B * (size_t)dpt_shape_count(&l->in), sizeof(float));
        dx_place dx = {.kind = DX_NONE, .len = need};
        if (l->backward_in_place && dy.kind != DX_DLOGITS) { /* dlogits is the caller's */
            dx = dy;
        } else {
            const int dy_inside = dy.kind == DX_ARENA;
            const size_t upper_lo = dy_inside ? dy.off + dy.len : lo;
            const size_t lower_hi = dy_inside ? dy.off : lo;
            if (hi >= upper_lo + need) {
                dx = (dx_place){DX_ARENA, (hi - need) / DPT_ALIGN * DPT_ALIGN, need};
                if (dx.off < upper_lo)
                    dx.kind = DX_NONE;
            }
            if (dx.kind == DX_NONE && lower_hi >= lo + need) {
                dx = (dx_place){DX_ARENA, (lower_hi - need) / DPT_ALIGN * DPT_ALIGN, need};
                if (dx.off < lo)
                    dx.kind = DX_NONE;
            }
        }
        if (dx.kind == DX_NONE) {
            dx.kind = dy.kind == DX_PINGPONG0 ? DX_PINGPONG1 : DX_PINGPONG0;
            size_t *size = &pp_floats[dx.kind == DX_PINGPONG0 ? 0 : 1];
            *size = max_size(*size, need / sizeof(float));
        }
        /* inside the free span, clear of dy unless in place */
        DPT_ASSERT(dx.kind != DX_ARENA || (dx.off >= lo && dx.off + dx.len <= hi));
        DPT_ASSERT(dx.kind != DX_ARENA || dy.kind != DX_ARENA || l->backward_in_place ||
                   dx.off + dx.len <= dy.off || dy.off + dy.len <= dx.off);
        m->io[i].dx_at = dy = dx;
    }
}

static float *dx_memory(const dpt_model *m, const char *base, dx_place at) {
    switch (at.kind) {
    case DX_PINGPONG0:
        return m->pingpong[0];
    case DX_PINGPONG1:
        return m->pingpong[1];
    case DX_ARENA:
        return base ? (float *)(void *)(base + at.off) : NULL;
    default:
        return NULL;
    }
}

/* The arena's bytes by purpose (dpt_model_memory). */
static size_t taken_since(const arena *a, size_t *mark) {
    const size_t bytes = a->used - *mark;
    *mark = a->used;
    return bytes;
}

static void carve(dpt_model *m, arena *a) {
    const int64_t B = m->cfg.max_batch;
    size_t work = 0, prepared = 0, pp[2], mark = a->used;
    dpt_model_memory *mem = &m->memory;
    *mem = (dpt_model_memory){.rows = B};
    m->params = take(a, (size_t)m->nparams, sizeof(float));
    m->grads = take(a, (size_t)m->nparams, sizeof(float));
    m->buffers = take(a, (size_t)m->nbuffers, sizeof(float));
    mem->parameters = taken_since(a, &mark);
    size_t *block_start = m->block_start; /* each layer's output and state, back to back */
    for (int i = 0; i < m->nlayers; i++) {
        dpt__layer *l = &m->layers[i];
        const size_t out = (size_t)(B * dpt_shape_count(&l->out));
        block_start[i] = a->used;
        m->io[i].y = l->is_view ? NULL : take(a, out, sizeof(float));
        mem->outputs += taken_since(a, &mark);
        l->state = l->state_bytes ? take(a, l->state_bytes, 1) : NULL;
        mem->state += taken_since(a, &mark);
        work = max_size(work, l->work_floats);
        prepared = max_size(prepared, l->prepared_floats);
    }
    plan_backward(m, block_start, pp);
    m->pingpong[0] = take(a, max_size(pp[0], 1), sizeof(float));
    m->pingpong[1] = take(a, max_size(pp[1], 1), sizeof(float));
    const dpt__layer *last = &m->layers[m->nlayers - 1];
    m->dlogits = take(a, (size_t)(B * dpt_shape_count(&last->out)), sizeof(float));
    mem->gradients = taken_since(a, &mark);
    for (int i = 0; i < m->nlayers; i++)
        m->io[i].dx = dx_memory(m, a->base, m->io[i].dx_at);
    m->work_floats = (max_size(work, 1) + 15) / 16 * 16;
    m->work = take(a, dpt_size_mul(m->work_floats, (size_t)m->threads), sizeof(float));
    mem->workspace = taken_since(a, &mark);
    m->prepared_floats = prepared;
    m->prepared = prepared ? take(a, prepared, sizeof(float)) : NULL;
    mem->prepared = taken_since(a, &mark);
}

/* Views of the flat buffers for every layer's tensors, and the segment tables. */
static dpt_status make_segments(dpt_model *m) {
    int np = 0, nb = 0;
    for (int i = 0; i < m->nlayers; i++) {
        np += m->layers[i].nparams;
        nb += m->layers[i].nbuffers;
    }
    m->psegs = calloc((size_t)np + 1, sizeof *m->psegs);
    m->bsegs = calloc((size_t)nb + 1, sizeof *m->bsegs);
    if (!m->psegs || !m->bsegs)
        return dpt_errorf(DPT_ENOMEM, "model: cannot allocate the segment tables");
    int64_t po = 0, bo = 0;
    for (int i = 0; i < m->nlayers; i++) {
        dpt__layer *l = &m->layers[i];
        l->first_segment = m->npsegs;
        for (int pass = 0; pass < 2; pass++) {
            const int count = pass ? l->nbuffers : l->nparams;
            for (int j = 0; j < count; j++) {
                const dpt__tensor_slot *t = pass ? &l->buffer[j] : &l->param[j];
                dpt_model_segment *s = pass ? &m->bsegs[m->nbsegs++] : &m->psegs[m->npsegs++];
                int64_t *off = pass ? &bo : &po;
                snprintf(s->name, sizeof s->name, "%s/%s", l->name, t->name);
                s->offset = *off;
                s->count = dpt_shape_count(&t->shape);
                s->shape = t->shape;
                s->layer = i;
                s->kind = t->kind;
                s->no_decay = t->kind != DPT_PARAM_WEIGHT;
                *off += s->count;
            }
        }
    }
    m->nparams = po;
    m->nbuffers = bo;
    return DPT_OK;
}

static void bind_views(dpt_model *m) {
    int ip = 0, ib = 0; /* segments were made in the same layer order */
    for (int i = 0; i < m->nlayers; i++) {
        dpt__layer *l = &m->layers[i];
        for (int j = 0; j < l->nparams; j++, ip++) {
            l->param[j].v = m->params + m->psegs[ip].offset;
            l->param[j].g = m->grads + m->psegs[ip].offset;
        }
        for (int j = 0; j < l->nbuffers; j++, ib++)
            l->buffer[j].v = m->buffers + m->bsegs[ib].offset;
    }
}

/* ---- create / destroy -------------------------------------------------------------------------
 */

static dpt_status check_input(dpt_shape input, const dpt_model_cfg *cfg) {
    char s[96];
    dpt_shape_format(&input, s, sizeof s);
    if (input.ndim < 1 || input.ndim > 4)
        return dpt_errorf(DPT_EINVAL,
                          "model: input shape %s must be (C), (C, L), (C, H, W) or "
                          "(C, D, H, W)",
                          s);
    for (int i = 0; i < input.ndim; i++)
        if (input.d[i] < 1)
            return dpt_errorf(DPT_EINVAL, "model: input shape %s has an empty dimension", s);
    if (cfg->max_batch < 1)
        return dpt_errorf(DPT_EINVAL, "model: max batch %lld must be >= 1",
                          (long long)cfg->max_batch);
    if (cfg->num_classes < 0 || cfg->bn_ghost < 0)
        return dpt_errorf(DPT_EINVAL, "model: negative class count or ghost batch size");
    if (cfg->threads < 0 || cfg->threads > DPT_POOL_MAX_THREADS)
        return dpt_errorf(DPT_EINVAL, "model: thread count %d is not in [1, %d]", cfg->threads,
                          DPT_POOL_MAX_THREADS);
    int64_t numel;
    return dpt_shape_numel(&input, &numel);
}

/* Every parameter and buffer of `l` has an element count that fits, and so does the running
 * total: a spec of huge but individually legal sizes fails here, by name, rather than wrapping
 * around in the buffer layout. The limit leaves room for the byte counts of the flat buffers. */
static dpt_status check_tensor_sizes(const dpt__layer *l, int64_t *total) {
    const int64_t limit = INT64_MAX / 16;
    for (int j = 0; j < l->nparams + l->nbuffers; j++) {
        const dpt__tensor_slot *t = j < l->nparams ? &l->param[j] : &l->buffer[j - l->nparams];
        int64_t numel = 0;
        if (dpt_shape_numel(&t->shape, &numel) != DPT_OK || numel > limit - *total) {
            char s[128];
            dpt_shape_format(&t->shape, s, sizeof s);
            return dpt__layer_error(l, DPT_ERANGE, "%s %s is out of range (the model's tensors "
                                                   "may hold at most %lld elements)",
                                    t->name, s, (long long)limit);
        }
        *total += numel;
    }
    return DPT_OK;
}

static dpt_status infer_all(dpt_model *m) {
    int64_t total = 0;
    const dpt__build b = {.max_batch = m->cfg.max_batch,
                          .num_classes = m->cfg.num_classes,
                          .bn_ghost = m->cfg.bn_ghost,
                          .conv = m->conv,
                          .threads = m->threads};
    dpt_shape in = m->input;
    for (int i = 0; i < m->nlayers; i++) {
        dpt__layer *l = &m->layers[i];
        l->in = in;
        dpt_status st = l->ops->infer(l, &b);
        if (st != DPT_OK)
            return st;
        int64_t numel;
        if ((st = dpt_shape_numel(&l->out, &numel)) != DPT_OK ||
            numel > INT64_MAX / m->cfg.max_batch)
            return dpt__layer_error(l, DPT_ERANGE, "output too large");
        if ((st = check_tensor_sizes(l, &total)) != DPT_OK)
            return st;
        snprintf(l->name, sizeof l->name, "%02d_%s", i, l->kind);
        in = l->out;
    }
    /* batch norm + ReLU run as one layer: the ReLU becomes a view of the fused output */
    for (int i = 0; !m->cfg.no_fusion && i + 1 < m->nlayers; i++) {
        dpt__layer *bn = &m->layers[i], *act = &m->layers[i + 1];
        if (bn->ops == &dpt__batchnorm_ops && act->ops == &dpt__activation_ops &&
            act->u.act.act == DPT_ACT_RELU) {
            bn->u.bn.fused_relu = 1;
            act->is_view = 1;
        }
    }
    m->first_compute = 0;
    while (m->first_compute + 1 < m->nlayers && m->layers[m->first_compute].is_view)
        m->first_compute++;
    if (m->cfg.num_classes > 0 && (in.ndim != 1 || in.d[0] != m->cfg.num_classes)) {
        char s[96];
        dpt_shape_format(&in, s, sizeof s);
        return dpt_errorf(DPT_EINVAL, "model spec: output %s does not match %lld classes", s,
                          (long long)m->cfg.num_classes);
    }
    return DPT_OK;
}

static dpt_status make_spec(dpt_model *m) {
    int len = 0;
    for (int i = 0; i < m->nlayers; i++)
        len += m->layers[i].ops->describe(&m->layers[i], NULL, 0) + 1;
    m->spec = malloc((size_t)len + 1);
    if (!m->spec)
        return dpt_errorf(DPT_ENOMEM, "model: cannot allocate the spec");
    int used = 0;
    for (int i = 0; i < m->nlayers; i++) {
        used += m->layers[i].ops->describe(&m->layers[i], m->spec + used, (size_t)(len + 1 - used));
        if (i + 1 < m->nlayers)
            m->spec[used++] = ' ';
    }
    m->spec[used] = '\0';
    return DPT_OK;
}

/* The preset's spec when `spec` is a single word naming one, else NULL. */
static const char *resolve_preset(const char *spec) {
    const char *blank = " \t\r\n";
    const size_t b = strspn(spec, blank), len = strcspn(spec + b, blank);
    char name[64];
    if (len >= sizeof name || spec[b + len + strspn(spec + b + len, blank)] != '\0')
        return NULL;
    memcpy(name, spec + b, len);
    name[len] = '\0';
    return dpt_model_preset(name);
}

dpt_status dpt_model_spec_classes(const char *spec, int64_t *classes) {
    DPT_ASSERT(spec && classes);
    *classes = 0;
    const char *preset = resolve_preset(spec);
    dpt__layer *layers = NULL;
    int n = 0;
    dpt_status st = dpt__spec_parse(preset ? preset : spec, &layers, &n);
    if (st != DPT_OK)
        return st;
    const dpt__layer *last = &layers[n - 1];
    if (last->ops == &dpt__dense_ops && !last->u.dense.out_is_classes)
        *classes = last->u.dense.out;
    free(layers);
    return DPT_OK;
}

dpt_status dpt_model_create(dpt_model **out, const char *spec, dpt_shape input,
                            const dpt_model_cfg *cfg) {
    DPT_ASSERT(out && spec && cfg);
    *out = NULL;
    dpt_status st = check_input(input, cfg);
    if (st != DPT_OK)
        return st;
    const char *preset = resolve_preset(spec);

    dpt_model *m = calloc(1, sizeof *m);
    if (!m)
        return dpt_errorf(DPT_ENOMEM, "model: cannot allocate");
    m->cfg = *cfg;
    m->input = input;
    m->threads = cfg->threads > 1 ? cfg->threads : 1;
    dpt_gemm_init();
    m->conv = cfg->conv ? cfg->conv : dpt_conv_default();
    if ((st = dpt__spec_parse(preset ? preset : spec, &m->layers, &m->nlayers)) != DPT_OK)
        goto fail;
    m->io = calloc((size_t)m->nlayers, sizeof *m->io);
    m->block_start = calloc((size_t)m->nlayers, sizeof *m->block_start);
    if (!m->io || !m->block_start) {
        st = dpt_errorf(DPT_ENOMEM, "model: cannot allocate");
        goto fail;
    }
    if ((st = infer_all(m)) != DPT_OK || (st = make_segments(m)) != DPT_OK ||
        (st = make_spec(m)) != DPT_OK)
        goto fail;

    arena a = {0};
    carve(m, &a);
    if (a.overflow) {
        st = dpt_errorf(DPT_ENOMEM, "model: activations for batch %lld overflow the address space",
                        (long long)cfg->max_batch);
        goto fail;
    }
    if (!(m->arena = dpt_alloc_aligned(a.used))) {
        st = dpt_errorf(DPT_ENOMEM, "model: cannot allocate %zu bytes for batch %lld", a.used,
                        (long long)cfg->max_batch);
        goto fail;
    }
    a = (arena){.base = m->arena};
    carve(m, &a);
    bind_views(m);
    if (m->threads > 1 && (st = dpt_pool_create(&m->pool, m->threads)) != DPT_OK)
        goto fail;
    dpt_model_init(m, cfg->seed, cfg->member);
    *out = m;
    return DPT_OK;
fail:
    dpt_model_destroy(m);
    return st;
}

void dpt_model_destroy(dpt_model *m) {
    if (!m)
        return;
    dpt_pool_destroy(m->pool);
    dpt_free_aligned(m->arena);
    free(m->layers);
    free(m->io);
    free(m->block_start);
    free(m->psegs);
    free(m->bsegs);
    free(m->spec);
    free(m);
}

void dpt_model_init(dpt_model *m, uint32_t seed, uint32_t member) {
    const dpt_rng_key key = dpt_rng_key_make(seed, DPT_RNG_INIT, member);
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].ops->init)
            m->layers[i].ops->init(&m->layers[i], key);
}

/* ---- passes ------------------------------------------------------------------------------------
 */

static dpt__run run_of(const dpt_model *m, const dpt_model_rng *rng) {
    return (dpt__run){.n = m->n,
                      .training = m->training,
                      .conv = m->conv,
                      .work = m->work,
                      .work_floats = m->work_floats,
                      .prepared = m->prepared,
                      .prepared_floats = m->prepared_floats,
                      .pool = m->pool,
                      .rng = rng,
                      .bn_ghost = m->cfg.bn_ghost,
                      .reduce = m->reduce,
                      .reduce_ctx = m->reduce_ctx};
}

dpt_status dpt_model_forward(dpt_model *m, const float *x, int64_t n, int training,
                             const dpt_model_rng *rng) {
    DPT_ASSERT(x && n >= 1 && n <= m->cfg.max_batch);
    m->n = n;
    m->training = training != 0;
    m->input_grad = NULL;
    m->backward_ready = 0;
    const dpt__run r = run_of(m, rng);
    const float *in = x;
    for (int i = 0; i < m->nlayers; i++) {
        dpt__layer *l = &m->layers[i];
        m->io[i].x = in;
        if (l->is_view) {
            m->io[i].out = in;
            continue;
        }
        dpt_status st = l->ops->forward(l, &r, m->io[i].y, in);
        if (st != DPT_OK)
            return st;
        in = m->io[i].out = m->io[i].y;
    }
    m->backward_ready = 1;
    return DPT_OK;
}

dpt_status dpt_model_backward(dpt_model *m, const float *dlogits) {
    DPT_ASSERT(dlogits && m->n >= 1);
    if (!m->backward_ready)
        return dpt_errorf(DPT_EINVAL, "model: backward without a forward since the last one "
                                      "(backward writes gradients over the outputs above each layer)");
    m->backward_ready = 0;
    const dpt__run r = run_of(m, NULL);
    const float *dy = dlogits;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        dpt__layer *l = &m->layers[i];
        if (!l->is_view) {
            float *dx = m->io[i].dx;
            dpt_status st = l->ops->backward(l, &r, dx, dy, m->io[i].x, m->io[i].out);
            if (st != DPT_OK)
                return st;
            dy = dx;
        }
        if (m->hook)
            m->hook(m->hook_ctx, i);
    }
    m->input_grad = m->cfg.input_grad ? dy : NULL;
    return DPT_OK;
}

void dpt_model_zero_grad(dpt_model *m) {
    memset(m->grads, 0, (size_t)m->nparams * sizeof *m->grads);
}

void dpt_model_set_backward_hook(dpt_model *m, dpt_backward_hook fn, void *ctx) {
    m->hook = fn;
    m->hook_ctx = ctx;
}

void dpt_model_set_bn_reducer(dpt_model *m, dpt_bn_reduce_fn fn, void *ctx) {
    m->reduce = fn;
    m->reduce_ctx = ctx;
}

/* ---- accessors ---------------------------------------------------------------------------------
 */

const float *dpt_model_logits(const dpt_model *m) {
    return m->io[m->nlayers - 1].out;
}
float *dpt_model_dlogits_buffer(dpt_model *m) {
    return m->dlogits;
}
const float *dpt_model_input_grad(const dpt_model *m) {
    return m->input_grad;
}
dpt_shape dpt_model_input_shape(const dpt_model *m) {
    return m->input;
}
dpt_shape dpt_model_output_shape(const dpt_model *m) {
    return m->layers[m->nlayers - 1].out;
}
int64_t dpt_model_max_batch(const dpt_model *m) {
    return m->cfg.max_batch;
}
int64_t dpt_model_batch(const dpt_model *m) {
    return m->n;
}
int dpt_model_training(const dpt_model *m) {
    return m->training;
}
const char *dpt_model_spec(const dpt_model *m) {
    return m->spec;
}

double dpt_model_flops(const dpt_model *m) {
    double f = 0.0;
    for (int i = 0; i < m->nlayers; i++)
        f += m->layers[i].flops;
    return f;
}

float *dpt_model_params(dpt_model *m, int64_t *count) {
    *count = m->nparams;
    return m->params;
}

float *dpt_model_grads(dpt_model *m, int64_t *count) {
    *count = m->nparams;
    return m->grads;
}

float *dpt_model_buffers(dpt_model *m, int64_t *count) {
    *count = m->nbuffers;
    return m->buffers;
}

const dpt_model_segment *dpt_model_param_segments(const dpt_model *m, int *n) {
    *n = m->npsegs;
    return m->psegs;
}

const dpt_model_segment *dpt_model_buffer_segments(const dpt_model *m, int *n) {
    *n = m->nbsegs;
    return m->bsegs;
}

int dpt_model_num_layers(const dpt_model *m) {
    return m->nlayers;
}

const char *dpt_model_layer_name(const dpt_model *m, int layer) {
    DPT_ASSERT(layer >= 0 && layer < m->nlayers);
    return m->layers[layer].name;
}

const float *dpt_model_layer_output(const dpt_model *m, int layer, dpt_shape *shape) {
    DPT_ASSERT(layer >= 0 && layer < m->nlayers);
    if (shape)
        *shape = m->layers[layer].out;
    return m->io[layer].out;
}

int dpt_model_summary(const dpt_model *m, char *buf, size_t n) {
    int used = 0;
    char shape[64], token[DPT__TOKEN_LEN];
    dpt_shape_format(&m->input, shape, sizeof shape);
    dpt__fmt(buf, n, &used, "%-16s %-34s %-18s %12s %10s\n", "layer", "spec", "output", "params",
             "MFLOPs");
    dpt__fmt(buf, n, &used, "%-16s %-34s %-18s %12s %10s\n", "input", "", shape, "", "");
    int64_t total = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const dpt__layer *l = &m->layers[i];
        int64_t params = 0;
        for (int j = 0; j < l->nparams; j++)
            params += dpt_shape_count(&l->param[j].shape);
        total += params;
        l->ops->describe(l, token, sizeof token);
        dpt_shape_format(&l->out, shape, sizeof shape);
        dpt__fmt(buf, n, &used, "%-16s %-34s %-18s %12lld %10.3f\n", l->name, token, shape,
                 (long long)params, l->flops * 1e-6);
    }
    dpt__fmt(buf, n, &used, "%-16s %-34s %-18s %12lld %10.3f\n", "total", "", "", (long long)total,
             dpt_model_flops(m) * 1e-6);
    dpt__fmt(buf, n, &used,
             "%lld parameters (%.2f MiB), %lld buffer values; MFLOPs are per "
             "sample, forward\n",
             (long long)total, (double)total * 4.0 / (1024.0 * 1024.0), (long long)m->nbuffers);
    const dpt_model_memory *mem = &m->memory;
    const double MiB = 1024.0 * 1024.0;
    dpt__fmt(buf, n, &used,
             "memory for %lld rows: %.1f MiB = layer outputs %.1f + backward gradients %.1f + "
             "layer state %.1f + workspace %.1f + prepared weights %.1f + parameters, gradients "
             "and buffers %.1f\n",
             (long long)mem->rows,
             (double)(mem->outputs + mem->gradients + mem->state + mem->workspace +
                      mem->prepared + mem->parameters) / MiB,
             (double)mem->outputs / MiB, (double)mem->gradients / MiB, (double)mem->state / MiB,
             (double)mem->workspace / MiB, (double)mem->prepared / MiB,
             (double)mem->parameters / MiB);
    return used;
}

void dpt_model_memory_of(const dpt_model *m, dpt_model_memory *out) {
    *out = m->memory;
}

dpt_pool *dpt_model_pool(dpt_model *m) {
    return m->pool;
}
