/* Table-driven option parsing and help (cli): every option's name, type, range and help text in
 * one place, so --help and the error messages never drift from what is accepted. */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "[1, 1073741824]": integer bounds in full, others as %g; the same text in every message. */
static const char *range_text(char *buf, size_t n, double min, double max) {
    const double exact = 9007199254740992.0; /* 2^53: integers printed exactly */
    if (min == floor(min) && max == floor(max) && fabs(min) <= exact && fabs(max) <= exact)
        snprintf(buf, n, "[%.0f, %.0f]", min, max);
    else
        snprintf(buf, n, "[%g, %g]", min, max);
    return buf;
}

dpt_status dpt_cli_number(const char *opt, const char *value, double min, double max,
                          double *out) {
    char *end = NULL, range[64];
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end != '\0')
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not a number", opt, value);
    if (isnan(v))
        return dpt_errorf(DPT_EINVAL, "%s: '%s' is not a number (NaN)", opt, value);
    if (isinf(v) && !(errno == ERANGE))
        return dpt_errorf(DPT_ERANGE, "%s: %s is not finite; the range is %s", opt, value,
                          range_text(range, sizeof range, min, max));
    if (isinf(v) || (errno == ERANGE && v != 0) || v < min || v > max)
        return dpt_errorf(DPT_ERANGE, "%s: %s is out of range %s", opt, value,
                          range_text(range, sizeof range, min, max));
    *out = v;
    return DPT_OK;
}

static dpt_status set_option(const dpt_cli_option *o, void *cfg, const char *value) {
    char *field = (char *)cfg + o->offset;
    double v = 0;
    dpt_status st = DPT_OK;
    switch (o->type) {
    case DPT_OPT_INT64:
    case DPT_OPT_UINT32:
    case DPT_OPT_INT:
        if ((st = dpt_cli_number(o->name, value, o->min, o->max, &v)) != DPT_OK)
            return st;
        if (v != floor(v))
            return dpt_errorf(DPT_EINVAL, "%s: '%s' is not an integer", o->name, value);
        if (o->type == DPT_OPT_INT64)
            *(int64_t *)field = (int64_t)v;
        else if (o->type == DPT_OPT_INT)
            *(int *)field = (int)v;
        else
            *(uint32_t *)field = (uint32_t)v;
        return DPT_OK;
    case DPT_OPT_DOUBLE:
        if ((st = dpt_cli_number(o->name, value, o->min, o->max, &v)) == DPT_OK)
            *(double *)field = v;
        return st;
    case DPT_OPT_FLOAT:
        if ((st = dpt_cli_number(o->name, value, o->min, o->max, &v)) == DPT_OK)
            *(float *)field = (float)v;
        return st;
    case DPT_OPT_STRING:
        if (!*value)
            return dpt_errorf(DPT_EINVAL, "%s: empty value", o->name);
        *(const char **)field = value;
        return DPT_OK;
    case DPT_OPT_FLAG:
        *(int *)field = 1;
        return DPT_OK;
    case DPT_OPT_CUSTOM:
        return o->parse(cfg, o->name, value);
    }
    return dpt_errorf(DPT_EINVAL, "%s: bad option table entry", o->name);
}

dpt_status dpt_cli_parse(const dpt_cli_option *table, void *cfg, int argc, char **argv,
                         int first, const char **positional, int max_positional,
                         int *n_positional, int *help) {
    *n_positional = 0;
    *help = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            *help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (*n_positional >= max_positional)
                return dpt_errorf(DPT_EINVAL, "unexpected argument '%s'", arg);
            positional[(*n_positional)++] = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const dpt_cli_option *o = table;
        while (o->name && !(strlen(o->name) == len && !strncmp(o->name, arg, len)))
            o++;
        if (!o->name)
            return dpt_errorf(DPT_EINVAL, "unknown option '%.*s'", (int)len, arg);
        const char *value = NULL;
        if (o->type == DPT_OPT_FLAG || !o->metavar) { /* a flag: --help shows no value */
            if (eq)
                return dpt_errorf(DPT_EINVAL, "%s takes no value", o->name);
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else if (i + 1 < argc) {
            /* "--keep-last --deterministic" must not swallow the next option as a value */
            return dpt_errorf(DPT_EINVAL, "%s: missing value (the next argument '%s' is an "
                                          "option)",
                              o->name, argv[i + 1]);
        } else {
            return dpt_errorf(DPT_EINVAL, "%s: missing value", o->name);
        }
        dpt_status st = set_option(o, cfg, value ? value : "");
        if (st != DPT_OK)
            return st;
    }
    return DPT_OK;
}

dpt_status dpt_cli_parse_files(const dpt_cli_option *table, void *cfg, int argc, char **argv,
                               const char *cmd, const char *what, const char *usage,
                               int print_help, const char **files, int n_files, int *help) {
    int n = 0;
    dpt_status st = dpt_cli_parse(table, cfg, argc, argv, 1, files, n_files, &n, help);
    if (*help && print_help)
        dpt_cli_print_help(stdout, usage, table);
    if (st == DPT_OK && !*help && n != n_files)
        st = dpt_errorf(DPT_EINVAL, "%s: give %s (see dptrain %s --help)", cmd, what, cmd);
    return st;
}

dpt_status dpt_cli_choice(const char *opt, const char *value, const char *const *choices,
                          int *index) {
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(value, choices[i])) {
            *index = i;
            return DPT_OK;
        }
        used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0, "%s%s",
                                 i ? ", " : "", choices[i]);
    }
    return dpt_errorf(DPT_EINVAL, "%s: '%s' is not one of %s", opt, value, list);
}

void dpt_cli_print_help(FILE *out, const char *usage, const dpt_cli_option *table) {
    fprintf(out, "usage: %s\n\noptions:\n", usage);
    for (const dpt_cli_option *o = table; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(out, "  %-24s %s\n", left, o->help);
    }
    fprintf(out, "  %-24s %s\n", "--help", "show this help");
}
