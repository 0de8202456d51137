/* Datasets (data): in-memory labelled samples loaded from IDX (.gz) or HDF5 files, the `--data`
 * resolver (fashion-mnist, sample, a directory of IDX files, an .h5 file) and per-channel
 * normalization with statistics from the training samples only. Knows no models and no MPI:
 * every rank loads the same files and so holds the same dataset. */
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

/* One split (train or test) held in memory.
 * Every sample is stored as (C, D, H, W) with unused extents 1, whatever `sdims` says:
 *   sdims 1: (C, L)        stored as (C, 1, 1, W=L)
 *   sdims 2: (C, H, W)     stored as (C, 1, H, W)
 *   sdims 3: (C, D, H, W)
 * `x` and `y` are owned (dpt_dataset_free releases them). uint8 inputs are scaled to [0, 1] at
 * load time; after dpt_dataset_normalize, x = (raw - norm_mean[c]) / norm_std[c]. */
typedef struct {
    int64_t N, C, D, H, W;
    int sdims;         /* 1, 2 or 3 spatial dimensions (see above) */
    int64_t K;         /* number of classes: every label is in [0, K) */
    float *x;          /* (N, C, D, H, W), DPT_ALIGN-aligned */
    int32_t *y;        /* (N) */
    double *norm_mean; /* (C): the normalization applied to x; 0 before normalization */
    double *norm_std;  /* (C): 1 before normalization */
    int normalized;    /* 1 once dpt_dataset_normalize has run */
} dpt_dataset;

/* Allocates a zero-filled dataset of N samples of shape (C, D, H, W) and K classes. Zeroes *ds
 * first, so dpt_dataset_free is always safe. DPT_EINVAL on a bad extent or sdims, DPT_ENOMEM. */
dpt_status dpt_dataset_init(dpt_dataset *ds, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W,
                            int sdims, int64_t K);
void dpt_dataset_free(dpt_dataset *ds);
/* C*D*H*W: floats per sample. */
int64_t dpt_dataset_sample_numel(const dpt_dataset *ds);
/* The shape a model sees for a batch of n samples: (n, C, L), (n, C, H, W) or (n, C, D, H, W).
 * The memory layout is the same as (n, C, D, H, W). */
dpt_shape dpt_dataset_batch_shape(const dpt_dataset *ds, int64_t n);

/* Per-channel mean and population standard deviation (divide by the count) over the samples
 * idx[0..n) of `ds` (idx NULL: all N samples), accumulated in double in a fixed order, so every
 * rank computes the same numbers. mean, std: (C). DPT_EINVAL when there are no samples. */
dpt_status dpt_dataset_channel_stats(const dpt_dataset *ds, const int64_t *idx, int64_t n,
                                     double *mean, double *std);
/* x = (x - mean[c]) / std[c] in place, recorded in norm_mean/norm_std. A channel whose std is 0
 * (constant input) is divided by 1 instead. DPT_EINVAL if `ds` was already normalized. */
dpt_status dpt_dataset_normalize(dpt_dataset *ds, const double *mean, const double *std);

/* IDX reader (http://yann.lecun.com/exdb/mnist/ format; plain or gzip, detected from the bytes).
 * images: magic 0x00000803 (uint8, scaled to [0, 1]) or 0x00000d03 (big-endian float32), shape
 * (N, H, W), stored as C = 1, sdims 2. labels: magic 0x00000801 (uint8), shape (N).
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

/* Train and test splits of one data source. Owns both datasets. */
typedef struct {
    dpt_dataset train, test;
    char source[512]; /* the resolved path, for messages and checkpoints */
    /* 1 when K came from the caller (opts.classes), the source's known class count (fashion-mnist,
     * sample) or an HDF5 n_classes attribute; 0 when it was inferred as max label + 1. */
    int classes_declared;
} dpt_data;

/* HDF5 reader. Contract (datasets/README.md): /train/x, /train/y, /test/x, /test/y; x is uint8
 * (scaled to [0, 1]) or floating point (read as float32, must be finite), of rank 3 (N, H, W),
 * 4 (N, C, H, W) or 5 (N, C, D, H, W); a rank-3 x is read as (N, C, L) when it carries the
 * string attribute layout="NCL" (accepted values: "NHW", "NCL", "NCHW", "NCDHW"). y is any
 * integer type of rank 1 with the same N. The number of classes is the root attribute
 * n_classes when present (labels must be in [0, n_classes)), else max label + 1 (labels must be
 * >= 0); either way K <= DPT_MAX_CLASSES. K > 0 (the model's output width) overrides the
 * inference: labels must be in [0, K), and an n_classes attribute must equal K. Train and test
 * samples must have the same shape. The declared extents are checked against available memory
 * before allocating. A file without the HDF5 signature is "not an HDF5 file"; one with it that
 * HDF5 cannot open is "truncated or corrupt". HDF5's error stack is never printed. Errors name
 * the file and dataset. */
dpt_status dpt_hdf5_dataset_load(dpt_data *d, const char *path, int64_t K);

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
} dpt_data_opts;

/* Resolves a `--data` value and loads both splits:
 *   "fashion-mnist"  the Debian package's files (10 classes checked); when they are missing the
 *                    message names `apt-get install dataset-fashion-mnist`;
 *   "sample"         the bundled 3000 + 1000 image Fashion-MNIST sample (see search_path);
 *   a directory      {train,t10k,test}-{images-idx3,labels-idx1}-ubyte[.gz];
 *   a file           HDF5 (see dpt_hdf5_dataset_load).
 * Zeroes *d first; on error *d is left freed and the message names the value or the file.
 * Both splits get the same K (the larger inferred one). */
dpt_status dpt_data_load(dpt_data *d, const char *spec, const dpt_data_opts *opts);
void dpt_data_free(dpt_data *d);
/* Normalizes train and test with per-channel statistics of train samples idx[0..n) only
 * (idx NULL: all of train). Pass the training indices left after a validation split, so the
 * held-out samples do not leak into the statistics. */
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

#ifdef __cplusplus
}
#endif
#endif
