/* Status codes and error messages (core). Bad input returns a dpt_status whose message was
 * recorded, once, where the facts were known (dpt_errorf); bugs use DPT_ASSERT and abort. */
#ifndef DPT_STATUS_H
#define DPT_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, message): one table gives the enum, the names and the default messages. */
#define DPT_STATUS_TABLE(X)                                                                        \
    X(DPT_OK, "success")                                                                           \
    X(DPT_EINVAL, "invalid argument")                                                              \
    X(DPT_ESHAPE, "shape mismatch")                                                                \
    X(DPT_ERANGE, "value out of range")                                                            \
    X(DPT_ENOMEM, "out of memory")                                                                 \
    X(DPT_EIO, "input/output error")                                                               \
    X(DPT_EFORMAT, "malformed file")                                                               \
    X(DPT_ENONFINITE, "non-finite value")                                                          \
    X(DPT_EUNSUPPORTED, "not supported")                                                           \
    X(DPT_EMPI, "MPI error")                                                                       \
    X(DPT_EHDF5, "HDF5 error")                                                                     \
    X(DPT_EREMOTE, "error on another rank")

typedef enum {
#define DPT__STATUS_ENUM(name, msg) name,
    DPT_STATUS_TABLE(DPT__STATUS_ENUM)
#undef DPT__STATUS_ENUM
    DPT_STATUS_COUNT
} dpt_status;

/* "DPT_EINVAL" etc.; "DPT_UNKNOWN" for values outside the table. */
const char *dpt_status_name(dpt_status st);
/* The table's fixed message for a code. */
const char *dpt_strerror(dpt_status st);

/* Records a formatted message for this thread and returns `st`, so call sites read
 * `return dpt_errorf(DPT_EIO, "%s: cannot open: %s", path, strerror(errno));`. */
dpt_status dpt_errorf(dpt_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last recorded message, or the table message of the last code if none was formatted. */
const char *dpt_last_error(void);
void dpt_error_clear(void);

/* Contract violations (bugs, not bad input): prints file:line and the condition, aborts.
 * Stays on in every build type. */
#define DPT_ASSERT(cond)                                                                           \
    ((cond) ? (void)0 : dpt__assert_fail(#cond, __FILE__, __LINE__, __func__))
_Noreturn void dpt__assert_fail(const char *cond, const char *file, int line, const char *func);

#ifdef __cplusplus
}
#endif
#endif
