/* `dptrain sweep` (cli): expands --batch-sizes and every --vary OPTION=V1,V2,... into a
 * Cartesian grid of `dptrain train` command lines, parses each with the train option table (so
 * any train option can be varied and is validated the same way), and hands the configurations
 * to train/'s sweep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dpt/run_dir.h"
#include "options.h"
#include "progress.h"

#define MAX_AXES 8
#define MAX_POINTS 4096

typedef struct {
    char opt[64];     /* "--weight-decay"; "" for the variants axis */
    char **values;    /* option values; variant names on the variants axis */
    int n;
    char ***args;     /* variants axis: each variant's option words (NULL-terminated) */
} axis;

static const char usage[] =
    "mpirun -np R dptrain sweep --batch-sizes B1,B2,... [--vary OPTION=V1,V2,...]... "
    "[--variant NAME='OPTIONS']... [--epochs-scaling none|steps] --out DIR [train options]\n"
    "  every point starts from the same initial weights; one rank group per point\n"
    "  values are split at commas, or at semicolons when the list has one (model specs)\n"
    "  the --variant flags form one axis of named option sets, split like a shell line\n"
    "  ('quotes' group words), e.g. --variant none= --variant l2='--weight-decay 5e-4'";

/* Splits `list` at ';' when it has one, else at ','; the pieces are malloc'd. */
static dpt_status split_values(const char *opt, const char *list, axis *a) {
    char sep = strchr(list, ';') ? ';' : ',';
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == sep;
    a->values = calloc((size_t)n, sizeof *a->values);
    if (!a->values)
        return dpt_errorf(DPT_ENOMEM, "%s: out of memory", opt);
    const char *start = list;
    for (int i = 0; i < n; i++) {
        const char *end = strchr(start, sep);
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len == 0)
            return dpt_errorf(DPT_EINVAL, "%s: empty value in '%s'", opt, list);
        if (!(a->values[i] = strndup(start, len)))
            return dpt_errorf(DPT_ENOMEM, "%s: out of memory", opt);
        a->n++;
        start = end ? end + 1 : start + len;
    }
    return DPT_OK;
}

static void free_axes(axis *axes, int n) {
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < axes[k].n; i++) {
            free(axes[k].values[i]);
            for (int w = 0; axes[k].args && axes[k].args[i] && axes[k].args[i][w]; w++)
                free(axes[k].args[i][w]);
            if (axes[k].args)
                free(axes[k].args[i]);
        }
        free(axes[k].values);
        free(axes[k].args);
    }
}

/* Splits a line into words like a shell: blanks separate, 'single' and "double" quotes group
 * (no escapes). The words and the NULL-terminated array are malloc'd. */
static dpt_status split_words(const char *line, char ***out) {
    size_t len = strlen(line);
    char **words = calloc(len / 2 + 2, sizeof *words), *buf = malloc(len + 1);
    if (!words || !buf) {
        free(words), free(buf);
        return dpt_errorf(DPT_ENOMEM, "--variant: out of memory");
    }
    int n = 0;
    const char *p = line;
    dpt_status st = DPT_OK;
    while (*p && st == DPT_OK) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t k = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                while (*p && *p != q)
                    buf[k++] = *p++;
                if (*p != q)
                    st = dpt_errorf(DPT_EINVAL, "--variant: unbalanced %c in '%s'", q, line);
                else
                    p++;
            } else {
                buf[k++] = *p++;
            }
        }
        buf[k] = '\0';
        if (st == DPT_OK && !(words[n++] = strdup(buf)))
            st = dpt_errorf(DPT_ENOMEM, "--variant: out of memory");
    }
    free(buf);
    *out = words;
    return st;
}

/* --variant NAME=OPTIONS adds one value to the variants axis. */
static dpt_status add_variant(axis *x, const char *v) {
    const char *eq = strchr(v, '=');
    if (!eq || eq == v)
        return dpt_errorf(DPT_EINVAL, "--variant: '%s' is not NAME=OPTIONS", v);
    char **values = realloc(x->values, (size_t)(x->n + 1) * sizeof *values);
    if (values)
        x->values = values;
    char ***args = realloc(x->args, (size_t)(x->n + 1) * sizeof *args);
    if (args)
        x->args = args;
    if (!values || !args)
        return dpt_errorf(DPT_ENOMEM, "--variant: out of memory");
    x->args[x->n] = NULL;
    if (!(x->values[x->n] = strndup(v, (size_t)(eq - v))))
        return dpt_errorf(DPT_ENOMEM, "--variant: out of memory");
    x->n++;
    for (int i = 0; i < x->n - 1; i++)
        if (!strcmp(x->values[i], x->values[x->n - 1]))
            return dpt_errorf(DPT_EINVAL, "--variant %s: given twice", x->values[i]);
    return split_words(eq + 1, &x->args[x->n - 1]);
}

/* --collective-timeout S belongs to the launch, not to a point: 0 means no limit (-1 for the
 * group; its 0 is the default). */
static dpt_status parse_timeout(const char *opt, const char *value, double *timeout) {
    dpt_status st = dpt_cli_number(opt, value, 0, 1e9, timeout);
    if (st == DPT_OK && *timeout == 0)
        *timeout = -1;
    return st;
}

/* Rank 0 locks the sweep's folder for the run (dpt/run_dir.h); the lock file names the command. */
static dpt_status lock_out(dpt_run_lock *lock, const char *out, int overwrite, int argc,
                           char **argv) {
    char command[1024] = "dptrain sweep";
    size_t used = strlen(command);
    for (int i = 1; i < argc && used + 1 < sizeof command; i++)
        used += (size_t)snprintf(command + used, sizeof command - used, " %s", argv[i]);
    return dpt_run_dir_lock(lock, out, overwrite ? DPT_RUN_OVERWRITE : DPT_RUN_NEW, command);
}

/* Takes the sweep's own options out of argv; the rest (the base train options) go to base[]. */
static dpt_status parse_sweep_args(int argc, char **argv, axis *axes, int *n_axes, char **base,
                                   int *n_base, int *steps_scaling, double *timeout,
                                   int *overwrite, int *help) {
    *n_axes = 1; /* axis 0: --batch */
    snprintf(axes[0].opt, sizeof axes[0].opt, "--batch");
    int have_batches = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
        } else if (!strcmp(a, "--overwrite")) { /* the sweep's folder, not a point's */
            *overwrite = 1;
        } else if (!strncmp(a, "--collective-timeout=", 21)) {
            dpt_status st = parse_timeout("--collective-timeout", a + 21, timeout);
            if (st != DPT_OK)
                return st;
        } else if (!strcmp(a, "--batch-sizes") || !strcmp(a, "--vary") ||
                   !strcmp(a, "--epochs-scaling") || !strcmp(a, "--variant") ||
                   !strcmp(a, "--collective-timeout")) {
            if (i + 1 >= argc)
                return dpt_errorf(DPT_EINVAL, "%s: missing value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--batch-sizes")) {
                if (have_batches++)
                    return dpt_errorf(DPT_EINVAL, "--batch-sizes: given twice");
                dpt_status st = split_values(a, v, &axes[0]);
                if (st != DPT_OK)
                    return st;
            } else if (!strcmp(a, "--variant")) {
                int k = 1;
                while (k < *n_axes && axes[k].opt[0])
                    k++;
                if (k == *n_axes) {
                    if (*n_axes >= MAX_AXES)
                        return dpt_errorf(DPT_EINVAL, "--variant: at most %d axes", MAX_AXES - 1);
                    axes[(*n_axes)++].opt[0] = '\0';
                }
                dpt_status st = add_variant(&axes[k], v);
                if (st != DPT_OK)
                    return st;
            } else if (!strcmp(a, "--collective-timeout")) {
                dpt_status st = parse_timeout(a, v, timeout);
                if (st != DPT_OK)
                    return st;
            } else if (!strcmp(a, "--epochs-scaling")) {
                static const char *const rules[] = {"none", "steps", NULL};
                dpt_status st = dpt_cli_choice(a, v, rules, steps_scaling);
                if (st != DPT_OK)
                    return st;
            } else {
                const char *eq = strchr(v, '=');
                if (!eq || eq == v || !eq[1])
                    return dpt_errorf(DPT_EINVAL, "--vary: '%s' is not OPTION=V1,V2,...", v);
                if (*n_axes >= MAX_AXES)
                    return dpt_errorf(DPT_EINVAL, "--vary: at most %d axes", MAX_AXES - 1);
                axis *x = &axes[(*n_axes)++];
                snprintf(x->opt, sizeof x->opt, "--%.*s", (int)(eq - v), v);
                if (!strcmp(x->opt, "--batch"))
                    return dpt_errorf(DPT_EINVAL, "--vary batch: use --batch-sizes");
                dpt_status st = split_values("--vary", eq + 1, x);
                if (st != DPT_OK)
                    return st;
            }
        } else {
            if (!strcmp(a, "--batch"))
                return dpt_errorf(DPT_EINVAL, "--batch: a sweep takes its sizes from "
                                              "--batch-sizes");
            base[(*n_base)++] = argv[i];
        }
    }
    if (!have_batches && !*help)
        return dpt_errorf(DPT_EINVAL, "sweep needs --batch-sizes B1,B2,...");
    for (int k = 1; k < *n_axes; k++)
        for (int i = 0; i < *n_base && axes[k].opt[0]; i++)
            if (!strcmp(base[i], axes[k].opt) ||
                (!strncmp(base[i], axes[k].opt, strlen(axes[k].opt)) &&
                 base[i][strlen(axes[k].opt)] == '='))
                return dpt_errorf(DPT_EINVAL, "%s: both varied (--vary) and fixed", axes[k].opt);
    return DPT_OK;
}

int dpt__cli_sweep(dpt_group *g, int argc, char **argv, const char *search_path) {
    axis axes[MAX_AXES];
    memset(axes, 0, sizeof axes);
    int n_axes = 0, n_base = 0, steps_scaling = 0, help = 0, n_points = 0, no_progress = 0;
    double timeout = 0; /* --collective-timeout; 0: the default */
    int overwrite = 0;
    char **base = calloc((size_t)argc + 1, sizeof *base);
    dpt_train_cfg *points = NULL;
    char **labels = NULL, ***point_argv = NULL;
    dpt_status st = base ? parse_sweep_args(argc, argv, axes, &n_axes, base, &n_base,
                                            &steps_scaling, &timeout, &overwrite, &help)
                         : dpt_errorf(DPT_ENOMEM, "out of memory");
    if (help) {
        if (g->world_rank == 0)
            dpt__cli_print_train_options(stdout, usage);
        free_axes(axes, n_axes);
        free(base);
        return 0;
    }
    if (st == DPT_OK) {
        n_points = 1;
        for (int k = 0; k < n_axes && n_points <= MAX_POINTS; k++)
            n_points *= axes[k].n;
        if (n_points > MAX_POINTS)
            st = dpt_errorf(DPT_EINVAL, "sweep: more than %d points", MAX_POINTS);
    }
    if (st == DPT_OK) {
        points = calloc((size_t)n_points, sizeof *points);
        labels = calloc((size_t)n_points, sizeof *labels);
        point_argv = calloc((size_t)n_points, sizeof *point_argv);
        if (!points || !labels || !point_argv)
            st = dpt_errorf(DPT_ENOMEM, "sweep: out of memory for %d points", n_points);
    }
    /* point p: axis k takes value (p / stride_k) % n_k, the last axis varying fastest */
    for (int p = 0; p < n_points && st == DPT_OK; p++) {
        int words = n_base + 2 * n_axes + 1;
        for (int k = 0; k < n_axes; k++)
            for (int i = 0; !axes[k].opt[0] && i < axes[k].n; i++)
                for (int w = 0; axes[k].args[i][w]; w++)
                    words++;
        char **pa = point_argv[p] = calloc((size_t)words, sizeof *pa);
        char *label = labels[p] = calloc(1024, 1);
        if (!pa || !label) {
            st = dpt_errorf(DPT_ENOMEM, "sweep: out of memory");
            break;
        }
        int n = 0;
        for (int i = 0; i < n_base; i++)
            pa[n++] = base[i];
        size_t used = 0;
        for (int k = 0, stride = n_points; k < n_axes; k++) {
            stride /= axes[k].n;
            int i = (p / stride) % axes[k].n;
            const char *v = axes[k].values[i];
            if (axes[k].opt[0]) {
                pa[n++] = axes[k].opt;
                pa[n++] = (char *)v;
            } else {
                for (int w = 0; axes[k].args[i][w]; w++)
                    pa[n++] = axes[k].args[i][w];
            }
            used += (size_t)snprintf(label + used, used < 1024 ? 1024 - used : 0, "%s%s=%s",
                                     k ? " " : "", axes[k].opt[0] ? axes[k].opt + 2 : "variant",
                                     v);
        }
        st = dpt__cli_parse_point(n, pa, search_path, &points[p], &no_progress);
        if (st != DPT_OK)
            st = dpt_errorf(st, "sweep point %d (%s): %s", p, label, dpt_last_error());
        else if (!points[p].out || !*points[p].out)
            st = dpt_errorf(DPT_EINVAL, "sweep needs --out DIR (points/NN/, sweep.csv, "
                                        "results.h5)");
    }
    int rc;
    if (st != DPT_OK) {
        rc = dpt__cli_fail(g, dpt_errorf(st, "%s (see dptrain sweep --help)", dpt_last_error()));
    } else {
        dpt_cli_progress progress;
        dpt_progress pr = dpt_cli_progress_init(&progress, stdout, points[0].quiet, no_progress,
                                                1);
        for (int p = 0; p < n_points; p++)
            points[p].progress = pr;
        dpt_sweep_cfg sc = {.n_points = n_points, .points = points,
                            .labels = (const char *const *)labels,
                            .epochs_scaling_steps = steps_scaling, .out = points[0].out,
                            .quiet = points[0].quiet, .log = stdout};
        dpt_group_set_timeout(g, timeout);
        dpt_run_lock lock = {0};
        if (g->world_rank == 0)
            st = lock_out(&lock, sc.out, overwrite, argc, argv);
        if ((st = dpt_group_agree(g, st)) == DPT_OK)
            st = dpt_sweep_run(&sc, g);
        dpt_run_dir_unlock(&lock);
        rc = dpt__cli_finish(g, st);
    }
    for (int p = 0; p < n_points; p++) {
        if (point_argv)
            free(point_argv[p]);
        if (labels)
            free(labels[p]);
    }
    free(point_argv), free(labels), free(points), free(base);
    free_axes(axes, n_axes);
    return rc;
}
