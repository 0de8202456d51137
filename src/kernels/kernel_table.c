/* The one dispatch table (kernel_table.h): one table per DPT_KERNEL choice, built once from what
 * this CPU, OS and build run; the one in use, dpt_runtime_init, the Winograd switch and the
 * convolution queries of dpt/conv.h. Compiled for the x86-64 baseline: the CPU is asked before any
 * ISA build runs. */
#include "kernel_table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_impl.h"
#include "dpt/ops.h"
#include "dpt/runtime.h"

/* Indexed by dpt_conv_impl_id; a table whose conv is NULL does not run here. */
static dpt__kernel_table tables[DPT_CONV_IMPL_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static _Atomic(const dpt__kernel_table *) active;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;
static dpt__kernel_table pinned; /* dpt__isa_pin's copy of the table in use */

/* Whether this CPU and OS run `isa` and this build has kernels for it. */
static int runs_here(dpt__isa isa) {
#ifdef DPT_KERNELS_X86
    __builtin_cpu_init();
    if (isa == DPT__ISA_AVX512)
        return __builtin_cpu_supports("avx512f");
    if (isa == DPT__ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == DPT__ISA_SCALAR;
}

static void table_set(dpt_conv_impl_id id, const char *name, dpt__isa isa,
                      const dpt_conv_impl *conv) {
    dpt__kernel_table *t = &tables[id];
    if (!runs_here(isa))
        return;
    t->name = name;
    t->isa = isa;
    t->conv = conv;
    dpt__bn_fill_table(t, isa);
    dpt__pool_fill_table(t, isa);
}

static void tables_init(void) {
    dpt_gemm_init();
    table_set(DPT_CONV_REF, "ref", DPT__ISA_SCALAR, &dpt__conv_ref);
    table_set(DPT_CONV_IM2COL, "im2col", DPT__ISA_SCALAR, &dpt__conv_im2col);
#ifdef DPT_KERNELS_X86
    table_set(DPT_CONV_AVX2, "avx2", DPT__ISA_AVX2, &dpt__conv_simd_avx2);
    table_set(DPT_CONV_AVX512, "avx512", DPT__ISA_AVX512, &dpt__conv_simd_avx512);
#endif
}

static const dpt__kernel_table *table_get(int id) {
    pthread_once(&tables_once, tables_init);
    return id >= 0 && id < DPT_CONV_IMPL_COUNT && tables[id].conv ? &tables[id] : NULL;
}

static const dpt__kernel_table *fastest(void) {
    static const dpt_conv_impl_id order[] = {DPT_CONV_AVX512, DPT_CONV_AVX2, DPT_CONV_IM2COL};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (table_get(order[i]))
            return table_get(order[i]);
    return table_get(DPT_CONV_REF);
}

/* What DPT_KERNEL asks for: DPT_OK with *out = NULL when unset or empty, DPT_OK with the
 * table, DPT_EINVAL for an unknown name, DPT_EUNSUPPORTED for one this CPU cannot run.
 * Records no message, so that the first choice can call it silently. */
static dpt_status env_choice(const dpt__kernel_table **out, const char **value) {
    static const char *const names[DPT_CONV_IMPL_COUNT] = {"ref", "im2col", "avx2", "avx512"};
    const char *v = getenv("DPT_KERNEL");
    *out = NULL;
    *value = v;
    if (!v || !*v)
        return DPT_OK;
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++)
        if (!strcmp(v, names[id])) {
            *out = table_get(id);
            return *out ? DPT_OK : DPT_EUNSUPPORTED;
        }
    return DPT_EINVAL;
}

static void active_init(void) {
    const dpt__kernel_table *e;
    const char *v;
    if (env_choice(&e, &v) != DPT_OK || !e)
        e = fastest();
    atomic_store(&active, e);
}

const dpt__kernel_table *dpt__kernels(void) {
    const dpt__kernel_table *t = atomic_load_explicit(&active, memory_order_acquire);
    if (t)
        return t;
    pthread_once(&active_once, active_init);
    return atomic_load(&active);
}

dpt__isa dpt__isa_best(void) {
    return fastest()->isa;
}

dpt__isa dpt__isa_pin(dpt__isa isa) {
    DPT_ASSERT(isa >= DPT__ISA_SCALAR && isa <= dpt__isa_best());
    const dpt__kernel_table *now = dpt__kernels();
    const dpt__isa old = now->isa;
    pinned = *now;
    pinned.isa = isa;
    dpt__bn_fill_table(&pinned, isa);
    dpt__pool_fill_table(&pinned, isa);
    atomic_store(&active, &pinned);
    return old;
}

const dpt_conv_impl *dpt_conv_impl_get(dpt_conv_impl_id id) {
    const dpt__kernel_table *t = table_get((int)id);
    return t ? t->conv : NULL;
}

const dpt_conv_impl *dpt__conv_avx2_impl(void) {
    return dpt_conv_impl_get(DPT_CONV_AVX2);
}
const dpt_conv_impl *dpt__conv_avx512_impl(void) {
    return dpt_conv_impl_get(DPT_CONV_AVX512);
}

const dpt_conv_impl *dpt_conv_default(void) {
    return dpt__kernels()->conv;
}

dpt_status dpt_conv_select_from_env(void) {
    const dpt__kernel_table *e;
    const char *v;
    dpt_status st = env_choice(&e, &v);
    if (st == DPT_EINVAL)
        return dpt_errorf(DPT_EINVAL,
                          "DPT_KERNEL=%s: unknown convolution kernel (expected ref, im2col, avx2 "
                          "or avx512); keeping %s",
                          v, dpt_conv_default()->name);
    if (st == DPT_EUNSUPPORTED)
        return dpt_errorf(DPT_EINVAL,
                          "DPT_KERNEL=%s: this CPU or build cannot run the %s convolution kernel; "
                          "keeping %s",
                          v, v, dpt_conv_default()->name);
    pthread_once(&active_once, active_init);
    atomic_store(&active, e ? e : fastest());
    return DPT_OK;
}

dpt_status dpt_runtime_init(void) {
    dpt_gemm_init();
    return dpt_conv_select_from_env();
}

/* 0 off, 1 on (each shape's own choice of tile), 2 F(2x2) only, 4 F(4x4) wherever it fits. */
static int winograd_mode(int on) {
    return on == 0 || on == 2 || on == 4 ? on : 1;
}

/* -1 until first asked: then DPT_WINOGRAD decides ("0", "2" and "4" as above, anything else
 * keeps it on). */
static atomic_int winograd_on = -1;

void dpt_conv_set_winograd(int on) {
    atomic_store(&winograd_on, winograd_mode(on));
}

int dpt_conv_winograd(void) {
    int on = atomic_load(&winograd_on);
    if (on < 0) {
        const char *v = getenv("DPT_WINOGRAD");
        on = v ? winograd_mode(!strcmp(v, "0") ? 0 : !strcmp(v, "2") ? 2 : !strcmp(v, "4") ? 4 : 1)
               : 1;
        atomic_store(&winograd_on, on);
    }
    return on;
}

const char *dpt_conv_default_description(void) {
    static _Thread_local char buf[96];
    const dpt_conv_impl *conv = dpt_conv_default();
    const int simd =
        conv == dpt_conv_impl_get(DPT_CONV_AVX2) || conv == dpt_conv_impl_get(DPT_CONV_AVX512);
    /* by mode; distinct wherever the rounding differs (--deterministic compares them) */
    static const char *const wino[] = {"", ", Winograd F(4x4)/F(2x2) for 3x3 stride 1",
                                       ", Winograd F(2x2,3x3) for 3x3 stride 1", "",
                                       ", Winograd F(4x4,3x3) for 3x3 stride 1"};
    snprintf(buf, sizeof buf, "%s%s", conv->name, simd ? wino[dpt_conv_winograd()] : "");
    return buf;
}
