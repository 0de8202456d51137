/* The vector path of the batch-norm and pooling kernels: CPU detection once, the convolutions' cap,
 * and the tests' pin (layer_isa.h). */
#include "layer_isa.h"

#include <stdatomic.h>

#include "dpt/conv.h"
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

/* The convolutions' path caps this one (DPT_KERNEL has one reader, conv_dispatch.c): ref and
 * im2col mean the scalar code, avx2 at most AVX2. */
static dpt__isa choose(void) {
    const dpt__isa best = dpt__isa_best();
    const dpt_conv_impl *conv = dpt_conv_default();
    const dpt__isa cap = conv == dpt_conv_impl_get(DPT_CONV_AVX512) ? DPT__ISA_AVX512
                         : conv == dpt_conv_impl_get(DPT_CONV_AVX2) ? DPT__ISA_AVX2
                                                                    : DPT__ISA_SCALAR;
    return cap < best ? cap : best;
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
