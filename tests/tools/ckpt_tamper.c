/* Damages a checkpoint for tests/cli/test_hardening.sh:
 *   ckpt_tamper offset FILE DATASET   prints the file offset of the dataset's first chunk (the
 *                                     test flips a byte there itself, bypassing HDF5)
 *   ckpt_tamper nan FILE DATASET      writes NaN into element 0 through HDF5, so the checksum
 *                                     stays valid and only the value check can catch it */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "offset") && strcmp(argv[1], "nan"))) {
        fprintf(stderr, "usage: ckpt_tamper offset|nan FILE DATASET\n");
        return 2;
    }
    int nan = !strcmp(argv[1], "nan");
    hid_t f = H5Fopen(argv[2], nan ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = f < 0 ? -1 : H5Dopen2(f, argv[3], H5P_DEFAULT);
    if (ds < 0) {
        fprintf(stderr, "ckpt_tamper: %s: cannot open %s\n", argv[2], argv[3]);
        return 1;
    }
    int rc = 0;
    if (nan) {
        hid_t fs = H5Dget_space(ds);
        int nd = H5Sget_simple_extent_ndims(fs);
        hsize_t start[8] = {0}, one[8];
        for (int i = 0; i < nd; i++)
            one[i] = 1;
        hsize_t n1 = 1;
        hid_t ms = H5Screate_simple(1, &n1, NULL);
        float v = NAN;
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, one, NULL);
        rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &v) < 0;
        H5Sclose(ms), H5Sclose(fs);
    } else {
        haddr_t addr = 0;
        hsize_t size = 0;
        hid_t fs = H5Dget_space(ds);
        rc = H5Dget_chunk_info(ds, fs, 0, NULL, NULL, &addr, &size) < 0;
        H5Sclose(fs);
        if (!rc)
            printf("%llu\n", (unsigned long long)addr);
    }
    H5Dclose(ds);
    H5Fclose(f);
    return rc;
}
