/* Model specs and presets. Oracles: parameter counts computed by hand from PyTorch's layer
 * formulas (conv O*C/groups*prod(k) + O, dense out*in + out, batch norm 2C), the canonical spec
 * as a fixed point of parse/print, and error messages that must quote the bad token. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpt/conv.h"
#include "dpt/model.h"
#include "dpt/tensor.h"

static dpt_shape shape3(int64_t a, int64_t b, int64_t c) {
    return dpt_shape_make(3, (int64_t[]){a, b, c});
}

static dpt_model *build(const char *spec, dpt_shape in, int64_t classes) {
    dpt_model_cfg cfg = {.max_batch = 4, .num_classes = classes, .seed = 7};
    dpt_model *m = NULL;
    dpt_status st = dpt_model_create(&m, spec, in, &cfg);
    if (st != DPT_OK)
        fail_msg("building \"%s\": %s", spec, dpt_last_error());
    return m;
}

static int64_t param_count(dpt_model *m) {
    int64_t n = 0;
    (void)dpt_model_params(m, &n);
    return n;
}

/* fmnist-cnn on 1x28x28, 10 classes, term by term. */
static void test_fmnist_cnn_param_count(void **state) {
    (void)state;
    const int64_t conv1 = 32 * 1 * 3 * 3, conv2 = 32 * 32 * 3 * 3; /* no bias: bn follows */
    const int64_t conv3 = 64 * 32 * 3 * 3, conv4 = 64 * 64 * 3 * 3;
    const int64_t bns = 2 * 32 + 2 * 32 + 2 * 64 + 2 * 64;
    const int64_t flat = 64 * 7 * 7; /* 28 -> 14 -> 7 after the two pools */
    const int64_t dense1 = flat * 128 + 128, dense2 = 128 * 10 + 10;
    const int64_t want = conv1 + conv2 + conv3 + conv4 + bns + dense1 + dense2;
    assert_int_equal(want, 468010);

    dpt_model *m = build("fmnist-cnn", shape3(1, 28, 28), 10);
    assert_int_equal(param_count(m), want);
    dpt_shape out = dpt_model_output_shape(m);
    assert_int_equal(out.ndim, 1);
    assert_int_equal(out.d[0], 10);
    int64_t nbuf = 0;
    (void)dpt_model_buffers(m, &nbuf);
    assert_int_equal(nbuf, 2 * (32 + 32 + 64 + 64));

    int n = 0;
    const dpt_model_segment *s = dpt_model_param_segments(m, &n);
    assert_int_equal(n, 4 + 4 * 2 + 2 * 2);
    assert_string_equal(s[0].name, "00_conv2d/weight");
    assert_int_equal(s[0].shape.ndim, 4);
    assert_int_equal(s[0].shape.d[1], 1);
    assert_false(s[0].no_decay);
    assert_string_equal(s[1].name, "01_batchnorm2d/weight");
    assert_true(s[1].no_decay);
    assert_int_equal(s[1].kind, DPT_PARAM_NORM);
    assert_string_equal(s[n - 1].name, "18_dense/bias");
    assert_int_equal(s[n - 1].kind, DPT_PARAM_BIAS);
    int64_t at = 0;
    for (int i = 0; i < n; i++) { /* tiles the flat buffer in layer order */
        assert_int_equal(s[i].offset, at);
        at += s[i].count;
        if (i > 0)
            assert_true(s[i].layer >= s[i - 1].layer);
    }
    assert_int_equal(at, want);
    const dpt_model_segment *b = dpt_model_buffer_segments(m, &n);
    assert_int_equal(n, 8);
    assert_string_equal(b[0].name, "01_batchnorm2d/running_mean");
    assert_string_equal(b[1].name, "01_batchnorm2d/running_var");

    char table[8192];
    int len = dpt_model_summary(m, table, sizeof table);
    assert_true(len > 0 && (size_t)len < sizeof table);
    assert_non_null(strstr(table, "00_conv2d"));
    assert_non_null(strstr(table, "(64, 7, 7)"));
    assert_non_null(strstr(table, "468010"));
    assert_int_equal(dpt_model_summary(m, NULL, 0), len);

    /* the canonical spec has the class count resolved: it builds without one */
    dpt_model *c = build(dpt_model_spec(m), shape3(1, 28, 28), 0);
    assert_int_equal(param_count(c), want);
    assert_string_equal(dpt_model_spec(c), dpt_model_spec(m));
    dpt_model_destroy(c);
    dpt_model_destroy(m);
}

/* The other presets on the inputs they are meant for. */
/* The memory backward needs besides the layer blocks, by hand for fmnist-cnn at 64 rows. Walking
 * down: dense(10)'s dx (128 wide) has no finished layer above it to use and takes ping-pong
 * buffer 0; dropout and relu run in place; dense(128)'s dx (3136) does not fit in the blocks of
 * relu and dropout (3 x 128 wide with the mask) and takes buffer 1; the second pool's dx (64x14x14)
 * does not fit in those of dense, relu and dropout and grows buffer 0 to 12544; from there on
 * every dx fits in the finished blocks above its layer (the batch norms run in place). Buffers:
 * 12544 and 3136 floats per row, and dlogits (10), each 64-byte aligned: 4.0 MiB, where two
 * ping-pong buffers of the largest layer (32x28x28) would be 12.25 MiB. */
static size_t aligned(size_t bytes) {
    return (bytes + DPT_ALIGN - 1) / DPT_ALIGN * DPT_ALIGN;
}

static void test_fmnist_cnn_backward_memory(void **state) {
    (void)state;
    const int64_t rows = 64;
    dpt_model_cfg cfg = {.max_batch = rows, .num_classes = 10, .seed = 7};
    dpt_model *m = NULL;
    assert_int_equal(dpt_model_create(&m, "fmnist-cnn", shape3(1, 28, 28), &cfg), DPT_OK);
    dpt_model_memory mem;
    dpt_model_memory_of(m, &mem);
    assert_int_equal(mem.rows, rows);
    const size_t f = sizeof(float);
    assert_int_equal(mem.gradients, aligned(rows * 64 * 14 * 14 * f) + aligned(rows * 3136 * f) +
                                        aligned(rows * 10 * f));
    /* outputs: every layer but flatten and the four ReLUs fused into their batch norms; the ReLU
     * after dense(128) is a layer of its own */
    const size_t outputs = 4 * aligned(rows * 32 * 28 * 28 * f) + aligned(rows * 32 * 14 * 14 * f) +
                           4 * aligned(rows * 64 * 14 * 14 * f) + aligned(rows * 64 * 7 * 7 * f) +
                           3 * aligned(rows * 128 * f) + aligned(rows * 10 * f);
    assert_int_equal(mem.outputs, outputs);
    /* the Winograd weights of the largest pass: conv4's F(4x4), 36 frequencies x 64 x 64 */
    const dpt_conv_impl *impl = dpt_conv_default();
    const int wino = impl->prepare && dpt_conv_winograd() == 1;
    assert_int_equal(mem.prepared, wino ? aligned(36 * 64 * 64 * f) : 0);
    dpt_model_destroy(m);
}

static void test_preset_param_counts(void **state) {
    (void)state;
    struct {
        const char *name;
        dpt_shape in;
        int64_t want;
    } cases[] = {
        /* conv 6*25+6, conv 16*6*25+16, dense 400->120, 120->84, 84->10 */
        {"lenet5", shape3(1, 28, 28), 156 + 2416 + 48120 + 10164 + 850},
        /* 784->256, 256->128, 128->10 */
        {"mlp", shape3(1, 28, 28), 200960 + 32896 + 1290},
        /* conv 16*1*5, bn 32, conv 32*16*5, bn 64; L 64 -> 16 after two pools: 512->64, 64->10 */
        {"cnn1d", dpt_shape_make(2, (int64_t[]){1, 64}), 80 + 32 + 2560 + 64 + 32832 + 650},
        /* conv 8*27, bn 16, conv 16*8*27, bn 32; 16^3 -> 4^3: 1024->64, 64->10 */
        {"cnn3d", dpt_shape_make(4, (int64_t[]){1, 16, 16, 16}),
         216 + 16 + 3456 + 32 + 65600 + 650},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_model *m = build(cases[i].name, cases[i].in, 10);
        assert_int_equal(param_count(m), cases[i].want);
        dpt_model_destroy(m);
    }
    /* every listed name is a preset */
    char names[256];
    snprintf(names, sizeof names, "%s", dpt_model_preset_names());
    int count = 0;
    for (char *save = NULL, *t = strtok_r(names, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        assert_non_null(dpt_model_preset(t));
        count++;
    }
    assert_int_equal(count, 5);
    assert_null(dpt_model_preset("resnet50"));
}

/* Canonical spec: building from it again gives the same string and the same model. */
static void check_round_trip(const char *spec, dpt_shape in, const char *want) {
    dpt_model *a = build(spec, in, 0);
    if (want)
        assert_string_equal(dpt_model_spec(a), want);
    dpt_model *b = build(dpt_model_spec(a), in, 0);
    assert_string_equal(dpt_model_spec(b), dpt_model_spec(a));
    assert_int_equal(param_count(a), param_count(b));
    int na = 0, nb = 0;
    const dpt_model_segment *sa = dpt_model_param_segments(a, &na);
    const dpt_model_segment *sb = dpt_model_param_segments(b, &nb);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) {
        assert_string_equal(sa[i].name, sb[i].name);
        assert_true(dpt_shape_equal(&sa[i].shape, &sb[i].shape));
    }
    dpt_model_destroy(a);
    dpt_model_destroy(b);
}

static void test_round_trip(void **state) {
    (void)state;
    check_round_trip("conv2d(32,3,pad=1) bn relu maxpool(2) flatten dense(128) relu dropout(0.5) "
                     "dense(10)",
                     shape3(1, 28, 28),
                     "conv2d(32,3,pad=1) batchnorm2d relu maxpool2d(2) flatten dense(128) relu "
                     "dropout(0.5) dense(10)");
    check_round_trip("  conv2d( 8, 3x5, stride = 2x1, pad=1x2, dilation=1x2, groups=2, bias=0 )\t"
                     "avgpool2d(3,stride=2,pad=1,count_include_pad=0) batchnorm(eps=1e-3) "
                     "leaky_relu(0.2) maxpool(2x1) flatten",
                     shape3(4, 20, 20),
                     "conv2d(8,3x5,stride=2x1,pad=1x2,dilation=1x2,groups=2,bias=0) "
                     "avgpool2d(3,stride=2,pad=1,count_include_pad=0) batchnorm2d(eps=0.001) "
                     "leaky_relu(slope=0.2) maxpool2d(2x1) flatten");
    check_round_trip("conv1d(4,3,stride=2) batchnorm1d(momentum=0.01) elu(alpha=0.5) gelu "
                     "avgpool(2) flatten bn sigmoid tanh dropout(0.25) dense(5,bias=0)",
                     dpt_shape_make(2, (int64_t[]){3, 17}), NULL);
    check_round_trip("conv3d(2,3,pad=1) bn relu maxpool(2,stride=1) flatten dense(3)",
                     dpt_shape_make(4, (int64_t[]){1, 4, 5, 6}), NULL);
}

/* Every bad spec fails with DPT_EINVAL and a message that quotes the token (or the named fact). */
static void test_errors_name_the_token(void **state) {
    (void)state;
    const struct {
        const char *spec;
        dpt_shape in;
        int64_t classes;
        const char *must_contain[2];
    } cases[] = {
        {"conv2d(32,3) bogus relu", shape3(1, 8, 8), 0, {"\"bogus\"", "layer 1"}},
        {"conv2d(32,x)", shape3(1, 8, 8), 0, {"\"conv2d(32,x)\"", "\"x\""}},
        {"conv2d(32)", shape3(1, 8, 8), 0, {"\"conv2d(32)\"", "kernel"}},
        {"conv2d(32,3,padd=1)", shape3(1, 8, 8), 0, {"\"conv2d(32,3,padd=1)\"", "padd"}},
        {"conv2d(32,3,3)", shape3(1, 8, 8), 0, {"\"conv2d(32,3,3)\"", "argument 3"}},
        {"conv2d(32,3,pad=1,pad=2)", shape3(1, 8, 8), 0, {"pad=2)\"", "twice"}},
        {"conv2d(32,3x3x3)", shape3(1, 8, 8), 0, {"\"conv2d(32,3x3x3)\"", "3 values"}},
        {"conv2d(32,3", shape3(1, 8, 8), 0, {"\"conv2d(32,3\"", "parenthes"}},
        {"conv1d(4,3)", shape3(1, 8, 8), 0, {"\"conv1d(4,3)\"", "(1, 8, 8)"}},
        {"conv2d(8,3,groups=3)", shape3(4, 8, 8), 0, {"\"conv2d(8,3,groups=3)\"", "group"}},
        {"relu conv2d(8,9)", shape3(1, 8, 8), 0, {"\"conv2d(8,9)\"", "layer 1"}},
        {"dense(10)", shape3(1, 28, 28), 0, {"\"dense(10)\"", "flatten"}},
        {"flatten dense(classes)", shape3(1, 4, 4), 0, {"\"dense(classes)\"", "class"}},
        {"flatten dense(7)", shape3(1, 4, 4), 10, {"(7)", "10 classes"}},
        {"maxpool(2x2x2)", shape3(1, 8, 8), 0, {"\"maxpool(2x2x2)\"", "2 dimensions"}},
        {"flatten maxpool(2)", shape3(1, 8, 8), 0, {"\"maxpool(2)\"", "(64)"}},
        {"relu(3)", shape3(1, 8, 8), 0, {"\"relu(3)\"", "unexpected"}},
        {"batchnorm3d", shape3(1, 8, 8), 0, {"\"batchnorm3d\"", "(C, D, H, W)"}},
        {"   ", shape3(1, 8, 8), 0, {"no layers", NULL}},
        {"fmnist-cnn relu", shape3(1, 8, 8), 0, {"\"fmnist-cnn\"", "unknown layer"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_model_cfg cfg = {.max_batch = 2, .num_classes = cases[i].classes};
        dpt_model *m = (dpt_model *)&cfg; /* must come back NULL */
        dpt_error_clear();
        dpt_status st = dpt_model_create(&m, cases[i].spec, cases[i].in, &cfg);
        if (st != DPT_EINVAL)
            fail_msg("\"%s\": expected DPT_EINVAL, got %s", cases[i].spec, dpt_status_name(st));
        assert_null(m);
        for (int k = 0; k < 2; k++)
            if (cases[i].must_contain[k] && !strstr(dpt_last_error(), cases[i].must_contain[k]))
                fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].spec, dpt_last_error(),
                         cases[i].must_contain[k]);
    }
}

/* Values outside a range are DPT_ERANGE, named, before any arithmetic: no wrap-around, no
 * allocation of a size computed from them. */
static void test_out_of_range(void **state) {
    (void)state;
    const struct {
        const char *spec;
        const char *must_contain[2];
    } cases[] = {
        {"dropout(1.5)", {"\"dropout(1.5)\"", "p: 1.5 is out of range [0, 1]"}},
        {"conv2d(4294967296,3)", {"(layer 0)", "out: 4294967296 is out of range [1, 2147483647]"}},
        {"conv2d(8,3,pad=1x9223372036854775808)", {"pad: 9223372036854775808 is out", NULL}},
        {"flatten dense(10,bias=2)", {"\"dense(10,bias=2)\"", "bias: 2 is out of range [0, 1]"}},
        {"conv2d(8,3,stride=-1)", {"stride: -1 is out of range [1, 2147483647]", NULL}},
        {"flatten dense(2147483647) dense(2147483647)",
         {"\"dense(2147483647)\" (layer 2)", "weight (2147483647, 2147483647) is out of range"}},
        {"flatten dense(100000000000000000000000000000000000)", {"is out of range", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_model_cfg cfg = {.max_batch = 2};
        dpt_model *m = NULL;
        dpt_error_clear();
        dpt_status st = dpt_model_create(&m, cases[i].spec, shape3(1, 8, 8), &cfg);
        if (st != DPT_ERANGE)
            fail_msg("\"%s\": expected DPT_ERANGE, got %s (%s)", cases[i].spec,
                     dpt_status_name(st), dpt_last_error());
        assert_null(m);
        for (int k = 0; k < 2; k++)
            if (cases[i].must_contain[k] && !strstr(dpt_last_error(), cases[i].must_contain[k]))
                fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].spec, dpt_last_error(),
                         cases[i].must_contain[k]);
    }
}

/* A non-ASCII character is named by its code point and 1-based character position, decoded
 * from UTF-8 by hand here: "→" is E2 86 92 = U+2192. */
static void test_non_ascii(void **state) {
    (void)state;
    const struct {
        const char *spec, *message;
    } cases[] = {
        {"relu \xe2\x86\x92 relu", "non-ASCII character U+2192 at character 6"},
        {"\xc2\xa0relu", "non-ASCII character U+00A0 at character 1"},
        {"relu relu(\xf0\x9f\x98\x80)", "non-ASCII character U+1F600 at character 11"},
        {"relu\xff", "byte 0xFF at character 5 is not UTF-8"},
        {"relu\xe2\x86", "byte 0xE2 at character 5 is not UTF-8"},
        {"relu\x7f", "control character U+007F at character 5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dpt_model_cfg cfg = {.max_batch = 2};
        dpt_model *m = NULL;
        dpt_status st = dpt_model_create(&m, cases[i].spec, shape3(1, 8, 8), &cfg);
        assert_int_equal(st, DPT_EINVAL);
        if (!strstr(dpt_last_error(), cases[i].message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, dpt_last_error(),
                     cases[i].message);
    }
}

/* The class count a spec fixes: its last layer's width when that is dense(N), else 0. */
static void test_spec_classes(void **state) {
    (void)state;
    int64_t k = -1;
    assert_int_equal(dpt_model_spec_classes("flatten dense(32) relu dense(7)", &k), DPT_OK);
    assert_int_equal(k, 7);
    assert_int_equal(dpt_model_spec_classes("lenet5", &k), DPT_OK);
    assert_int_equal(k, 0);
    assert_int_equal(dpt_model_spec_classes("flatten dense(7) relu", &k), DPT_OK);
    assert_int_equal(k, 0);
    assert_int_equal(dpt_model_spec_classes("flatten dense(7,bias=0)", &k), DPT_OK);
    assert_int_equal(k, 7);
    assert_int_equal(dpt_model_spec_classes("flatten bogus", &k), DPT_EINVAL);
    assert_non_null(strstr(dpt_last_error(), "\"bogus\""));
}

/* Closed form: torch's default bounds; same key, same weights; a member is a different draw. */
static void test_init(void **state) {
    (void)state;
    const char *spec = "conv2d(6,3) bn relu flatten dense(4)";
    dpt_model *a = build(spec, shape3(2, 5, 5), 0);
    dpt_model *b = build(spec, shape3(2, 5, 5), 0);
    int64_t n = 0, nb = 0;
    float *pa = dpt_model_params(a, &n), *pb = dpt_model_params(b, &n);
    assert_memory_equal(pa, pb, (size_t)n * sizeof *pa);
    int ns = 0;
    const dpt_model_segment *s = dpt_model_param_segments(a, &ns);
    assert_int_equal(ns, 6);
    const double bound[6] = {1 / sqrt(18.0), 1 / sqrt(18.0), 0, 0, 1 / sqrt(54.0), 1 / sqrt(54.0)};
    for (int k = 0; k < ns; k++) {
        double lo = 1e9, hi = -1e9;
        for (int64_t i = 0; i < s[k].count; i++) {
            lo = fmin(lo, pa[s[k].offset + i]);
            hi = fmax(hi, pa[s[k].offset + i]);
        }
        if (k == 2) { /* batch norm weight */
            assert_true(lo == 1.0 && hi == 1.0);
        } else if (k == 3) {
            assert_true(lo == 0.0 && hi == 0.0);
        } else {
            assert_true(lo >= -bound[k] && hi <= bound[k] && hi > lo);
        }
    }
    float *buf = dpt_model_buffers(a, &nb);
    assert_int_equal(nb, 12);
    for (int c = 0; c < 6; c++)
        assert_true(buf[c] == 0.0f && buf[6 + c] == 1.0f);
    dpt_model_init(b, 7, 1);
    assert_true(memcmp(pa, pb, (size_t)s[0].count * sizeof *pa) != 0);
    dpt_model_destroy(a);
    dpt_model_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmnist_cnn_param_count),
        cmocka_unit_test(test_fmnist_cnn_backward_memory),
        cmocka_unit_test(test_preset_param_counts),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_errors_name_the_token),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_non_ascii),
        cmocka_unit_test(test_spec_classes),
        cmocka_unit_test(test_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
