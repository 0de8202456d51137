/* libFuzzer target: the option parser dpt_cli_parse (cli/options.c) with the real option table
 * of `dptrain train` (cli/cmd_train.c), reached through dpt__cli_parse_point, which parses a
 * train command line (defaults first) and then runs the train command's combination and
 * hyper-parameter checks. The input is the command line: arguments separated by NUL or newline
 * bytes (empty arguments kept). Oracle: no crash, no sanitizer report, no leak. */
#include "fuzz_common.h"

#include <string.h>

#include "cli.h"

FUZZ_ASAN_DEFAULTS(64)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16)
        return 0;
    /* one allocation for the strings (each NUL-terminated) and one for argv */
    char *text = malloc(size + 1);
    char **argv = malloc((size + 2) * sizeof *argv);
    if (!text || !argv) {
        free(text), free(argv);
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    int argc = 0;
    argv[argc++] = text;
    for (size_t i = 0; i < size; i++)
        if (text[i] == '\0' || text[i] == '\n') {
            text[i] = '\0';
            argv[argc++] = text + i + 1;
        }
    argv[argc] = NULL;
    dpt_train_cfg cfg;
    int no_progress = 0;
    dpt__cli_parse_point(argc, argv, "", &cfg, &no_progress);
    free(argv);
    free(text);
    return 0;
}
