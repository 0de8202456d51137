/* Shapes and tensor views (core). A tensor is a float32 view in row-major (N, C, [D, [H,]] W)
 * order over memory it does not own; allocation is the caller's (dpt_alloc_aligned, or a model
 * arena). Counts are int64_t and every product is overflow-checked. */
#ifndef DPT_TENSOR_H
#define DPT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DPT_MAX_DIMS 5
#define DPT_ALIGN 64 /* bytes: one cache line, one AVX-512 register */

typedef struct {
    int ndim;                  /* 0 (scalar) .. DPT_MAX_DIMS */
    int64_t d[DPT_MAX_DIMS];   /* extents, outermost first */
} dpt_shape;

typedef struct {
    float *data;               /* borrowed; DPT_ALIGN-aligned when it came from dpt_alloc_aligned */
    dpt_shape shape;
} dpt_tensor;

/* dpt_shape_make(3, (int64_t[]){N, C, W}); asserts 0 <= ndim <= DPT_MAX_DIMS. */
dpt_shape dpt_shape_make(int ndim, const int64_t *d);
/* Number of elements; DPT_ERANGE (with a message) on a negative extent or int64 overflow. */
dpt_status dpt_shape_numel(const dpt_shape *s, int64_t *numel);
/* Numel of a shape already known to be valid (asserts). */
int64_t dpt_shape_count(const dpt_shape *s);
int dpt_shape_equal(const dpt_shape *a, const dpt_shape *b);
/* Writes "(2, 3, 28, 28)"; returns what snprintf returns. */
int dpt_shape_format(const dpt_shape *s, char *buf, size_t n);

/* A tensor view over `data`. */
dpt_tensor dpt_tensor_view(float *data, dpt_shape s);

/* 64-byte aligned allocation, zero-filled. NULL (with a DPT_ENOMEM message) on failure or size
 * overflow. Free with dpt_free_aligned (NULL is fine). */
void *dpt_alloc_aligned(size_t bytes);
void dpt_free_aligned(void *p);
/* n * elsize with overflow check; SIZE_MAX on overflow (which then fails to allocate). */
size_t dpt_size_mul(size_t n, size_t elsize);

#ifdef __cplusplus
}
#endif
#endif
