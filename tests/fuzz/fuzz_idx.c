/* libFuzzer target: the IDX reader dpt_idx_load (data/idx.c) on an image file and a label file.
 * Input: one flag byte, a 4-byte big-endian length L, then L bytes of the image file and the rest
 * the label file. Flag bit 0 (1) gzips the image bytes and bit 1 the label bytes before the
 * reader sees them, so the fuzzer's header mutations also reach the gzip path intact; bits 2-7
 * are the class count K (0: inferred). Raw gzip in the seeds covers corrupt streams. Oracle: no
 * crash, no sanitizer report, no leak; a loaded set satisfies the contract of dpt/data.h (shape,
 * K, labels in [0, K)), and its samples gather finite (bytes in [0, 1]) before and after
 * normalization with their own statistics. */
#include "fuzz_common.h"

#include <string.h>
#include <zlib.h>

#include "dpt/data.h"

FUZZ_ASAN_DEFAULTS(64)

static fuzz_file images, labels;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_file_init(&images, "fuzz-idx-images");
    fuzz_file_init(&labels, "fuzz-idx-labels");
    return 0;
}

/* gzip of data[0..size) (a single member, as gzip(1) writes) into f. */
static void set_gzipped(fuzz_file *f, const uint8_t *data, size_t size) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    uLong cap = deflateBound(&z, (uLong)size);
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    fuzz_file_set(f, out, z.total_out);
    deflateEnd(&z);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5)
        return 0;
    unsigned flags = data[0];
    size_t n = (size_t)data[1] << 24 | (size_t)data[2] << 16 | (size_t)data[3] << 8 | data[4];
    data += 5, size -= 5;
    if (n > size)
        n = size;
    if (flags & 1)
        set_gzipped(&images, data, n);
    else
        fuzz_file_set(&images, data, n);
    if (flags & 2)
        set_gzipped(&labels, data + n, size - n);
    else
        fuzz_file_set(&labels, data + n, size - n);
    int64_t K = flags >> 2;

    dpt_dataset ds;
    if (dpt_idx_load(&ds, images.path, labels.path, K) == DPT_OK) {
        /* the contract of dpt/data.h */
        if (ds.N < 1 || ds.C != 1 || ds.D != 1 || ds.H < 1 || ds.W < 1 || ds.sdims != 2 ||
            (K > 0 && ds.K != K) || ds.K < 1)
            abort();
        for (int64_t i = 0; i < ds.N; i++)
            if (ds.y[i] < 0 || ds.y[i] >= ds.K)
                abort();
        fuzz_check_samples(&ds, 1);
        double mean, std;
        dpt_status st = dpt_dataset_channel_stats(&ds, NULL, 0, &mean, &std);
        if (st == DPT_OK)
            st = dpt_dataset_normalize(&ds, &mean, &std);
        if (st != DPT_OK && st != DPT_ENOMEM) /* finite samples have finite statistics */
            abort();
        if (st == DPT_OK)
            fuzz_check_samples(&ds, 1); /* |value| <= sqrt(N) with a set's own statistics */
        dpt_dataset_free(&ds);
    }
    return 0;
}
