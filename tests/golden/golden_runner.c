/* The golden runner: every case_* group of every .h5 file in the folder argv[1], else
 * $DPT_GOLDEN_DIR, else ../shared/golden, through the handler for its `op`, with every
 * implementation of that op. ctest runs it as `golden_own` on tests/reference and as `golden` on
 * ../shared/golden when that exists. Oracle: PyTorch float64 references (format:
 * ../shared/golden/README.md; tests/reference/README.md). One cmocka test per file; an
 * unknown op, a missing item, a wrong case count or an empty folder fails; ops whose
 * implementation has not landed yet are printed and counted as pending. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"

#define MAX_FILES 256

static const golden_handler *const handler_tables[] = {
    golden_kernel_handlers,
    golden_optim_handlers,
    golden_model_handlers,
};

static const golden_handler *find_handler(const char *op) {
    for (size_t t = 0; t < sizeof handler_tables / sizeof handler_tables[0]; t++)
        for (const golden_handler *h = handler_tables[t]; h->op; h++)
            if (!strcmp(h->op, op))
                return h;
    return NULL;
}

typedef struct {
    char path[4096];
    const char *base;
} golden_file;

static int run_file(const golden_file *gf) {
    hid_t f = H5Fopen(gf->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "FAIL %s: cannot open as HDF5\n", gf->path);
        return 1;
    }
    int failures = 0, n_cases = 0, n_run = 0, n_pending = 0, n_checks = 0, num_cases = -1;
    double max_abs = 0, max_rel = 0, max_ratio = 0;
    char pending_ops[256] = "";
    H5G_info_t gi;
    if (H5Gget_info(f, &gi) < 0) {
        fprintf(stderr, "FAIL %s: cannot list the root group\n", gf->path);
        H5Fclose(f);
        return 1;
    }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[64];
        if (H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0 ||
            strncmp(name, "case_", 5) != 0)
            continue;
        golden_case c = {.file = gf->base, .name = name};
        c.group = H5Gopen2(f, name, H5P_DEFAULT);
        n_cases++;
        if (c.group < 0) {
            fprintf(stderr, "FAIL %s %s: cannot open group\n", gf->base, name);
            failures++;
            continue;
        }
        if (golden_attr_exists(c.group, "desc"))
            golden_attr_str(&c, c.group, "desc", c.desc, sizeof c.desc);
        if (golden_attr_str(&c, c.group, "op", c.op, sizeof c.op) > 0) {
            const golden_handler *h = find_handler(c.op);
            if (!h) {
                golden_fail(&c, "unknown op '%s'", c.op);
            } else if (!h->run) {
                n_pending++;
                if (!strstr(pending_ops, c.op) && strlen(pending_ops) + strlen(c.op) + 2 <
                                                      sizeof pending_ops)
                    strcat(strcat(pending_ops, pending_ops[0] ? "," : ""), c.op);
            } else {
                c.atol = h->atol;
                c.rtol = h->rtol;
                h->run(&c);
                n_run++;
                if (c.checks == 0 && c.failures == 0)
                    golden_fail(&c, "handler for '%s' compared nothing", c.op);
            }
        }
        H5Gclose(c.group);
        failures += c.failures;
        n_checks += c.checks;
        if (c.max_abs > max_abs)
            max_abs = c.max_abs;
        if (c.max_rel > max_rel)
            max_rel = c.max_rel;
        if (c.max_ratio > max_ratio)
            max_ratio = c.max_ratio;
    }
    if (H5Aexists(f, "num_cases") > 0) {
        hid_t a = H5Aopen(f, "num_cases", H5P_DEFAULT);
        if (H5Aread(a, H5T_NATIVE_INT, &num_cases) < 0)
            num_cases = -1;
        H5Aclose(a);
    }
    H5Fclose(f);
    if (n_cases == 0) {
        fprintf(stderr, "FAIL %s: no case_* groups\n", gf->path);
        failures++;
    }
    if (num_cases != n_cases) {
        fprintf(stderr, "FAIL %s: root attribute num_cases = %d but %d case groups found\n",
                gf->path, num_cases, n_cases);
        failures++;
    }
    printf("golden %-16s %3d cases: %3d checked, %d pending%s%s%s, %4d comparisons, "
           "max abs err %.2e, max rel err %.2e, %.2f%% of the tolerance budget, %d failures\n",
           gf->base, n_cases, n_run, n_pending, pending_ops[0] ? " (" : "",
           pending_ops, pending_ops[0] ? ")" : "", n_checks, max_abs, max_rel, 100.0 * max_ratio,
           failures);
    fflush(stdout);
    return failures;
}

static void test_golden_file(void **state) {
    const golden_file *gf = *state;
    int failures = run_file(gf);
    if (failures)
        fail_msg("%s: %d failures (details above)", gf->base, failures);
}

static int compare_paths(const void *a, const void *b) {
    return strcmp(((const golden_file *)a)->path, ((const golden_file *)b)->path);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : getenv("DPT_GOLDEN_DIR");
    if (!dir || !*dir)
        dir = DPT_GOLDEN_DIR_DEFAULT;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* failures are reported by us, once */
    static golden_file files[MAX_FILES];
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "golden: error: %s: cannot open the golden folder (set DPT_GOLDEN_DIR)\n",
                dir);
        return 1;
    }
    for (struct dirent *e; (e = readdir(d)) && n < MAX_FILES;) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0)
            continue;
        snprintf(files[n].path, sizeof files[n].path, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "golden: error: %s: no .h5 files\n", dir);
        return 1;
    }
    qsort(files, (size_t)n, sizeof files[0], compare_paths);
    for (int i = 0; i < n; i++) /* after sorting: `base` points into the entry's own path */
        files[i].base = strrchr(files[i].path, '/') + 1;
    printf("golden: %d files in %s\n", n, dir);
    static struct CMUnitTest tests[MAX_FILES];
    for (int i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){.name = files[i].base,
                                       .test_func = test_golden_file,
                                       .initial_state = &files[i]};
    return _cmocka_run_group_tests("golden", tests, (size_t)n, NULL, NULL);
}
