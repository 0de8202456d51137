/* dptrain entry point (cli): MPI init/finalize, subcommand dispatch, the only place that sets the
 * exit status. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "dpt/dpt.h"

static void print_version(void) {
    const dpt_conv_impl *conv = dpt_conv_default();
    printf("dptrain %s (conv kernel: %s)\n", DPT_VERSION_STRING, conv ? conv->name : "none");
}

static void print_usage(FILE *out) {
    fprintf(out, "usage: dptrain [--version] [--help] COMMAND [OPTIONS]\n"
                 "commands:\n"
                 "  selfcheck   run every convolution implementation against the reference\n");
}

int dpt__cli_selfcheck(int argc, char **argv);

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rc = 0;
    if (argc < 2) {
        print_usage(stderr);
        rc = 2;
    } else if (!strcmp(argv[1], "--version")) {
        print_version();
    } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_usage(stdout);
    } else if (!strcmp(argv[1], "selfcheck")) {
        rc = dpt__cli_selfcheck(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "dptrain: error: unknown command '%s' (see dptrain --help)\n", argv[1]);
        rc = 2;
    }
    MPI_Finalize();
    return rc;
}
