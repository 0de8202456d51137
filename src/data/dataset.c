/* In-memory datasets (data): allocation, per-channel statistics and normalization, and the
 * `--data` resolver that picks the IDX or HDF5 reader. Knows no models and no MPI; the file
 * formats themselves live in idx.c and hdf5_dataset.c. */
#include "dpt/data.h"

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

dpt_status dpt_dataset_init(dpt_dataset *ds, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W,
                            int sdims, int64_t K) {
    memset(ds, 0, sizeof *ds);
    if (N < 0 || C < 1 || D < 1 || H < 1 || W < 1 || K < 1 || sdims < 1 || sdims > 3 ||
        (sdims < 3 && D != 1) || (sdims < 2 && H != 1))
        return dpt_errorf(DPT_EINVAL,
                          "dataset: bad geometry N=%lld C=%lld D=%lld H=%lld W=%lld sdims=%d "
                          "K=%lld",
                          (long long)N, (long long)C, (long long)D, (long long)H, (long long)W,
                          sdims, (long long)K);
    dpt_shape s = dpt_shape_make(5, (int64_t[]){N, C, D, H, W});
    int64_t numel = 0;
    dpt_status st = dpt_shape_numel(&s, &numel);
    if (st != DPT_OK)
        return st;
    if ((uint64_t)numel > SIZE_MAX / sizeof(float))
        return dpt_errorf(DPT_ENOMEM, "dataset: %lld floats do not fit in memory",
                          (long long)numel);
    ds->N = N, ds->C = C, ds->D = D, ds->H = H, ds->W = W, ds->sdims = sdims, ds->K = K;
    ds->x = dpt_alloc_aligned((size_t)numel * sizeof(float));
    ds->y = dpt_alloc_aligned(dpt_size_mul((size_t)N, sizeof(int32_t)));
    ds->norm_mean = dpt_alloc_aligned(dpt_size_mul((size_t)C, sizeof(double)));
    ds->norm_std = dpt_alloc_aligned(dpt_size_mul((size_t)C, sizeof(double)));
    if (!ds->x || !ds->y || !ds->norm_mean || !ds->norm_std) {
        dpt_dataset_free(ds);
        return dpt_errorf(DPT_ENOMEM, "dataset: cannot allocate %lld samples of %lld floats",
                          (long long)N, (long long)(C * D * H * W));
    }
    for (int64_t c = 0; c < C; c++)
        ds->norm_std[c] = 1.0;
    return DPT_OK;
}

void dpt_dataset_free(dpt_dataset *ds) {
    if (!ds)
        return;
    dpt_free_aligned(ds->x);
    dpt_free_aligned(ds->y);
    dpt_free_aligned(ds->norm_mean);
    dpt_free_aligned(ds->norm_std);
    memset(ds, 0, sizeof *ds);
}

int64_t dpt_dataset_sample_numel(const dpt_dataset *ds) {
    return ds->C * ds->D * ds->H * ds->W;
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

dpt_status dpt_dataset_channel_stats(const dpt_dataset *ds, const int64_t *idx, int64_t n,
                                     double *mean, double *std) {
    if (!idx)
        n = ds->N;
    if (n < 1)
        return dpt_errorf(DPT_EINVAL, "normalization: no training samples to compute it from");
    int64_t plane = ds->D * ds->H * ds->W, per = ds->C * plane;
    for (int64_t c = 0; c < ds->C; c++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) {
            int64_t k = idx ? idx[i] : i;
            DPT_ASSERT(k >= 0 && k < ds->N);
            const float *p = ds->x + k * per + c * plane;
            for (int64_t j = 0; j < plane; j++)
                s += p[j];
        }
        double m = s / ((double)n * (double)plane);
        double v = 0.0; /* second pass about the mean: no cancellation */
        for (int64_t i = 0; i < n; i++) {
            const float *p = ds->x + (idx ? idx[i] : i) * per + c * plane;
            for (int64_t j = 0; j < plane; j++)
                v += ((double)p[j] - m) * ((double)p[j] - m);
        }
        mean[c] = m;
        std[c] = sqrt(v / ((double)n * (double)plane));
    }
    return DPT_OK;
}

dpt_status dpt_dataset_normalize(dpt_dataset *ds, const double *mean, const double *std) {
    if (ds->normalized)
        return dpt_errorf(DPT_EINVAL, "normalization: dataset is already normalized");
    int64_t plane = ds->D * ds->H * ds->W;
    for (int64_t c = 0; c < ds->C; c++) {
        if (!isfinite(mean[c]) || !isfinite(std[c]) || std[c] < 0)
            return dpt_errorf(DPT_ENONFINITE, "normalization: channel %lld has mean %g std %g",
                              (long long)c, mean[c], std[c]);
    }
    for (int64_t c = 0; c < ds->C; c++) {
        double sd = std[c] > 0 ? std[c] : 1.0;
        ds->norm_mean[c] = mean[c];
        ds->norm_std[c] = sd;
        for (int64_t i = 0; i < ds->N; i++) {
            float *p = ds->x + (i * ds->C + c) * plane;
            for (int64_t j = 0; j < plane; j++)
                p[j] = (float)(((double)p[j] - mean[c]) / sd);
        }
    }
    ds->normalized = 1;
    return DPT_OK;
}

/* ---- data bundle and the --data resolver ---- */

void dpt_data_free(dpt_data *d) {
    if (!d)
        return;
    dpt_dataset_free(&d->train);
    dpt_dataset_free(&d->test);
    memset(d, 0, sizeof *d);
}

dpt_status dpt_data_normalize(dpt_data *d, const int64_t *idx, int64_t n) {
    if (!d->train.x)
        return dpt_errorf(DPT_EINVAL, "normalization: no training set loaded");
    double *mean = dpt_alloc_aligned(dpt_size_mul(2 * (size_t)d->train.C, sizeof(double)));
    if (!mean)
        return DPT_ENOMEM;
    double *std = mean + d->train.C;
    dpt_status st = dpt_dataset_channel_stats(&d->train, idx, n, mean, std);
    if (st == DPT_OK)
        st = dpt_dataset_normalize(&d->train, mean, std);
    if (st == DPT_OK && d->test.x)
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
                               const char *hint) {
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
    dpt_status st = dpt_idx_load(&d->train, ti, tl, K);
    if (st == DPT_OK)
        st = dpt_idx_load(&d->test, vi, vl, K);
    if (st != DPT_OK)
        return st;
    char name[80];
    if (d->train.H != d->test.H || d->train.W != d->test.W)
        return dpt_errorf(DPT_ESHAPE, "%s: test images are %lldx%lld, training images %lldx%lld",
                          dpt__data_short(name, sizeof name, vi), (long long)d->test.H,
                          (long long)d->test.W, (long long)d->train.H, (long long)d->train.W);
    int64_t k = d->train.K > d->test.K ? d->train.K : d->test.K;
    d->train.K = d->test.K = k;
    return DPT_OK;
}

static dpt_status load_sample(dpt_data *d, const char *search_path, int64_t K) {
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
                return load_idx_dir(d, dir, K, "--data sample", "");
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
    } else if (strcmp(spec, "fashion-mnist") == 0) {
        const char *dir = o.fashion_mnist_dir ? o.fashion_mnist_dir : DPT_FASHION_MNIST_DIR;
        st = load_idx_dir(d, dir, K10, "--data fashion-mnist",
                          "; install the Debian package with `apt-get install "
                          "dataset-fashion-mnist` (datasets/fetch.sh), or try --data sample");
    } else if (strcmp(spec, "sample") == 0) {
        st = load_sample(d, o.search_path, K10);
    } else if (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = load_idx_dir(d, spec, K, dpt__data_short(name, sizeof name, spec), "");
    } else if (exists(spec)) {
        st = dpt__data_check_file(spec); /* names a FIFO, a link loop, a device */
        if (st == DPT_OK)
            st = dpt_hdf5_dataset_load(d, spec, K);
    } else {
        st = dpt_errorf(DPT_EIO,
                        "--data %s: not found (expected fashion-mnist, sample, a directory of IDX "
                        "files or an HDF5 file)",
                        dpt__data_short(name, sizeof name, spec));
    }
    if (st != DPT_OK)
        dpt_data_free(d);
    else if (K > 0 || strcmp(spec, "fashion-mnist") == 0 || strcmp(spec, "sample") == 0)
        d->classes_declared = 1;
    return st;
}
