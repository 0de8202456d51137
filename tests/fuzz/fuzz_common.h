/* Shared by the libFuzzer targets (tests/fuzz): the fuzz input as a file the readers can open by
 * path without touching the disk (a memfd, named /proc/self/fd/N), the allocation cap that turns
 * "a legal file declares gigabytes" into the readers' DPT_ENOMEM instead of a fuzzer
 * out-of-memory report, and HDF5 free-list limits that keep file opens cheap. Not part of the
 * library. */
#ifndef DPT_FUZZ_COMMON_H
#define DPT_FUZZ_COMMON_H

#define _GNU_SOURCE /* memfd_create */
#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dpt/data.h"

/* AddressSanitizer defaults for every target (ASAN_OPTIONS from the environment still win):
 * an allocation above cap_mb fails (NULL) as it would on a machine without the memory, so the
 * code under test must report DPT_ENOMEM rather than crash. libFuzzer's -malloc_limit_mb must be
 * at least the cap, or it reports the attempt itself. A 16 MiB quarantine (256 MiB by default)
 * still holds every block freed while one input runs, and keeps the HDF5 targets from faulting
 * in fresh pages for every allocation (a third of their time). */
#define FUZZ_ASAN_DEFAULTS(cap_mb)                                                                 \
    const char *__asan_default_options(void);                                                      \
    const char *__asan_default_options(void) {                                                     \
        return "allocator_may_return_null=1:max_allocation_size_mb=" #cap_mb                       \
               ":quarantine_size_mb=16";                                                           \
    }

/* An anonymous in-memory file and the path that opens it. */
typedef struct {
    int fd;
    char path[64];
} fuzz_file;

static inline void fuzz_file_init(fuzz_file *f, const char *name) {
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces the file's contents with data[0..size). */
static inline void fuzz_file_set(fuzz_file *f, const uint8_t *data, size_t size) {
    if (ftruncate(f->fd, 0) != 0 || (size && pwrite(f->fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
}

/* HDF5 keeps freed blocks of its own structures on free lists, but by default frees a block
 * larger than 256 KiB at once: every file open then maps, faults in and unmaps the 512 KiB hash
 * table of its metadata cache. Generous limits keep that block on the list. */
static inline void fuzz_hdf5_free_lists(void) {
    H5set_free_list_limits(64 << 20, 16 << 20, 16 << 20, 4 << 20, 64 << 20, 16 << 20);
}

/* Every sample of `ds` as dpt_dataset_gather gives it: in [0, 1] for bytes not yet normalized
 * (dpt/data.h), and finite when `finite` is set. (Normalized with the statistics of other samples,
 * a finite value may be out of float's range.) */
static inline void fuzz_check_samples(const dpt_dataset *ds, int finite) {
    int64_t numel = dpt_dataset_sample_numel(ds);
    float *x = malloc((size_t)numel * sizeof *x);
    if (!x)
        return; /* above the allocation cap */
    for (int64_t i = 0; i < ds->N; i++) {
        dpt_dataset_gather(ds, x, NULL, i, 1);
        for (int64_t j = 0; j < numel; j++)
            if ((finite && !isfinite(x[j])) ||
                (ds->type == DPT_SAMPLES_U8 && !ds->normalized && !(x[j] >= 0 && x[j] <= 1))) {
                fprintf(stderr, "sample %lld value %lld is %g\n", (long long)i, (long long)j,
                        (double)x[j]);
                abort();
            }
    }
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
