/* In-memory datasets (data): splits stored as their files hold them, the gather that turns them
 * into normalized floats (through a per-channel lookup table for bytes), per-channel statistics,
 * the block that holds both splits (and can be shared), and the `--data` resolver that picks the
 * IDX or HDF5 reader. Knows no models and no MPI; the file formats live in idx.c and
 * hdf5_dataset.c. */
#include "dpt/data.h"
#include "dpt/stream.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers shared by the readers (see the end of dpt/data.h) ---- */

const char *dpt__data_short(char *buf, size_t size, const char *path) {
    size_t n = strlen(path);
    if (n < size) {
        memcpy(buf, path, n + 1);
        return buf;
    }
    /* Keep more of the end than of the start: the file name says most. */
    size_t room = size - 1 - 3, tail = room * 2 / 3, head = room - tail;
    snprintf(buf, size, "%.*s...%s", (int)head, path, path + n - tail);
    return buf;
}

dpt_status dpt__data_check_file(const char *path) {
    char name[80];
    struct stat sb;
    dpt__data_short(name, sizeof name, path);
    if (stat(path, &sb) != 0) {
        int e = errno;
        struct stat lb;
        if (e == ELOOP)
            return dpt_errorf(DPT_EIO, "%s: symbolic link loop", name);
        if (e == ENOENT && lstat(path, &lb) == 0 && S_ISLNK(lb.st_mode))
            return dpt_errorf(DPT_EIO, "%s: dangling symbolic link", name);
        if (e == ENOENT)
            return dpt_errorf(DPT_EIO, "%s: not found", name);
        return dpt_errorf(DPT_EIO, "%s: cannot open: %s", name, strerror(e));
    }
    if (S_ISREG(sb.st_mode))
        return DPT_OK;
    const char *kind = S_ISDIR(sb.st_mode)    ? NULL
                       : S_ISFIFO(sb.st_mode) ? "a FIFO"
                       : S_ISCHR(sb.st_mode)  ? "a character device"
                       : S_ISBLK(sb.st_mode)  ? "a block device"
                       : S_ISSOCK(sb.st_mode) ? "a socket"
                                              : "something else";
    if (!kind)
        return dpt_errorf(DPT_EIO, "%s: is a directory, not a file", name);
    return dpt_errorf(DPT_EIO, "%s: is %s, not a regular file", name, kind);
}

uint64_t dpt__data_mem_available(void) {
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[128];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (uint64_t)kb * 1024;
                break;
            }
        fclose(f);
    }
    if (avail == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    }
    static const int limits[] = {RLIMIT_AS, RLIMIT_DATA};
    for (int i = 0; i < 2; i++) {
        struct rlimit rl;
        if (getrlimit(limits[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (uint64_t)rl.rlim_cur < avail)
            avail = (uint64_t)rl.rlim_cur;
    }
    return avail;
}

static void format_bytes(char *buf, size_t size, uint64_t b) {
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 6)
        v /= 1024, u++;
    if (u == 0)
        snprintf(buf, size, "%llu bytes", (unsigned long long)b);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

dpt_status dpt__data_check_memory(const char *name, const char *what, uint64_t bytes,
                                  uint64_t avail) {
    if (bytes != UINT64_MAX && bytes <= avail)
        return DPT_OK;
    char need[32], have[32];
    format_bytes(have, sizeof have, avail);
    if (bytes == UINT64_MAX)
        return dpt_errorf(DPT_ENOMEM, "%s: %s declares more than 2^64 bytes", name, what);
    format_bytes(need, sizeof need, bytes);
    return dpt_errorf(DPT_ENOMEM, "%s: %s needs %s in memory, more than the %s available", name,
                      what, need, have);
}

uint64_t dpt__data_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* ---- one split: geometry, normalization state, the gather ---- */

static size_t round_up(size_t n) {
    return n > SIZE_MAX - DPT_ALIGN ? SIZE_MAX : (n + DPT_ALIGN - 1) / DPT_ALIGN * DPT_ALIGN;
}

static dpt_status check_geometry(int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int sdims,
                                 int64_t K, int type) {
    if (N < 0 || C < 1 || D < 1 || H < 1 || W < 1 || K < 1 || sdims < 1 || sdims > 3 ||
        (sdims < 3 && D != 1) || (sdims < 2 && H != 1) ||
        (type != DPT_SAMPLES_F32 && type != DPT_SAMPLES_U8))
        return dpt_errorf(DPT_EINVAL,
                          "dataset: bad geometry N=%lld C=%lld D=%lld H=%lld W=%lld sdims=%d "
                          "K=%lld type=%d",
                          (long long)N, (long long)C, (long long)D, (long long)H, (long long)W,
                          sdims, (long long)K, type);
    dpt_shape s = dpt_shape_make(5, (int64_t[]){N, C, D, H, W});
    int64_t numel = 0;
    dpt_status st = dpt_shape_numel(&s, &numel);
    if (st != DPT_OK)
        return st;
    if ((uint64_t)numel > SIZE_MAX / sizeof(float))
        return dpt_errorf(DPT_ENOMEM, "dataset: %lld values do not fit in memory",
                          (long long)numel);
    return DPT_OK;
}

/* Bytes of the stored samples (x) and labels (y) of a split, each before rounding. */
static size_t x_bytes(const dpt_dataset *ds) {
    if (ds->streamed) /* its samples stay in the file */
        return 0;
    return dpt_size_mul((size_t)ds->N, (size_t)dpt_dataset_sample_bytes(ds));
}
static size_t y_bytes(const dpt_dataset *ds) {
    return dpt_size_mul((size_t)ds->N, sizeof(int32_t));
}

/* The lookup table of channel c: the float the old pipeline held for byte b, (float)b / 255.0f at
 * load, then (float)(((double)v - mean) / std) when it normalized in place. */
static void build_lut(dpt_dataset *ds, int64_t c) {
    float *lut = ds->lut + 256 * c;
    for (int b = 0; b < 256; b++) {
        float v = (float)b / 255.0f;
        lut[b] = ds->normalized ? (float)(((double)v - ds->norm_mean[c]) / ds->norm_std[c]) : v;
    }
}

/* This dataset's own normalization state: mean 0, std 1, not normalized. */
static dpt_status norm_init(dpt_dataset *ds) {
    ds->norm_mean = dpt_alloc_aligned(dpt_size_mul((size_t)ds->C, sizeof(double)));
    ds->norm_std = dpt_alloc_aligned(dpt_size_mul((size_t)ds->C, sizeof(double)));
    if (ds->type == DPT_SAMPLES_U8)
        ds->lut = dpt_alloc_aligned(dpt_size_mul((size_t)ds->C, 256 * sizeof(float)));
    if (!ds->norm_mean || !ds->norm_std || (ds->type == DPT_SAMPLES_U8 && !ds->lut))
        return dpt_errorf(DPT_ENOMEM, "dataset: cannot allocate the normalization of %lld "
                                      "channels",
                          (long long)ds->C);
    ds->normalized = 0;
    for (int64_t c = 0; c < ds->C; c++) {
        ds->norm_mean[c] = 0.0;
        ds->norm_std[c] = 1.0;
        if (ds->lut)
            build_lut(ds, c);
    }
    return DPT_OK;
}

dpt_status dpt_dataset_init(dpt_dataset *ds, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W,
                            int sdims, int64_t K, dpt_sample_type type) {
    memset(ds, 0, sizeof *ds);
    dpt_status st = check_geometry(N, C, D, H, W, sdims, K, (int)type);
    if (st != DPT_OK)
        return st;
    ds->N = N, ds->C = C, ds->D = D, ds->H = H, ds->W = W, ds->sdims = sdims, ds->K = K;
    ds->type = type;
    size_t xb = round_up(x_bytes(ds)), yb = y_bytes(ds);
    ds->own = xb > SIZE_MAX - yb ? NULL : dpt_alloc_aligned(xb + yb);
    if (!ds->own) {
        dpt_dataset_free(ds);
        return dpt_errorf(DPT_ENOMEM, "dataset: cannot allocate %lld samples of %lld values",
                          (long long)N, (long long)(C * D * H * W));
    }
    if (type == DPT_SAMPLES_U8)
        ds->x_u8 = ds->own;
    else
        ds->x_f32 = ds->own;
    ds->y = (int32_t *)((char *)ds->own + xb);
    if ((st = norm_init(ds)) != DPT_OK)
        dpt_dataset_free(ds);
    return st;
}

void dpt_dataset_free(dpt_dataset *ds) {
    if (!ds)
        return;
    dpt_free_aligned(ds->own);
    dpt_free_aligned(ds->norm_mean);
    dpt_free_aligned(ds->norm_std);
    dpt_free_aligned(ds->lut);
    memset(ds, 0, sizeof *ds);
}

int64_t dpt_dataset_sample_numel(const dpt_dataset *ds) {
    return ds->C * ds->D * ds->H * ds->W;
}

int64_t dpt_dataset_sample_bytes(const dpt_dataset *ds) {
    return dpt_dataset_sample_numel(ds) * (ds->type == DPT_SAMPLES_U8 ? 1 : (int64_t)sizeof(float));
}

dpt_shape dpt_dataset_batch_shape(const dpt_dataset *ds, int64_t n) {
    switch (ds->sdims) {
    case 1:
        return dpt_shape_make(3, (int64_t[]){n, ds->C, ds->W});
    case 2:
        return dpt_shape_make(4, (int64_t[]){n, ds->C, ds->H, ds->W});
    default:
        return dpt_shape_make(5, (int64_t[]){n, ds->C, ds->D, ds->H, ds->W});
    }
}

/* Where sample k sits in x: k itself, or its slot among the resident samples of a streamed
 * view (a binary search: the list is ascending). */
static int64_t sample_slot(const dpt_dataset *ds, int64_t k) {
    DPT_ASSERT(k >= 0 && k < ds->N);
    if (!ds->resident) {
        DPT_ASSERT(!ds->streamed); /* a streamed split is read through a stream's view */
        return k;
    }
    int64_t lo = 0, hi = ds->n_resident;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ds->resident[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    DPT_ASSERT(lo < ds->n_resident && ds->resident[lo] == k);
    return lo;
}

/* Channel c of sample k, as gathered, into out (plane values). */
static void gather_plane(const dpt_dataset *ds, float *out, int64_t k, int64_t c, int64_t plane) {
    const int64_t at = (sample_slot(ds, k) * ds->C + c) * plane;
    if (ds->type == DPT_SAMPLES_U8) {
        const float *lut = ds->lut + 256 * c;
        const uint8_t *p = ds->x_u8 + at;
        for (int64_t j = 0; j < plane; j++)
            out[j] = lut[p[j]];
        return;
    }
    const float *p = ds->x_f32 + at;
    if (!ds->normalized) {
        memcpy(out, p, (size_t)plane * sizeof(float));
        return;
    }
    const double m = ds->norm_mean[c], sd = ds->norm_std[c];
    for (int64_t j = 0; j < plane; j++)
        out[j] = (float)(((double)p[j] - m) / sd);
}

void dpt_dataset_gather(const dpt_dataset *ds, float *out, const int64_t *idx, int64_t first,
                        int64_t n) {
    const int64_t plane = ds->D * ds->H * ds->W, per = ds->C * plane;
    for (int64_t i = 0; i < n; i++) {
        const int64_t k = idx ? idx[first + i] : first + i;
        DPT_ASSERT(k >= 0 && k < ds->N);
        for (int64_t c = 0; c < ds->C; c++)
            gather_plane(ds, out + i * per + c * plane, k, c, plane);
    }
}

void dpt_dataset_channel_sums(const dpt_dataset *ds, const int64_t *idx, int64_t n,
                              const double *mean, double *acc, float *scratch) {
    const int64_t plane = ds->D * ds->H * ds->W;
    /* Each channel's sum sees its values in (sample, position) order whatever the loop nesting
     * or the parts the samples come in, so streamed statistics are the in-memory bits. */
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        for (int64_t c = 0; c < ds->C; c++) {
            gather_plane(ds, scratch, k, c, plane);
            double s = acc[c];
            if (!mean) {
                for (int64_t j = 0; j < plane; j++)
                    s += scratch[j];
            } else {
                const double m = mean[c];
                for (int64_t j = 0; j < plane; j++)
                    s += ((double)scratch[j] - m) * ((double)scratch[j] - m);
            }
            acc[c] = s;
        }
    }
}

dpt_status dpt_dataset_channel_stats_by(const dpt_dataset *ds, int64_t n, dpt_channel_pass_fn pass,
                                        void *ctx, double *mean, double *std) {
    if (n < 1)
        return dpt_errorf(DPT_EINVAL, "normalization: no training samples to compute it from");
    const int64_t plane = ds->D * ds->H * ds->W;
    float *v = dpt_alloc_aligned(dpt_size_mul((size_t)plane, sizeof(float)));
    if (!v)
        return dpt_errorf(DPT_ENOMEM, "normalization: cannot allocate one sample plane");
    /* The same additions in the same order as over a float copy of the data: the statistics
     * are the same bits as before the samples stayed in their file type. */
    const double count = (double)n * (double)plane;
    for (int64_t c = 0; c < ds->C; c++)
        mean[c] = std[c] = 0.0;
    dpt_status st = pass(ctx, NULL, mean, v);
    for (int64_t c = 0; c < ds->C; c++)
        mean[c] /= count;
    if (st == DPT_OK)
        st = pass(ctx, mean, std, v); /* about the mean: no cancellation */
    for (int64_t c = 0; c < ds->C; c++)
        std[c] = sqrt(std[c] / count);
    dpt_free_aligned(v);
    return st;
}

typedef struct {
    const dpt_dataset *ds;
    const int64_t *idx;
    int64_t n;
} resident_samples;

static dpt_status resident_pass(void *ctx, const double *mean, double *acc, float *scratch) {
    const resident_samples *r = ctx;
    dpt_dataset_channel_sums(r->ds, r->idx, r->n, mean, acc, scratch);
    return DPT_OK;
}

dpt_status dpt_dataset_channel_stats(const dpt_dataset *ds, const int64_t *idx, int64_t n,
                                     double *mean, double *std) {
    resident_samples r = {ds, idx, idx ? n : ds->N};
    return dpt_dataset_channel_stats_by(ds, r.n, resident_pass, &r, mean, std);
}

dpt_status dpt_dataset_normalize(dpt_dataset *ds, const double *mean, const double *std) {
    if (ds->normalized)
        return dpt_errorf(DPT_EINVAL, "normalization: dataset is already normalized");
    for (int64_t c = 0; c < ds->C; c++) {
        if (!isfinite(mean[c]) || !isfinite(std[c]) || std[c] < 0)
            return dpt_errorf(DPT_ENONFINITE, "normalization: channel %lld has mean %g std %g",
                              (long long)c, mean[c], std[c]);
    }
    ds->normalized = 1;
    for (int64_t c = 0; c < ds->C; c++) {
        ds->norm_mean[c] = mean[c];
        ds->norm_std[c] = std[c] > 0 ? std[c] : 1.0;
        if (ds->lut)
            build_lut(ds, c);
    }
    return DPT_OK;
}

/* ---- the block: both splits' samples and labels with their description ---- */

/* The description at the start of a block, so that a process that did not read the files (a
 * rank mapping a node's copy) knows what the bytes after it are. */
#define BLOCK_MAGIC "dptblk01"
typedef struct {
    int64_t N, C, D, H, W, K, sdims, type;
    int64_t streamed; /* the samples stayed in the file (x_offset is meaningless) */
    uint64_t x_offset, y_offset; /* bytes from the block's start */
} block_split;
typedef struct {
    char magic[8];
    uint64_t bytes;
    int64_t classes_declared;
    block_split split[2]; /* train, test */
    char source[512];
} block_header;

dpt_status dpt__data_alloc_block(dpt_data *d, const dpt_data_opts *o) {
    dpt_dataset *sp[2] = {&d->train, &d->test};
    size_t at = round_up(sizeof(block_header)), xo[2], yo[2];
    for (int i = 0; i < 2; i++) {
        dpt_status st = check_geometry(sp[i]->N, sp[i]->C, sp[i]->D, sp[i]->H, sp[i]->W,
                                       sp[i]->sdims, 1, (int)sp[i]->type);
        if (st != DPT_OK)
            return st;
        size_t xb = round_up(x_bytes(sp[i])), yb = round_up(y_bytes(sp[i]));
        xo[i] = at;
        at = at > SIZE_MAX - xb ? SIZE_MAX : at + xb;
        yo[i] = at;
        at = at > SIZE_MAX - yb ? SIZE_MAX : at + yb;
        if (at == SIZE_MAX)
            return dpt_errorf(DPT_ENOMEM, "%s: the data do not fit in memory", d->source);
    }
    void *block = NULL;
    if (o && o->alloc) {
        dpt_status st = o->alloc(o->alloc_ctx, at, &block);
        if (st != DPT_OK)
            return st;
        DPT_ASSERT(block && (uintptr_t)block % DPT_ALIGN == 0);
    } else if (!(block = dpt_alloc_aligned(at))) {
        return dpt_errorf(DPT_ENOMEM, "%s: cannot allocate %zu bytes for the data", d->source, at);
    } else {
        d->owns_block = 1;
    }
    d->block = block;
    d->block_bytes = at;
    for (int i = 0; i < 2; i++) {
        char *x = sp[i]->streamed ? NULL : (char *)block + xo[i];
        sp[i]->x_u8 = sp[i]->type == DPT_SAMPLES_U8 ? (uint8_t *)x : NULL;
        sp[i]->x_f32 = sp[i]->type == DPT_SAMPLES_F32 ? (float *)x : NULL;
        sp[i]->y = (int32_t *)((char *)block + yo[i]);
    }
    return DPT_OK;
}

dpt_status dpt__data_seal(dpt_data *d) {
    block_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, BLOCK_MAGIC, sizeof h.magic);
    h.bytes = d->block_bytes;
    h.classes_declared = d->classes_declared;
    snprintf(h.source, sizeof h.source, "%s", d->source);
    const dpt_dataset *sp[2] = {&d->train, &d->test};
    for (int i = 0; i < 2; i++) {
        const char *x = sp[i]->x_u8 ? (const char *)sp[i]->x_u8 : (const char *)sp[i]->x_f32;
        h.split[i] = (block_split){.N = sp[i]->N, .C = sp[i]->C, .D = sp[i]->D, .H = sp[i]->H,
                                   .W = sp[i]->W, .K = sp[i]->K, .sdims = sp[i]->sdims,
                                   .type = sp[i]->type, .streamed = sp[i]->streamed,
                                   .x_offset = x ? (uint64_t)(x - (const char *)d->block) : 0,
                                   .y_offset = (uint64_t)((const char *)sp[i]->y -
                                                          (const char *)d->block)};
    }
    memcpy(d->block, &h, sizeof h);
    dpt_status st = norm_init(&d->train);
    if (st == DPT_OK)
        st = norm_init(&d->test);
    return st;
}

dpt_status dpt_data_attach(dpt_data *d, void *block, size_t bytes) {
    memset(d, 0, sizeof *d);
    block_header h;
    if (!block || bytes < sizeof h)
        return dpt_errorf(DPT_EFORMAT, "shared data: a block of %zu bytes has no header", bytes);
    memcpy(&h, block, sizeof h);
    if (memcmp(h.magic, BLOCK_MAGIC, sizeof h.magic) != 0 || h.bytes != bytes)
        return dpt_errorf(DPT_EFORMAT, "shared data: not a data block of %zu bytes", bytes);
    h.source[sizeof h.source - 1] = '\0';
    snprintf(d->source, sizeof d->source, "%s", h.source);
    d->classes_declared = (int)h.classes_declared;
    d->block = block;
    d->block_bytes = bytes;
    dpt_dataset *sp[2] = {&d->train, &d->test};
    dpt_status st = DPT_OK;
    for (int i = 0; i < 2 && st == DPT_OK; i++) {
        const block_split *b = &h.split[i];
        st = check_geometry(b->N, b->C, b->D, b->H, b->W, (int)b->sdims, b->K, (int)b->type);
        dpt_dataset *ds = sp[i];
        if (st == DPT_OK) {
            ds->N = b->N, ds->C = b->C, ds->D = b->D, ds->H = b->H, ds->W = b->W, ds->K = b->K;
            ds->sdims = (int)b->sdims, ds->type = (dpt_sample_type)b->type;
            ds->streamed = b->streamed != 0;
            if (b->x_offset > bytes || x_bytes(ds) > bytes - b->x_offset ||
                b->y_offset > bytes || y_bytes(ds) > bytes - b->y_offset ||
                b->x_offset % DPT_ALIGN != 0 || b->y_offset % sizeof(int32_t) != 0)
                st = dpt_errorf(DPT_EFORMAT, "shared data: split %d lies outside the block", i);
        }
        if (st == DPT_OK) {
            char *x = ds->streamed ? NULL : (char *)block + b->x_offset;
            ds->x_u8 = ds->type == DPT_SAMPLES_U8 ? (uint8_t *)x : NULL;
            ds->x_f32 = ds->type == DPT_SAMPLES_F32 ? (float *)x : NULL;
            ds->y = (int32_t *)((char *)block + b->y_offset);
            st = norm_init(ds);
        }
    }
    if (st != DPT_OK)
        dpt_data_free(d);
    return st;
}

/* ---- data bundle and the --data resolver ---- */

void dpt_data_free(dpt_data *d) {
    if (!d)
        return;
    dpt_stream_close(d->stream);
    dpt_dataset_free(&d->train);
    dpt_dataset_free(&d->test);
    if (d->owns_block)
        dpt_free_aligned(d->block);
    void (*release)(void *) = d->release;
    void *ctx = d->release_ctx;
    memset(d, 0, sizeof *d);
    if (release)
        release(ctx);
}

dpt_status dpt_data_normalize(dpt_data *d, const int64_t *idx, int64_t n) {
    DPT_ASSERT(!d->train.streamed); /* its statistics come from dpt_stream_channel_stats */
    if (!d->train.x_u8 && !d->train.x_f32)
        return dpt_errorf(DPT_EINVAL, "normalization: no training set loaded");
    double *mean = dpt_alloc_aligned(dpt_size_mul(2 * (size_t)d->train.C, sizeof(double)));
    if (!mean)
        return DPT_ENOMEM;
    double *std = mean + d->train.C;
    dpt_status st = dpt_dataset_channel_stats(&d->train, idx, n, mean, std);
    if (st == DPT_OK)
        st = dpt_dataset_normalize(&d->train, mean, std);
    if (st == DPT_OK && (d->test.x_u8 || d->test.x_f32))
        st = dpt_dataset_normalize(&d->test, mean, std);
    dpt_free_aligned(mean);
    return st;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A path that names something (even a directory, a FIFO or a broken link): the reader then
 * says what is wrong with it instead of "not found". */
static int exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Finds DIR/PREFIX-KIND-ubyte[.gz] for the first prefix that exists. */
static int find_idx(char *out, size_t size, const char *dir, const char *const *prefixes,
                    const char *kind) {
    for (int i = 0; prefixes[i]; i++) {
        static const char *const suffixes[] = {".gz", ""};
        for (int j = 0; j < 2; j++) {
            snprintf(out, size, "%s/%s-%s-ubyte%s", dir, prefixes[i], kind, suffixes[j]);
            if (exists(out))
                return 1;
        }
    }
    snprintf(out, size, "%s/%s-%s-ubyte[.gz]", dir, prefixes[0], kind);
    return 0;
}

/* Both splits of a directory of IDX files; K = 0 infers the class count. `what` names the
 * --data value in messages about missing files; `hint` is appended to them. */
static dpt_status load_idx_dir(dpt_data *d, const char *dir, int64_t K, const char *what,
                               const char *hint, const dpt_data_opts *o) {
    static const char *const train_prefixes[] = {"train", NULL};
    static const char *const test_prefixes[] = {"t10k", "test", NULL};
    char ti[600], tl[600], vi[600], vl[600];
    int ok = find_idx(ti, sizeof ti, dir, train_prefixes, "images-idx3");
    ok = ok && find_idx(tl, sizeof tl, dir, train_prefixes, "labels-idx1");
    ok = ok && find_idx(vi, sizeof vi, dir, test_prefixes, "images-idx3");
    ok = ok && find_idx(vl, sizeof vl, dir, test_prefixes, "labels-idx1");
    if (!ok) {
        const char *missing = !exists(ti) ? ti : !exists(tl) ? tl : !exists(vi) ? vi : vl;
        char name[80];
        return dpt_errorf(DPT_EIO, "%s: %s not found%s", what,
                          dpt__data_short(name, sizeof name, missing), hint);
    }
    snprintf(d->source, sizeof d->source, "%s", dir);
    const char *const paths[4] = {ti, tl, vi, vl};
    return dpt__idx_load_splits(d, paths, K, o);
}

static dpt_status load_sample(dpt_data *d, const char *search_path, int64_t K,
                              const dpt_data_opts *o) {
    if (!search_path || !search_path[0])
        return dpt_errorf(DPT_EINVAL, "--data sample: the bundled sample's location is unknown "
                                      "(no search path given)");
    const char *p = search_path;
    char dir[600];
    while (*p) {
        size_t len = strcspn(p, ":");
        static const char *const subdirs[] = {DPT_SAMPLE_SUBDIR, "fashion-mnist-sample"};
        for (int i = 0; i < 2 && len > 0; i++) {
            snprintf(dir, sizeof dir, "%.*s/%s", (int)len, p, subdirs[i]);
            if (is_dir(dir))
                return load_idx_dir(d, dir, K, "--data sample", "", o);
        }
        p += len;
        if (*p == ':')
            p++;
    }
    char name[80];
    return dpt_errorf(DPT_EIO, "--data sample: no %s under %s", DPT_SAMPLE_SUBDIR,
                      dpt__data_short(name, sizeof name, search_path));
}

dpt_status dpt_data_load(dpt_data *d, const char *spec, const dpt_data_opts *opts) {
    memset(d, 0, sizeof *d);
    dpt_data_opts o = opts ? *opts : (dpt_data_opts){0};
    int64_t K = o.classes, K10 = K > 0 ? K : 10;
    char name[80];
    struct stat sb;
    dpt_status st;
    if (K < 0 || K > DPT_MAX_CLASSES) {
        st = dpt_errorf(DPT_EINVAL, "--data: the class count %lld is outside [1, %d]", (long long)K,
                        DPT_MAX_CLASSES);
    } else if (!spec || !spec[0]) {
        st = dpt_errorf(DPT_EINVAL, "--data: empty value");
    } else if (o.stream_train && (stat(spec, &sb) != 0 || !S_ISREG(sb.st_mode))) {
        st = dpt_errorf(DPT_EINVAL, "--stream: --data %s is not an HDF5 file (streaming reads the "
                                    "training samples from an .h5 file)",
                        dpt__data_short(name, sizeof name, spec));
    } else if (strcmp(spec, "fashion-mnist") == 0) {
        const char *dir = o.fashion_mnist_dir ? o.fashion_mnist_dir : DPT_FASHION_MNIST_DIR;
        st = load_idx_dir(d, dir, K10, "--data fashion-mnist",
                          "; install the Debian package with `apt-get install "
                          "dataset-fashion-mnist` (datasets/fetch.sh), or try --data sample",
                          &o);
    } else if (strcmp(spec, "sample") == 0) {
        st = load_sample(d, o.search_path, K10, &o);
    } else if (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = load_idx_dir(d, spec, K, dpt__data_short(name, sizeof name, spec), "", &o);
    } else if (exists(spec)) {
        st = dpt__data_check_file(spec); /* names a FIFO, a link loop, a device */
        if (st == DPT_OK)
            st = dpt__hdf5_load(d, spec, K, &o);
    } else {
        st = dpt_errorf(DPT_EIO,
                        "--data %s: not found (expected fashion-mnist, sample, a directory of IDX "
                        "files or an HDF5 file)",
                        dpt__data_short(name, sizeof name, spec));
    }
    if (st == DPT_OK &&
        (K > 0 || strcmp(spec, "fashion-mnist") == 0 || strcmp(spec, "sample") == 0))
        d->classes_declared = 1;
    if (st == DPT_OK)
        st = dpt__data_seal(d);
    if (st != DPT_OK)
        dpt_data_free(d);
    return st;
}
