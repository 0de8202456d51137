/* Writes a synthetic dataset in the project's HDF5 format (datasets/README.md) for
 * tests/cli/test_stream.sh, without Python: /train/x (N, H, W) and /test/x (M, H, W) uint8,
 * chunked along N (optionally deflated), /train/y and /test/y int64 labels in [0, 10), and the
 * root attribute n_classes = 10. Each image is its label's mean pattern plus noise, so a model
 * can learn it. Deterministic (a fixed LCG).
 * Usage: make_stream_h5 OUT N M CHUNK_ROWS [SIDE [DEFLATE_LEVEL]] */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t lcg = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg >> 33);
}

static int write_split(hid_t file, const char *group, long long n, hsize_t side, hsize_t chunk_rows,
                       int deflate) {
    hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[3] = {(hsize_t)n, side, side}, chunk[3] = {chunk_rows, side, side};
    if (chunk[0] > dims[0])
        chunk[0] = dims[0];
    hid_t space = H5Screate_simple(3, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    if (deflate > 0)
        H5Pset_deflate(dcpl, (unsigned)deflate);
    hid_t x = H5Dcreate2(g, "x", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    size_t per = (size_t)(side * side);
    uint8_t *img = malloc(per * (size_t)n);
    int64_t *y = malloc(sizeof(int64_t) * (size_t)n);
    if (!img || !y || x < 0)
        return 1;
    for (long long i = 0; i < n; i++) {
        y[i] = next() % 10;
        for (size_t p = 0; p < per; p++) {
            int pattern = ((p * 7 + (size_t)y[i] * 13) % 10) < 3 ? 160 : 40;
            int v = pattern + (int)(next() % 96);
            img[(size_t)i * per + p] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    herr_t rc = H5Dwrite(x, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, img);
    hsize_t ny = (hsize_t)n;
    hid_t yspace = H5Screate_simple(1, &ny, NULL);
    hid_t yd = H5Dcreate2(g, "y", H5T_STD_I64LE, yspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc |= H5Dwrite(yd, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    H5Dclose(yd), H5Sclose(yspace), H5Dclose(x), H5Pclose(dcpl), H5Sclose(space), H5Gclose(g);
    free(img), free(y);
    return rc < 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: make_stream_h5 OUT N M CHUNK_ROWS [SIDE [DEFLATE_LEVEL]]\n");
        return 2;
    }
    long long n = atoll(argv[2]), m = atoll(argv[3]), rows = atoll(argv[4]);
    long long side = argc > 5 ? atoll(argv[5]) : 28;
    int deflate = argc > 6 ? atoi(argv[6]) : 0;
    if (n < 1 || m < 1 || rows < 1 || side < 1)
        return 2;
    hid_t file = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return 1;
    long long k = 10;
    hid_t as = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, "n_classes", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &k);
    H5Aclose(a), H5Sclose(as);
    int bad = write_split(file, "/train", n, (hsize_t)side, (hsize_t)rows, deflate) ||
              write_split(file, "/test", m, (hsize_t)side, (hsize_t)rows, deflate);
    return H5Fclose(file) < 0 || bad;
}
