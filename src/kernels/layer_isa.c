/* The vector path of the batch-norm and pooling kernels: CPU detection once, DPT_KERNEL's cap,
 * and the tests' pin (layer_isa.h). */
#include "layer_isa.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dpt/status.h"

dpt__isa dpt__isa_best(void) {
#ifdef DPT_LAYER_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return DPT__ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return DPT__ISA_AVX2;
#endif
    return DPT__ISA_SCALAR;
}

/* -1: not chosen yet. Racing first calls store the same value. */
static atomic_int chosen = -1;

static dpt__isa choose(void) {
    dpt__isa best = dpt__isa_best();
    const char *v = getenv("DPT_KERNEL");
    if (v && (strcmp(v, "ref") == 0 || strcmp(v, "im2col") == 0))
        return DPT__ISA_SCALAR;
    if (v && strcmp(v, "avx2") == 0 && best > DPT__ISA_AVX2)
        return DPT__ISA_AVX2;
    return best;
}

dpt__isa dpt__isa_get(void) {
    int c = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (c < 0) {
        c = (int)choose();
        atomic_store_explicit(&chosen, c, memory_order_relaxed);
    }
    return (dpt__isa)c;
}

dpt__isa dpt__isa_pin(dpt__isa isa) {
    DPT_ASSERT(isa >= DPT__ISA_SCALAR && isa <= dpt__isa_best());
    dpt__isa old = dpt__isa_get();
    atomic_store_explicit(&chosen, (int)isa, memory_order_relaxed);
    return old;
}
