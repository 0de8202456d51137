/* dptrain entry point (cli): MPI init/finalize, the argument/version agreement between ranks,
 * subcommand dispatch; the only place that sets the exit status. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dpt/conv.h"
#include "dpt/runtime.h"

#ifndef DPT_SOURCE_DIR
#define DPT_SOURCE_DIR "."
#endif

static void print_version(void) {
    printf("dptrain %s (conv kernel: %s; built %s)\n", DPT_VERSION_STRING,
           dpt_conv_default_description(), __DATE__);
}

static void print_usage(FILE *out) {
    fprintf(out,
            "usage: mpirun -np R dptrain COMMAND [OPTIONS]      (dptrain COMMAND --help for "
            "options)\n"
            "commands:\n"
            "  train       train a model (data-parallel over the ranks)\n"
            "  sweep       batch sizes and options on a grid, one rank group per point\n"
            "  cv          K-fold cross-validation, one rank group per fold\n"
            "  eval FILE   accuracy, confusion matrix and predictions of a checkpoint or an\n"
            "              ensemble manifest\n"
            "  sharpness FILE  epsilon-sharpness of a checkpoint (Keskar et al. 2017)\n"
            "  interpolate A B   loss and accuracy along the line between two checkpoints\n"
            "  selfcheck   every convolution implementation against the reference\n"
            "  --version   version and the convolution kernel in use\n");
}

int dpt__cli_fail(const dpt_group *g, dpt_status st) { return dpt__cli_finish(g, st); }

int dpt__cli_finish(const dpt_group *g, dpt_status st) {
    st = dpt_group_agree(g, st);
    if (st == DPT_OK)
        return 0;
    if (g->world_rank == 0)
        fprintf(stderr, "dptrain: error: %s\n", dpt_last_error());
    return 1;
}

/* Every rank must run the same binary with the same arguments: hash version + argv. */
static dpt_status check_same_invocation(const dpt_group *g, int argc, char **argv) {
    size_t n = strlen(DPT_VERSION_STRING) + 1;
    for (int i = 1; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *buf = malloc(n), *p = buf;
    if (!buf)
        return dpt_errorf(DPT_ENOMEM, "cannot allocate the argument hash");
    p += sprintf(p, "%s", DPT_VERSION_STRING) + 1;
    for (int i = 1; i < argc; i++)
        p += sprintf(p, "%s", argv[i]) + 1;
    dpt_status st = dpt_group_check_same(g, DPT_SCOPE_WORLD, buf, n, "version and arguments");
    free(buf);
    return st;
}

int main(int argc, char **argv) {
    /* FUNNELED: --threads workers and the --stream reader run beside the main thread, and only
     * the main thread calls MPI (the pool's jobs never do). */
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    dpt_group g;
    int rc = 0;
    dpt_status st = dpt_group_init(&g, MPI_COMM_WORLD, NULL);
    if (st == DPT_OK)
        st = dpt_runtime_init();
    if (st == DPT_OK)
        st = check_same_invocation(&g, argc, argv);
    const char *search = getenv("DPT_DATA_PATH");
    if (!search || !*search)
        search = DPT_SOURCE_DIR;
    if (st != DPT_OK) {
        rc = dpt__cli_finish(&g, st);
    } else if (argc < 2) {
        if (g.world_rank == 0)
            print_usage(stderr);
        rc = 2;
    } else if (!strcmp(argv[1], "--version")) {
        if (g.world_rank == 0)
            print_version();
    } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (g.world_rank == 0)
            print_usage(stdout);
    } else if (!strcmp(argv[1], "train")) {
        rc = dpt__cli_train(&g, argc - 1, argv + 1, search);
    } else if (!strcmp(argv[1], "interpolate")) {
        rc = dpt__cli_interpolate(&g, argc - 1, argv + 1, search);
    } else if (!strcmp(argv[1], "sweep")) {
        rc = dpt__cli_sweep(&g, argc - 1, argv + 1, search);
    } else if (!strcmp(argv[1], "cv")) {
        rc = dpt__cli_cv(&g, argc - 1, argv + 1, search);
    } else if (!strcmp(argv[1], "eval")) {
        rc = dpt__cli_eval(&g, argc - 1, argv + 1, search);
    } else if (!strcmp(argv[1], "sharpness")) {
        rc = dpt__cli_sharpness(&g, argc - 1, argv + 1, search);
    } else if (!strcmp(argv[1], "selfcheck")) {
        rc = g.world_rank == 0 ? dpt__cli_selfcheck(argc - 1, argv + 1) : 0;
        rc = dpt__cli_finish(&g, rc ? dpt_errorf(DPT_EINVAL, "selfcheck failed") : DPT_OK);
    } else {
        rc = dpt__cli_finish(&g, dpt_errorf(DPT_EINVAL, "unknown command '%s' (see dptrain "
                                                        "--help)",
                                            argv[1]));
    }
    dpt_group_free(&g);
    MPI_Finalize();
    return rc;
}
