/* Datasets (data): labelled samples loaded from IDX (.gz) or HDF5 files and kept as the files
 * hold them (uint8 or float32), the `--data` resolver (fashion-mnist, sample, a directory of IDX
 * files, an .h5 file), per-channel normalization with statistics from the training samples only,
 * and the one gather that turns stored samples into the floats a model reads. Knows no models and
 * no MPI: whoever shares one loaded copy between processes passes an allocator (comm does that
 * for the ranks of a node). */
#ifndef DPT_DATA_H
#define DPT_DATA_H

#include <stdint.h>

#include "dpt/status.h"
#include "dpt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the Debian package dataset-fashion-mnist installs its files. */
#define DPT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* The bundled sample, relative to a source tree (or an installed share directory). */
#define DPT_SAMPLE_SUBDIR "datasets/fashion-mnist-sample"
/* Largest accepted number of classes: a label beyond it is taken for a corrupt file (soft
 * targets are (N, K) floats). When no class count is given, K is inferred as max label + 1 and
 * a label >= DPT_MAX_CLASSES is refused rather than taken for a huge class count. */
#define DPT_MAX_CLASSES (1 << 20)

/* How a split holds its samples: as the file stores them. */
typedef enum {
    DPT_SAMPLES_F32 = 0, /* float32 (IDX float32; HDF5 floating point, converted to float32) */
    DPT_SAMPLES_U8 = 1,  /* bytes (IDX unsigned byte, HDF5 uint8); byte b stands for b / 255 */
} dpt_sample_type;

/* One split (train or test) held in memory.
 * Every sample is stored as (C, D, H, W) with unused extents 1, whatever `sdims` says:
 *   sdims 1: (C, L)        stored as (C, 1, 1, W=L)
 *   sdims 2: (C, H, W)     stored as (C, 1, H, W)
 *   sdims 3: (C, D, H, W)
 * The samples stay as the file holds them (one of x_u8 / x_f32, the other NULL) and are read only
 * through dpt_dataset_gather, which applies the scaling and the normalization. Samples and labels
 * are read-only once loaded: they may be one copy that several processes map (dpt_data_attach).
 * The normalization state (norm_mean, norm_std, lut) is this dataset's own. */
typedef struct {
    int64_t N, C, D, H, W;
    int sdims;             /* 1, 2 or 3 spatial dimensions (see above) */
    int64_t K;             /* number of classes: every label is in [0, K) */
    dpt_sample_type type;  /* which of x_u8 / x_f32 holds the samples */
    uint8_t *x_u8;         /* DPT_SAMPLES_U8: (N, C, D, H, W) bytes; else NULL */
    float *x_f32;          /* DPT_SAMPLES_F32: (N, C, D, H, W) values, DPT_ALIGN-aligned; else NULL */
    int32_t *y;            /* (N) */
    double *norm_mean;     /* (C): the normalization gather applies; 0 before normalization */
    double *norm_std;      /* (C): 1 before normalization (a constant channel's 0 is stored as 1) */
    float *lut;            /* DPT_SAMPLES_U8: (C, 256), the float gather writes for byte b of
                            * channel c; NULL for float32 samples */
    int normalized;        /* 1 once dpt_dataset_normalize has run */
    /* A streamed split (--stream) keeps its labels but not its samples: x_u8 / x_f32 are NULL,
     * except in a view that a dpt_stream filled, where they hold only the samples of the
     * dataset indices resident[0 .. n_resident) (ascending, distinct), in that order. The
     * gather finds a sample's slot there; indices not resident are a bug (asserted). */
    int streamed;
    const int64_t *resident; /* NULL: x holds all N samples */
    int64_t n_resident;
    void *own;             /* the allocation holding x and y when the dataset owns them
                            * (dpt_dataset_init, dpt_idx_load); NULL when they live in a
                            * dpt_data's block */
} dpt_dataset;

/* Allocates a zero-filled dataset of N samples of shape (C, D, H, W), K classes, stored as
 * `type`, which owns its samples and labels (fill x_u8 / x_f32 and y, then read through
 * dpt_dataset_gather). Zeroes *ds first, so dpt_dataset_free is always safe. DPT_EINVAL on a bad
 * extent, sdims or type, DPT_ENOMEM. */
dpt_status dpt_dataset_init(dpt_dataset *ds, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W,
                            int sdims, int64_t K, dpt_sample_type type);
void dpt_dataset_free(dpt_dataset *ds);
/* C*D*H*W: floats per gathered sample. */
int64_t dpt_dataset_sample_numel(const dpt_dataset *ds);
/* Bytes per stored sample: C*D*H*W times 1 (uint8) or 4 (float32). */
int64_t dpt_dataset_sample_bytes(const dpt_dataset *ds);
/* The shape a model sees for a batch of n samples: (n, C, L), (n, C, H, W) or (n, C, D, H, W).
 * The memory layout is the same as (n, C, D, H, W). */
dpt_shape dpt_dataset_batch_shape(const dpt_dataset *ds, int64_t n);

/* The one reader of sample values: writes samples idx[first .. first + n) of `ds` (idx NULL: the
 * samples first .. first + n) into out: (n, C, D, H, W) floats. Every consumer of sample values
 * (training batches, augmentation, evaluation, prediction, the experiments) goes through here.
 *   uint8    byte b of channel c becomes lut[c][b]: b / 255.0f, then, once normalized,
 *            (float)(((double)v - mean[c]) / std[c])
 *   float32  v, then, once normalized, (float)(((double)v - mean[c]) / std[c])
 * which is the arithmetic of the scale-at-load, normalize-in-place pipeline this replaced, so
 * the floats are the same bits. Indices must be in [0, N) (asserted). */
void dpt_dataset_gather(const dpt_dataset *ds, float *out, const int64_t *idx, int64_t first,
                        int64_t n);

/* Per-channel mean and population standard deviation (divide by the count) of the gathered
 * values of samples idx[0..n) of `ds` (idx NULL: all N samples), accumulated in double in a fixed
 * order (per channel: sample, then position), so every rank computes the same numbers.
 * mean, std: (C). DPT_EINVAL when there are no samples. */
dpt_status dpt_dataset_channel_stats(const dpt_dataset *ds, const int64_t *idx, int64_t n,
                                     double *mean, double *std);
/* The two passes of dpt_dataset_channel_stats, for callers that see the samples a part at a time
 * (a streamed split): feeding every part in idx order gives the same bits as one call over all.
 * Pass 1 (mean NULL): acc[c] += every gathered value of channel c of samples idx[0..n).
 * Pass 2: acc[c] += (value - mean[c])^2 likewise. acc: (C). scratch: one sample plane,
 * D*H*W floats. */
void dpt_dataset_channel_sums(const dpt_dataset *ds, const int64_t *idx, int64_t n,
                              const double *mean, double *acc, float *scratch);
/* One pass over every sample: dpt_dataset_channel_sums over all of them, in idx order, in parts
 * as the caller sees them. */
typedef dpt_status (*dpt_channel_pass_fn)(void *ctx, const double *mean, double *acc,
                                          float *scratch);
/* dpt_dataset_channel_stats for n samples of `ds`'s geometry whose values only `pass` reaches:
 * the two passes, then mean = acc1 / count and std = sqrt(acc2 / count). */
dpt_status dpt_dataset_channel_stats_by(const dpt_dataset *ds, int64_t n, dpt_channel_pass_fn pass,
                                        void *ctx, double *mean, double *std);
/* From now on dpt_dataset_gather returns (value - mean[c]) / std[c], recorded in norm_mean /
 * norm_std (a uint8 dataset rebuilds its lookup table; the samples are not touched). A channel
 * whose std is 0 (constant input) is divided by 1 instead. DPT_EINVAL if `ds` was already
 * normalized, DPT_ENONFINITE for a mean or std that is not finite (or std < 0). */
dpt_status dpt_dataset_normalize(dpt_dataset *ds, const double *mean, const double *std);

/* IDX reader (http://yann.lecun.com/exdb/mnist/ format; plain or gzip, detected from the bytes).
 * images: magic 0x00000803 (uint8, kept as bytes) or 0x00000d03 (big-endian float32, kept as
 * float32), shape (N, H, W), stored as C = 1, sdims 2. labels: magic 0x00000801 (uint8), shape
 * (N). *ds owns what it loaded.
 * The counts must agree, every dimension must be non-zero, the body must hold exactly the
 * declared bytes (short and over-long files are errors), and every label must be < K when
 * K > 0; K = 0 sets K = max label + 1 (the fallback; pass the model's output width instead).
 * Before anything is allocated the declared size is checked against the file (a plain file must
 * hold it, a gzip file cannot inflate beyond 1032 times its size) and against available memory,
 * and decompression stops at the first byte past the declared body. A path that is a directory,
 * a FIFO, a device or a symbolic link loop is named as such; an IDX type other than unsigned
 * byte (or float32 for images) is named with its type code. Errors name the file (long paths
 * shortened in the middle). On error *ds is left freed. */
dpt_status dpt_idx_load(dpt_dataset *ds, const char *images_path, const char *labels_path,
                        int64_t K);

/* Train and test splits of one data source. The samples and labels of both splits live in one
 * block of memory (the format dpt_data_attach reads: a header, then each split's samples and
 * labels), which the dpt_data either owns or borrows. */
typedef struct {
    dpt_dataset train, test;
    char source[512]; /* the resolved path, for messages and checkpoints */
    /* 1 when K came from the caller (opts.classes), the source's known class count (fashion-mnist,
     * sample) or an HDF5 n_classes attribute; 0 when it was inferred as max label + 1. */
    int classes_declared;
    void *block;       /* the samples and labels of both splits, with their description */
    size_t block_bytes;
    int owns_block;    /* 1: dpt_data_free frees `block` (the default allocator made it) */
    /* Set by whoever lent the block (NULL: nothing to do): dpt_data_free calls release(ctx) last,
     * after the views are gone. train uses it for a node-shared block, whose release is collective
     * over the node's ranks; dpt_data_free then is too. */
    void (*release)(void *ctx);
    void *release_ctx;
    /* --stream: the reader of train's samples (dpt/stream.h), opened by the trainer once the
     * data is loaded; dpt_data_free closes it first. NULL otherwise. */
    struct dpt_stream *stream;
} dpt_data;

/* HDF5 reader. Contract (datasets/README.md): /train/x, /train/y, /test/x, /test/y; x is uint8
 * (kept as bytes) or floating point (read as float32, must be finite), of rank 3 (N, H, W),
 * 4 (N, C, H, W) or 5 (N, C, D, H, W); a rank-3 x is read as (N, C, L) when it carries the
 * string attribute layout="NCL" (accepted values: "NHW", "NCL", "NCHW", "NCDHW"). y is any
 * integer type of rank 1 with the same N. The number of classes is the root attribute
 * n_classes when present (labels must be in [0, n_classes)), else max label + 1 (labels must be
 * >= 0); either way K <= DPT_MAX_CLASSES. K > 0 (the model's output width) overrides the
 * inference: labels must be in [0, K), and an n_classes attribute must equal K. Train and test
 * samples must have the same shape. The declared extents are checked against available memory
 * before allocating. A file without the HDF5 signature is "not an HDF5 file"; one with it that
 * HDF5 cannot open is "truncated or corrupt". HDF5's error stack is never printed. Errors name
 * the file and dataset. Zeroes *d first; on error *d is left freed. */
dpt_status dpt_hdf5_dataset_load(dpt_data *d, const char *path, int64_t K);

/* Where dpt_data_load puts what it reads: *out receives `bytes` bytes of DPT_ALIGN-aligned
 * writable memory (its contents need not be zero), or the function returns a status whose
 * message it recorded (the load then fails with it). Called at most once per load, after every
 * header was read and checked and before any sample is read; not at all when the load fails
 * earlier. The memory stays the allocator's: dpt_data_free does not free it. */
typedef dpt_status (*dpt_data_alloc_fn)(void *ctx, size_t bytes, void **out);

/* Options of dpt_data_load; zero means default. */
typedef struct {
    /* Colon-separated base directories searched for "sample": BASE/datasets/fashion-mnist-sample,
     * then BASE/fashion-mnist-sample. NULL or "": "sample" is an error. */
    const char *search_path;
    /* Where "fashion-mnist" is looked for; NULL: DPT_FASHION_MNIST_DIR. */
    const char *fashion_mnist_dir;
    /* Number of classes K: the model's output width (or --classes). Every label must be in
     * [0, K), and an out-of-range label is an error naming the file, sample and value.
     * 0: fashion-mnist and sample use 10; a directory or an HDF5 file without n_classes infers
     * max label + 1 (refusing labels >= DPT_MAX_CLASSES). */
    int64_t classes;
    /* The block's memory (see dpt_data_alloc_fn); NULL: dpt_alloc_aligned, owned by the dpt_data.
     * With an allocator, the block can be shared: dpt_data_attach gives other processes views of
     * it once the load has returned DPT_OK. */
    dpt_data_alloc_fn alloc;
    void *alloc_ctx;
    /* 1 (--stream): the training samples stay in the file (an HDF5 file only; anything else is
     * an error naming --stream); train gets its geometry and labels and is marked `streamed`,
     * and a dpt_stream reads its samples. The test split is loaded as usual. */
    int stream_train;
} dpt_data_opts;

/* Resolves a `--data` value and loads both splits:
 *   "fashion-mnist"  the Debian package's files (10 classes checked); when they are missing the
 *                    message names `apt-get install dataset-fashion-mnist`;
 *   "sample"         the bundled 3000 + 1000 image Fashion-MNIST sample (see search_path);
 *   a directory      {train,t10k,test}-{images-idx3,labels-idx1}-ubyte[.gz];
 *   a file           HDF5 (see dpt_hdf5_dataset_load).
 * Every header of both splits is read and checked first, then the block is allocated once, then
 * the bodies are read straight into it (no second copy, no float widening).
 * Zeroes *d first; on error *d is left freed and the message names the value or the file.
 * Both splits get the same K (the larger inferred one). */
dpt_status dpt_data_load(dpt_data *d, const char *spec, const dpt_data_opts *opts);
/* A view of a block that dpt_data_load filled, in this process or in another one mapping the same
 * memory: the splits' geometry, samples, labels, K, source and classes_declared come from the
 * block, the normalization state is new (not normalized). Zeroes *d first. The block is
 * borrowed: it must outlive *d and stay unchanged. DPT_EFORMAT when `block` does not hold a
 * complete block of `bytes` bytes; DPT_ENOMEM. */
dpt_status dpt_data_attach(dpt_data *d, void *block, size_t bytes);
/* Frees what *d owns (normalization state, an owned block), calls d->release, zeroes *d.
 * NULL and a zeroed struct are fine. */
void dpt_data_free(dpt_data *d);
/* Normalizes train and test with per-channel statistics of train samples idx[0..n) only
 * (idx NULL: all of train). Pass the training indices left after a validation split, so the
 * held-out samples do not leak into the statistics. A streamed train split is normalized by the
 * caller instead (dpt_stream_channel_stats, then dpt_dataset_normalize on both splits). */
dpt_status dpt_data_normalize(dpt_data *d, const int64_t *idx, int64_t n);

/* ---- internal to src/data (dpt__: shared between its files, not an API) ---- */

/* `path` shortened to at most size - 1 bytes with a middle ellipsis ("/very/lo...name.gz"), so a
 * message keeps its reason. Returns buf. */
const char *dpt__data_short(char *buf, size_t size, const char *path);
/* DPT_OK if `path` is a regular file (after following symbolic links); otherwise an error naming
 * the short name: not found, dangling symbolic link, symbolic link loop, is a directory, is a
 * FIFO / device / socket, not a regular file. */
dpt_status dpt__data_check_file(const char *path);
/* Bytes that may still be allocated: the smallest of MemAvailable (/proc/meminfo; else physical
 * memory), RLIMIT_AS and RLIMIT_DATA. */
uint64_t dpt__data_mem_available(void);
/* DPT_ENOMEM naming `name` when `bytes` (UINT64_MAX: overflowed) exceed `avail`. */
dpt_status dpt__data_check_memory(const char *name, const char *what, uint64_t bytes,
                                  uint64_t avail);
/* a * b, saturating at UINT64_MAX. */
uint64_t dpt__data_mul(uint64_t a, uint64_t b);
/* Lays out the block for the geometry and sample type already set in d->train and d->test
 * (N, C, D, H, W, sdims, type), obtains it from o->alloc (or dpt_alloc_aligned, owned) and points
 * both splits' x and y into it, writable until dpt__data_seal. */
dpt_status dpt__data_alloc_block(dpt_data *d, const dpt_data_opts *o);
/* After a successful read: writes the description (geometry, K, source, classes_declared) into
 * the block's header, so dpt_data_attach can read it, and gives both splits their
 * normalization state. */
dpt_status dpt__data_seal(dpt_data *d);
/* Both splits of the HDF5 file `path` into a block from `o` (see dpt_hdf5_dataset_load); not
 * sealed. Zeroes *d first; on error the caller frees *d (dpt_data_free). */
dpt_status dpt__hdf5_load(dpt_data *d, const char *path, int64_t K, const dpt_data_opts *o);
/* Both splits from IDX files (idx.c), paths = {train images, train labels, test images, test
 * labels}: every header first (test images must have the training images' H and W), then one
 * block from `o`, then the bodies; K as in dpt_idx_load, the larger inferred K for both splits.
 * Not sealed. On error the caller frees *d (dpt_data_free). */
dpt_status dpt__idx_load_splits(dpt_data *d, const char *const paths[4], int64_t K,
                                const dpt_data_opts *o);

#ifdef __cplusplus
}
#endif
#endif
