/* HDF5 dataset reader (data): /train/x, /train/y, /test/x, /test/y with the shape, type, layout
 * and label-range checks of the contract in datasets/README.md. HDF5's own error printing is
 * switched off while we read, and its failures become messages naming the file and dataset.
 * Samples stay uint8 when the file stores uint8. Knows no models and no MPI. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dpt/data.h"
#include "dpt/h5file.h"

typedef struct {
    hid_t file;
    const char *path; /* for messages: the path shortened in the middle (dpt__data_short) */
} h5_src;

/* Samples of one split: which dataset, its rank and extents, and how to read it. */
typedef struct {
    int64_t N, C, D, H, W;
    int sdims;
    int is_u8;
} x_info;

/* The string attribute `layout` of a dataset into buf: 1 if present (buf "" when unreadable). */
static int read_layout(hid_t dset, char *buf, size_t size) {
    buf[0] = '\0';
    if (H5Aexists(dset, "layout") <= 0)
        return 0;
    hid_t a = H5Aopen(dset, "layout", H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    /* one string: H5Aread would write every element of a longer attribute into buf */
    hssize_t npoints = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && npoints == 1) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 does not convert ASCII <-> UTF-8 (h5py) */
        if (H5Tis_variable_str(t) > 0) {
            char *str = NULL;
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &str) >= 0 && str) {
                snprintf(buf, size, "%s", str);
                H5free_memory(str);
            }
        } else if (H5Tget_size(t) < size) {
            H5Tset_size(mt, size);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            if (H5Aread(a, mt, buf) < 0)
                buf[0] = '\0';
        }
        H5Tclose(mt);
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return 1;
}

static dpt_status open_dset(hid_t *out, const h5_src *src, const char *name) {
    char group[64];
    size_t glen = (size_t)(strrchr(name, '/') - name); /* names are "/split/x" */
    snprintf(group, sizeof group, "%.*s", (int)glen, name);
    htri_t exists = H5Lexists(src->file, group, H5P_DEFAULT);
    if (exists > 0)
        exists = H5Lexists(src->file, name, H5P_DEFAULT);
    if (exists <= 0)
        return dpt_errorf(DPT_EFORMAT, "%s: missing dataset %s", src->path, name);
    *out = H5Dopen2(src->file, name, H5P_DEFAULT);
    if (*out < 0)
        return dpt_errorf(DPT_EHDF5, "%s: cannot open dataset %s", src->path, name);
    return DPT_OK;
}

static dpt_status read_x_info(x_info *xi, hid_t dset, const h5_src *src, const char *name) {
    memset(xi, 0, sizeof *xi);
    dpt_status st = DPT_OK;
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    hsize_t dims[8] = {0};
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank < 0 || type < 0) {
        st = dpt_errorf(DPT_EHDF5, "%s: cannot read the shape of %s", src->path, name);
        goto out;
    }
    if (rank < 3 || rank > 5) {
        st = dpt_errorf(DPT_ESHAPE,
                        "%s: %s has rank %d (expected 3 (N,H,W) or (N,C,L), 4 (N,C,H,W) or 5 "
                        "(N,C,D,H,W))",
                        src->path, name, rank);
        goto out;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE) {
        xi->is_u8 = 1;
    } else if (cls != H5T_FLOAT) {
        st = dpt_errorf(DPT_EFORMAT, "%s: %s must be uint8 or floating point", src->path, name);
        goto out;
    }
    static const char *const layouts[] = {NULL, NULL, NULL, "NHW", "NCHW", "NCDHW"};
    char layout[16];
    int present = read_layout(dset, layout, sizeof layout);
    int ncl = rank == 3 && present && strcmp(layout, "NCL") == 0;
    if (present && !ncl && strcmp(layout, layouts[rank]) != 0) {
        st = dpt_errorf(DPT_EFORMAT,
                        "%s: %s: attribute layout does not fit rank %d (expected "
                        "\"%s\"%s)",
                        src->path, name, rank, layouts[rank], rank == 3 ? " or \"NCL\"" : "");
        goto out;
    }
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0 || dims[i] > INT32_MAX) {
            st = dpt_errorf(DPT_ESHAPE, "%s: %s has extent %llu in dimension %d", src->path, name,
                            (unsigned long long)dims[i], i);
            goto out;
        }
    xi->N = (int64_t)dims[0];
    xi->C = xi->D = xi->H = 1;
    if (rank == 3 && ncl) {
        xi->C = (int64_t)dims[1], xi->W = (int64_t)dims[2], xi->sdims = 1;
    } else if (rank == 3) {
        xi->H = (int64_t)dims[1], xi->W = (int64_t)dims[2], xi->sdims = 2;
    } else if (rank == 4) {
        xi->C = (int64_t)dims[1], xi->H = (int64_t)dims[2], xi->W = (int64_t)dims[3];
        xi->sdims = 2;
    } else {
        xi->C = (int64_t)dims[1], xi->D = (int64_t)dims[2], xi->H = (int64_t)dims[3];
        xi->W = (int64_t)dims[4], xi->sdims = 3;
    }
out:
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    return st;
}

/* The samples straight into the split's memory: uint8 as bytes, anything floating as float32
 * (HDF5 converts), checked to be finite. */
static dpt_status read_x(dpt_dataset *ds, hid_t dset, const h5_src *src, const char *name) {
    if (ds->type == DPT_SAMPLES_U8) {
        if (H5Dread(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->x_u8) < 0)
            return dpt_errorf(DPT_EHDF5, "%s: cannot read %s", src->path, name);
        return DPT_OK;
    }
    if (H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->x_f32) < 0)
        return dpt_errorf(DPT_EHDF5, "%s: cannot read %s as float32", src->path, name);
    uint64_t n = (uint64_t)dpt_dataset_sample_numel(ds) * (uint64_t)ds->N;
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(ds->x_f32[i]))
            return dpt_errorf(DPT_ENONFINITE, "%s: %s: sample %llu has a non-finite value",
                              src->path, name,
                              (unsigned long long)(i / (uint64_t)dpt_dataset_sample_numel(ds)));
    return DPT_OK;
}

/* Labels as int64 (HDF5 converts any integer type), checked against [0, K) when K > 0 and
 * against >= 0 otherwise; *max receives the largest label. */
static dpt_status read_y(dpt_dataset *ds, const h5_src *src, const char *name, int64_t K,
                         int64_t *max) {
    hid_t dset = -1, space = -1, type = -1;
    int64_t *tmp = NULL;
    dpt_status st = open_dset(&dset, src, name);
    if (st != DPT_OK)
        return st;
    space = H5Dget_space(dset);
    type = H5Dget_type(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t n = 0;
    if (rank != 1) {
        st = dpt_errorf(DPT_ESHAPE, "%s: %s has rank %d (expected 1: (N))", src->path, name, rank);
        goto out;
    }
    H5Sget_simple_extent_dims(space, &n, NULL);
    if ((int64_t)n != ds->N) {
        st = dpt_errorf(DPT_ESHAPE, "%s: %s has %llu labels for %lld samples", src->path, name,
                        (unsigned long long)n, (long long)ds->N);
        goto out;
    }
    if (H5Tget_class(type) != H5T_INTEGER) {
        st = dpt_errorf(DPT_EFORMAT, "%s: %s must be of an integer type", src->path, name);
        goto out;
    }
    tmp = dpt_alloc_aligned(dpt_size_mul((size_t)n, sizeof(int64_t)));
    if (!tmp) {
        st = DPT_ENOMEM;
        goto out;
    }
    if (H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0) {
        st = dpt_errorf(DPT_EHDF5, "%s: cannot read %s", src->path, name);
        goto out;
    }
    *max = 0;
    for (int64_t i = 0; i < ds->N; i++) {
        if (tmp[i] < 0 || (K > 0 && tmp[i] >= K) || tmp[i] >= DPT_MAX_CLASSES) {
            if (K > 0 || tmp[i] >= DPT_MAX_CLASSES)
                st =
                    dpt_errorf(DPT_ERANGE, "%s: %s: label %lld at sample %lld is outside [0, %lld)",
                               src->path, name, (long long)tmp[i], (long long)i,
                               (long long)(K > 0 ? K : DPT_MAX_CLASSES));
            else
                st = dpt_errorf(DPT_ERANGE, "%s: %s: label %lld at sample %lld is negative",
                                src->path, name, (long long)tmp[i], (long long)i);
            goto out;
        }
        ds->y[i] = (int32_t)tmp[i];
        if (tmp[i] > *max)
            *max = tmp[i];
    }
out:
    dpt_free_aligned(tmp);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(dset);
    return st;
}

/* K: the caller's class count (0: none) in, the class count to check labels against out. */
static dpt_status read_n_classes(const h5_src *src, int64_t *K) {
    if (H5Aexists(src->file, "n_classes") <= 0)
        return DPT_OK;
    hid_t a = H5Aopen(src->file, "n_classes", H5P_DEFAULT), sp = a >= 0 ? H5Aget_space(a) : -1;
    /* one value: H5Aread would write every element of a longer attribute into v */
    hssize_t npoints = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    long long v = 0;
    herr_t rc = a >= 0 && npoints == 1 ? H5Aread(a, H5T_NATIVE_LLONG, &v) : -1;
    if (a >= 0)
        H5Aclose(a);
    if (rc < 0 || v < 1 || v > DPT_MAX_CLASSES)
        return dpt_errorf(DPT_EFORMAT, "%s: attribute n_classes must be an integer in [1, %d]",
                          src->path, DPT_MAX_CLASSES);
    if (*K > 0 && v != *K)
        return dpt_errorf(DPT_EFORMAT,
                          "%s: attribute n_classes is %lld but the model has %lld "
                          "classes",
                          src->path, v, (long long)*K);
    *K = v;
    return DPT_OK;
}

/* Opens x of one split and checks its shape and type, and the bytes it will take in memory
 * (stored as the file holds it unless `streamed`, plus int32 labels and the int64 label buffer
 * of read_y), before anything is allocated; its geometry goes into ds. *dset stays open for
 * read_x. */
static dpt_status open_split(dpt_dataset *ds, hid_t *dset, const h5_src *src, const char *xname,
                             int streamed) {
    x_info xi;
    *dset = -1;
    dpt_status st = open_dset(dset, src, xname);
    if (st != DPT_OK)
        return st;
    st = read_x_info(&xi, *dset, src, xname);
    if (st == DPT_OK) {
        uint64_t numel = dpt__data_mul(
            dpt__data_mul(dpt__data_mul((uint64_t)xi.N, (uint64_t)xi.C), (uint64_t)xi.D),
            dpt__data_mul((uint64_t)xi.H, (uint64_t)xi.W));
        uint64_t bytes = streamed ? 0 : dpt__data_mul(numel, xi.is_u8 ? 1 : 4);
        bytes = bytes > UINT64_MAX - 12 * (uint64_t)xi.N ? UINT64_MAX : bytes + 12 * (uint64_t)xi.N;
        char what[64];
        snprintf(what, sizeof what, "%s", xname);
        st = dpt__data_check_memory(src->path, what, bytes, dpt__data_mem_available());
    }
    if (st == DPT_OK) {
        ds->N = xi.N, ds->C = xi.C, ds->D = xi.D, ds->H = xi.H, ds->W = xi.W;
        ds->sdims = xi.sdims;
        ds->K = 1;
        ds->type = xi.is_u8 ? DPT_SAMPLES_U8 : DPT_SAMPLES_F32;
        ds->streamed = streamed;
    }
    return st;
}

/* 1 if the HDF5 signature is at offset 0, 512, 1024, 2048, ... (where a user block may push the
 * superblock), so a file HDF5 cannot open is truncated or corrupt rather than something else. */
static int has_hdf5_signature(const char *path) {
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int found = 0;
    for (long off = 0; !found && off >= 0 && off < (1L << 40); off = off ? 2 * off : 512) {
        unsigned char b[8];
        if (fseek(f, off, SEEK_SET) != 0 || fread(b, 1, 8, f) != 8)
            break;
        found = memcmp(b, sig, 8) == 0;
    }
    fclose(f);
    return found;
}

dpt_status dpt__hdf5_load(dpt_data *d, const char *path, int64_t K, const dpt_data_opts *o) {
    memset(d, 0, sizeof *d);
    snprintf(d->source, sizeof d->source, "%s", path);
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    char name[80];
    h5_src src = {.file = -1, .path = dpt__data_short(name, sizeof name, path)};
    hid_t xtrain = -1, xtest = -1;
    dpt_status st = dpt__data_check_file(path);
    if (st != DPT_OK)
        goto out;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        st = dpt_errorf(DPT_EIO, "%s: cannot open: %s", src.path, strerror(errno));
        goto out;
    }
    fclose(probe);
    if (!has_hdf5_signature(path)) {
        st = dpt_errorf(DPT_EFORMAT, "%s%s: not an HDF5 file", o && o->stream_train ? "--stream: "
                                                                                    : "",
                        src.path);
        goto out;
    }
    src.file = dpt__h5_open_read(path);
    if (src.file < 0) {
        st = dpt_errorf(DPT_EFORMAT, "%s: truncated or corrupt HDF5 file", src.path);
        goto out;
    }
    haddr_t eoa = HADDR_UNDEF;
    hsize_t fsize = 0;
    if (H5Fget_eoa(src.file, &eoa) >= 0 && eoa != HADDR_UNDEF &&
        H5Fget_filesize(src.file, &fsize) >= 0 && fsize < eoa) {
        st =
            dpt_errorf(DPT_EFORMAT, "%s: truncated HDF5 file: %llu bytes, the superblock says %llu",
                       src.path, (unsigned long long)fsize, (unsigned long long)eoa);
        goto out;
    }
    int64_t max_train = 0, max_test = 0;
    if ((st = read_n_classes(&src, &K)) != DPT_OK)
        goto out;
    d->classes_declared = K > 0;
    /* Every shape first, then one block for both splits, then the bodies. */
    int stream = o && o->stream_train;
    if ((st = open_split(&d->train, &xtrain, &src, "/train/x", stream)) != DPT_OK)
        goto out;
    if ((st = open_split(&d->test, &xtest, &src, "/test/x", 0)) != DPT_OK)
        goto out;
    const dpt_dataset *a = &d->train, *b = &d->test;
    if (a->C != b->C || a->D != b->D || a->H != b->H || a->W != b->W || a->sdims != b->sdims) {
        char sa[96], sb[96];
        dpt_shape ta = dpt_dataset_batch_shape(a, a->N), tb = dpt_dataset_batch_shape(b, b->N);
        dpt_shape_format(&ta, sa, sizeof sa);
        dpt_shape_format(&tb, sb, sizeof sb);
        st = dpt_errorf(DPT_ESHAPE, "%s: /test/x %s and /train/x %s have different samples",
                        src.path, sb, sa);
        goto out;
    }
    if ((st = dpt__data_alloc_block(d, o)) != DPT_OK)
        goto out;
    if ((!stream && (st = read_x(&d->train, xtrain, &src, "/train/x")) != DPT_OK) ||
        (st = read_y(&d->train, &src, "/train/y", K, &max_train)) != DPT_OK ||
        (st = read_x(&d->test, xtest, &src, "/test/x")) != DPT_OK ||
        (st = read_y(&d->test, &src, "/test/y", K, &max_test)) != DPT_OK)
        goto out;
    if (K == 0)
        K = (max_train > max_test ? max_train : max_test) + 1;
    d->train.K = d->test.K = K;
out:
    if (xtrain >= 0)
        H5Dclose(xtrain);
    if (xtest >= 0)
        H5Dclose(xtest);
    if (src.file >= 0)
        H5Fclose(src.file);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return st;
}

dpt_status dpt_hdf5_dataset_load(dpt_data *d, const char *path, int64_t K) {
    dpt_status st = dpt__hdf5_load(d, path, K, NULL);
    if (st == DPT_OK)
        st = dpt__data_seal(d);
    if (st != DPT_OK)
        dpt_data_free(d);
    return st;
}
