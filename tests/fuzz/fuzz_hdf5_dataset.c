/* libFuzzer target: the HDF5 dataset reader dpt_hdf5_dataset_load (data/hdf5_dataset.c) on an
 * in-memory file image. The input is an edit script (fuzz_h5.h) applied to one of five valid
 * data set files built at start-up, one per layout of datasets/README.md: uint8 (N, H, W) with
 * n_classes, float32 (N, C, H, W) and (N, C, L) with layout attributes, uint8 (N, C, D, H, W),
 * and float64 (N, C, H, W) deflated with h5py's variable-length layout string. HDF5 parses the
 * edited image through the core driver (dpt__h5_set_file_image); the reader's own checks on the
 * path (regular file, signature) see the same bytes in a memfd. Oracle: no crash, no sanitizer
 * report, no leak; a file that loads has K >= 1 classes shared by both splits, at least one
 * sample in each, every label in [0, K), samples that gather finite (bytes in [0, 1]), training
 * samples still finite after normalization, and loads again with that K given. */
#include "fuzz_h5.h"

#include "dpt/data.h"

FUZZ_ASAN_DEFAULTS(64)

static fuzz_file file;
static char scratch[96];
static fuzz_image bases[5];
/* The names the reader looks for, first (make_seeds refers to them by index), then every other
 * object and attribute of the bases. */
static fuzz_names names = {
    .objs = {{"/train/x", ""},
             {"/train/y", ""},
             {"/test/x", ""},
             {"/test/y", ""},
             {"/train", ""},
             {"/test", ""}},
    .n_objs = 6,
    .attrs = {{"/", "n_classes"}, {"/train/x", "layout"}, {"/test/x", "layout"}},
    .n_attrs = 3,
};

/* ---- the base files ---- */

typedef struct {
    int u8, f64, gzip, vlen_layout, rank;
    hsize_t sample[4];
    const char *layout;
    long long n_classes;
} base_spec;

static const base_spec specs[5] = {
    {.u8 = 1, .rank = 3, .sample = {4, 5}, .n_classes = 3},
    {.rank = 4, .sample = {2, 3, 3}, .layout = "NCHW"},
    {.rank = 3, .sample = {2, 6}, .layout = "NCL"},
    {.u8 = 1, .rank = 5, .sample = {1, 2, 3, 3}, .layout = "NCDHW", .n_classes = 4},
    {.f64 = 1, .gzip = 1, .vlen_layout = 1, .rank = 4, .sample = {1, 4, 4}, .layout = "NCHW"},
};

static void put(hid_t f, const char *name, hid_t mem_type, hid_t file_type, int rank,
                const hsize_t *dims, const void *data, const base_spec *b) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = link_create_plist(), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (b && b->gzip) {
        H5Pset_chunk(dcpl, rank, dims);
        H5Pset_deflate(dcpl, 6);
    }
    hid_t d = H5Dcreate2(f, name, file_type, space, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        abort();
    if (b && b->layout) {
        hid_t t = H5Tcopy(H5T_C_S1), as = H5Screate(H5S_SCALAR);
        H5Tset_size(t, b->vlen_layout ? H5T_VARIABLE : strlen(b->layout) + 1);
        hid_t a = H5Acreate2(d, "layout", t, as, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, b->vlen_layout ? (const void *)&b->layout : (const void *)b->layout);
        H5Aclose(a), H5Sclose(as), H5Tclose(t);
    }
    H5Dclose(d), H5Pclose(dcpl), H5Pclose(lcpl), H5Sclose(space);
}

/* /train and /test of N = 3 and 2 samples (labels 0, 2, 1 as int64 and 1, 0 as uint8). */
static void build_base(hid_t f, const void *ctx) {
    const base_spec *b = ctx;
    static const char *const splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        hsize_t dims[5] = {s == 0 ? 3 : 2};
        size_t count = dims[0];
        for (int i = 1; i < b->rank; i++)
            count *= dims[i] = b->sample[i - 1];
        unsigned char x8[3 * 64];
        float x32[3 * 64];
        for (size_t i = 0; i < count; i++)
            x8[i] = (unsigned char)(i * 37), x32[i] = (float)(i % 11) / 10.0f;
        char obj[32];
        snprintf(obj, sizeof obj, "/%s/x", splits[s]);
        if (b->u8)
            put(f, obj, H5T_NATIVE_UCHAR, H5T_STD_U8LE, b->rank, dims, x8, b);
        else
            put(f, obj, H5T_NATIVE_FLOAT, b->f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, b->rank, dims,
                x32, b);
        static const long long y64[3] = {0, 2, 1};
        static const unsigned char y8[2] = {1, 0};
        snprintf(obj, sizeof obj, "/%s/y", splits[s]);
        if (s == 0)
            put(f, obj, H5T_NATIVE_LLONG, H5T_STD_I64LE, 1, dims, y64, NULL);
        else
            put(f, obj, H5T_NATIVE_UCHAR, H5T_STD_U8LE, 1, dims, y8, NULL);
    }
    if (b->n_classes) {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "n_classes", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_LLONG, &b->n_classes);
        H5Aclose(a), H5Sclose(as);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_hdf5_free_lists();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the edits' own failures are expected */
    fuzz_file_init(&file, "fuzz-hdf5-dataset");
    snprintf(scratch, sizeof scratch, "%s/(edit)", file.path); /* exists nowhere: below a file */
    for (int i = 0; i < 5; i++)
        fuzz_h5_image_of(&bases[i], build_base, &specs[i], scratch);
    fuzz_h5_names_of(&names, bases, 5, scratch);
    return 0;
}

static void check_labels(const dpt_dataset *ds, int64_t K) {
    if (ds->K != K || ds->N < 1)
        abort();
    for (int64_t i = 0; i < ds->N; i++)
        if (ds->y[i] < 0 || ds->y[i] >= K)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const fuzz_image *base = &bases[fin_u8(&in) % 5];
    fuzz_image img;
    fuzz_h5_edit(&img, base, &in, &names, scratch);
    fuzz_file_set(&file, img.buf, img.size);
    dpt__h5_set_file_image(file.path, img.buf, img.size);
    dpt_data d;
    if (dpt_hdf5_dataset_load(&d, file.path, 0) == DPT_OK) {
        int64_t K = d.train.K;
        if (K < 1 || K > DPT_MAX_CLASSES)
            abort();
        check_labels(&d.train, K);
        check_labels(&d.test, K);
        fuzz_check_samples(&d.train, 1);
        fuzz_check_samples(&d.test, 1);
        dpt_status st = dpt_data_normalize(&d, NULL, 0);
        if (st != DPT_OK && st != DPT_ENOMEM) /* finite samples have finite statistics */
            abort();
        if (st == DPT_OK) {
            fuzz_check_samples(&d.train, 1); /* |value| <= sqrt(N) with its own statistics */
            fuzz_check_samples(&d.test, 0);
        }
        dpt_data_free(&d);
        if (dpt_hdf5_dataset_load(&d, file.path, K) != DPT_OK) {
            fprintf(stderr, "loads with K = 0 (inferred %lld) but not with K = %lld: %s\n",
                    (long long)K, (long long)K, dpt_last_error());
            abort();
        }
        dpt_data_free(&d);
    }
    dpt__h5_set_file_image(NULL, NULL, 0);
    free(img.buf);
    return 0;
}
