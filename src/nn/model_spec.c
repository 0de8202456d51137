/* Model spec strings (nn): splits "conv2d(32,3,pad=1) bn relu ..." into tokens, maps each name
 * to its layer kind, and gives the layers typed readers for their arguments. Every message names
 * the token it is about. Knows the grammar, not what the layers do with their arguments. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layer.h"

static const struct {
    const char *name;
    const dpt__layer_ops *ops;
    int dims;
} keywords[] = {
    {"conv1d", &dpt__conv_ops, 1},           {"conv2d", &dpt__conv_ops, 2},
    {"conv3d", &dpt__conv_ops, 3},           {"dense", &dpt__dense_ops, 0},
    {"maxpool", &dpt__pool_ops, 0},          {"maxpool1d", &dpt__pool_ops, 1},
    {"maxpool2d", &dpt__pool_ops, 2},        {"maxpool3d", &dpt__pool_ops, 3},
    {"avgpool", &dpt__pool_ops, 0},          {"avgpool1d", &dpt__pool_ops, 1},
    {"avgpool2d", &dpt__pool_ops, 2},        {"avgpool3d", &dpt__pool_ops, 3},
    {"bn", &dpt__batchnorm_ops, 0},          {"batchnorm", &dpt__batchnorm_ops, 0},
    {"batchnorm1d", &dpt__batchnorm_ops, 1}, {"batchnorm2d", &dpt__batchnorm_ops, 2},
    {"batchnorm3d", &dpt__batchnorm_ops, 3}, {"dropout", &dpt__dropout_ops, 0},
    {"flatten", &dpt__flatten_ops, 0},       {"relu", &dpt__activation_ops, 0},
    {"leaky_relu", &dpt__activation_ops, 0}, {"sigmoid", &dpt__activation_ops, 0},
    {"tanh", &dpt__activation_ops, 0},       {"elu", &dpt__activation_ops, 0},
    {"gelu", &dpt__activation_ops, 0},
};

dpt_status dpt__layer_error(const dpt__layer *l, dpt_status st, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const int len = (int)strlen(l->token), keep = 28; /* long tokens: head...tail */
    if (len > 2 * keep + 3)
        return dpt_errorf(st, "model spec: \"%.*s...%s\" (layer %d): %s", keep, l->token,
                          l->token + len - keep, l->index, msg);
    return dpt_errorf(st, "model spec: \"%s\" (layer %d): %s", l->token, l->index, msg);
}

dpt_status dpt__layer_rethrow(const dpt__layer *l, dpt_status st) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", dpt_last_error());
    return dpt__layer_error(l, st, "%s", msg);
}

dpt_status dpt__layer_need_spatial(const dpt__layer *l, int dims) {
    static const char *const forms[] = {"", "(C, L)", "(C, H, W)", "(C, D, H, W)"};
    DPT_ASSERT(dims >= 1 && dims <= 3);
    if (l->in.ndim == dims + 1)
        return DPT_OK;
    char s[96];
    dpt_shape_format(&l->in, s, sizeof s);
    return dpt__layer_error(l, DPT_EINVAL, "needs a %s input, got %s", forms[dims], s);
}

/* "argument 2" or "pad": how a message refers to an argument. */
static const char *arg_label(int pos, const char *key, char *buf, size_t n) {
    if (key)
        return key;
    snprintf(buf, n, "argument %d", pos + 1);
    return buf;
}

dpt_status dpt__arg_text(const dpt__layer *l, dpt__args *a, int pos, const char *key,
                         const char **text) {
    const char *by_pos = NULL, *by_key = NULL;
    if (pos >= 0 && pos < a->npos) {
        by_pos = a->pos[pos];
        a->pos_used |= 1u << pos;
    }
    for (int i = 0; key && i < a->nkw; i++)
        if (strcmp(a->key[i], key) == 0) {
            by_key = a->val[i];
            a->kw_used |= 1u << i;
        }
    if (by_pos && by_key)
        return dpt__layer_error(l, DPT_EINVAL, "%s given both by position and by name", key);
    *text = by_pos ? by_pos : by_key;
    return DPT_OK;
}

/* Every integer in a spec is at most this: sizes stay far from int64 wrap-around when layers
 * multiply them, and kernels may index one dimension with an int. */
#define SPEC_INT_MAX INT32_MAX

/* "-12" -> -12: decimal digits only (no blanks, no "1e3"); *range_error when the text is an
 * integer outside [lo, hi] (also one too long for int64). 0 when it is not an integer at all. */
static int read_int(const char *s, int64_t lo, int64_t hi, int64_t *out, int *range_error) {
    char *end = NULL;
    *range_error = 0;
    if (!*s || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return 0;
    if (errno == ERANGE || v < lo || v > hi) {
        *range_error = 1;
        return 0;
    }
    *out = v;
    return 1;
}

static dpt_status parse_int(const dpt__layer *l, const char *label, const char *s, int64_t lo,
                            int64_t hi, int64_t *out) {
    int range_error = 0;
    if (hi > SPEC_INT_MAX)
        hi = SPEC_INT_MAX;
    if (read_int(s, lo, hi, out, &range_error))
        return DPT_OK;
    if (range_error)
        return dpt__layer_error(l, DPT_ERANGE, "%s: %s is out of range [%lld, %lld]", label, s,
                                (long long)lo, (long long)hi);
    return dpt__layer_error(l, DPT_EINVAL, "%s: expected an integer in [%lld, %lld], got \"%s\"",
                            label, (long long)lo, (long long)hi, s);
}

dpt_status dpt__arg_int(const dpt__layer *l, dpt__args *a, int pos, const char *key, int64_t def,
                        int64_t lo, int64_t hi, int64_t *out, int *found) {
    const char *text = NULL;
    char label[32];
    dpt_status st = dpt__arg_text(l, a, pos, key, &text);
    if (found)
        *found = text != NULL;
    if (st != DPT_OK || !text) {
        *out = def;
        return st;
    }
    return parse_int(l, arg_label(pos, key, label, sizeof label), text, lo, hi, out);
}

dpt_status dpt__arg_dims(const dpt__layer *l, dpt__args *a, int pos, const char *key, int dims,
                         int64_t def, int64_t lo, int64_t fill, int64_t out[3], int *found) {
    DPT_ASSERT(dims >= 0 && dims <= 3);
    const char *text = NULL;
    char label[32];
    dpt_status st = dpt__arg_text(l, a, pos, key, &text);
    if (found)
        *found = 0;
    for (int i = 0; i < 3; i++)
        out[i] = i < 3 - dims ? fill : def;
    if (st != DPT_OK || !text)
        return st;
    const char *name = arg_label(pos, key, label, sizeof label);
    int64_t v[3];
    int count = 0;
    for (const char *p = text;; count++) {
        const char *x = strchr(p, 'x');
        size_t len = x ? (size_t)(x - p) : strlen(p);
        char part[DPT__ARG_LEN];
        if (count == 3)
            return dpt__layer_error(l, DPT_EINVAL, "%s: \"%s\" has more than 3 parts", name, text);
        if (len >= sizeof part)
            return dpt__layer_error(l, DPT_ERANGE, "%s: \"%.24s...\" is out of range [%lld, %lld]",
                                    name, p, (long long)lo, (long long)SPEC_INT_MAX);
        memcpy(part, p, len);
        part[len] = '\0';
        int range_error = 0;
        if (!read_int(part, lo, SPEC_INT_MAX, &v[count], &range_error)) {
            if (range_error)
                return dpt__layer_error(l, DPT_ERANGE, "%s: %s is out of range [%lld, %lld]",
                                        name, part, (long long)lo, (long long)SPEC_INT_MAX);
            return dpt__layer_error(l, DPT_EINVAL,
                                    "%s: expected integers in [%lld, %lld] joined by 'x', "
                                    "got \"%s\"",
                                    name, (long long)lo, (long long)SPEC_INT_MAX, text);
        }
        if (!x) {
            count++;
            break;
        }
        p = x + 1;
    }
    if (dims > 0 && count != 1 && count != dims)
        return dpt__layer_error(l, DPT_EINVAL, "%s: \"%s\" gives %d values for %d dimension%s",
                                name, text, count, dims, dims == 1 ? "" : "s");
    const int width = dims > 0 ? dims : count;
    for (int i = 0; i < width; i++)
        out[3 - width + i] = count == 1 ? v[0] : v[i];
    if (found)
        *found = count;
    return DPT_OK;
}

dpt_status dpt__arg_double(const dpt__layer *l, dpt__args *a, int pos, const char *key, double def,
                           double lo, double hi, double *out) {
    const char *text = NULL;
    char label[32];
    dpt_status st = dpt__arg_text(l, a, pos, key, &text);
    *out = def;
    if (st != DPT_OK || !text)
        return st;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    const char *name = arg_label(pos, key, label, sizeof label);
    if (end == text || *end != '\0' || isnan(v))
        return dpt__layer_error(l, DPT_EINVAL, "%s: expected a number in [%g, %g], got \"%s\"",
                                name, lo, hi, text);
    if ((errno == ERANGE && fabs(v) > 1.0) || v < lo || v > hi) /* underflow to 0 is a number */
        return dpt__layer_error(l, DPT_ERANGE, "%s: %s is out of range [%g, %g]", name, text, lo,
                                hi);
    *out = v;
    return DPT_OK;
}

dpt_status dpt__args_done(const dpt__layer *l, const dpt__args *a) {
    for (int i = 0; i < a->npos; i++)
        if (!(a->pos_used & (1u << i)))
            return dpt__layer_error(l, DPT_EINVAL, "unexpected argument %d \"%s\"", i + 1,
                                    a->pos[i]);
    for (int i = 0; i < a->nkw; i++)
        if (!(a->kw_used & (1u << i)))
            return dpt__layer_error(l, DPT_EINVAL, "unknown option \"%s\"", a->key[i]);
    return DPT_OK;
}

void dpt__fmt(char *buf, size_t n, int *used, const char *fmt, ...) {
    size_t at = (size_t)*used < n ? (size_t)*used : n;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(n > at ? buf + at : NULL, n - at, fmt, ap); /* measuring: buf may be NULL */
    va_end(ap);
    *used += k > 0 ? k : 0;
}

void dpt__fmt_dims(char *buf, size_t n, int *used, const int64_t v[3], int dims) {
    int same = 1;
    for (int i = 3 - dims; i < 3; i++)
        same &= v[i] == v[2];
    if (same) {
        dpt__fmt(buf, n, used, "%lld", (long long)v[2]);
        return;
    }
    for (int i = 3 - dims; i < 3; i++)
        dpt__fmt(buf, n, used, "%s%lld", i > 3 - dims ? "x" : "", (long long)v[i]);
}

void dpt__fmt_double(char *buf, size_t n, int *used, double v) {
    char tmp[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    dpt__fmt(buf, n, used, "%s", tmp);
}

/* ---- tokens ------------------------------------------------------------------------------------
 */

/* The next blank-separated token of *p (parentheses may hold blanks); 0 at the end. */
static int next_token(const char **p, const char **start, size_t *len) {
    const char *s = *p;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (!*s)
        return 0;
    const char *e = s;
    int depth = 0;
    while (*e && (depth > 0 || !isspace((unsigned char)*e))) {
        depth += (*e == '(') - (*e == ')');
        e++;
    }
    *start = s;
    *len = (size_t)(e - s);
    *p = e;
    return 1;
}

static void trim(char *s) {
    size_t n = strlen(s), b = 0;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    while (isspace((unsigned char)s[b]))
        b++;
    memmove(s, s + b, n - b + 1);
}

static int is_identifier(const char *s) {
    if (!isalpha((unsigned char)*s) && *s != '_')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

/* One argument "32" or "pad=1" (trimmed) into a. */
static dpt_status add_arg(const dpt__layer *l, dpt__args *a, char *arg) {
    trim(arg);
    if (!*arg)
        return dpt__layer_error(l, DPT_EINVAL, "empty argument");
    if (strlen(arg) >= DPT__ARG_LEN) {
        const char *eq = strchr(arg, '='), *value = eq ? eq + 1 : arg;
        value += strspn(value, " \t+-");
        if (strspn(value, "0123456789") == strlen(value)) /* a number too long to be one */
            return dpt__layer_error(l, DPT_ERANGE, "\"%.24s...\" is out of range [%lld, %lld]",
                                    arg, (long long)-SPEC_INT_MAX, (long long)SPEC_INT_MAX);
        return dpt__layer_error(l, DPT_EINVAL, "argument \"%.24s...\" longer than %d characters",
                                arg, DPT__ARG_LEN - 1);
    }
    char *eq = strchr(arg, '=');
    if (!eq) {
        if (a->nkw > 0)
            return dpt__layer_error(l, DPT_EINVAL, "positional argument \"%s\" after a named one",
                                    arg);
        if (a->npos == DPT__ARGS_MAX)
            return dpt__layer_error(l, DPT_EINVAL, "more than %d arguments", DPT__ARGS_MAX);
        memcpy(a->pos[a->npos++], arg, strlen(arg) + 1);
        return DPT_OK;
    }
    *eq = '\0';
    char *val = eq + 1;
    trim(arg);
    trim(val);
    if (!is_identifier(arg) || !*val)
        return dpt__layer_error(l, DPT_EINVAL, "malformed option \"%s=%s\"", arg, val);
    for (int i = 0; i < a->nkw; i++)
        if (strcmp(a->key[i], arg) == 0)
            return dpt__layer_error(l, DPT_EINVAL, "option \"%s\" given twice", arg);
    if (a->nkw == DPT__ARGS_MAX)
        return dpt__layer_error(l, DPT_EINVAL, "more than %d options", DPT__ARGS_MAX);
    memcpy(a->key[a->nkw], arg, strlen(arg) + 1);
    memcpy(a->val[a->nkw++], val, strlen(val) + 1);
    return DPT_OK;
}

/* "name" or "name(args)" -> a. l->token holds the token. */
static dpt_status split_token(const dpt__layer *l, dpt__args *a) {
    memset(a, 0, sizeof *a);
    const char *t = l->token;
    const char *open = strchr(t, '(');
    size_t name_len = open ? (size_t)(open - t) : strlen(t);
    if (name_len == 0 || name_len >= sizeof a->name)
        return dpt__layer_error(l, DPT_EINVAL, "expected a layer name");
    memcpy(a->name, t, name_len);
    a->name[name_len] = '\0';
    if (!open)
        return DPT_OK;
    const char *close = strchr(open, ')');
    if (!close || strchr(open + 1, '(') || close[1] != '\0')
        return dpt__layer_error(l, DPT_EINVAL, "unbalanced parentheses");
    char inner[DPT__TOKEN_LEN];
    size_t n = (size_t)(close - open - 1);
    memcpy(inner, open + 1, n);
    inner[n] = '\0';
    trim(inner);
    if (!*inner)
        return DPT_OK;
    for (char *p = inner;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        dpt_status st = add_arg(l, a, p);
        if (st != DPT_OK || !comma)
            return st;
        p = comma + 1;
    }
}

static dpt_status configure_layer(dpt__layer *l) {
    dpt__args a;
    dpt_status st = split_token(l, &a);
    if (st != DPT_OK)
        return st;
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(a.name, keywords[i].name) == 0) {
            l->ops = keywords[i].ops;
            l->dims = keywords[i].dims;
            snprintf(l->keyword, sizeof l->keyword, "%s", a.name);
            if ((st = l->ops->configure(l, &a)) != DPT_OK)
                return st;
            return dpt__args_done(l, &a);
        }
    if (dpt_model_preset(a.name))
        return dpt__layer_error(l, DPT_EINVAL,
                                "unknown layer \"%s\" (a preset is a whole spec on "
                                "its own)",
                                a.name);
    return dpt__layer_error(l, DPT_EINVAL, "unknown layer \"%s\"", a.name);
}

/* The first byte outside printable ASCII (and blanks) as "U+2192 at character 12": a spec copied
 * from a document often carries an arrow, a non-breaking space or a typographic quote. Decodes
 * UTF-8 so the code point is the one the user typed; a byte that is not UTF-8 is named as one. */
static dpt_status check_ascii(const char *spec) {
    const unsigned char *s = (const unsigned char *)spec;
    for (long at = 1; *s; at++) {
        if (*s < 0x80 && (isprint(*s) || isspace(*s))) {
            s++;
            continue;
        }
        if (*s < 0x80)
            return dpt_errorf(DPT_EINVAL, "model spec: control character U+%04X at character %ld",
                              *s, at);
        int extra = *s >= 0xf0 ? 3 : *s >= 0xe0 ? 2 : *s >= 0xc0 ? 1 : -1;
        unsigned cp = extra < 0 ? 0 : *s & (0x3fu >> extra);
        for (int i = 1; i <= extra; i++) {
            if ((s[i] & 0xc0) != 0x80) {
                extra = -1;
                break;
            }
            cp = cp << 6 | (s[i] & 0x3fu);
        }
        if (extra < 0)
            return dpt_errorf(DPT_EINVAL, "model spec: byte 0x%02X at character %ld is not UTF-8 "
                                          "(only ASCII is accepted)",
                              *s, at);
        return dpt_errorf(DPT_EINVAL, "model spec: non-ASCII character U+%04X at character %ld "
                                      "(only ASCII is accepted)",
                          cp, at);
    }
    return DPT_OK;
}

dpt_status dpt__spec_parse(const char *spec, dpt__layer **layers, int *count) {
    *layers = NULL;
    *count = 0;
    dpt_status ascii = check_ascii(spec);
    if (ascii != DPT_OK)
        return ascii;
    const char *p = spec, *start;
    size_t len;
    int n = 0;
    while (next_token(&p, &start, &len))
        n++;
    if (n == 0)
        return dpt_errorf(DPT_EINVAL, "model spec: no layers in \"%s\"", spec);
    dpt__layer *ls = calloc((size_t)n, sizeof *ls);
    if (!ls)
        return dpt_errorf(DPT_ENOMEM, "model spec: cannot allocate %d layers", n);
    p = spec;
    dpt_status st = DPT_OK;
    for (int i = 0; i < n && st == DPT_OK; i++) {
        next_token(&p, &start, &len);
        dpt__layer *l = &ls[i];
        l->index = i;
        snprintf(l->token, sizeof l->token, "%.*s", (int)len, start);
        if (len >= sizeof l->token)
            st = dpt__layer_error(l, DPT_EINVAL, "token longer than %d characters",
                                  DPT__TOKEN_LEN - 1);
        else
            st = configure_layer(l);
    }
    if (st != DPT_OK) {
        free(ls);
        return st;
    }
    *layers = ls;
    *count = n;
    return DPT_OK;
}
