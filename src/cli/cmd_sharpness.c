/* `dptrain sharpness` (cli): Keskar's epsilon-sharpness of a checkpoint on a fixed subset of
 * its training data, data-parallel over the launch's ranks; one report line on world rank 0 and
 * optionally one row appended to a CSV file. */
#include <errno.h>
#include <float.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dpt/sharpness.h"
#include "dpt/timer.h"
#include "options.h"

typedef struct {
    const char *data;
    const char *out;
    double epsilon;
    int64_t subspace, samples;
    int iterations;
    uint32_t seed;
} sharpness_options;

/* The box must have a size: 0 would report 0 without looking; above 1 it is no longer local. */
static dpt_status parse_epsilon(void *cfg, const char *opt, const char *value) {
    sharpness_options *o = cfg;
    dpt_status st = dpt_cli_number(opt, value, -DBL_MAX, DBL_MAX, &o->epsilon);
    if (st == DPT_OK && !(o->epsilon > 0 && o->epsilon <= 1))
        st = dpt_errorf(DPT_EINVAL, "%s: %s is not in (0, 1]", opt, value);
    return st;
}

#define FIELD(f) offsetof(sharpness_options, f)
static const dpt_cli_option sharpness_table[] = {
    {"--data", "SRC", DPT_OPT_STRING, FIELD(data), 0, 0,
     "fashion-mnist, sample, a directory of IDX files or an .h5 file [fashion-mnist]", NULL},
    {"--epsilon", "X", DPT_OPT_CUSTOM, 0, 0, 0,
     "box size: |y_i| <= X (|x_i| + 1), X in (0, 1] [1e-3]", parse_epsilon},
    {"--subspace", "P", DPT_OPT_INT64, FIELD(subspace), 1, 4096,
     "search a random P-dimensional subspace y = A z instead of the full space", NULL},
    {"--samples", "N", DPT_OPT_INT64, FIELD(samples), 1, 1e12,
     "training samples in the loss: a fixed random subset [10000; all if fewer]", NULL},
    {"--iterations", "K", DPT_OPT_INT, FIELD(iterations), 1, 1000,
     "projected sign-gradient ascent steps [10]", NULL},
    {"--seed", "S", DPT_OPT_UINT32, FIELD(seed), 0, 4294967295.0,
     "the subset and the subspace; keep it to compare checkpoints on the same samples [1]",
     NULL},
    {"--out", "FILE.csv", DPT_OPT_STRING, FIELD(out), 0, 0,
     "append a row ckpt,epsilon,subspace,samples,f,fmax,sharpness (header if new)", NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};
#undef FIELD

static dpt_status append_row(const char *path, const char *ckpt, const sharpness_options *o,
                             const dpt_sharpness_result *r) {
    FILE *f = fopen(path, "a");
    if (!f)
        return dpt_errorf(DPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) == 0)
        fprintf(f, "ckpt,epsilon,subspace,samples,f,fmax,sharpness\n");
    fprintf(f, "%s,%.17g,%lld,%lld,%.17g,%.17g,%.17g\n", ckpt, o->epsilon, (long long)o->subspace,
            (long long)r->samples, r->f0, r->fmax, r->sharpness);
    if (ferror(f) | (fclose(f) != 0))
        return dpt_errorf(DPT_EIO, "%s: cannot write: %s", path, strerror(errno));
    return DPT_OK;
}

int dpt__cli_sharpness(dpt_group *g, int argc, char **argv, const char *search_path) {
    sharpness_options o = {.data = "fashion-mnist", .epsilon = 1e-3, .seed = 1,
                           .samples = DPT_SHARPNESS_SAMPLES_DEFAULT,
                           .iterations = DPT_SHARPNESS_ITERATIONS_DEFAULT};
    const char *pos[1];
    int help = 0;
    dpt_status st = dpt_cli_parse_files(
        sharpness_table, &o, argc, argv, "sharpness", "one checkpoint",
        "dptrain sharpness CKPT.h5 [--data SRC] [--epsilon X] [--subspace P] [--samples N] "
        "[--out FILE.csv]",
        g->world_rank == 0, pos, 1, &help);
    if (help)
        return 0;
    st = dpt_group_agree(g, st);
    dpt_sharpness_cfg cfg = {.epsilon = o.epsilon, .iterations = o.iterations,
                             .subspace = o.subspace, .seed = o.seed};
    dpt_sharpness_result r;
    double t0 = dpt_now();
    if (st == DPT_OK)
        st = dpt_sharpness_checkpoint(pos[0], o.data, search_path, o.samples, &cfg, g, &r);
    double seconds = dpt_now() - t0;
    if (st == DPT_OK && g->world_rank == 0) {
        char space[64] = "full space";
        if (o.subspace > 0)
            snprintf(space, sizeof space, "%lld-dimensional random subspace",
                     (long long)o.subspace);
        printf("sharpness %.6g (epsilon %g, %s, %lld training samples, %d iterations): "
               "f(x) %.6f, max f %.6f\n",
               r.sharpness, o.epsilon, space, (long long)r.samples, r.iterations, r.f0, r.fmax);
        printf("  %lld parameters, best after step %d, %d loss evaluations, %.1f s on %d "
               "rank%s\n",
               (long long)r.n_params, r.best_iteration, r.evaluations, seconds, g->size,
               g->size > 1 ? "s" : "");
        if (o.out)
            st = append_row(o.out, pos[0], &o, &r);
    }
    return dpt__cli_finish(g, st);
}
