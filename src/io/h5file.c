/* Atomic HDF5 writer and validating reader (io): NAME.tmp, fsync, rename; HDF5 errors become
 * dpt_status messages naming the file and object. Knows nothing of models or training. */
#include "dpt/h5file.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- writer ---------------------------------------------------------------------------------- */

dpt_status dpt_h5w_open(dpt_h5w *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->file = -1;
    quiet_hdf5();
    if (strlen(path) >= sizeof w->path)
        return w->st = dpt_errorf(DPT_EINVAL, "%s: path too long", path);
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST);
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w->file < 0)
        return w->st = dpt_errorf(DPT_EIO, "%s: cannot create: %s", w->tmp,
                                  errno ? strerror(errno) : "HDF5 error");
    return DPT_OK;
}

/* Creates the groups on the way to `obj` (not `obj` itself). */
static dpt_status make_parents(dpt_h5w *w, const char *obj) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", obj);
    for (char *p = buf + (buf[0] == '/'); (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (H5Lexists(w->file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(w->file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0)
                return w->st = dpt_errorf(DPT_EHDF5, "%s: cannot create group %s", w->tmp, buf);
            H5Gclose(g);
        }
        *p = '/';
    }
    return DPT_OK;
}

dpt_status dpt_h5w_group(dpt_h5w *w, const char *obj) {
    if (w->st != DPT_OK)
        return w->st;
    if (make_parents(w, obj) != DPT_OK)
        return w->st;
    if (H5Lexists(w->file, obj, H5P_DEFAULT) > 0)
        return DPT_OK;
    hid_t g = H5Gcreate2(w->file, obj, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return w->st = dpt_errorf(DPT_EHDF5, "%s: cannot create group %s", w->tmp, obj);
    H5Gclose(g);
    return DPT_OK;
}

/* Chunked layout with the Fletcher32 filter, so a flipped bit fails the read instead of loading
 * silently (filters need chunks). Chunks are whole rows of at most ~1 MiB: small datasets are one
 * chunk. Scalars and empty datasets cannot be chunked and stay contiguous (nothing to check or
 * a single attribute-like value). */
static hid_t checksummed_layout(int ndim, const hsize_t *hd, size_t elem) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[8], row = elem;
    for (int i = 0; i < ndim; i++) {
        if (hd[i] == 0)
            return dcpl;
        chunk[i] = hd[i];
        if (i > 0)
            row *= hd[i];
    }
    if (ndim == 0)
        return dcpl;
    hsize_t rows = row >= ((hsize_t)1 << 20) ? 1 : ((hsize_t)1 << 20) / row;
    chunk[0] = hd[0] < rows ? hd[0] : rows;
    /* a single row larger than 4 GiB cannot be one chunk: keep it unfiltered */
    if (row * chunk[0] < ((hsize_t)1 << 32) && H5Pset_chunk(dcpl, ndim, chunk) >= 0)
        H5Pset_fletcher32(dcpl);
    return dcpl;
}

static dpt_status write_dataset(dpt_h5w *w, const char *obj, hid_t filetype, hid_t memtype,
                                const void *data, int ndim, const int64_t *dims) {
    if (w->st != DPT_OK)
        return w->st;
    if (make_parents(w, obj) != DPT_OK)
        return w->st;
    hsize_t hd[8];
    DPT_ASSERT(ndim >= 0 && ndim <= 8);
    for (int i = 0; i < ndim; i++)
        hd[i] = (hsize_t)dims[i];
    hid_t sp = ndim ? H5Screate_simple(ndim, hd, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = checksummed_layout(ndim, hd, H5Tget_size(filetype));
    hid_t ds = H5Dcreate2(w->file, obj, filetype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    errno = 0; /* a failed write's errno (a full disk) is HDF5's file driver's */
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    int err = errno;
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(sp);
    if (rc < 0)
        return w->st = dpt_errorf(DPT_EIO, "%s: cannot write dataset %s: %s", w->tmp, obj,
                                  err ? strerror(err) : "HDF5 error");
    return DPT_OK;
}

dpt_status dpt_h5w_f32(dpt_h5w *w, const char *obj, const float *data, int ndim,
                       const int64_t *dims) {
    return write_dataset(w, obj, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, dims);
}

dpt_status dpt_h5w_f64(dpt_h5w *w, const char *obj, const double *data, int ndim,
                       const int64_t *dims) {
    return write_dataset(w, obj, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, ndim, dims);
}

dpt_status dpt_h5w_i64(dpt_h5w *w, const char *obj, const int64_t *data, int ndim,
                       const int64_t *dims) {
    return write_dataset(w, obj, H5T_STD_I64LE, H5T_NATIVE_INT64, data, ndim, dims);
}

dpt_status dpt_h5w_u32(dpt_h5w *w, const char *obj, const uint32_t *data, int ndim,
                       const int64_t *dims) {
    return write_dataset(w, obj, H5T_STD_U32LE, H5T_NATIVE_UINT32, data, ndim, dims);
}

dpt_status dpt_h5w_str(dpt_h5w *w, const char *obj, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    dpt_status st = write_dataset(w, obj, t, t, value, 0, NULL);
    H5Tclose(t);
    return st;
}

static dpt_status write_attr(dpt_h5w *w, const char *obj, const char *name, hid_t filetype,
                             hid_t memtype, const void *value) {
    if (w->st != DPT_OK)
        return w->st;
    hid_t o = H5Oopen(w->file, obj, H5P_DEFAULT);
    if (o < 0)
        return w->st = dpt_errorf(DPT_EHDF5, "%s: no object %s for attribute %s", w->tmp, obj,
                                  name);
    if (H5Aexists(o, name) > 0)
        H5Adelete(o, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT);
    errno = 0;
    herr_t rc = a < 0 ? -1 : H5Awrite(a, memtype, value);
    int err = errno;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    if (rc < 0)
        return w->st = dpt_errorf(DPT_EIO, "%s: cannot write attribute %s of %s: %s", w->tmp,
                                  name, obj, err ? strerror(err) : "HDF5 error");
    return DPT_OK;
}

dpt_status dpt_h5w_attr_str(dpt_h5w *w, const char *obj, const char *name, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    dpt_status st = write_attr(w, obj, name, t, t, value);
    H5Tclose(t);
    return st;
}

dpt_status dpt_h5w_attr_i64(dpt_h5w *w, const char *obj, const char *name, int64_t value) {
    return write_attr(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

dpt_status dpt_h5w_attr_f64(dpt_h5w *w, const char *obj, const char *name, double value) {
    return write_attr(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

static dpt_status fsync_path(const char *path, int directory) {
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return dpt_errorf(DPT_EIO, "%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return dpt_errorf(DPT_EIO, "%s: fsync failed: %s", path, strerror(err));
    return DPT_OK;
}

dpt_status dpt_h5w_close(dpt_h5w *w, int keep) {
    if (w->file >= 0 && H5Fclose(w->file) < 0 && w->st == DPT_OK)
        w->st = dpt_errorf(DPT_EIO, "%s: cannot close", w->tmp);
    w->file = -1;
    if (w->st == DPT_OK && keep) {
        dpt_status st = fsync_path(w->tmp, 0);
        if (st == DPT_OK && rename(w->tmp, w->path) != 0)
            st = dpt_errorf(DPT_EIO, "%s: cannot rename to %s: %s", w->tmp, w->path,
                            strerror(errno));
        if (st == DPT_OK) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", w->path);
            st = fsync_path(dirname(dir), 1);
        }
        w->st = st;
    }
    if (w->st != DPT_OK || !keep)
        unlink(w->tmp);
    return w->st;
}

/* ---- reader ---------------------------------------------------------------------------------- */

static struct {
    const char *name;
    const void *buf;
    size_t size;
} test_image;

void dpt__h5_set_file_image(const char *name, const void *buf, size_t size) {
    test_image.name = name;
    test_image.buf = buf;
    test_image.size = size;
}

int64_t dpt__h5_open_read(const char *path) {
    quiet_hdf5();
    if (!test_image.name || strcmp(path, test_image.name) != 0)
        return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    /* the core driver keeps the file in memory; no backing store: nothing is ever written. It
     * refuses an image whose name exists on disk ("file already exists"), and `path` exists (the
     * readers' own checks look at it), so the image is opened under a name below it, which no
     * file has when `path` is a file. */
    char name[4096 + 16];
    snprintf(name, sizeof name, "%s/(file image)", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 &&
        H5Pset_file_image(fapl, (void *)test_image.buf, test_image.size) >= 0)
        f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return f;
}

dpt_status dpt_h5r_open(dpt_h5r *r, const char *path) {
    memset(r, 0, sizeof *r);
    quiet_hdf5();
    snprintf(r->path, sizeof r->path, "%s", path);
    if (access(path, R_OK) != 0) {
        r->file = -1;
        return dpt_errorf(DPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    r->file = dpt__h5_open_read(path);
    if (r->file < 0)
        return dpt_errorf(DPT_EFORMAT, "%s: not an HDF5 file (or truncated/corrupt)", path);
    return DPT_OK;
}

void dpt_h5r_close(dpt_h5r *r) {
    if (r->file >= 0)
        H5Fclose(r->file);
    r->file = -1;
}

int dpt_h5r_exists(dpt_h5r *r, const char *obj) {
    /* H5Lexists fails on a missing intermediate group; check each prefix. */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", obj);
    for (char *p = buf + (buf[0] == '/'); (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (H5Lexists(r->file, buf, H5P_DEFAULT) <= 0)
            return 0;
        *p = '/';
    }
    return H5Lexists(r->file, obj, H5P_DEFAULT) > 0;
}

int dpt__h5_dataset_stored(int64_t dataset) {
    const hid_t ds = (hid_t)dataset;
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds), file = H5Iget_file_id(ds);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t elem = ft < 0 ? 0 : H5Tget_size(ft);
    int vlen = ft < 0 || H5Tdetect_class(ft, H5T_VLEN) != 0 || H5Tis_variable_str(ft) != 0;
    hsize_t file_size = 0, stored = H5Dget_storage_size(ds);
    int ok = n >= 0 && elem > 0 && file >= 0 && H5Fget_filesize(file, &file_size) >= 0;
    /* variable-length elements live in the global heap; what is stored is only their handles */
    if (ok && !vlen)
        ok = (uint64_t)n <= UINT64_MAX / elem && (uint64_t)n * elem <= stored &&
             stored <= file_size;
    if (file >= 0)
        H5Fclose(file);
    if (sp >= 0)
        H5Sclose(sp);
    if (ft >= 0)
        H5Tclose(ft);
    return ok;
}

dpt_status dpt_h5r_shape(dpt_h5r *r, const char *obj, int *ndim, int64_t dims[8]) {
    if (!dpt_h5r_exists(r, obj))
        return dpt_errorf(DPT_EFORMAT, "%s: missing dataset %s", r->path, obj);
    hid_t ds = H5Dopen2(r->file, obj, H5P_DEFAULT);
    if (ds >= 0 && !dpt__h5_dataset_stored(ds)) {
        H5Dclose(ds);
        return dpt_errorf(DPT_EFORMAT, "%s: %s declares more data than the file stores "
                                       "(truncated or corrupt)",
                          r->path, obj);
    }
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    hsize_t hd[8] = {0};
    if (nd >= 0 && nd <= 8)
        H5Sget_simple_extent_dims(sp, hd, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    if (ds >= 0)
        H5Dclose(ds);
    if (nd < 0 || nd > 8)
        return dpt_errorf(DPT_EFORMAT, "%s: %s is not a readable dataset", r->path, obj);
    *ndim = nd;
    for (int i = 0; i < nd; i++)
        dims[i] = (int64_t)hd[i];
    return DPT_OK;
}

dpt_status dpt_h5r_check_count(dpt_h5r *r, const char *obj, int64_t count) {
    int nd;
    int64_t dims[8];
    dpt_status st = dpt_h5r_shape(r, obj, &nd, dims);
    if (st != DPT_OK)
        return st;
    /* extents from the file: a product that wraps around could equal count */
    uint64_t n = 1;
    for (int i = 0; i < nd; i++)
        n = dims[i] != 0 && n > UINT64_MAX / (uint64_t)dims[i] ? UINT64_MAX : n * (uint64_t)dims[i];
    if (n != (uint64_t)count)
        return dpt_errorf(DPT_ESHAPE, "%s: %s has %llu elements, expected %lld", r->path, obj,
                          (unsigned long long)n, (long long)count);
    return DPT_OK;
}

static dpt_status read_dataset(dpt_h5r *r, const char *obj, hid_t memtype, void *out,
                               int64_t count) {
    dpt_status st = dpt_h5r_check_count(r, obj, count);
    if (st != DPT_OK)
        return st;
    hid_t ds = H5Dopen2(r->file, obj, H5P_DEFAULT);
    herr_t rc = H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    int checksummed = 0;
    if (rc < 0) {
        /* files written before the filter (and other writers' files) read as before; a failed
         * read of a checksummed dataset is, in practice, a checksum mismatch */
        hid_t dcpl = H5Dget_create_plist(ds);
        unsigned flags;
        size_t nelem = 0;
        checksummed = dcpl >= 0 && H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags,
                                                        &nelem, NULL, 0, NULL, NULL) >= 0;
        if (dcpl >= 0)
            H5Pclose(dcpl);
    }
    H5Dclose(ds);
    if (rc < 0 && checksummed)
        return dpt_errorf(DPT_EFORMAT, "%s: checksum mismatch in %s (corrupt file)", r->path, obj);
    if (rc < 0)
        return dpt_errorf(DPT_EFORMAT, "%s: cannot read %s (corrupt file?)", r->path, obj);
    return DPT_OK;
}

dpt_status dpt_h5r_f32(dpt_h5r *r, const char *obj, float *out, int64_t count) {
    return read_dataset(r, obj, H5T_NATIVE_FLOAT, out, count);
}

dpt_status dpt_h5r_f64(dpt_h5r *r, const char *obj, double *out, int64_t count) {
    return read_dataset(r, obj, H5T_NATIVE_DOUBLE, out, count);
}

dpt_status dpt_h5r_i64(dpt_h5r *r, const char *obj, int64_t *out, int64_t count) {
    return read_dataset(r, obj, H5T_NATIVE_INT64, out, count);
}

dpt_status dpt_h5r_u32(dpt_h5r *r, const char *obj, uint32_t *out, int64_t count) {
    return read_dataset(r, obj, H5T_NATIVE_UINT32, out, count);
}

int dpt_h5r_attr_exists(dpt_h5r *r, const char *obj, const char *name) {
    if (strcmp(obj, "/") != 0 && !dpt_h5r_exists(r, obj))
        return 0;
    return H5Aexists_by_name(r->file, obj, name, H5P_DEFAULT) > 0;
}

static dpt_status open_attr(dpt_h5r *r, const char *obj, const char *name, hid_t *a) {
    if (!dpt_h5r_attr_exists(r, obj, name))
        return dpt_errorf(DPT_EFORMAT, "%s: missing attribute %s of %s", r->path, name, obj);
    *a = H5Aopen_by_name(r->file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0)
        return dpt_errorf(DPT_EFORMAT, "%s: cannot open attribute %s of %s", r->path, name, obj);
    return DPT_OK;
}

dpt_status dpt_h5r_attr_strdup(dpt_h5r *r, const char *obj, const char *name, char **out) {
    hid_t a;
    dpt_status st = open_attr(r, obj, name, &a);
    if (st != DPT_OK)
        return st;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    /* one string: H5Aread would write every element of a longer attribute into buf */
    hssize_t npoints = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) > 0 || npoints != 1) {
        H5Tclose(ft);
        H5Aclose(a);
        return dpt_errorf(DPT_EFORMAT, "%s: attribute %s of %s is not one fixed-length string",
                          r->path, name, obj);
    }
    /* the declared length against what the file stores, before it is allocated */
    if (H5Tget_size(ft) > H5Aget_storage_size(a)) {
        H5Tclose(ft);
        H5Aclose(a);
        return dpt_errorf(DPT_EFORMAT, "%s: attribute %s of %s declares more than the file "
                                       "stores (truncated or corrupt)",
                          r->path, name, obj);
    }
    size_t n = H5Tget_size(ft) + 1;
    H5Tclose(ft);
    char *buf = malloc(n);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    herr_t rc = buf ? H5Aread(a, mt, buf) : -1;
    H5Tclose(mt);
    H5Aclose(a);
    if (rc < 0) {
        free(buf);
        return dpt_errorf(DPT_EFORMAT, "%s: cannot read attribute %s of %s", r->path, name, obj);
    }
    buf[n - 1] = '\0';
    *out = buf;
    return DPT_OK;
}

dpt_status dpt_h5r_attr_str(dpt_h5r *r, const char *obj, const char *name, char *buf, size_t n) {
    char *s = NULL;
    dpt_status st = dpt_h5r_attr_strdup(r, obj, name, &s);
    if (st == DPT_OK) {
        snprintf(buf, n, "%s", s);
        free(s);
    }
    return st;
}

static dpt_status read_attr(dpt_h5r *r, const char *obj, const char *name, hid_t memtype,
                            void *out) {
    hid_t a;
    dpt_status st = open_attr(r, obj, name, &a);
    if (st != DPT_OK)
        return st;
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    herr_t rc = n == 1 ? H5Aread(a, memtype, out) : -1;
    H5Aclose(a);
    if (rc < 0)
        return dpt_errorf(DPT_EFORMAT, "%s: attribute %s of %s is not a readable scalar", r->path,
                          name, obj);
    return DPT_OK;
}

dpt_status dpt_h5r_attr_i64(dpt_h5r *r, const char *obj, const char *name, int64_t *out) {
    return read_attr(r, obj, name, H5T_NATIVE_INT64, out);
}

dpt_status dpt_h5r_attr_f64(dpt_h5r *r, const char *obj, const char *name, double *out) {
    return read_attr(r, obj, name, H5T_NATIVE_DOUBLE, out);
}
