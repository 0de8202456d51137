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
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
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
