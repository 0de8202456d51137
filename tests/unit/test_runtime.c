/* Oracle: the contract of dpt/runtime.h and dpt_conv_selfcheck. dpt_runtime_init keeps the
 * fastest kernels unless DPT_KERNEL names others, and names a bad value in its error; the
 * self-check passes on this CPU and reports one line per implementation it compares with ref. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpt/conv.h"
#include "dpt/runtime.h"

static void test_runtime_init_chooses_kernels(void **state) {
    (void)state;
    unsetenv("DPT_KERNEL");
    assert_int_equal(dpt_runtime_init(), DPT_OK);
    const dpt_conv_impl *fastest = dpt_conv_default();
    assert_int_equal(dpt_runtime_init(), DPT_OK); /* again: the same choice */
    assert_ptr_equal(dpt_conv_default(), fastest);
    setenv("DPT_KERNEL", "im2col", 1);
    assert_int_equal(dpt_runtime_init(), DPT_OK);
    assert_ptr_equal(dpt_conv_default(), dpt_conv_impl_get(DPT_CONV_IM2COL));
    setenv("DPT_KERNEL", "avx1024", 1);
    assert_int_equal(dpt_runtime_init(), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "DPT_KERNEL=avx1024"));
    unsetenv("DPT_KERNEL");
    assert_int_equal(dpt_runtime_init(), DPT_OK);
    assert_ptr_equal(dpt_conv_default(), fastest);
}

static void test_selfcheck_passes_and_reports(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *report = open_memstream(&text, &len);
    assert_non_null(report);
    const dpt_status st = dpt_conv_selfcheck(7, report);
    fclose(report);
    printf("%s", text);
    assert_int_equal(st, DPT_OK);
    int lines = 0, compared = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    for (int id = 0; id < DPT_CONV_IMPL_COUNT; id++)
        compared += id != DPT_CONV_REF && dpt_conv_impl_get((dpt_conv_impl_id)id) != NULL;
    assert_int_equal(lines, 1 + compared); /* the header, then one line each */
    assert_null(strstr(text, "FAIL"));
    free(text);
    assert_int_equal(dpt_conv_selfcheck(7, NULL), DPT_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_init_chooses_kernels),
        cmocka_unit_test(test_selfcheck_passes_and_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
