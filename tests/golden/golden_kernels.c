/* Kernel handlers of the golden test: conv, pool, dense, batchnorm, activations, softmax and
 * losses, each run through every implementation the op has on this CPU. Every shape and
 * hyper-parameter comes from the file. */
#include <stdlib.h>
#include <string.h>

#include "dpt/conv.h"
#include "dpt/loss.h"
#include "dpt/ops.h"
#include "golden.h"

#define KERNEL_TOL 1e-4

/* Spatial per-dimension list attribute (D, H, W order, nd entries) into the last nd of out[3]. */
static int spatial_attr(golden_case *c, const char *name, int nd, int64_t out[3], int64_t fill) {
    int v[3];
    int n = golden_attr_ints(c, c->group, name, v, 3);
    if (n < 0)
        return -1;
    if (n != nd) {
        golden_fail(c, "attribute '%s' has %d entries, the op has %d spatial dimensions", name, n,
                    nd);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        out[i] = i < 3 - nd ? fill : v[i - (3 - nd)];
    return 0;
}

/* A float32 dataset's dims into (N, C, spatial[3]) with unit leading spatial extents. */
static int split_dims(golden_case *c, const char *name, const golden_dims *d, int nd,
                      int64_t *N, int64_t *C, int64_t sp[3]) {
    if (d->rank != nd + 2) {
        golden_fail(c, "dataset '%s' has rank %d, expected %d", name, d->rank, nd + 2);
        return -1;
    }
    *N = (int64_t)d->dims[0];
    *C = (int64_t)d->dims[1];
    for (int i = 0; i < 3; i++)
        sp[i] = i < 3 - nd ? 1 : (int64_t)d->dims[2 + i - (3 - nd)];
    return 0;
}

static float *zeros(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

/* ---- conv1d / conv2d / conv3d ---------------------------------------------------------------- */
static void run_conv(golden_case *c) {
    int nd = c->op[4] - '0';
    golden_dims dx_, dw_, dy_;
    float *x = golden_read_f32(c, c->group, "x", &dx_);
    float *w = golden_read_f32(c, c->group, "w", &dw_);
    float *dy = golden_read_f32(c, c->group, "dy", &dy_);
    int groups = 1, has_bias = 0;
    float *b = NULL;
    dpt_conv_geom g = {.dims = nd};
    int64_t wsp[3], O, Cg;
    if (!x || !w || !dy || golden_attr_ints(c, c->group, "groups", &groups, 1) < 0 ||
        golden_attr_ints(c, c->group, "has_bias", &has_bias, 1) < 0 ||
        spatial_attr(c, "stride", nd, g.stride, 1) || spatial_attr(c, "padding", nd, g.pad, 0) ||
        spatial_attr(c, "dilation", nd, g.dil, 1) ||
        split_dims(c, "x", &dx_, nd, &g.N, &g.C, g.in) ||
        split_dims(c, "w", &dw_, nd, &O, &Cg, wsp))
        goto out;
    g.O = O;
    g.groups = groups;
    g.has_bias = has_bias;
    memcpy(g.k, wsp, sizeof g.k);
    if (has_bias && !(b = golden_read_f32(c, c->group, "b", NULL)))
        goto out;
    if (dpt_conv_geom_check(&g) != DPT_OK) {
        golden_fail(c, "geometry rejected: %s", dpt_last_error());
        goto out;
    }
    if (Cg * groups != g.C || dpt_conv_y_count(&g) != dy_.count) {
        golden_fail(c, "w or dy shape inconsistent with x and the attributes");
        goto out;
    }
    int64_t nx = dpt_conv_x_count(&g), nw = dpt_conv_w_count(&g), ny = dpt_conv_y_count(&g);
    /* The SIMD paths twice: with Winograd (where the geometry takes it) and direct. */
    for (int run = 0; run < 2 * DPT_CONV_IMPL_COUNT; run++) {
        const dpt_conv_impl_id id = (dpt_conv_impl_id)(run / 2);
        const int simd = id == DPT_CONV_AVX2 || id == DPT_CONV_AVX512, winograd = run % 2;
        const dpt_conv_impl *impl = dpt_conv_impl_get(id);
        if (!impl || (winograd && !simd))
            continue;
        char name[48];
        snprintf(name, sizeof name, "%s%s", impl->name, winograd ? "+winograd" : "");
        dpt_conv_set_winograd(winograd);
        float *work = zeros((int64_t)impl->workspace(&g));
        float *y = zeros(ny), *gx = zeros(nx), *gw = zeros(nw), *gb = zeros(g.O);
        impl->forward(y, x, w, b, &g, work);
        golden_check(c, c->group, name, "y", y, ny);
        impl->backward_data(gx, dy, w, &g, work);
        golden_check(c, c->group, name, "dx", gx, nx);
        impl->backward_weight(gw, has_bias ? gb : NULL, dy, x, &g, work);
        golden_check(c, c->group, name, "dw", gw, nw);
        if (has_bias)
            golden_check(c, c->group, name, "db", gb, g.O);
        free(work), free(y), free(gx), free(gw), free(gb);
    }
    dpt_conv_set_winograd(1);
out:
    free(x), free(w), free(dy), free(b);
}

/* ---- maxpool / avgpool ----------------------------------------------------------------------- */
static void run_pool(golden_case *c) {
    int is_max = !strncmp(c->op, "maxpool", 7);
    int nd = c->op[7] - '0';
    golden_dims dx_;
    float *x = golden_read_f32(c, c->group, "x", &dx_);
    float *dy = golden_read_f32(c, c->group, "dy", NULL);
    dpt_pool_geom g = {.dims = nd};
    int cip = 0;
    if (!x || !dy || spatial_attr(c, "kernel", nd, g.k, 1) ||
        spatial_attr(c, "stride", nd, g.stride, 1) || spatial_attr(c, "padding", nd, g.pad, 0) ||
        split_dims(c, "x", &dx_, nd, &g.N, &g.C, g.in) ||
        (!is_max && golden_attr_ints(c, c->group, "count_include_pad", &cip, 1) < 0))
        goto out;
    g.count_include_pad = cip;
    if (dpt_pool_geom_check(&g) != DPT_OK) {
        golden_fail(c, "geometry rejected: %s", dpt_last_error());
        goto out;
    }
    int64_t nx = dx_.count, ny = g.N * g.C * g.out[0] * g.out[1] * g.out[2];
    float *y = zeros(ny), *gx = zeros(nx);
    int32_t *argmax = calloc((size_t)ny, sizeof(int32_t));
    if (is_max) {
        dpt_maxpool_forward(y, argmax, x, &g);
        dpt_maxpool_backward(gx, dy, argmax, &g);
    } else {
        dpt_avgpool_forward(y, x, &g);
        dpt_avgpool_backward(gx, dy, &g);
    }
    golden_check(c, c->group, "ref", "y", y, ny);
    golden_check(c, c->group, "ref", "dx", gx, nx);
    free(y), free(gx), free(argmax);
out:
    free(x), free(dy);
}

/* ---- dense: both GEMM backends --------------------------------------------------------------- */
static void run_dense(golden_case *c) {
    golden_dims dx_, dw_;
    float *x = golden_read_f32(c, c->group, "x", &dx_);
    float *w = golden_read_f32(c, c->group, "w", &dw_);
    float *b = golden_read_f32(c, c->group, "b", NULL);
    float *dy = golden_read_f32(c, c->group, "dy", NULL);
    if (!x || !w || !b || !dy)
        goto out;
    if (dx_.rank != 2 || dw_.rank != 2 || dw_.dims[1] != dx_.dims[1]) {
        golden_fail(c, "x (N, in) and w (out, in) shapes do not match");
        goto out;
    }
    int64_t N = (int64_t)dx_.dims[0], I = (int64_t)dx_.dims[1], O = (int64_t)dw_.dims[0];
    static const struct {
        dpt_gemm_backend be;
        const char *name;
    } backends[] = {{DPT_GEMM_NAIVE, "naive"}, {DPT_GEMM_BLAS, "blas"}};
    for (size_t k = 0; k < 2; k++) {
        float *y = zeros(N * O), *gx = zeros(N * I), *gw = zeros(O * I), *gb = zeros(O);
        dpt_dense_forward(backends[k].be, y, x, w, b, N, I, O);
        dpt_dense_backward_data(backends[k].be, gx, dy, w, N, I, O);
        dpt_dense_backward_weight(backends[k].be, gw, gb, dy, x, N, I, O);
        golden_check(c, c->group, backends[k].name, "y", y, N * O);
        golden_check(c, c->group, backends[k].name, "dx", gx, N * I);
        golden_check(c, c->group, backends[k].name, "dw", gw, O * I);
        golden_check(c, c->group, backends[k].name, "db", gb, O);
        free(y), free(gx), free(gw), free(gb);
    }
out:
    free(x), free(w), free(b), free(dy);
}

/* ---- batchnorm (training and eval) ----------------------------------------------------------- */
static void run_batchnorm(golden_case *c) {
    golden_dims dx_;
    int training = 0;
    double eps = 0, momentum = 0;
    float *x = golden_read_f32(c, c->group, "x", &dx_);
    float *gamma = golden_read_f32(c, c->group, "gamma", NULL);
    float *beta = golden_read_f32(c, c->group, "beta", NULL);
    float *rm = golden_read_f32(c, c->group, "running_mean_in", NULL);
    float *rv = golden_read_f32(c, c->group, "running_var_in", NULL);
    float *dy = NULL;
    if (!x || !gamma || !beta || !rm || !rv ||
        golden_attr_ints(c, c->group, "training", &training, 1) < 0 ||
        golden_attr_doubles(c, c->group, "eps", &eps, 1) < 0 ||
        golden_attr_doubles(c, c->group, "momentum", &momentum, 1) < 0)
        goto out;
    if (dx_.rank < 2) {
        golden_fail(c, "x must have rank >= 2");
        goto out;
    }
    int64_t N = (int64_t)dx_.dims[0], C = (int64_t)dx_.dims[1], S = dx_.count / (N * C);
    float *y = zeros(dx_.count), *mean = zeros(C), *invstd = zeros(C);
    double *sum = calloc((size_t)C, sizeof(double)), *sumsq = calloc((size_t)C, sizeof(double));
    double *var = calloc((size_t)C, sizeof(double));
    if (training) {
        if (!(dy = golden_read_f32(c, c->group, "dy", NULL)))
            goto free_all;
        int64_t m = N * S;
        dpt_bn_stats(sum, sumsq, x, N, C, S);
        dpt_bn_moments(mean, invstd, var, sum, sumsq, m, C, eps);
        dpt_bn_apply(y, x, mean, invstd, gamma, beta, N, C, S);
        dpt_bn_update_running(rm, rv, mean, var, m, C, momentum);
        golden_check(c, c->group, "ref", "y", y, dx_.count);
        golden_check(c, c->group, "ref", "running_mean_out", rm, C);
        golden_check(c, c->group, "ref", "running_var_out", rv, C);
        double *dbeta = calloc((size_t)C, sizeof(double)), *dgamma = calloc((size_t)C, 8);
        float *gx = zeros(dx_.count), *dgf = zeros(C), *dbf = zeros(C);
        dpt_bn_backward_sums(dbeta, dgamma, dy, x, mean, invstd, N, C, S);
        dpt_bn_backward_data(gx, dy, x, mean, invstd, gamma, dbeta, dgamma, m, N, C, S);
        for (int64_t k = 0; k < C; k++)
            dgf[k] = (float)dgamma[k], dbf[k] = (float)dbeta[k];
        golden_check(c, c->group, "ref", "dx", gx, dx_.count);
        golden_check(c, c->group, "ref", "dgamma", dgf, C);
        golden_check(c, c->group, "ref", "dbeta", dbf, C);
        free(dbeta), free(dgamma), free(gx), free(dgf), free(dbf);
    } else {
        dpt_bn_eval_invstd(invstd, rv, C, eps);
        dpt_bn_apply(y, x, rm, invstd, gamma, beta, N, C, S);
        golden_check(c, c->group, "ref", "y_eval", y, dx_.count);
    }
free_all:
    free(y), free(mean), free(invstd), free(sum), free(sumsq), free(var);
out:
    free(x), free(gamma), free(beta), free(rm), free(rv), free(dy);
}

/* ---- elementwise activations and softmax ----------------------------------------------------- */
static void run_activation(golden_case *c) {
    static const struct {
        const char *op, *param;
        dpt_act act;
    } acts[] = {{"relu", NULL, DPT_ACT_RELU},       {"leaky_relu", "slope", DPT_ACT_LEAKY_RELU},
                {"sigmoid", NULL, DPT_ACT_SIGMOID}, {"tanh", NULL, DPT_ACT_TANH},
                {"elu", "alpha", DPT_ACT_ELU},      {"gelu", NULL, DPT_ACT_GELU}};
    size_t k = 0;
    while (k < sizeof acts / sizeof acts[0] && strcmp(acts[k].op, c->op))
        k++;
    DPT_ASSERT(k < sizeof acts / sizeof acts[0]);
    golden_dims dx_;
    double param = 0;
    float *x = golden_read_f32(c, c->group, "x", &dx_);
    float *dy = golden_read_f32(c, c->group, "dy", NULL);
    if (!x || !dy || (acts[k].param && golden_attr_doubles(c, c->group, acts[k].param, &param, 1) < 0))
        goto out;
    if (acts[k].act == DPT_ACT_GELU) {
        char approx[32];
        if (golden_attr_str(c, c->group, "approximate", approx, sizeof approx) < 0)
            goto out;
        if (strcmp(approx, "none") != 0) {
            golden_fail(c, "gelu approximate='%s': dptrain has only the exact erf form", approx);
            goto out;
        }
    }
    float *y = zeros(dx_.count), *gx = zeros(dx_.count);
    dpt_act_forward(acts[k].act, (float)param, y, x, dx_.count);
    dpt_act_backward(acts[k].act, (float)param, gx, dy, x, y, dx_.count);
    golden_check(c, c->group, "ref", "y", y, dx_.count);
    golden_check(c, c->group, "ref", "dx", gx, dx_.count);
    free(y), free(gx);
out:
    free(x), free(dy);
}

static void run_softmax(golden_case *c) {
    golden_dims dx_;
    int dim = 0;
    float *x = golden_read_f32(c, c->group, "x", &dx_);
    float *dy = golden_read_f32(c, c->group, "dy", NULL);
    if (!x || !dy || golden_attr_ints(c, c->group, "dim", &dim, 1) < 0)
        goto out;
    if (dim != 1 || dx_.rank < 2) {
        golden_fail(c, "softmax along dim %d of a rank-%d tensor: only dim 1 is implemented", dim,
                    dx_.rank);
        goto out;
    }
    int64_t N = (int64_t)dx_.dims[0], C = (int64_t)dx_.dims[1], S = dx_.count / (N * C);
    float *y = zeros(dx_.count), *gx = zeros(dx_.count);
    dpt_softmax_forward(y, x, N, C, S);
    dpt_softmax_backward(gx, dy, y, N, C, S);
    golden_check(c, c->group, "ref", "y", y, dx_.count);
    golden_check(c, c->group, "ref", "dx", gx, dx_.count);
    free(y), free(gx);
out:
    free(x), free(dy);
}

/* ---- losses (reduction = mean) --------------------------------------------------------------- */
static int mean_reduction(golden_case *c) {
    char red[32];
    if (golden_attr_str(c, c->group, "reduction", red, sizeof red) < 0)
        return 0;
    if (strcmp(red, "mean") != 0) {
        golden_fail(c, "reduction '%s': dptrain's losses are means", red);
        return 0;
    }
    return 1;
}

static void check_loss(golden_case *c, double loss) {
    float lf = (float)loss; /* the C loss is double; compare at the kernel tolerance */
    golden_check(c, c->group, "ref", "loss", &lf, 1);
}

static void run_cross_entropy(golden_case *c) {
    golden_dims dl_;
    double ls = 0;
    float *logits = golden_read_f32(c, c->group, "logits", &dl_);
    int32_t *labels = golden_read_i32(c, c->group, "labels", NULL);
    if (!logits || !labels || !mean_reduction(c) ||
        golden_attr_doubles(c, c->group, "label_smoothing", &ls, 1) < 0)
        goto out;
    int64_t N = (int64_t)dl_.dims[0], K = (int64_t)dl_.dims[1];
    for (int64_t i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= K) {
            golden_fail(c, "label %d out of range [0, %lld)", labels[i], (long long)K);
            goto out;
        }
    float *dl = zeros(N * K);
    check_loss(c, dpt_xent_forward_backward(dl, NULL, logits, labels, N, K, ls, (double)N));
    golden_check(c, c->group, "ref", "dlogits", dl, N * K);
    free(dl);
out:
    free(logits), free(labels);
}

static void run_soft_cross_entropy(golden_case *c) {
    golden_dims dl_;
    float *logits = golden_read_f32(c, c->group, "logits", &dl_);
    float *t = golden_read_f32(c, c->group, "target_probs", NULL);
    if (!logits || !t || !mean_reduction(c))
        goto out;
    int64_t N = (int64_t)dl_.dims[0], K = (int64_t)dl_.dims[1];
    float *dl = zeros(N * K);
    check_loss(c, dpt_soft_xent_forward_backward(dl, logits, t, N, K, (double)N));
    golden_check(c, c->group, "ref", "dlogits", dl, N * K);
    free(dl);
out:
    free(logits), free(t);
}

static void run_mse(golden_case *c) {
    golden_dims dp_, dt_;
    float *pred = golden_read_f32(c, c->group, "pred", &dp_);
    float *target = golden_read_f32(c, c->group, "target", &dt_);
    if (!pred || !target || !mean_reduction(c))
        goto out;
    if (dp_.count != dt_.count) {
        golden_fail(c, "pred and target sizes differ");
        goto out;
    }
    float *dp = zeros(dp_.count);
    check_loss(c, dpt_mse_forward_backward(dp, pred, target, dp_.count));
    golden_check(c, c->group, "ref", "dpred", dp, dp_.count);
    free(dp);
out:
    free(pred), free(target);
}

const golden_handler golden_kernel_handlers[] = {
    {"conv1d", run_conv, KERNEL_TOL, KERNEL_TOL},
    {"conv2d", run_conv, KERNEL_TOL, KERNEL_TOL},
    {"conv3d", run_conv, KERNEL_TOL, KERNEL_TOL},
    {"maxpool1d", run_pool, KERNEL_TOL, KERNEL_TOL},
    {"maxpool2d", run_pool, KERNEL_TOL, KERNEL_TOL},
    {"maxpool3d", run_pool, KERNEL_TOL, KERNEL_TOL},
    {"avgpool1d", run_pool, KERNEL_TOL, KERNEL_TOL},
    {"avgpool2d", run_pool, KERNEL_TOL, KERNEL_TOL},
    {"avgpool3d", run_pool, KERNEL_TOL, KERNEL_TOL},
    {"dense", run_dense, KERNEL_TOL, KERNEL_TOL},
    {"batchnorm", run_batchnorm, KERNEL_TOL, KERNEL_TOL},
    {"relu", run_activation, KERNEL_TOL, KERNEL_TOL},
    {"leaky_relu", run_activation, KERNEL_TOL, KERNEL_TOL},
    {"sigmoid", run_activation, KERNEL_TOL, KERNEL_TOL},
    {"tanh", run_activation, KERNEL_TOL, KERNEL_TOL},
    {"elu", run_activation, KERNEL_TOL, KERNEL_TOL},
    {"gelu", run_activation, KERNEL_TOL, KERNEL_TOL},
    {"softmax", run_softmax, KERNEL_TOL, KERNEL_TOL},
    {"cross_entropy", run_cross_entropy, KERNEL_TOL, KERNEL_TOL},
    {"soft_cross_entropy", run_soft_cross_entropy, KERNEL_TOL, KERNEL_TOL},
    {"mse", run_mse, KERNEL_TOL, KERNEL_TOL},
    {NULL, NULL, 0, 0},
};
