/* One option table drives parsing, --help and validation messages (cli). */
#ifndef DPT_CLI_OPTIONS_H
#define DPT_CLI_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "dpt/status.h"

typedef enum {
    DPT_OPT_INT64,  /* int64_t field in [min, max] */
    DPT_OPT_UINT32, /* uint32_t field in [min, max] */
    DPT_OPT_INT,    /* int field in [min, max] (min, max within int) */
    DPT_OPT_DOUBLE, /* double field in [min, max], finite */
    DPT_OPT_FLOAT,  /* float field in [min, max], finite */
    DPT_OPT_STRING, /* const char * field (points into argv) */
    DPT_OPT_FLAG,   /* int field set to 1; takes no value */
    DPT_OPT_CUSTOM, /* parse(cfg, value) */
} dpt_opt_type;

typedef struct {
    const char *name;    /* "--lr" */
    const char *metavar; /* "X" in the help; NULL for flags (a DPT_OPT_CUSTOM without one is a
                          * flag too: its parser receives "") */
    dpt_opt_type type;
    size_t offset;       /* of the field in the config struct */
    double min, max;     /* numeric range (inclusive) */
    const char *help;
    dpt_status (*parse)(void *cfg, const char *opt, const char *value);
} dpt_cli_option;

/* Parses argv[first..argc) against the NULL-terminated table into cfg. Positional arguments go
 * to positional[0..max_positional) (*n_positional receives the count). "--help" sets *help.
 * Unknown options, missing values, bad numbers and out-of-range values are DPT_EINVAL with a
 * message naming the option and the value. Both "--opt value" and "--opt=value" work. */
dpt_status dpt_cli_parse(const dpt_cli_option *table, void *cfg, int argc, char **argv,
                         int first, const char **positional, int max_positional,
                         int *n_positional, int *help);
/* For commands of the form `dptrain CMD FILE... [OPTIONS]`: parses argv[1..) against the table,
 * and requires exactly n_files positional arguments (into files[]); otherwise the error is
 * "CMD: give WHAT (see dptrain CMD --help)". When --help was given, *help is set (DPT_OK) and,
 * when print_help is true (rank 0), `usage` and the table are printed. */
dpt_status dpt_cli_parse_files(const dpt_cli_option *table, void *cfg, int argc, char **argv,
                               const char *cmd, const char *what, const char *usage,
                               int print_help, const char **files, int n_files, int *help);
/* The index of `value` in the NULL-terminated `choices` into *index; otherwise DPT_EINVAL
 * "OPT: 'VALUE' is not one of A, B, C". For options that name one of a few keywords. */
dpt_status dpt_cli_choice(const char *opt, const char *value, const char *const *choices,
                          int *index);
/* Prints "usage: ..." and one line per option. */
void dpt_cli_print_help(FILE *out, const char *usage, const dpt_cli_option *table);
/* Parses a number with the same rules (for custom parsers). */
dpt_status dpt_cli_number(const char *opt, const char *value, double min, double max,
                          double *out);

#endif
