/* Oracle: the values saved. A model + optimizer checkpoint round-trips bit for bit; a checkpoint
 * of another architecture, a wrong format attribute or a missing tensor is an error naming the
 * file and the object; a failed save leaves the previous file intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "dpt/checkpoint.h"
#include "dpt/h5file.h"


static dpt_model *small_model(const char *spec, uint32_t seed) {
    dpt_model *m = NULL;
    dpt_model_cfg mc = {.max_batch = 4, .num_classes = 3, .seed = seed};
    assert_int_equal(dpt_model_create(&m, spec, dpt_shape_make(3, (int64_t[]){2, 6, 6}), &mc),
                     DPT_OK);
    return m;
}

static const char *spec = "conv2d(4,3,pad=1,bias=0) bn relu maxpool(2) flatten dense(classes)";

static void test_round_trip(void **state) {
    (void)state;
    dpt_model *m = small_model(spec, 7);
    int64_t np, nb;
    float *p = dpt_model_params(m, &np), *b = dpt_model_buffers(m, &nb);
    for (int64_t i = 0; i < nb; i++)
        b[i] = 0.25f * (float)i - 1.0f; /* distinctive running statistics */
    dpt_optim *o = NULL;
    dpt_optim_cfg oc = {.kind = DPT_OPTIM_ADAM, .lr = 1e-3};
    assert_int_equal(dpt_optim_create(&o, &oc, np, NULL, 0), DPT_OK);
    float *g = calloc((size_t)np, sizeof *g);
    for (int64_t i = 0; i < np; i++)
        g[i] = (float)(i % 7) - 3.0f;
    assert_int_equal(dpt_optim_step(o, p, g, 1e-3), DPT_OK);
    double mean[2] = {0.1, 0.2}, sd[2] = {0.3, 0.4};
    const char *names[1] = {"test_acc"};
    double acc[2] = {0.5, 0.75};
    const double *cols[1] = {acc};
    dpt_checkpoint ck = {.model = m, .optim = o, .epoch = 2, .step = 17, .seed = 7,
                         .channels = 2, .norm_mean = mean, .norm_std = sd, .n_metrics = 1,
                         .metric_rows = 2, .metric_names = names, .metric_values = cols};
    char path[256];
    snprintf(path, sizeof path, "%s/a.h5", dpt_scratch_dir);
    assert_int_equal(dpt_checkpoint_save(path, &ck), DPT_OK);

    dpt_model *m2 = NULL;
    dpt_checkpoint_info info;
    assert_int_equal(dpt_checkpoint_load(path, 8, &m2, &info), DPT_OK);
    int64_t np2, nb2;
    assert_int_equal(strcmp(dpt_model_spec(m), dpt_model_spec(m2)), 0);
    assert_memory_equal(p, dpt_model_params(m2, &np2), (size_t)np * sizeof(float));
    assert_memory_equal(b, dpt_model_buffers(m2, &nb2), (size_t)nb * sizeof(float));
    assert_int_equal(np, np2);
    assert_int_equal(info.epoch, 2);
    assert_int_equal(info.step, 17);
    assert_int_equal(info.channels, 2);
    assert_true(info.norm_mean[1] == 0.2 && info.norm_std[0] == 0.3);
    /* the optimizer state is in the file under torch's names */
    dpt_h5r r;
    assert_int_equal(dpt_h5r_open(&r, path), DPT_OK);
    float *v = calloc((size_t)np, sizeof *v);
    dpt_optim_state st;
    dpt_optim_state_export(o, &st);
    assert_int_equal(dpt_h5r_f32(&r, "optimizer/exp_avg_sq", v, np), DPT_OK);
    assert_memory_equal(v, st.slots[1], (size_t)np * sizeof(float));
    int64_t steps;
    assert_int_equal(dpt_h5r_attr_i64(&r, "optimizer", "step", &steps), DPT_OK);
    assert_int_equal(steps, 1);
    double got[2];
    assert_int_equal(dpt_h5r_f64(&r, "metrics/test_acc", got, 2), DPT_OK);
    assert_true(got[0] == 0.5 && got[1] == 0.75);
    dpt_h5r_close(&r);
    free(v), free(g);
    dpt_optim_destroy(o);
    dpt_model_destroy(m);
    dpt_model_destroy(m2);
}

static void test_bad_checkpoints(void **state) {
    (void)state;
    char path[256];
    /* a file that is HDF5 but not a checkpoint */
    snprintf(path, sizeof path, "%s/other.h5", dpt_scratch_dir);
    dpt_h5w w;
    assert_int_equal(dpt_h5w_open(&w, path), DPT_OK);
    dpt_h5w_attr_str(&w, "/", "format", "something-else");
    assert_int_equal(dpt_h5w_close(&w, 1), DPT_OK);
    dpt_model *m = NULL;
    dpt_checkpoint_info info;
    assert_int_equal(dpt_checkpoint_load(path, 4, &m, &info), DPT_EFORMAT);
    assert_null(m);
    assert_non_null(strstr(dpt_last_error(), path));

    /* a checkpoint whose tensor does not fit the recorded architecture */
    dpt_model *a = small_model(spec, 1);
    dpt_checkpoint ck = {.model = a};
    snprintf(path, sizeof path, "%s/b.h5", dpt_scratch_dir);
    assert_int_equal(dpt_checkpoint_save(path, &ck), DPT_OK);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/c.h5", dpt_scratch_dir);
    /* rewrite b.h5 with a dense weight of the wrong shape, all else equal */
    dpt_h5r r;
    assert_int_equal(dpt_h5r_open(&r, path), DPT_OK);
    char *model_spec = NULL;
    assert_int_equal(dpt_h5r_attr_strdup(&r, "/", "model_spec", &model_spec), DPT_OK);
    dpt_h5r_close(&r);
    assert_int_equal(dpt_h5w_open(&w, tmp), DPT_OK);
    dpt_h5w_attr_str(&w, "/", "format", DPT_CHECKPOINT_FORMAT);
    dpt_h5w_attr_i64(&w, "/", "version", DPT_CHECKPOINT_VERSION);
    dpt_h5w_attr_str(&w, "/", "model_spec", model_spec);
    int64_t in[3] = {2, 6, 6}, three = 3;
    dpt_h5w_i64(&w, "input_shape", in, 1, &three);
    float zeros[64] = {0};
    int64_t wrong[2] = {3, 5};
    dpt_h5w_f32(&w, "params/00_conv2d/weight", zeros, 1, (int64_t[]){1});
    dpt_h5w_f32(&w, "params/04_dense/weight", zeros, 2, wrong);
    assert_int_equal(dpt_h5w_close(&w, 1), DPT_OK);
    assert_int_not_equal(dpt_checkpoint_load(tmp, 4, &m, &info), DPT_OK);
    assert_null(m);
    assert_non_null(strstr(dpt_last_error(), tmp));
    assert_non_null(strstr(dpt_last_error(), "params/00_conv2d/weight"));
    free(model_spec);

    /* saving into a missing folder fails and creates nothing */
    snprintf(tmp, sizeof tmp, "%s/missing/d.h5", dpt_scratch_dir);
    assert_int_not_equal(dpt_checkpoint_save(tmp, &ck), DPT_OK);
    assert_int_equal(access(tmp, F_OK), -1);
    dpt_model_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_checkpoints),
    };
    return cmocka_run_group_tests(tests, dpt_scratch_setup, dpt_scratch_teardown);
}
