/* Plain checks for the MPI tests. A failed check prints "rank R: FAIL file:line: ..." and the test
 * carries on, so every rank still reaches the same collectives (an aborting cmocka test would
 * leave the other ranks waiting). mpi_check_finish sums the failures over the world, every rank
 * prints its verdict, and the exit status is non-zero on every rank when any rank failed. */
#ifndef DPT_TEST_MPI_CHECK_H
#define DPT_TEST_MPI_CHECK_H

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int mpi_check_rank = -1, mpi_check_count, mpi_check_failed;

static inline void mpi_check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void mpi_check_fail(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rank %d: FAIL %s:%d: %s\n", mpi_check_rank, file, line, msg);
    fflush(stderr);
    mpi_check_failed++;
}

/* CHECK(cond, "format", ...): counts a check; prints the condition and the message on failure. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        mpi_check_count++;                                                                         \
        if (!(cond)) {                                                                             \
            char check_msg_[768];                                                                  \
            snprintf(check_msg_, sizeof check_msg_, __VA_ARGS__);                                  \
            mpi_check_fail(__FILE__, __LINE__, "%s: %s", #cond, check_msg_);                       \
        }                                                                                          \
    } while (0)

static inline int mpi_check_init(int *argc, char ***argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_check_rank);
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

/* Returns the exit status: 0 when no rank failed a check. */
static inline int mpi_check_finish(const char *name) {
    int total = 0;
    MPI_Allreduce(&mpi_check_failed, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d: %s: %d checks, %d failed on this rank, %d on all ranks: %s\n", mpi_check_rank,
           name, mpi_check_count, mpi_check_failed, total, total ? "FAIL" : "ok");
    fflush(stdout);
    MPI_Finalize();
    return total ? 1 : 0;
}

#endif
