/* libFuzzer target: the model-spec parser and model builder (nn/model_spec.c, nn/model.c). The
 * input is a spec string (or a preset name), built for four small per-sample shapes: (6), (2, 16),
 * (1, 12, 12) and (1, 8, 8, 8), for batches of at most 2, with 10 classes when the spec says
 * `classes`. A spec is legal whatever sizes it asks for ("dense(100000000)"), so the builder is
 * held to the allocation cap below: a larger model must come back as DPT_ENOMEM, not crash.
 * Oracles: no crash, no sanitizer report, no leak; the canonical spec of a built model builds
 * again into a model with the same canonical spec and the same parameter and buffer counts (as
 * dpt/model.h promises); a model of at most 2 MFLOPs per sample runs forward (training and
 * inference) and backward on a batch of 2. */
#include "fuzz_common.h"

#include <math.h>
#include <string.h>

#include "dpt/model.h"

FUZZ_ASAN_DEFAULTS(64)

static void run(dpt_model *m, dpt_shape in) {
    int64_t numel = 1, out_numel = 1;
    for (int i = 0; i < in.ndim; i++)
        numel *= in.d[i];
    dpt_shape out = dpt_model_output_shape(m);
    for (int i = 0; i < out.ndim; i++)
        out_numel *= out.d[i];
    float *x = malloc((size_t)(2 * numel) * sizeof *x);
    if (!x)
        return;
    for (int64_t i = 0; i < 2 * numel; i++) /* away from ReLU's and max-pool's ties */
        x[i] = sinf(0.7f * (float)i + 0.3f);
    dpt_model_rng rng = {.seed = 1, .step = 0};
    if (dpt_model_forward(m, x, 2, 1, &rng) == DPT_OK) {
        float *dl = dpt_model_dlogits_buffer(m);
        for (int64_t i = 0; i < 2 * out_numel; i++)
            dl[i] = 0.01f * (float)(i % 7) - 0.03f;
        dpt_model_backward(m, dl);
    }
    dpt_model_forward(m, x, 1, 0, NULL);
    free(x);
}

static void build(const char *spec, dpt_shape in) {
    dpt_model_cfg cfg = {.max_batch = 2,
                         .num_classes = strstr(spec, "classes") ? 10 : 0,
                         .seed = 1,
                         .input_grad = 1};
    dpt_model *m = NULL, *again = NULL;
    if (dpt_model_create(&m, spec, in, &cfg) != DPT_OK)
        return;
    const char *canon = dpt_model_spec(m);
    if (dpt_model_create(&again, canon, in, &cfg) != DPT_OK) {
        fprintf(stderr, "spec '%s' builds, its canonical spec '%s' does not: %s\n", spec, canon,
                dpt_last_error());
        abort();
    }
    int64_t p1, p2, b1, b2;
    dpt_model_params(m, &p1), dpt_model_params(again, &p2);
    dpt_model_buffers(m, &b1), dpt_model_buffers(again, &b2);
    if (strcmp(canon, dpt_model_spec(again)) != 0 || p1 != p2 || b1 != b2) {
        fprintf(stderr, "spec '%s': canonical '%s' rebuilds as '%s' (%lld/%lld parameters)\n", spec,
                canon, dpt_model_spec(again), (long long)p1, (long long)p2);
        abort();
    }
    dpt_model_destroy(again);
    if (dpt_model_flops(m) <= 2e6)
        run(m, in);
    dpt_model_destroy(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = malloc(size + 1);
    if (!spec)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    static const int64_t shapes[4][4] = {{6}, {2, 16}, {1, 12, 12}, {1, 8, 8, 8}};
    for (int k = 0; k < 4; k++)
        build(spec, dpt_shape_make(k + 1, shapes[k]));
    free(spec);
    return 0;
}
