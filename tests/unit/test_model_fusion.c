/* Oracle: the unfused model. Batch norm fused with the ReLU after it must give bit-identical
 * logits, running statistics, parameter and input gradients, in training (whole-batch and ghost
 * statistics) and in eval mode, including ReLU inputs that are exactly 0 and NaN. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dpt/loss.h"
#include "dpt/model.h"

static const char *spec = "conv2d(6,3,pad=1,bias=0) bn relu conv2d(5,3,bias=1) bn relu maxpool(2) "
                          "flatten dense(16) bn relu dense(classes)";

static dpt_model *build(int no_fusion, int64_t ghost) {
    dpt_model *m = NULL;
    dpt_model_cfg cfg = {.max_batch = 8, .num_classes = 4, .seed = 3, .input_grad = 1,
                         .no_fusion = no_fusion, .bn_ghost = ghost};
    assert_int_equal(dpt_model_create(&m, spec, dpt_shape_make(3, (int64_t[]){2, 7, 7}), &cfg),
                     DPT_OK);
    return m;
}

static void same_floats(const char *what, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            fail_msg("%s[%lld]: fused %.9g, unfused %.9g", what, (long long)i, a[i], b[i]);
}

static void compare(int64_t ghost, int training, int poison) {
    enum { N = 8 };
    const int64_t in = 2 * 7 * 7;
    float *x = malloc(N * in * sizeof *x);
    int32_t labels[N];
    dpt_fill_uniform(x, N * in, -1, 1, 11, (uint32_t)(ghost + 2 * training));
    for (int i = 0; i < N; i++)
        labels[i] = i % 4;
    x[5] = 0.0f; /* exact zeros reach the first batch norm's input */
    if (poison)
        x[in + 3] = NAN;
    dpt_model *a = build(0, ghost), *b = build(1, ghost);
    int64_t np, nb;
    assert_int_equal(dpt_model_forward(a, x, N, training, NULL), DPT_OK);
    assert_int_equal(dpt_model_forward(b, x, N, training, NULL), DPT_OK);
    same_floats("logits", dpt_model_logits(a), dpt_model_logits(b), N * 4);
    const float *bufa = dpt_model_buffers(a, &nb), *bufb = dpt_model_buffers(b, &nb);
    same_floats("running statistics", bufa, bufb, nb);
    float *da = dpt_model_dlogits_buffer(a), *db = dpt_model_dlogits_buffer(b);
    dpt_xent_forward_backward(da, NULL, dpt_model_logits(a), labels, N, 4, 0.1, N);
    dpt_xent_forward_backward(db, NULL, dpt_model_logits(b), labels, N, 4, 0.1, N);
    dpt_model_zero_grad(a);
    dpt_model_zero_grad(b);
    assert_int_equal(dpt_model_backward(a, da), DPT_OK);
    assert_int_equal(dpt_model_backward(b, db), DPT_OK);
    const float *ga = dpt_model_grads(a, &np), *gb = dpt_model_grads(b, &np);
    same_floats("parameter gradients", ga, gb, np);
    same_floats("input gradient", dpt_model_input_grad(a), dpt_model_input_grad(b), N * in);
    dpt_model_destroy(a);
    dpt_model_destroy(b);
    free(x);
}

static void test_training_whole_batch(void **state) {
    (void)state;
    compare(0, 1, 0);
}

static void test_training_ghost(void **state) {
    (void)state;
    compare(3, 1, 0);
}

static void test_eval(void **state) {
    (void)state;
    compare(0, 0, 0);
}

static void test_nan_propagates_the_same_way(void **state) {
    (void)state;
    compare(0, 1, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_whole_batch),
        cmocka_unit_test(test_training_ghost),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_nan_propagates_the_same_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
