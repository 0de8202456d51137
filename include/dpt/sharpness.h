/* Sharpness of a minimum (train): the epsilon-sharpness of Keskar, Mudigere, Nocedal, Smelyanskiy
 * and Tang 2017, "On Large-Batch Training for Deep Learning: Generalization Gap and Sharp Minima"
 * (arXiv:1609.04836), section 2.2.1: the largest rise of f within a box around x, relative to
 * 1 + f(x). One maximizer over an objective callback serves the closed-form tests and the
 * data-parallel loss of a checkpoint (method and choices: docs/sharpness.md). */
#ifndef DPT_SHARPNESS_H
#define DPT_SHARPNESS_H

#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dpt_group;

/* f at x (n floats, borrowed for the call) into *f; when grad is not NULL also df/dx into grad
 * (n floats). A non-OK status stops the maximizer, which returns it. */
typedef dpt_status (*dpt_objective_fn)(void *ctx, const float *x, int64_t n, double *f,
                                       float *grad);

#define DPT_SHARPNESS_ITERATIONS_DEFAULT 10
#define DPT_SHARPNESS_STEP_DEFAULT 0.25
#define DPT_SHARPNESS_SAMPLES_DEFAULT 10000
/* Largest n * P of the subspace matrix A, held as floats: 2^27 floats = 512 MiB per rank. */
#define DPT_SHARPNESS_MAX_SUBSPACE_FLOATS ((int64_t)1 << 27)

/* Zero fields take the defaults given. */
typedef struct {
    double epsilon;   /* box size, > 0, required (the paper uses 1e-3 and 5e-4) */
    int iterations;   /* ascent steps; 0: DPT_SHARPNESS_ITERATIONS_DEFAULT */
    double step;      /* each step moves a coordinate by this fraction of its box half-width,
                       * in (0, 1]; 0: DPT_SHARPNESS_STEP_DEFAULT */
    int64_t subspace; /* P >= 1: search y = A z over a random n x P matrix A; 0: the full space */
    uint32_t seed;    /* A's entries are N(0, 1) from (seed, DPT_RNG_SUBSPACE, 0), column j at
                       * counter (j, 0); the checkpoint driver also takes its subset from it */
} dpt_sharpness_cfg;

typedef struct {
    double f0;           /* f(x) */
    double fmax;         /* the largest f seen (f0 included, so fmax >= f0) */
    double sharpness;    /* dpt_sharpness_value(f0, fmax) */
    int iterations;      /* ascent steps taken */
    int best_iteration;  /* after how many steps fmax was seen; 0: at x itself */
    int evaluations;     /* objective calls: iterations with a gradient, then one value only */
    int64_t n_params;    /* n */
    int64_t samples;     /* dpt_sharpness_checkpoint: training samples in f; 0 otherwise */
} dpt_sharpness_result;

/* 100 * (fmax - f0) / (1 + f0): Keskar et al.'s metric (eq. 4), in percent. */
double dpt_sharpness_value(double f0, double fmax);

/* Maximizes f(x + y) over the box |y_i| <= c_i = epsilon (|x_i| + 1), or with cfg->subspace = P
 * over y = A z, |z_j| <= epsilon (|(A^+ x)_j| + 1), A^+ x from the P x P normal equations in
 * double. Method: projected sign-gradient ascent (L-infinity PGD) from y = 0,
 *     v <- clip(v + step * c .* sign(g), -c, c),  sign(0) = +1,
 * over v = y (g = df/dy) or v = z (g = A^T df/dy), for cfg->iterations steps; one objective call
 * with a gradient per step and a value-only call at the last point. Keeps the best f seen and,
 * when y_best is not NULL, its y (n floats). The calls depend only on x, cfg and the values the
 * objective returns: a collective objective that returns the same values on every rank is called
 * in step on every rank.
 * DPT_EINVAL for a bad cfg (naming the field), DPT_ERANGE for P > n, n * P above
 * DPT_SHARPNESS_MAX_SUBSPACE_FLOATS or a singular A^T A, DPT_ENONFINITE when f is not finite,
 * DPT_ENOMEM, or the objective's status. */
dpt_status dpt_sharpness_maximize(dpt_objective_fn fn, void *ctx, const float *x, int64_t n,
                                  const dpt_sharpness_cfg *cfg, dpt_sharpness_result *res,
                                  float *y_best);

/* The sharpness of a checkpoint's parameters on f = the mean cross-entropy over a fixed subset
 * of the training split of `data`: the first min(samples, N) entries of the permutation
 * (cfg->seed, DPT_RNG_SPLIT, 0) at counter DPT_SHARPNESS_SUBSET_COUNTER (samples 0: the default).
 * Evaluation mode: batch norm uses the checkpoint's running statistics, dropout is off. The
 * subset is cut into chunks of 256 in subset order, chunk c evaluated on group rank c % size;
 * losses are summed per chunk and then in chunk order (the same bits for any group size), the
 * gradient is an fp32 allreduce (the same to rounding). Collective over g->comm; every argument
 * is global input; *res is the same on every rank. */
#define DPT_SHARPNESS_SUBSET_COUNTER 16
dpt_status dpt_sharpness_checkpoint(const char *ckpt, const char *data, const char *data_search,
                                    int64_t samples, const dpt_sharpness_cfg *cfg,
                                    struct dpt_group *g, dpt_sharpness_result *res);

#ifdef __cplusplus
}
#endif
#endif
