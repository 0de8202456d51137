/* Process set-up of the kernels (kernels): what a program calls once at start-up, before any
 * kernel runs. */
#ifndef DPT_RUNTIME_H
#define DPT_RUNTIME_H

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pins OpenBLAS to one thread (one rank per core) and chooses the kernel table: the fastest paths
 * this CPU runs, or the ones DPT_KERNEL=ref|im2col|avx2|avx512 names. DPT_EINVAL naming the value
 * when DPT_KERNEL is unknown or cannot run here (the fastest paths are kept). Safe to call again;
 * kernels used without it make the same choice on first use, silently. */
dpt_status dpt_runtime_init(void);

#ifdef __cplusplus
}
#endif
#endif
