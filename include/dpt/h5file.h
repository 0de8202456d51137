/* HDF5 files written atomically and read with validation (io). A writer creates NAME.tmp, and
 * only dpt_h5w_commit (after an fsync) renames it to NAME: a crash or a failed write never leaves
 * a half file under the real name. Readers check every shape they are given. All errors come back
 * as dpt_status with a message naming the file and the object; HDF5's own printing is off. */
#ifndef DPT_H5FILE_H
#define DPT_H5FILE_H

#include <stddef.h>
#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t file;       /* hid_t */
    char path[4096];    /* the final name */
    char tmp[4100];     /* path + ".tmp" */
    dpt_status st;      /* first error; later calls do nothing once set */
} dpt_h5w;

/* Opens `path`.tmp for writing (truncating). Check the returned status or w->st. */
dpt_status dpt_h5w_open(dpt_h5w *w, const char *path);
/* Datasets and attributes; intermediate groups in `obj` ("params/00_conv2d/weight") are created.
 * Attributes go on an existing object ("/" for the root). */
dpt_status dpt_h5w_f32(dpt_h5w *w, const char *obj, const float *data, int ndim,
                       const int64_t *dims);
dpt_status dpt_h5w_f64(dpt_h5w *w, const char *obj, const double *data, int ndim,
                       const int64_t *dims);
dpt_status dpt_h5w_i64(dpt_h5w *w, const char *obj, const int64_t *data, int ndim,
                       const int64_t *dims);
dpt_status dpt_h5w_u32(dpt_h5w *w, const char *obj, const uint32_t *data, int ndim,
                       const int64_t *dims);
/* A scalar string dataset (h5py reads it as bytes). */
dpt_status dpt_h5w_str(dpt_h5w *w, const char *obj, const char *value);
dpt_status dpt_h5w_group(dpt_h5w *w, const char *obj);
dpt_status dpt_h5w_attr_str(dpt_h5w *w, const char *obj, const char *name, const char *value);
dpt_status dpt_h5w_attr_i64(dpt_h5w *w, const char *obj, const char *name, int64_t value);
dpt_status dpt_h5w_attr_f64(dpt_h5w *w, const char *obj, const char *name, double value);
/* Closes; on success so far: fsync, rename to the final name, fsync the folder. On any earlier
 * error (or when `keep` is 0): removes the .tmp file and returns the first error. */
dpt_status dpt_h5w_close(dpt_h5w *w, int keep);

typedef struct {
    int64_t file;
    char path[4096];
} dpt_h5r;

dpt_status dpt_h5r_open(dpt_h5r *r, const char *path);
void dpt_h5r_close(dpt_h5r *r);
int dpt_h5r_exists(dpt_h5r *r, const char *obj);
/* Shape of a dataset: rank into *ndim, extents into dims[0..7]. */
dpt_status dpt_h5r_shape(dpt_h5r *r, const char *obj, int *ndim, int64_t dims[8]);
/* DPT_OK when dataset `obj` has exactly `count` elements and the file stores them: check it
 * before allocating a buffer whose size comes from the file. */
dpt_status dpt_h5r_check_count(dpt_h5r *r, const char *obj, int64_t count);
/* Reads a dataset of exactly `count` elements (converted to the memory type). */
dpt_status dpt_h5r_f32(dpt_h5r *r, const char *obj, float *out, int64_t count);
dpt_status dpt_h5r_f64(dpt_h5r *r, const char *obj, double *out, int64_t count);
dpt_status dpt_h5r_i64(dpt_h5r *r, const char *obj, int64_t *out, int64_t count);
dpt_status dpt_h5r_u32(dpt_h5r *r, const char *obj, uint32_t *out, int64_t count);
/* String attribute into buf (truncated to n-1), or a malloc'd copy with dpt_h5r_attr_strdup. */
dpt_status dpt_h5r_attr_str(dpt_h5r *r, const char *obj, const char *name, char *buf, size_t n);
dpt_status dpt_h5r_attr_strdup(dpt_h5r *r, const char *obj, const char *name, char **out);
dpt_status dpt_h5r_attr_i64(dpt_h5r *r, const char *obj, const char *name, int64_t *out);
dpt_status dpt_h5r_attr_f64(dpt_h5r *r, const char *obj, const char *name, double *out);
int dpt_h5r_attr_exists(dpt_h5r *r, const char *obj, const char *name);

/* ---- internal to io and data (dpt__: shared between the HDF5 readers, not an API) ---- */

/* Opens `path` read-only: the HDF5 file id (an hid_t), negative on failure. HDF5's error printing
 * is switched off. dpt_h5r_open and the dataset reader (data/hdf5_dataset.c) both open here. */
int64_t dpt__h5_open_read(const char *path);
/* 1 when the dataset (an hid_t) stores all it declares: its extent times its element size fits
 * in its storage, and its storage in the file, so a read of it allocates no more than the file
 * holds. Variable-length data is stored in the global heap and passes. */
int dpt__h5_dataset_stored(int64_t dataset);
/* Test hook (tests/fuzz): from now on dpt__h5_open_read(name) opens a copy of buf[0..size)
 * through HDF5's core driver instead of the file `name` (checks made on the path itself, such
 * as access(), still see the file). name NULL: no image. Borrows name and buf until the next
 * call; not thread-safe. */
void dpt__h5_set_file_image(const char *name, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
