/* 64-byte aligned, zero-filled allocation (core). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/tensor.h"

size_t dpt_size_mul(size_t n, size_t elsize) {
    if (elsize != 0 && n > SIZE_MAX / elsize)
        return SIZE_MAX;
    return n * elsize;
}

void *dpt_alloc_aligned(size_t bytes) {
    if (bytes == SIZE_MAX || bytes > SIZE_MAX - DPT_ALIGN) {
        dpt_errorf(DPT_ENOMEM, "allocation size overflows");
        return NULL;
    }
    size_t rounded = (bytes + DPT_ALIGN - 1) / DPT_ALIGN * DPT_ALIGN;
    if (rounded == 0)
        rounded = DPT_ALIGN;
    void *p = aligned_alloc(DPT_ALIGN, rounded);
    if (!p) {
        dpt_errorf(DPT_ENOMEM, "cannot allocate %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void dpt_free_aligned(void *p) { free(p); }
