/* Run directories (io): `--out DIR` is created, checked and locked by one process (the launch's
 * rank 0) for the life of a run, so two runs never write into one folder and a new run never
 * mixes its files with an earlier run's (metrics.csv of one next to checkpoints of the other).
 * Knows file names, not training: the caller says whether it resumes the run that is there. */
#ifndef DPT_RUN_DIR_H
#define DPT_RUN_DIR_H

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mkdir -p `path`; the error names the folder and the system's reason (or that a component
 * exists and is not a folder). */
dpt_status dpt_run_dir_make(const char *path);

typedef struct {
    int held; /* 1 while OUT/.lock is held with flock(LOCK_EX) through fd */
    int fd;
} dpt_run_lock;

typedef enum {
    DPT_RUN_NEW,       /* a fresh run: OUT must not hold another run's files */
    DPT_RUN_OVERWRITE, /* a fresh run that first removes the files an earlier run left */
    DPT_RUN_CONTINUE,  /* --resume into the run's own folder: its files stay */
} dpt_run_mode;

/* Creates OUT and takes its lock; `command` (the command line) is written into OUT/.lock with
 * this process's pid, host and start time, so a second run is told who holds the folder:
 *   "--out OUT: in use by another run (pid 123 on host n1 since 2026-12-03 23:40:02:
 *    dptrain train ...)".
 * The lock is an flock on an open file: it goes away with the process, even after kill -9, so
 * a stale lock cannot outlive its run (flock is per host; on a cluster file system only the
 * launch's rank 0 writes the lock, so one host decides).
 * DPT_RUN_NEW refuses an OUT that holds an earlier run (args.txt, metrics.csv, checkpoints/,
 * results.h5, ensemble.h5, sweep.csv, points/; empty folders do not count), naming what is there and the two ways on
 * (--resume OUT, --overwrite). DPT_RUN_OVERWRITE removes exactly those entries and members/ (and
 * nothing else) once the lock is held. */
dpt_status dpt_run_dir_lock(dpt_run_lock *lk, const char *out, dpt_run_mode mode,
                            const char *command);
/* Releases the lock (the lock file stays, emptied). Safe on a zeroed or failed lock. */
void dpt_run_dir_unlock(dpt_run_lock *lk);

#ifdef __cplusplus
}
#endif

#endif
