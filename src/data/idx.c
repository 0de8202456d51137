/* IDX reader (data): images (N, H, W) of uint8 or big-endian float32, kept as uint8 or float32, and
 * labels (N) of uint8, from plain or gzip files (zlib detects which from the bytes). Validates
 * magic, rank, dimensions, body size, image/label counts and the label range before allocating;
 * every message names the file. Knows no models, no MPI, and nothing about where files live
 * (dataset.c resolves paths). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dpt/data.h"

#define IDX_IMAGES_U8 0x00000803u
#define IDX_IMAGES_F32 0x00000d03u
#define IDX_LABELS_U8 0x00000801u

typedef struct {
    gzFile f;
    const char *path; /* for stat */
    char name[80];    /* for messages: the path, shortened in the middle */
    uint32_t magic;
    int64_t dims[3];
    int ndim;
} idx_file;

static dpt_status open_idx(idx_file *h, const char *path) {
    memset(h, 0, sizeof *h);
    h->path = path;
    dpt__data_short(h->name, sizeof h->name, path);
    /* Before opening: open() on a FIFO would block, and on a directory it succeeds. */
    dpt_status st = dpt__data_check_file(path);
    if (st != DPT_OK)
        return st;
    errno = 0;
    h->f = gzopen(path, "rb");
    if (!h->f)
        return dpt_errorf(DPT_EIO, "%s: cannot open: %s", h->name,
                          errno ? strerror(errno) : "out of memory");
    return DPT_OK;
}

static void close_idx(idx_file *h) {
    if (h->f)
        gzclose(h->f);
    h->f = NULL;
}

/* Reads exactly n bytes; a short read is a truncated file, a zlib error a corrupt stream. */
static dpt_status read_exact(idx_file *h, void *buf, uint64_t n, const char *what) {
    unsigned char *p = buf;
    uint64_t done = 0;
    while (done < n) {
        uint64_t chunk = n - done < (1u << 30) ? n - done : (1u << 30);
        int got = gzread(h->f, p + done, (unsigned)chunk);
        if (got < 0) {
            int zerr = 0;
            const char *msg = gzerror(h->f, &zerr);
            return dpt_errorf(DPT_EFORMAT, "%s: corrupt gzip stream while reading the %s: %s",
                              h->name, what, msg);
        }
        if (got == 0)
            return dpt_errorf(DPT_EFORMAT,
                              "%s: truncated: the %s needs %llu bytes, the file ends after %llu",
                              h->name, what, (unsigned long long)n, (unsigned long long)done);
        done += (uint64_t)got;
    }
    return DPT_OK;
}

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static const char *type_name(unsigned t) {
    switch (t) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "int16";
    case 0x0C:
        return "int32";
    case 0x0D:
        return "float32";
    case 0x0E:
        return "float64";
    default:
        return "unknown";
    }
}

/* Magic and dimensions. The magic is 0, 0, type, rank; `want` lists the accepted magics
 * (0-terminated, all of the same rank), `what` says what the file should hold. */
static dpt_status read_header(idx_file *h, const uint32_t *want, const char *what) {
    unsigned char b[12];
    dpt_status st = read_exact(h, b, 4, "header");
    if (st != DPT_OK)
        return st;
    h->magic = be32(b);
    int ok = 0;
    for (int i = 0; want[i]; i++)
        ok |= h->magic == want[i];
    unsigned type = b[2], rank = b[3], want_rank = want[0] & 0xff;
    if (!ok && (b[0] != 0 || b[1] != 0 || rank < 1 || rank > 4 || type < 0x08 || type > 0x0E))
        return dpt_errorf(DPT_EFORMAT, "%s: not an IDX file (magic 0x%08x; expected 0x%08x for %s)",
                          h->name, h->magic, want[0], what);
    if (!ok && rank != want_rank)
        return dpt_errorf(DPT_EFORMAT, "%s: IDX rank %u, expected %u for %s", h->name, rank,
                          want_rank, what);
    if (!ok)
        return dpt_errorf(DPT_EFORMAT,
                          "%s: IDX type 0x%02X (%s) is not supported; dptrain reads unsigned "
                          "byte (0x08)%s",
                          h->name, type, type_name(type), want[1] ? " or float32 (0x0D)" : "");
    h->ndim = (int)(h->magic & 0xff);
    if ((st = read_exact(h, b, 4 * (uint64_t)h->ndim, "header")) != DPT_OK)
        return st;
    for (int i = 0; i < h->ndim; i++) {
        h->dims[i] = be32(b + 4 * i);
        if (h->dims[i] == 0)
            return dpt_errorf(DPT_EFORMAT, "%s: dimension %d is 0", h->name, i);
        if (h->dims[i] > INT32_MAX)
            return dpt_errorf(DPT_EFORMAT, "%s: dimension %d is %lld (larger than 2^31 - 1)",
                              h->name, i, (long long)h->dims[i]);
    }
    return DPT_OK;
}

/* Before allocating: a header that declares more data than the file can hold is rejected here,
 * so a corrupt header cannot make us allocate (and zero) terabytes. A plain file must hold
 * exactly header + body; a gzip file cannot inflate to more than 1032 times its size (deflate's
 * largest ratio), members concatenated or not. */
static dpt_status check_declared_size(idx_file *h, uint64_t body) {
    struct stat sb;
    if (stat(h->path, &sb) != 0)
        return dpt_errorf(DPT_EIO, "%s: cannot stat: %s", h->name, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size, head = 4 + 4 * (uint64_t)h->ndim;
    if (body == UINT64_MAX)
        return dpt_errorf(DPT_EFORMAT, "%s: the header declares more than 2^64 body bytes",
                          h->name);
    if (gzdirect(h->f)) {
        if (size < head + body)
            return dpt_errorf(DPT_EFORMAT,
                              "%s: truncated: the header declares %llu body bytes, the file "
                              "holds %llu",
                              h->name, (unsigned long long)body, (unsigned long long)(size - head));
        return DPT_OK; /* longer files are reported after reading, as trailing bytes */
    }
    if (body / 1032 > size)
        return dpt_errorf(DPT_EFORMAT,
                          "%s: the header declares %llu body bytes, more than %llu compressed "
                          "bytes can hold",
                          h->name, (unsigned long long)body, (unsigned long long)size);
    return DPT_OK;
}

/* After the body: anything left over means the header does not describe the file. Reading to
 * the end also makes zlib check the gzip CRC. */
static dpt_status expect_end(idx_file *h) {
    unsigned char extra[64];
    int got = gzread(h->f, extra, sizeof extra);
    if (got < 0) {
        int zerr = 0;
        return dpt_errorf(DPT_EFORMAT, "%s: corrupt gzip stream: %s", h->name,
                          gzerror(h->f, &zerr));
    }
    if (got > 0)
        return dpt_errorf(DPT_EFORMAT,
                          "%s: trailing bytes after the %lld items its header declares", h->name,
                          (long long)h->dims[0]);
    return DPT_OK;
}

/* Images go straight into the split's memory: bytes as they are, float32 converted from
 * big-endian in place and checked to be finite. */
static dpt_status read_images(idx_file *h, dpt_dataset *ds) {
    uint64_t n = (uint64_t)ds->N * (uint64_t)ds->H * (uint64_t)ds->W;
    if (h->magic == IDX_IMAGES_U8)
        return read_exact(h, ds->x_u8, n, "image data");
    unsigned char *bytes = (unsigned char *)ds->x_f32;
    dpt_status st = read_exact(h, bytes, 4 * n, "image data");
    if (st != DPT_OK)
        return st;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u = be32(bytes + 4 * i);
        float v;
        memcpy(&v, &u, sizeof v);
        if (!isfinite(v))
            return dpt_errorf(DPT_ENONFINITE, "%s: image %llu has a non-finite value", h->name,
                              (unsigned long long)(i / ((uint64_t)ds->H * (uint64_t)ds->W)));
        ds->x_f32[i] = v;
    }
    return DPT_OK;
}

/* The uint8 labels are read into the last quarter of the int32 buffer and widened front to back,
 * which never overwrites a byte not yet read (int i ends at byte 4i + 3 < 3n + i + 1). */
static dpt_status read_labels(idx_file *h, dpt_dataset *ds, int64_t K) {
    unsigned char *src = (unsigned char *)ds->y + 3 * (uint64_t)ds->N;
    dpt_status st = read_exact(h, src, (uint64_t)ds->N, "label data");
    if (st != DPT_OK)
        return st;
    int64_t max = 0;
    for (int64_t i = 0; i < ds->N; i++) {
        int32_t v = src[i];
        if (K > 0 && v >= K)
            return dpt_errorf(DPT_ERANGE, "%s: label %d at sample %lld is outside [0, %lld)",
                              h->name, v, (long long)i, (long long)K);
        ds->y[i] = v;
        if (v > max)
            max = v;
    }
    ds->K = K > 0 ? K : max + 1;
    return DPT_OK;
}

/* One split's images and labels, headers read and checked, bodies not yet read. */
typedef struct {
    idx_file im, lb;
} idx_split;

static void split_close(idx_split *s) {
    close_idx(&s->im);
    close_idx(&s->lb);
}

/* Opens both files and checks everything the headers say before anything is allocated: magic,
 * dimensions, equal counts, the declared body sizes against the files, and the bytes the split
 * will take in memory (stored as the file holds it, plus int32 labels) against what is
 * available. */
static dpt_status split_open(idx_split *s, const char *images_path, const char *labels_path) {
    static const uint32_t image_magics[] = {IDX_IMAGES_U8, IDX_IMAGES_F32, 0};
    static const uint32_t label_magics[] = {IDX_LABELS_U8, 0};
    memset(s, 0, sizeof *s);
    dpt_status st = open_idx(&s->im, images_path);
    if (st == DPT_OK)
        st = open_idx(&s->lb, labels_path);
    if (st == DPT_OK)
        st = read_header(&s->im, image_magics, "images (N x H x W)");
    if (st == DPT_OK)
        st = read_header(&s->lb, label_magics, "labels (N)");
    if (st == DPT_OK && s->im.dims[0] != s->lb.dims[0])
        st = dpt_errorf(DPT_EFORMAT, "%s: %lld labels for %lld images in %s", s->lb.name,
                        (long long)s->lb.dims[0], (long long)s->im.dims[0], s->im.name);
    uint64_t image_bytes = 0;
    if (st == DPT_OK) {
        uint64_t pixels = dpt__data_mul(
            dpt__data_mul((uint64_t)s->im.dims[0], (uint64_t)s->im.dims[1]),
            (uint64_t)s->im.dims[2]);
        image_bytes = dpt__data_mul(pixels, s->im.magic == IDX_IMAGES_F32 ? 4 : 1);
        st = check_declared_size(&s->im, image_bytes);
    }
    if (st == DPT_OK)
        st = check_declared_size(&s->lb, (uint64_t)s->lb.dims[0]);
    if (st == DPT_OK) { /* samples as stored plus int32 labels */
        uint64_t labels = dpt__data_mul((uint64_t)s->im.dims[0], 4);
        st = dpt__data_check_memory(s->im.name, "the image set",
                                    image_bytes > UINT64_MAX - labels ? UINT64_MAX
                                                                      : image_bytes + labels,
                                    dpt__data_mem_available());
    }
    return st;
}

/* The split's geometry into ds (no memory yet). */
static void split_geometry(const idx_split *s, dpt_dataset *ds) {
    ds->N = s->im.dims[0], ds->C = 1, ds->D = 1, ds->H = s->im.dims[1], ds->W = s->im.dims[2];
    ds->sdims = 2;
    ds->K = 1;
    ds->type = s->im.magic == IDX_IMAGES_U8 ? DPT_SAMPLES_U8 : DPT_SAMPLES_F32;
}

/* The bodies into ds's memory; every byte is read, and nothing may follow the bodies. */
static dpt_status split_read(idx_split *s, dpt_dataset *ds, int64_t K) {
    dpt_status st = read_images(&s->im, ds);
    if (st == DPT_OK)
        st = expect_end(&s->im);
    if (st == DPT_OK)
        st = read_labels(&s->lb, ds, K);
    if (st == DPT_OK)
        st = expect_end(&s->lb);
    return st;
}

dpt_status dpt_idx_load(dpt_dataset *ds, const char *images_path, const char *labels_path,
                        int64_t K) {
    idx_split s;
    memset(ds, 0, sizeof *ds);
    dpt_status st = split_open(&s, images_path, labels_path);
    if (st == DPT_OK) {
        dpt_dataset g;
        split_geometry(&s, &g);
        st = dpt_dataset_init(ds, g.N, g.C, g.D, g.H, g.W, g.sdims, K > 0 ? K : 1, g.type);
        if (st != DPT_OK)
            st = dpt_errorf(st, "%s: %s", s.im.name, dpt_last_error());
    }
    if (st == DPT_OK)
        st = split_read(&s, ds, K);
    split_close(&s);
    if (st != DPT_OK)
        dpt_dataset_free(ds);
    return st;
}

dpt_status dpt__idx_load_splits(dpt_data *d, const char *const paths[4], int64_t K,
                                const dpt_data_opts *o) {
    idx_split train, test;
    memset(&test, 0, sizeof test);
    dpt_status st = split_open(&train, paths[0], paths[1]);
    if (st == DPT_OK)
        st = split_open(&test, paths[2], paths[3]);
    if (st == DPT_OK && (train.im.dims[1] != test.im.dims[1] || train.im.dims[2] != test.im.dims[2]))
        st = dpt_errorf(DPT_ESHAPE, "%s: test images are %lldx%lld, training images %lldx%lld",
                        test.im.name, (long long)test.im.dims[1], (long long)test.im.dims[2],
                        (long long)train.im.dims[1], (long long)train.im.dims[2]);
    if (st == DPT_OK) {
        split_geometry(&train, &d->train);
        split_geometry(&test, &d->test);
        st = dpt__data_alloc_block(d, o);
    }
    if (st == DPT_OK)
        st = split_read(&train, &d->train, K);
    if (st == DPT_OK)
        st = split_read(&test, &d->test, K);
    split_close(&train);
    split_close(&test);
    if (st == DPT_OK) {
        int64_t k = d->train.K > d->test.K ? d->train.K : d->test.K;
        d->train.K = d->test.K = k;
    }
    return st;
}
