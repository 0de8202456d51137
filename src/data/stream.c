/* Streamed training samples (data): one reader thread per stream reads the sorted, distinct rows
 * of a request from /train/x (pread at chunk addresses, or hyperslab runs and one H5Dread) into
 * one of two buffers while the caller computes on the other. Knows no MPI; the trainer decides
 * which rows a rank reads. HDF5 is not thread-safe here: only the reader calls it between open and
 * close, and only while a request is in flight (dpt_stream_drain lets the owner call HDF5 in
 * between). */
#include "dpt/stream.h"

#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpt/h5file.h"
#include "dpt/tensor.h"

/* Rows of a statistics block: about this many bytes, so the pass makes few large reads. */
#define STATS_BLOCK_BYTES (4 << 20)
/* A contiguous dataset has no chunks; this many bytes of rows stand in for one. */
#define CONTIGUOUS_UNIT_BYTES (1 << 20)

typedef struct {
    int64_t *rows; /* (cap) sorted distinct dataset indices of the request */
    int64_t n;
    void *x; /* (cap, sample) the samples, as the file's type (uint8) or float32 */
} stream_buffer;

struct dpt_stream {
    char name[80]; /* the path shortened for messages */
    hid_t file, dset, fspace, mspace_type;
    int fd; /* the same file, to notice a truncation: HDF5 reads zeros past the end */
    uint64_t needed_bytes; /* the end of the file's allocated space (EOA) */
    int is_u8;
    int rank; /* of /train/x */
    hsize_t dims[5];
    int64_t N, sample_bytes, chunk_rows, cap;
    /* Direct reads: when rows are stored as the memory wants them (unfiltered, whole rows per
     * chunk, the native type), row r is at chunk_addr[r / chunk_rows] + (r % chunk_rows) *
     * sample_bytes, and pread(2) fetches it without HDF5 (whose per-selection cost is ~80 us a
     * row in 1.10). NULL: every read goes through H5Dread and the chunk cache. */
    uint64_t *chunk_addr;
    stream_buffer buf[2];
    int fill; /* the buffer the next post fills (the other one is the view) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int posted, busy, quit; /* a request is waiting for take; the reader works on it */
    dpt_status st;          /* the request's outcome */
    char msg[512];          /* its message (the reader's dpt_errorf is thread-local) */
};

/* ---- the reader thread -------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Direct reads of b's rows (s->chunk_addr): one pread per run of consecutive rows inside a chunk.
 * A short read is the file ending early (truncated). */
static dpt_status pread_rows(dpt_stream *s, stream_buffer *b, char *msg, size_t msg_size) {
    const int64_t R = s->chunk_rows, sb = s->sample_bytes;
    for (int64_t i = 0; i < b->n;) {
        int64_t r = b->rows[i], j = i + 1;
        while (j < b->n && b->rows[j] == b->rows[j - 1] + 1 && b->rows[j] / R == r / R)
            j++;
        char *dst = (char *)b->x + i * sb;
        size_t want = (size_t)((j - i) * sb), got = 0;
        off_t at = (off_t)(s->chunk_addr[r / R] + (uint64_t)(r % R * sb));
        while (got < want) {
            ssize_t k = pread(s->fd, dst + got, want - got, at + (off_t)got);
            if (k <= 0) {
                snprintf(msg, msg_size,
                         "%s: truncated while streaming: row %lld of /train/x is "
                         "past the end of the file",
                         s->name, (long long)r);
                return DPT_EFORMAT;
            }
            got += (size_t)k;
        }
        i = j;
    }
    return DPT_OK;
}

/* The rows of b, in ascending order, into b->x: the selection is the union of runs of
 * consecutive rows, so a chunk is visited once and in file order. */
static dpt_status read_rows(dpt_stream *s, stream_buffer *b, char *msg, size_t msg_size) {
    if (b->n == 0) /* a rank without samples in a short last batch */
        return DPT_OK;
    if (s->chunk_addr) {
        dpt_status st = pread_rows(s, b, msg, msg_size);
        if (st != DPT_OK)
            return st;
        goto check_size;
    }
    hsize_t start[5] = {0}, count[5];
    for (int i = 1; i < s->rank; i++)
        count[i] = s->dims[i];
    H5Sselect_none(s->fspace);
    herr_t rc = 0;
    for (int64_t i = 0; i < b->n && rc >= 0;) {
        int64_t j = i + 1;
        while (j < b->n && b->rows[j] == b->rows[j - 1] + 1)
            j++;
        start[0] = (hsize_t)b->rows[i];
        count[0] = (hsize_t)(j - i);
        rc = H5Sselect_hyperslab(s->fspace, i == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, start, NULL,
                                 count, NULL);
        i = j;
    }
    hsize_t mdims[5];
    memcpy(mdims, s->dims, sizeof mdims);
    mdims[0] = (hsize_t)b->n;
    hid_t mspace = rc >= 0 ? H5Screate_simple(s->rank, mdims, NULL) : -1;
    if (mspace >= 0)
        rc = H5Dread(s->dset, s->mspace_type, mspace, s->fspace, H5P_DEFAULT, b->x);
    if (mspace >= 0)
        H5Sclose(mspace);
    if (mspace < 0 || rc < 0) {
        snprintf(msg, msg_size,
                 "%s: cannot read %lld rows of /train/x from row %lld while "
                 "streaming (truncated or corrupt file?)",
                 s->name, (long long)b->n, (long long)b->rows[0]);
        return DPT_EHDF5;
    }
check_size:;
    struct stat sb;
    if (fstat(s->fd, &sb) != 0 || (uint64_t)sb.st_size < s->needed_bytes) {
        snprintf(msg, msg_size, "%s: truncated while streaming: %llu bytes, the file needs %llu",
                 s->name, (unsigned long long)sb.st_size, (unsigned long long)s->needed_bytes);
        return DPT_EFORMAT;
    }
    if (!s->is_u8) {
        const float *v = b->x;
        int64_t per = s->sample_bytes / (int64_t)sizeof(float);
        for (int64_t i = 0; i < b->n * per; i++)
            if (!isfinite(v[i])) {
                snprintf(msg, msg_size, "%s: /train/x: sample %lld has a non-finite value", s->name,
                         (long long)b->rows[i / per]);
                return DPT_ENONFINITE;
            }
    }
    return DPT_OK;
}

static void *reader_main(void *arg) {
    dpt_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->busy && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->busy) /* quit with nothing to read */
            break;
        stream_buffer *b = &s->buf[s->fill];
        pthread_mutex_unlock(&s->mu);
        char msg[sizeof s->msg] = "";
        /* HDF5's error printing is process-wide state: only this thread calls HDF5 now */
        H5E_auto2_t old_func = NULL;
        void *old_data = NULL;
        if (!s->chunk_addr) {
            H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
            H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        }
        dpt_status st = read_rows(s, b, msg, sizeof msg);
        if (!s->chunk_addr)
            H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
        pthread_mutex_lock(&s->mu);
        s->st = st;
        memcpy(s->msg, msg, sizeof msg);
        s->busy = 0;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- open / close -------------------------------------------------------------------------- */

/* A prime >= n: HDF5 hashes chunks into this many cache slots. */
static size_t prime_at_least(size_t n) {
    for (n |= 1;; n += 2) {
        int prime = 1;
        for (size_t d = 3; d * d <= n && prime; d += 2)
            prime = n % d != 0;
        if (prime)
            return n;
    }
}

/* The chunk cache of /train/x (H5Pset_chunk_cache). Exact permutation of an unfiltered file:
 * none, so HDF5 reads just the selected rows (a cached chunk would be read whole for one row
 * drawn at random). Otherwise room for the window's chunks plus one (a window starts inside a
 * chunk's neighbour), or for a request's chunks (each compressed chunk is inflated once per
 * request), capped at 256 MiB; w0 = 1 evicts fully read chunks first: an epoch reads a row once. */
static hid_t chunk_cache_dapl(hid_t dcpl, size_t chunk_bytes, const dpt_stream_cfg *cfg,
                              int64_t nchunks) {
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0 || chunk_bytes == 0)
        return dapl;
    int filtered = H5Pget_nfilters(dcpl) > 0;
    int64_t want = cfg->window_chunks > 0 ? cfg->window_chunks + 1 : filtered ? cfg->max_rows : 0;
    if (want > nchunks)
        want = nchunks;
    size_t cap = (size_t)256 << 20, bytes = (size_t)want * chunk_bytes;
    if (bytes > cap)
        bytes = cap > chunk_bytes ? cap / chunk_bytes * chunk_bytes : chunk_bytes;
    size_t slots = prime_at_least(100 * (bytes / chunk_bytes) + 1);
    H5Pset_chunk_cache(dapl, slots, bytes, 1.0);
    return dapl;
}

/* The file address of every chunk of an unfiltered /train/x whose chunks hold whole rows in the
 * memory type (or of the one contiguous block) into s->chunk_addr; leaves it NULL (the H5Dread
 * path) for anything else: filters, chunks that split a row, a type HDF5 must convert, chunks
 * never written. */
static void find_direct_addresses(dpt_stream *s, hid_t dcpl, hid_t ftype, const hsize_t *cdims) {
    hid_t native = H5Tget_native_type(ftype, H5T_DIR_ASCEND);
    int same_type = native >= 0 && H5Tequal(native, s->mspace_type) > 0 &&
                    H5Tequal(ftype, native) > 0; /* the file's bytes are the memory's */
    if (native >= 0)
        H5Tclose(native);
    if (!same_type || H5Pget_nfilters(dcpl) != 0)
        return;
    int64_t nchunks = (s->N + s->chunk_rows - 1) / s->chunk_rows;
    uint64_t *addr = malloc((size_t)nchunks * sizeof *addr);
    if (!addr)
        return;
    int ok = 1;
    if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
        haddr_t a = H5Dget_offset(s->dset);
        ok = a != HADDR_UNDEF;
        for (int64_t c = 0; ok && c < nchunks; c++)
            addr[c] = (uint64_t)a + (uint64_t)(c * s->chunk_rows * s->sample_bytes);
    } else {
        for (int i = 1; i < s->rank; i++)
            ok = ok && cdims[i] == s->dims[i];
        hsize_t n = 0;
        ok = ok && H5Dget_num_chunks(s->dset, s->fspace, &n) >= 0 && (int64_t)n == nchunks;
        for (hsize_t k = 0; ok && k < n; k++) {
            hsize_t off[5] = {0}, size = 0;
            unsigned mask = 0;
            haddr_t a = HADDR_UNDEF;
            ok = H5Dget_chunk_info(s->dset, s->fspace, k, off, &mask, &a, &size) >= 0 &&
                 a != HADDR_UNDEF && off[0] % (hsize_t)s->chunk_rows == 0;
            if (ok)
                addr[off[0] / (hsize_t)s->chunk_rows] = (uint64_t)a;
        }
    }
    if (ok)
        s->chunk_addr = addr;
    else
        free(addr);
}

/* Opens the file, /train/x with its chunk cache, and checks it against `train`. */
static dpt_status open_file(dpt_stream *s, const char *path, const dpt_dataset *train,
                            const dpt_stream_cfg *cfg) {
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0)
        return dpt_errorf(DPT_EIO, "%s: cannot open for streaming", s->name);
    s->file = dpt__h5_open_read(path);
    if (s->file < 0)
        return dpt_errorf(DPT_EFORMAT, "%s: truncated or corrupt HDF5 file", s->name);
    haddr_t eoa = HADDR_UNDEF;
    if (H5Fget_eoa(s->file, &eoa) < 0 || eoa == HADDR_UNDEF)
        return dpt_errorf(DPT_EHDF5, "%s: cannot read the file's size", s->name);
    s->needed_bytes = (uint64_t)eoa;
    hid_t probe = H5Dopen2(s->file, "/train/x", H5P_DEFAULT);
    hid_t dcpl = probe >= 0 ? H5Dget_create_plist(probe) : -1;
    hid_t ftype = probe >= 0 ? H5Dget_type(probe) : -1;
    hid_t space = probe >= 0 ? H5Dget_space(probe) : -1;
    dpt_status st = DPT_OK;
    if (dcpl < 0 || ftype < 0 || space < 0) {
        st = dpt_errorf(DPT_EHDF5, "%s: cannot open /train/x for streaming", s->name);
        goto out;
    }
    s->rank = H5Sget_simple_extent_ndims(space);
    if (s->rank < 3 || s->rank > 5) {
        st = dpt_errorf(DPT_ESHAPE, "%s: /train/x has rank %d", s->name, s->rank);
        goto out;
    }
    H5Sget_simple_extent_dims(space, s->dims, NULL);
    hsize_t elems = 1;
    for (int i = 1; i < s->rank; i++)
        elems *= s->dims[i];
    s->N = (int64_t)s->dims[0];
    s->is_u8 = train->type == DPT_SAMPLES_U8;
    s->sample_bytes = dpt_dataset_sample_bytes(train);
    if (s->N != train->N || (int64_t)elems != dpt_dataset_sample_numel(train)) {
        st = dpt_errorf(DPT_ESHAPE, "%s: /train/x changed since it was opened", s->name);
        goto out;
    }
    size_t chunk_bytes = 0;
    hsize_t cdims[5] = {0};
    int64_t row_file_bytes = (int64_t)(elems * H5Tget_size(ftype));
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        H5Pget_chunk(dcpl, s->rank, cdims);
        s->chunk_rows = (int64_t)cdims[0];
        chunk_bytes = H5Tget_size(ftype);
        for (int i = 0; i < s->rank; i++)
            chunk_bytes *= cdims[i];
    } else {
        s->chunk_rows = CONTIGUOUS_UNIT_BYTES / (row_file_bytes > 0 ? row_file_bytes : 1);
    }
    if (s->chunk_rows < 1)
        s->chunk_rows = 1;
    int64_t nchunks = (s->N + s->chunk_rows - 1) / s->chunk_rows;
    hid_t dapl = chunk_cache_dapl(dcpl, chunk_bytes, cfg, nchunks);
    s->dset = dapl >= 0 ? H5Dopen2(s->file, "/train/x", dapl) : -1;
    if (dapl >= 0)
        H5Pclose(dapl);
    s->fspace = s->dset >= 0 ? H5Dget_space(s->dset) : -1;
    s->mspace_type = s->is_u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT;
    if (s->dset < 0 || s->fspace < 0)
        st = dpt_errorf(DPT_EHDF5, "%s: cannot open /train/x for streaming", s->name);
    else if (!getenv("DPT_STREAM_NO_DIRECT")) /* the H5Dread path on any file, for tests */
        find_direct_addresses(s, dcpl, ftype, cdims);
out:
    if (space >= 0)
        H5Sclose(space);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (probe >= 0)
        H5Dclose(probe);
    return st;
}

dpt_status dpt_stream_open(dpt_stream **out, const char *path, const dpt_dataset *train,
                           const dpt_stream_cfg *cfg) {
    *out = NULL;
    DPT_ASSERT(train->streamed && cfg->max_rows >= 1 && cfg->window_chunks >= 0);
    dpt_stream *s = calloc(1, sizeof *s);
    if (!s)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the stream");
    s->file = s->dset = s->fspace = -1;
    s->fd = -1;
    dpt__data_short(s->name, sizeof s->name, path);
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    dpt_status st = open_file(s, path, train, cfg);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    int64_t stats_rows = STATS_BLOCK_BYTES / dpt_dataset_sample_bytes(train) + 1;
    s->cap = cfg->max_rows > stats_rows ? cfg->max_rows : stats_rows;
    for (int i = 0; i < 2 && st == DPT_OK; i++) {
        s->buf[i].rows = dpt_alloc_aligned(dpt_size_mul((size_t)s->cap, sizeof(int64_t)));
        s->buf[i].x = dpt_alloc_aligned(dpt_size_mul((size_t)s->cap, (size_t)s->sample_bytes));
        if (!s->buf[i].rows || !s->buf[i].x)
            st = dpt_errorf(DPT_ENOMEM, "%s: cannot allocate the stream buffers", s->name);
    }
    if (st == DPT_OK) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        if (pthread_create(&s->thread, NULL, reader_main, s) != 0) {
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->mu);
            st = dpt_errorf(DPT_ENOMEM, "%s: cannot start the reader thread", s->name);
        } else {
            s->thread_started = 1;
        }
    }
    if (st != DPT_OK) {
        dpt_stream_close(s);
        return st;
    }
    *out = s;
    return DPT_OK;
}

void dpt_stream_close(dpt_stream *s) {
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (s->fspace >= 0)
        H5Sclose(s->fspace);
    if (s->dset >= 0)
        H5Dclose(s->dset);
    if (s->file >= 0)
        H5Fclose(s->file);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    if (s->fd >= 0)
        close(s->fd);
    free(s->chunk_addr);
    for (int i = 0; i < 2; i++) {
        dpt_free_aligned(s->buf[i].rows);
        dpt_free_aligned(s->buf[i].x);
    }
    free(s);
}

int64_t dpt_stream_chunk_rows(const dpt_stream *s) {
    return s->chunk_rows;
}

/* ---- requests -------------------------------------------------------------------------------- */

/* Waits, with s->mu held, until the reader is idle. */
static void wait_idle(dpt_stream *s) {
    while (s->busy)
        pthread_cond_wait(&s->cv, &s->mu);
}

void dpt_stream_drain(dpt_stream *s) {
    pthread_mutex_lock(&s->mu);
    wait_idle(s);
    pthread_mutex_unlock(&s->mu);
}

void dpt_stream_post(dpt_stream *s, const int64_t *idx, int64_t n) {
    DPT_ASSERT(n >= 0 && n <= s->cap);
    pthread_mutex_lock(&s->mu);
    wait_idle(s); /* an earlier request nobody took is dropped */
    s->posted = 0;
    pthread_mutex_unlock(&s->mu);
    /* The reader is idle and only reads buf[fill] when busy: filling it needs no lock. */
    stream_buffer *b = &s->buf[s->fill];
    memcpy(b->rows, idx, (size_t)n * sizeof(int64_t));
    qsort(b->rows, (size_t)n, sizeof(int64_t), cmp_i64);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        DPT_ASSERT(b->rows[i] >= 0 && b->rows[i] < s->N);
        if (m == 0 || b->rows[i] != b->rows[m - 1])
            b->rows[m++] = b->rows[i];
    }
    b->n = m;
    pthread_mutex_lock(&s->mu);
    s->posted = s->busy = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

dpt_status dpt_stream_take(dpt_stream *s, const dpt_dataset *train, dpt_dataset *view) {
    pthread_mutex_lock(&s->mu);
    DPT_ASSERT(s->posted);
    wait_idle(s);
    s->posted = 0;
    dpt_status st = s->st;
    char msg[sizeof s->msg];
    memcpy(msg, s->msg, sizeof msg);
    pthread_mutex_unlock(&s->mu);
    stream_buffer *b = &s->buf[s->fill];
    s->fill ^= 1; /* the next post fills the other buffer while this one is read */
    *view = *train;
    view->x_u8 = s->is_u8 ? b->x : NULL;
    view->x_f32 = s->is_u8 ? NULL : b->x;
    view->resident = b->rows;
    view->n_resident = b->n;
    view->own = NULL;
    if (st != DPT_OK) {
        view->resident = NULL, view->n_resident = 0; /* nothing to gather from */
        return dpt_errorf(st, "%s", msg);
    }
    return DPT_OK;
}

/* ---- statistics ---------------------------------------------------------------------------- */

/* One pass of dpt_dataset_channel_sums over idx[0..n), a block at a time, the next block read
 * while this one is summed. */
typedef struct {
    dpt_stream *s;
    const dpt_dataset *train;
    const int64_t *idx;
    int64_t n;
} streamed_samples;

static dpt_status stats_pass(void *ctx, const double *mean, double *acc, float *plane) {
    const streamed_samples *ss = ctx;
    dpt_stream *s = ss->s;
    const dpt_dataset *train = ss->train;
    const int64_t *idx = ss->idx;
    const int64_t n = ss->n;
    int64_t *all = NULL; /* idx NULL: the identity, made one block at a time */
    if (!idx && !(all = malloc((size_t)s->cap * 2 * sizeof(int64_t))))
        return dpt_errorf(DPT_ENOMEM, "normalization: cannot allocate the block indices");
    const int64_t *blk[2];
    int64_t at = 0, len = n < s->cap ? n : s->cap, k = 0;
    for (int64_t i = 0; !idx && i < len; i++)
        all[i] = i;
    blk[0] = idx ? idx : all;
    dpt_stream_post(s, blk[0], len);
    dpt_status st = DPT_OK;
    while (at < n && st == DPT_OK) {
        dpt_dataset view;
        st = dpt_stream_take(s, train, &view);
        int64_t next = at + len, next_len = n - next < s->cap ? n - next : s->cap;
        if (st == DPT_OK && next < n) {
            int64_t *ids = all ? all + ((k + 1) % 2) * s->cap : NULL;
            for (int64_t i = 0; ids && i < next_len; i++)
                ids[i] = next + i;
            blk[(k + 1) % 2] = ids ? ids : idx + next;
            dpt_stream_post(s, blk[(k + 1) % 2], next_len);
        }
        if (st == DPT_OK)
            dpt_dataset_channel_sums(&view, blk[k % 2], len, mean, acc, plane);
        at = next, len = next_len, k++;
    }
    dpt_stream_drain(s);
    free(all);
    return st;
}

dpt_status dpt_stream_channel_stats(dpt_stream *s, const dpt_dataset *train, const int64_t *idx,
                                    int64_t n, double *mean, double *std) {
    streamed_samples ss = {s, train, idx, idx ? n : train->N};
    return dpt_dataset_channel_stats_by(train, ss.n, stats_pass, &ss, mean, std);
}
