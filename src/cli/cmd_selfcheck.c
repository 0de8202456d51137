/* `dptrain selfcheck` (cli): the options of dpt_conv_selfcheck, its report on stdout. Knows no
 * kernel and no MPI (main.c runs it on world rank 0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dpt/conv.h"

static void usage(FILE *f) {
    fprintf(f, "usage: dptrain selfcheck [--seed N]\n"
               "Runs every convolution implementation this CPU supports against the reference\n"
               "(forward, backward_data, backward_weight) and exits 1 if any disagrees.\n");
}

int dpt__cli_selfcheck(int argc, char **argv) {
    uint32_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || end == argv[i] || argv[i][0] == '-' || v > UINT32_MAX) {
                fprintf(stderr,
                        "dptrain: error: selfcheck: --seed: '%s' is not an integer in "
                        "[0, 4294967295]\n",
                        argv[i]);
                return 2;
            }
            seed = (uint32_t)v;
        } else {
            fprintf(stderr, "dptrain: error: selfcheck: unknown or incomplete option '%s'\n",
                    argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (dpt_conv_selfcheck(seed, stdout) == DPT_OK)
        return 0;
    fprintf(stderr, "dptrain: error: %s\n", dpt_last_error());
    return 1;
}
