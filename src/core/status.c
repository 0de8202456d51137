/* Status table and the per-thread last-error message (core: no MPI, no files). */
#include "dpt/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
#define NAME(name, msg) #name,
    DPT_STATUS_TABLE(NAME)
#undef NAME
};
static const char *const status_messages[] = {
#define MSG(name, msg) msg,
    DPT_STATUS_TABLE(MSG)
#undef MSG
};

static _Thread_local char last_message[1024];

/* Messages cross ranks in 1024-byte buffers too (comm/agree.c), so a message longer than this is
 * shortened here: first its longest tokens (paths) in the middle, "/very/long/pa...h/file.h5",
 * then, if that is not enough, the message itself in the middle; the reason at the end survives. */
enum { MESSAGE_MAX = 1000, TOKEN_KEEP = 60 };

static void shorten(char *m, size_t n) {
    while (n > MESSAGE_MAX) {
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < n;) {
            size_t len = strcspn(m + i, " ");
            if (len > best_len)
                best = i, best_len = len;
            i += len + 1;
        }
        if (best_len <= TOKEN_KEEP + 3)
            break;
        size_t want = n - MESSAGE_MAX, cut = best_len - TOKEN_KEEP - 3; /* chars removed */
        if (cut > want + 3)
            cut = want + 3;
        size_t keep_head = (best_len - cut - 3) / 2;
        char *from = m + best + keep_head;
        memcpy(from, "...", 3);
        memmove(from + 3, from + 3 + cut, n - (size_t)(from + 3 + cut - m) + 1);
        n -= cut;
    }
    if (n > MESSAGE_MAX) {
        size_t head = MESSAGE_MAX / 3, tail = MESSAGE_MAX - head - 3;
        memcpy(m + head, "...", 3);
        memmove(m + head + 3, m + n - tail, tail + 1);
    }
}

const char *dpt_status_name(dpt_status st) {
    return (unsigned)st < DPT_STATUS_COUNT ? status_names[st] : "DPT_UNKNOWN";
}

const char *dpt_strerror(dpt_status st) {
    return (unsigned)st < DPT_STATUS_COUNT ? status_messages[st] : "unknown status";
}

dpt_status dpt_errorf(dpt_status st, const char *fmt, ...) {
    /* Format into a scratch buffer first: callers may pass dpt_last_error() as an argument to
     * prefix the message they are replacing. */
    char message[sizeof last_message];
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    char *full = n > MESSAGE_MAX ? malloc((size_t)n + 1) : NULL;
    if (full) {
        vsnprintf(full, (size_t)n + 1, fmt, again);
        shorten(full, (size_t)n);
        snprintf(message, sizeof message, "%s", full);
        free(full);
    }
    va_end(again);
    memcpy(last_message, message, sizeof message);
    return st;
}

const char *dpt_last_error(void) { return last_message[0] ? last_message : "no error recorded"; }

void dpt_error_clear(void) { last_message[0] = '\0'; }

_Noreturn void dpt__assert_fail(const char *cond, const char *file, int line, const char *func) {
    fprintf(stderr, "dptrain: internal error: %s:%d: %s: assertion `%s' failed\n", file, line, func,
            cond);
    fflush(stderr);
    abort();
}
