/* Oracles: the values saved, and an optimizer that never stopped. The optimizer state round trip
 * (export -> checkpoint -> import into a fresh optimizer) continues with bit-identical steps for
 * every kind; the /train state, per-rank rows and history load back exactly; a changed
 * hyper-parameter, a weights-only file and a truncated file are refused with the file's name. */
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
#include "dpt/rng.h"


static const char *spec = "conv2d(4,3,pad=1) bn relu maxpool(2) flatten dense(classes)";

static dpt_model *small_model(void) {
    dpt_model *m = NULL;
    dpt_model_cfg mc = {.max_batch = 4, .num_classes = 3, .seed = 3};
    assert_int_equal(dpt_model_create(&m, spec, dpt_shape_make(3, (int64_t[]){2, 6, 6}), &mc),
                     DPT_OK);
    return m;
}

/* Gradients from dpt_rng, seed 5 at counter `step`: any failure replays. */
static void fill_grads(float *g, int64_t n, int64_t step) {
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(5, DPT_RNG_SHUFFLE, 0), (uint32_t)step, 0);
    for (int64_t i = 0; i < n; i++)
        g[i] = dpt_rng_uniformf(&r) - 0.5f;
}

/* Every kind, with every optional slot on: 3 steps, save, load into a fresh model + optimizer,
 * 3 more steps on both; parameters and slots must be the same bits. */
static void test_optimizer_round_trip(void **state) {
    (void)state;
    for (int k = 0; k < DPT_OPTIM_KIND_COUNT; k++) {
        dpt_optim_cfg oc = {.kind = (dpt_optim_kind)k, .lr = 0.01};
        if (k == DPT_OPTIM_SGD || k == DPT_OPTIM_RMSPROP)
            oc.momentum = 0.5;
        if (k == DPT_OPTIM_RMSPROP)
            oc.centered = 1;
        if (k == DPT_OPTIM_ADAM)
            oc.amsgrad = 1;
        dpt_model *a = small_model(), *b = small_model();
        int64_t n;
        float *pa = dpt_model_params(a, &n), *pb = dpt_model_params(b, &n);
        float *g = malloc((size_t)n * sizeof *g);
        dpt_optim *oa = NULL, *ob = NULL;
        assert_int_equal(dpt_optim_create(&oa, &oc, n, NULL, 0), DPT_OK);
        assert_int_equal(dpt_optim_create(&ob, &oc, n, NULL, 0), DPT_OK);
        for (int64_t s = 0; s < 3; s++) {
            fill_grads(g, n, s);
            assert_int_equal(dpt_optim_step(oa, pa, g, 0.01), DPT_OK);
        }
        dpt_checkpoint_state st = {.global_step = 3};
        dpt_checkpoint ck = {.model = a, .optim = oa, .state = &st, .config_argv = "--lr\x1f" "0.01"};
        char path[256];
        snprintf(path, sizeof path, "%s/opt%d.h5", dpt_scratch_dir, k);
        assert_int_equal(dpt_checkpoint_save(path, &ck), DPT_OK);
        dpt_checkpoint_state got;
        assert_int_equal(dpt_checkpoint_load_state(path, b, ob, 0, NULL, n, &got), DPT_OK);
        assert_int_equal(dpt_optim_steps(ob), 3);
        for (int64_t s = 3; s < 6; s++) {
            fill_grads(g, n, s);
            assert_int_equal(dpt_optim_step(oa, pa, g, 0.01), DPT_OK);
            assert_int_equal(dpt_optim_step(ob, pb, g, 0.01), DPT_OK);
        }
        assert_memory_equal(pa, pb, (size_t)n * sizeof(float));
        dpt_optim_state ea, eb;
        dpt_optim_state_export(oa, &ea);
        dpt_optim_state_export(ob, &eb);
        assert_int_equal(ea.n_slots, eb.n_slots);
        for (int i = 0; i < ea.n_slots; i++)
            assert_memory_equal(ea.slots[i], eb.slots[i], (size_t)n * sizeof(float));
        dpt_checkpoint_state_free(&got);
        /* another hyper-parameter is refused by name, and the optimizer stays as it was */
        dpt_optim *oc2 = NULL;
        dpt_optim_cfg other = oc;
        other.lr = 0.02;
        assert_int_equal(dpt_optim_create(&oc2, &other, n, NULL, 0), DPT_OK);
        assert_int_equal(dpt_checkpoint_load_state(path, b, oc2, 0, NULL, n, &got), DPT_EINVAL);
        assert_non_null(strstr(dpt_last_error(), "'lr'"));
        assert_int_equal(dpt_optim_steps(oc2), 0);
        dpt_optim_destroy(oc2);
        free(g);
        dpt_optim_destroy(oa), dpt_optim_destroy(ob);
        dpt_model_destroy(a), dpt_model_destroy(b);
    }
}

/* The /train group, per-rank rows, history and /config come back as saved; the config reader
 * sees the step and the strings; a truncated copy and a weights-only file are refused. */
static void test_state_round_trip(void **state) {
    (void)state;
    dpt_model *m = small_model(), *m2 = small_model();
    int64_t np, nb;
    float *p = dpt_model_params(m, &np), *b = dpt_model_buffers(m, &nb);
    for (int64_t i = 0; i < nb; i++)
        b[i] = 0.5f + (float)i;
    float *best = calloc((size_t)np, sizeof *best), *rows = calloc((size_t)(2 * nb), sizeof *rows);
    for (int64_t i = 0; i < np; i++)
        best[i] = (float)i * 0.125f;
    for (int64_t i = 0; i < 2 * nb; i++)
        rows[i] = -1.0f - (float)i;
    double sums[6] = {1.5, 10, 16, 2.5, 11, 16};
    dpt_checkpoint_state st = {
        .global_step = 123, .epoch = 2, .epoch_step = 7, .member = 4, .images = 7872,
        .last_lr = 1e-3, .skipped_in_row = 1, .skipped_total = 2, .es_since_best = 1,
        .es_best_epoch = 2, .es_best_loss = 0.75, .es_params = best, .noise_decay = 0.95,
        .noise_grad_sq = 3.0, .noise_trace = 4.0, .noise_decay_pow = 0.9025, .noise_count = 2,
        .ranks = 2, .rank_buffers = rows, .rank_sums = sums};
    const char *names[2] = {"epoch", "test_acc"};
    double e[2] = {1, 2}, acc[2] = {0.5, 0.625};
    const double *cols[2] = {e, acc};
    dpt_checkpoint ck = {.model = m, .state = &st, .n_metrics = 2, .metric_rows = 2,
                         .metric_names = names, .metric_values = cols,
                         .config_argv = "--model\x1f" "lenet5", .config_settings = "--seed 1\n"};
    char path[256], cut[300];
    snprintf(path, sizeof path, "%s/state.h5", dpt_scratch_dir);
    assert_int_equal(dpt_checkpoint_save(path, &ck), DPT_OK);

    dpt_checkpoint_state got;
    assert_int_equal(dpt_checkpoint_load_state(path, m2, NULL, 2, names, np, &got), DPT_OK);
    assert_memory_equal(p, dpt_model_params(m2, &np), (size_t)np * sizeof(float));
    assert_int_equal(got.global_step, 123);
    assert_int_equal(got.epoch, 2);
    assert_int_equal(got.epoch_step, 7);
    assert_int_equal(got.member, 4);
    assert_int_equal(got.skipped_total, 2);
    assert_true(got.es_best_loss == 0.75 && got.noise_decay_pow == 0.9025);
    assert_int_equal(got.ranks, 2);
    assert_memory_equal(got.es_params, best, (size_t)np * sizeof(float));
    assert_null(got.es_buffers);
    assert_memory_equal(got.rank_buffers, rows, (size_t)(2 * nb) * sizeof(float));
    assert_memory_equal(got.rank_sums, sums, sizeof sums);
    assert_int_equal(got.metric_rows, 2);
    assert_true(got.metrics[2 + 1] == 0.625);
    dpt_checkpoint_state_free(&got);

    int64_t step;
    char *argv, *settings;
    assert_int_equal(dpt_checkpoint_read_config(path, &step, &argv, &settings), DPT_OK);
    assert_int_equal(step, 123);
    assert_string_equal(argv, "--model\x1f" "lenet5");
    assert_string_equal(settings, "--seed 1\n");
    free(argv), free(settings);

    /* truncated: refused by both readers, naming the file */
    snprintf(cut, sizeof cut, "%s/cut.h5", dpt_scratch_dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "head -c 3000 %s > %s", path, cut);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(dpt_checkpoint_read_config(cut, &step, &argv, &settings), DPT_OK);
    assert_non_null(strstr(dpt_last_error(), cut));
    assert_int_not_equal(dpt_checkpoint_load_state(cut, m2, NULL, 0, NULL, np, &got), DPT_OK);
    assert_non_null(strstr(dpt_last_error(), cut));

    /* weights only: not resumable */
    dpt_checkpoint plain = {.model = m};
    snprintf(path, sizeof path, "%s/plain.h5", dpt_scratch_dir);
    assert_int_equal(dpt_checkpoint_save(path, &plain), DPT_OK);
    assert_int_equal(dpt_checkpoint_load_state(path, m2, NULL, 0, NULL, np, &got), DPT_EFORMAT);
    assert_non_null(strstr(dpt_last_error(), "weights-only"));
    free(best), free(rows);
    dpt_model_destroy(m), dpt_model_destroy(m2);
}

/* The test hook: a slow save still writes a complete file, and nothing is left as NAME.tmp. */
static void test_slow_save_hook(void **state) {
    (void)state;
    dpt_model *m = small_model();
    dpt_checkpoint ck = {.model = m};
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/slow.h5", dpt_scratch_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    setenv(DPT_TEST_SLOW_SAVE_ENV, "20", 1);
    assert_int_equal(dpt_checkpoint_save(path, &ck), DPT_OK);
    unsetenv(DPT_TEST_SLOW_SAVE_ENV);
    assert_int_equal(access(path, R_OK), 0);
    assert_int_not_equal(access(tmp, F_OK), 0);
    dpt_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optimizer_round_trip),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_slow_save_hook),
    };
    return cmocka_run_group_tests(tests, dpt_scratch_setup, dpt_scratch_teardown);
}
