/* Shared by the HDF5 targets (fuzz_hdf5_dataset, fuzz_checkpoint): the fuzz input is an edit
 * script applied through the HDF5 API to a valid base file held in memory, and the edited file's
 * image is what the reader under test opens (dpt__h5_set_file_image).
 *
 * Why not mutate the file's bytes: libhdf5 1.10.8 (Debian 12) itself overflows its buffers on
 * malformed metadata within seconds of byte-level fuzzing (H5O__attr_exists, decoding an
 * attribute message), and we can neither fix nor avoid that in dptrain. Files written by HDF5
 * are well formed, so what is exercised is dptrain's reading of them: every object and attribute
 * missing, of another type (integers of every width and byte order, floats, fixed and
 * variable-length strings, opaque, compound, array, enum, bitfield), of another rank or extent
 * (scalar, null, up to rank 6, extents up to 2^62 left unwritten), with any values, a group or a
 * dangling soft link where a dataset should be, flipped bits in a dataset's stored numbers (a
 * checksum mismatch for Fletcher32 chunks, a corrupt deflate stream), and the file cut short.
 *
 * Script: byte 0 picks the base file; then operations, one byte of opcode and its operands,
 * until the input ends (a truncated operand reads as zeros). Names are indexes into the target's
 * fixed name table followed by every object (and attribute) the base files hold. */
#ifndef DPT_FUZZ_H5_H
#define DPT_FUZZ_H5_H

#include "fuzz_common.h" /* first: it defines _GNU_SOURCE */

#include <string.h>

#include "dpt/h5file.h"

/* ---- reading the script ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint8_t fin_u8(fuzz_in *in) {
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static inline unsigned fin_u16(fuzz_in *in) {
    unsigned hi = fin_u8(in);
    return hi << 8 | fin_u8(in);
}

/* n bytes of the script into out, zeros once it has ended. */
static inline void fin_bytes(fuzz_in *in, void *out, size_t n) {
    size_t k = n < in->n ? n : in->n;
    memcpy(out, in->p, k);
    memset((char *)out + k, 0, n - k);
    in->p += k, in->n -= k;
}

/* An extent: mostly 0 to 5, sometimes one that no reader can hold. */
static inline hsize_t fin_extent(fuzz_in *in) {
    /* clang-format off */
    static const hsize_t big[16] = {6, 7, 16, 64, 1000, 65536, 1u << 20, (1u << 31) - 1,
                                    1ull << 31, 1ull << 32, (1ull << 32) + 1, 1ull << 40,
                                    1ull << 53, 1ull << 62, 3, 1};
    /* clang-format on */
    uint8_t b = fin_u8(in);
    return b < 0xf0 ? b % 6 : big[b & 15];
}

/* ---- the edit script's operations ---- */

enum {
    FUZZ_OP_DELETE,      /* name: H5Ldelete */
    FUZZ_OP_DATASET,     /* name, dataset spec: replace (or create) a dataset */
    FUZZ_OP_GROUP,       /* name: replace (or create) a group */
    FUZZ_OP_SOFT_LINK,   /* name, name: replace by a soft link to the second (may dangle) */
    FUZZ_OP_WRITE,       /* name, values: overwrite an existing dataset's values */
    FUZZ_OP_ATTR,        /* attribute, attribute spec: replace (or create) an attribute */
    FUZZ_OP_ATTR_DELETE, /* attribute */
    FUZZ_OP_ATTR_WRITE,  /* attribute, values: overwrite an existing attribute's values */
    FUZZ_OP_CORRUPT,     /* name, u16 offset, u8 mask: flip bits in the stored data */
    FUZZ_OP_TRUNCATE,    /* u8 fraction: cut the file to fraction/256 of its size */
    FUZZ_OPS
};
/* Type codes of a spec (fin_type). */
/* clang-format off */
enum {
    FUZZ_T_U8, FUZZ_T_I8, FUZZ_T_U16BE, FUZZ_T_I16, FUZZ_T_I32, FUZZ_T_U32BE, FUZZ_T_I64,
    FUZZ_T_I64BE, FUZZ_T_U64, FUZZ_T_F32, FUZZ_T_F64, FUZZ_T_F32BE, FUZZ_T_F64BE,
    FUZZ_T_STRING, /* then u8: size - 1 (mod 64), u8: padding and character set */
    FUZZ_T_VLEN_STRING,
    FUZZ_T_OTHER, /* then u8: opaque, compound, array, enum, bitfield */
    FUZZ_TYPES
};
/* clang-format on */
/* Dataspace codes (fin_space): 0 scalar, 1 null, r + 1 for rank r (1 to 6), then r extents. */
#define FUZZ_SPACE_SCALAR 0
#define FUZZ_SPACE_NULL 1
#define FUZZ_SPACE_RANK(r) ((r) + 1)
/* Layout bits of a dataset spec. */
enum { FUZZ_L_CHUNKED = 1, FUZZ_L_FLETCHER = 2, FUZZ_L_DEFLATE = 4, FUZZ_L_COMPACT = 8 };

/* ---- names ---- */

#define FUZZ_MAX_NAMES 256
typedef struct {
    char obj[96], attr[64]; /* attr "" for an object */
} fuzz_name;

typedef struct {
    fuzz_name objs[FUZZ_MAX_NAMES], attrs[FUZZ_MAX_NAMES];
    int n_objs, n_attrs;
} fuzz_names;

static inline void fuzz_names_add(fuzz_name *list, int *n, const char *obj, const char *attr) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(list[i].obj, obj) && !strcmp(list[i].attr, attr))
            return;
    if (*n == FUZZ_MAX_NAMES || strlen(obj) >= sizeof list->obj ||
        strlen(attr) >= sizeof list->attr)
        return;
    snprintf(list[*n].obj, sizeof list->obj, "%s", obj);
    snprintf(list[*n].attr, sizeof list->attr, "%s", attr);
    (*n)++;
}

typedef struct {
    fuzz_names *names;
    const char *obj;
} collect_ctx;

static inline herr_t collect_attr(hid_t loc, const char *name, const H5A_info_t *info, void *ctx) {
    (void)loc, (void)info;
    collect_ctx *c = ctx;
    fuzz_names_add(c->names->attrs, &c->names->n_attrs, c->obj, name);
    return 0;
}

static inline herr_t collect_obj(hid_t loc, const char *name, const H5O_info_t *info, void *ctx) {
    if (info->type != H5O_TYPE_GROUP && info->type != H5O_TYPE_DATASET)
        return 0;
    collect_ctx c = {.names = ctx, .obj = strcmp(name, ".") == 0 ? "/" : name};
    fuzz_names_add(c.names->objs, &c.names->n_objs, c.obj, "");
    H5Aiterate_by_name(loc, name, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_attr, &c, H5P_DEFAULT);
    return 0;
}

/* Every group, dataset and attribute of an open file, after the ones already listed. */
static inline void fuzz_names_collect(fuzz_names *names, hid_t file) {
    H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, collect_obj, names, H5O_INFO_BASIC);
}

static inline const fuzz_name *fin_obj(fuzz_in *in, const fuzz_names *names) {
    return &names->objs[fin_u8(in) % names->n_objs];
}

static inline const fuzz_name *fin_attr(fuzz_in *in, const fuzz_names *names) {
    return &names->attrs[fin_u8(in) % names->n_attrs];
}

/* ---- building types, dataspaces and values ---- */

static inline hid_t fin_type(fuzz_in *in) {
    static const hid_t *const fixed[] = {
        &H5T_STD_U8LE_g,   &H5T_STD_I8LE_g,   &H5T_STD_U16BE_g, &H5T_STD_I16LE_g, &H5T_STD_I32LE_g,
        &H5T_STD_U32BE_g,  &H5T_STD_I64LE_g,  &H5T_STD_I64BE_g, &H5T_STD_U64LE_g, &H5T_IEEE_F32LE_g,
        &H5T_IEEE_F64LE_g, &H5T_IEEE_F32BE_g, &H5T_IEEE_F64BE_g};
    unsigned code = fin_u8(in) % FUZZ_TYPES;
    if (code < FUZZ_T_STRING) {
        H5open(); /* the H5T_* globals are set by the library's initialization */
        return H5Tcopy(*fixed[code]);
    }
    hid_t t = -1;
    if (code == FUZZ_T_STRING || code == FUZZ_T_VLEN_STRING) {
        t = H5Tcopy(H5T_C_S1);
        uint8_t size = fin_u8(in), pad = fin_u8(in);
        H5Tset_size(t, code == FUZZ_T_VLEN_STRING ? H5T_VARIABLE : (size_t)(size % 64) + 1);
        H5Tset_strpad(t, (H5T_str_t)(pad % 3));
        H5Tset_cset(t, pad & 4 ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
        return t;
    }
    switch (fin_u8(in) % 5) {
    case 0:
        t = H5Tcreate(H5T_OPAQUE, 4);
        H5Tset_tag(t, "fuzz");
        return t;
    case 1:
        t = H5Tcreate(H5T_COMPOUND, 12);
        H5Tinsert(t, "a", 0, H5T_STD_I32LE);
        H5Tinsert(t, "b", 4, H5T_IEEE_F64LE);
        return t;
    case 2: {
        hsize_t two = 2;
        return H5Tarray_create2(H5T_STD_I32LE, 1, &two);
    }
    case 3: {
        t = H5Tenum_create(H5T_STD_U8LE);
        unsigned char zero = 0, one = 1;
        H5Tenum_insert(t, "zero", &zero);
        H5Tenum_insert(t, "one", &one);
        return t;
    }
    default:
        return H5Tcopy(H5T_STD_B16LE);
    }
}

/* A dataspace; maxdims unlimited when `chunked` (chunks may then exceed a small extent). */
static inline hid_t fin_space(fuzz_in *in, int chunked) {
    unsigned code = fin_u8(in) % 8;
    if (code == 0)
        return H5Screate(H5S_SCALAR);
    if (code == 1)
        return H5Screate(H5S_NULL);
    int rank = (int)code - 1;
    hsize_t dims[6], maxdims[6];
    for (int i = 0; i < rank; i++)
        dims[i] = fin_extent(in), maxdims[i] = chunked ? H5S_UNLIMITED : dims[i];
    return H5Screate_simple(rank, dims, maxdims);
}

/* Values for `npoints` elements of `type` from the script, written by `write` (H5Dwrite or
 * H5Awrite through the two wrappers below). Large selections are left unwritten (fill value). */
typedef herr_t (*fuzz_write_fn)(hid_t obj, hid_t type, const void *buf);

static inline herr_t write_dataset(hid_t d, hid_t type, const void *buf) {
    return H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
}

static inline herr_t write_attr(hid_t a, hid_t type, const void *buf) {
    return H5Awrite(a, type, buf);
}

static inline void fin_values(fuzz_in *in, hid_t obj, hid_t type, hssize_t npoints,
                              fuzz_write_fn write) {
    size_t size = H5Tget_size(type);
    if (npoints <= 0 || npoints > 4096 || size == 0 || size > 64)
        return;
    if (H5Tis_variable_str(type) > 0) {
        char **strs = calloc((size_t)npoints, sizeof *strs);
        for (hssize_t i = 0; strs && i < npoints; i++) {
            uint8_t len = fin_u8(in);
            if (len == 0xff)
                continue; /* a NULL string */
            if ((strs[i] = malloc(len % 32 + 1u))) {
                fin_bytes(in, strs[i], len % 32);
                strs[i][len % 32] = '\0';
            }
        }
        if (strs)
            write(obj, type, strs);
        for (hssize_t i = 0; strs && i < npoints; i++)
            free(strs[i]);
        free(strs);
        return;
    }
    uint8_t *buf = malloc((size_t)npoints * size);
    if (!buf)
        return;
    fin_bytes(in, buf, (size_t)npoints * size);
    write(obj, type, buf);
    free(buf);
}

static inline hid_t link_create_plist(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

static inline void make_dataset(hid_t file, const char *path, fuzz_in *in) {
    hid_t type = fin_type(in);
    unsigned layout = fin_u8(in);
    int chunked = layout & FUZZ_L_CHUNKED;
    hid_t space = fin_space(in, chunked), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (chunked && rank > 0) {
        hsize_t dims[6], chunk[6];
        H5Sget_simple_extent_dims(space, dims, NULL);
        for (int i = 0; i < rank; i++)
            chunk[i] = dims[i] == 0 ? 1 : dims[i] < 4 ? dims[i] : 4;
        H5Pset_chunk(dcpl, rank, chunk);
        if (layout & FUZZ_L_FLETCHER)
            H5Pset_fletcher32(dcpl);
        if (layout & FUZZ_L_DEFLATE)
            H5Pset_deflate(dcpl, 1);
    } else if (layout & FUZZ_L_COMPACT) {
        H5Pset_layout(dcpl, H5D_COMPACT);
    }
    hid_t lcpl = link_create_plist();
    hid_t d =
        type >= 0 && space >= 0 ? H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT) : -1;
    if (d >= 0) {
        fin_values(in, d, type, H5Sget_simple_extent_npoints(space), write_dataset);
        H5Dclose(d);
    }
    H5Pclose(lcpl), H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
}

/* The object at `path`, opened; -1 if there is none. Attributes are only ever reached through
 * an open object: in HDF5 1.10.8, H5Awrite on an attribute opened by H5Aopen_by_name(file, path)
 * writes into the attribute of that name of the root group (a heap overflow when the sizes
 * differ). */
static inline hid_t open_object(hid_t file, const char *path) {
    if (strcmp(path, "/") != 0 && H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return -1;
    return H5Oopen(file, path, H5P_DEFAULT);
}

/* An attribute `name` of the open object `obj` (none when obj < 0; the spec is read anyway). */
static inline void make_attr(hid_t obj, const char *name, fuzz_in *in) {
    hid_t type = fin_type(in), space = fin_space(in, 0);
    hid_t at = obj >= 0 && type >= 0 && space >= 0
                   ? H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)
                   : -1;
    if (at >= 0) {
        fin_values(in, at, type, H5Sget_simple_extent_npoints(space), write_attr);
        H5Aclose(at);
    }
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
}

/* Where a dataset's first chunk (or its contiguous data) lies in the file; 0 if nowhere or if
 * the dataset holds strings (variable-length ones are stored as heap references). */
static inline void stored_data(hid_t file, const char *path, haddr_t *addr, hsize_t *size) {
    *addr = 0, *size = 0;
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return;
    H5O_info_t info;
    if (H5Oget_info_by_name2(file, path, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        info.type != H5O_TYPE_DATASET)
        return;
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0)
        return;
    /* the stored form of variable-length data is references into HDF5's global heap:
     * metadata, not data */
    hid_t t = H5Dget_type(d);
    int vlen = t < 0 || H5Tdetect_class(t, H5T_VLEN) != 0 || H5Tdetect_class(t, H5T_STRING) != 0;
    if (t >= 0)
        H5Tclose(t);
    hid_t dcpl = vlen ? -1 : H5Dget_create_plist(d);
    H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    hsize_t nchunks = 0;
    if (layout == H5D_CONTIGUOUS) {
        haddr_t a = H5Dget_offset(d);
        if (a != HADDR_UNDEF)
            *addr = a, *size = H5Dget_storage_size(d);
    } else if (layout == H5D_CHUNKED && H5Dget_num_chunks(d, H5S_ALL, &nchunks) >= 0 &&
               nchunks > 0) {
        unsigned mask;
        haddr_t a;
        hsize_t s;
        if (H5Dget_chunk_info(d, H5S_ALL, 0, NULL, &mask, &a, &s) >= 0 && a != HADDR_UNDEF)
            *addr = a, *size = s;
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Dclose(d);
}

/* ---- applying a script ---- */

typedef struct {
    uint8_t *buf;
    size_t size;
} fuzz_image;

/* A file image of `base` with the script's edits, into *out (free out->buf). `scratch` is a name
 * under which the core driver opens the copy (it must not exist on disk). */
static inline void fuzz_h5_edit(fuzz_image *out, const fuzz_image *base, fuzz_in *in,
                                const fuzz_names *names, const char *scratch) {
    out->buf = NULL, out->size = 0;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    H5Pset_file_image(fapl, base->buf, base->size);
    hid_t f = H5Fopen(scratch, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        fprintf(stderr, "fuzz_h5_edit: cannot open the base file\n");
        abort();
    }
    struct {
        const char *obj;
        haddr_t addr;
        hsize_t size;
        unsigned offset, mask;
    } flips[8];
    int n_flips = 0;
    unsigned cut = 256;
    for (int op = 0; op < 32 && in->n > 0; op++) {
        const fuzz_name *a, *b;
        unsigned opcode = fin_u8(in) % FUZZ_OPS;
        switch (opcode) {
        case FUZZ_OP_DELETE:
            a = fin_obj(in, names);
            if (strcmp(a->obj, "/") != 0)
                H5Ldelete(f, a->obj, H5P_DEFAULT);
            break;
        case FUZZ_OP_DATASET:
            a = fin_obj(in, names);
            if (strcmp(a->obj, "/") != 0) {
                H5Ldelete(f, a->obj, H5P_DEFAULT);
                make_dataset(f, a->obj, in);
            }
            break;
        case FUZZ_OP_GROUP:
            a = fin_obj(in, names);
            if (strcmp(a->obj, "/") != 0) {
                H5Ldelete(f, a->obj, H5P_DEFAULT);
                hid_t lcpl = link_create_plist();
                hid_t g = H5Gcreate2(f, a->obj, lcpl, H5P_DEFAULT, H5P_DEFAULT);
                if (g >= 0)
                    H5Gclose(g);
                H5Pclose(lcpl);
            }
            break;
        case FUZZ_OP_SOFT_LINK:
            a = fin_obj(in, names), b = fin_obj(in, names);
            if (strcmp(a->obj, "/") != 0) {
                H5Ldelete(f, a->obj, H5P_DEFAULT);
                char target[sizeof b->obj + 1];
                snprintf(target, sizeof target, "%s%s", b->obj[0] == '/' ? "" : "/", b->obj);
                hid_t lcpl = link_create_plist();
                H5Lcreate_soft(target, f, a->obj, lcpl, H5P_DEFAULT);
                H5Pclose(lcpl);
            }
            break;
        case FUZZ_OP_WRITE: {
            a = fin_obj(in, names);
            H5O_info_t info;
            if (H5Lexists(f, a->obj, H5P_DEFAULT) <= 0 ||
                H5Oget_info_by_name2(f, a->obj, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
                info.type != H5O_TYPE_DATASET)
                break;
            hid_t d = H5Dopen2(f, a->obj, H5P_DEFAULT);
            hid_t t = d >= 0 ? H5Dget_type(d) : -1, s = d >= 0 ? H5Dget_space(d) : -1;
            if (t >= 0 && s >= 0)
                fin_values(in, d, t, H5Sget_simple_extent_npoints(s), write_dataset);
            if (s >= 0)
                H5Sclose(s);
            if (t >= 0)
                H5Tclose(t);
            if (d >= 0)
                H5Dclose(d);
            break;
        }
        case FUZZ_OP_ATTR:
        case FUZZ_OP_ATTR_DELETE: {
            int replace = opcode == FUZZ_OP_ATTR;
            a = fin_attr(in, names);
            hid_t o = open_object(f, a->obj);
            if (o >= 0 && H5Aexists(o, a->attr) > 0)
                H5Adelete(o, a->attr);
            if (replace)
                make_attr(o, a->attr, in);
            if (o >= 0)
                H5Oclose(o);
            break;
        }
        case FUZZ_OP_ATTR_WRITE: {
            a = fin_attr(in, names);
            hid_t o = open_object(f, a->obj);
            hid_t at = o >= 0 && H5Aexists(o, a->attr) > 0 ? H5Aopen(o, a->attr, H5P_DEFAULT) : -1;
            hid_t t = at >= 0 ? H5Aget_type(at) : -1, s = at >= 0 ? H5Aget_space(at) : -1;
            if (t >= 0 && s >= 0)
                fin_values(in, at, t, H5Sget_simple_extent_npoints(s), write_attr);
            if (s >= 0)
                H5Sclose(s);
            if (t >= 0)
                H5Tclose(t);
            if (at >= 0)
                H5Aclose(at);
            if (o >= 0)
                H5Oclose(o);
            break;
        }
        case FUZZ_OP_CORRUPT: /* where the data lies is known once every edit is made */
            a = fin_obj(in, names);
            if (n_flips < 8) {
                flips[n_flips].obj = a->obj;
                flips[n_flips].offset = fin_u16(in);
                flips[n_flips].mask = fin_u8(in) | 1u;
                n_flips++;
            }
            break;
        case FUZZ_OP_TRUNCATE:
            cut = fin_u8(in);
            break;
        }
    }
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    for (int i = 0; i < n_flips; i++)
        stored_data(f, flips[i].obj, &flips[i].addr, &flips[i].size);
    ssize_t size = H5Fget_file_image(f, NULL, 0);
    if (size <= 0 || !(out->buf = malloc((size_t)size)) ||
        H5Fget_file_image(f, out->buf, (size_t)size) != size) {
        fprintf(stderr, "fuzz_h5_edit: cannot take the file image\n");
        abort();
    }
    H5Fclose(f);
    out->size = (size_t)size;
    /* raw data only: a flip in HDF5's own metadata would fuzz libhdf5's parser (see above) */
    for (int i = 0; i < n_flips; i++)
        if (flips[i].size > 0 && flips[i].addr + flips[i].size <= out->size)
            out->buf[flips[i].addr + flips[i].offset % flips[i].size] ^= (uint8_t)flips[i].mask;
    if (cut < 256)
        out->size = out->size * cut / 256;
}

/* The image of a file written with the HDF5 API into memory: `build` fills the open file. */
static inline void fuzz_h5_image_of(fuzz_image *out, void (*build)(hid_t file, const void *ctx),
                                    const void *ctx, const char *scratch) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(scratch, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        fprintf(stderr, "fuzz_h5_image_of: cannot create an in-memory file\n");
        abort();
    }
    build(f, ctx);
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    ssize_t size = H5Fget_file_image(f, NULL, 0);
    out->buf = size > 0 ? malloc((size_t)size) : NULL;
    if (!out->buf || H5Fget_file_image(f, out->buf, (size_t)size) != size)
        abort();
    out->size = (size_t)size;
    H5Fclose(f);
}

/* The names of every object and attribute of the images, after those already in `names`. */
static inline void fuzz_h5_names_of(fuzz_names *names, const fuzz_image *images, int n,
                                    const char *scratch) {
    for (int i = 0; i < n; i++) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_fapl_core(fapl, 1 << 16, 0);
        H5Pset_file_image(fapl, images[i].buf, images[i].size);
        hid_t f = H5Fopen(scratch, H5F_ACC_RDONLY, fapl);
        H5Pclose(fapl);
        if (f < 0)
            abort();
        fuzz_names_collect(names, f);
        H5Fclose(f);
    }
}

#endif
