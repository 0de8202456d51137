/* Choosing the checkpoint a run resumes from, and pruning periodic checkpoints (train). Periodic
 * checkpoints are OUT/checkpoints/step-NNNNNN.h5 (NNNNNN: optimizer steps done); there is no
 * `latest` pointer to go stale: the newest readable file is found by reading them all. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_impl.h"

typedef struct {
    char name[256];
    long long step; /* from the name; -1 for final.h5 */
} entry;

static int by_step_desc(const void *a, const void *b) {
    long long x = ((const entry *)a)->step, y = ((const entry *)b)->step;
    return (x < y) - (x > y);
}

/* step-NNNNNN.h5 -> NNNNNN; -1 for any other name. */
static long long periodic_step(const char *name) {
    long long step;
    int end = 0;
    if (sscanf(name, "step-%lld.h5%n", &step, &end) == 1 && name[end] == '\0' && step >= 0)
        return step;
    return -1;
}

/* The checkpoints of DIR/checkpoints: step files newest first, then final.h5. *out malloc'd. */
static dpt_status list_checkpoints(const char *dir, entry **out, int *n) {
    *out = NULL;
    *n = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    DIR *d = opendir(path);
    if (!d)
        return dpt_errorf(DPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    int cap = 0;
    dpt_status st = DPT_OK;
    for (struct dirent *de; st == DPT_OK && (de = readdir(d));) {
        long long step = periodic_step(de->d_name);
        if (step < 0 && strcmp(de->d_name, "final.h5") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            entry *e = realloc(*out, (size_t)cap * sizeof *e);
            if (!e) {
                st = dpt_errorf(DPT_ENOMEM, "cannot list %s", path);
                break;
            }
            *out = e;
        }
        snprintf((*out)[*n].name, sizeof (*out)[*n].name, "%s", de->d_name);
        (*out)[(*n)++].step = step;
    }
    closedir(d);
    if (st == DPT_OK && *n > 1)
        qsort(*out, (size_t)*n, sizeof **out, by_step_desc);
    return st;
}

dpt_status dpt_train_prune_checkpoints(const char *out, int64_t keep) {
    entry *e;
    int n;
    dpt_status st = list_checkpoints(out, &e, &n);
    int kept = 0;
    for (int i = 0; st == DPT_OK && i < n; i++) {
        if (e[i].step < 0 || ++kept <= keep)
            continue;
        char path[4600];
        snprintf(path, sizeof path, "%s/checkpoints/%s", out, e[i].name);
        if (unlink(path) != 0 && errno != ENOENT)
            st = dpt_errorf(DPT_EIO, "%s: cannot remove an old checkpoint: %s", path,
                            strerror(errno));
    }
    free(e);
    return st;
}

/* The run directory of a checkpoint file: RUN for RUN/checkpoints/NAME.h5, else its folder. */
static void run_dir_of(const char *file, char *out, size_t n) {
    snprintf(out, n, "%s", file);
    char *slash = strrchr(out, '/');
    if (!slash) {
        snprintf(out, n, ".");
        return;
    }
    *slash = '\0';
    const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
    if (!strcmp(base, "checkpoints")) {
        if (base == out)
            snprintf(out, n, ".");
        else
            out[base - out - 1] = '\0';
    }
}

dpt_status dpt_train_resume_select(const char *what, FILE *warn, char *path, size_t path_size,
                                   char *run_dir, size_t run_dir_size, char **argv,
                                   char **settings) {
    *argv = *settings = NULL;
    struct stat sb;
    if (stat(what, &sb) != 0)
        return dpt_errorf(DPT_EIO, "--resume %s: %s", what, strerror(errno));
    int64_t step;
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(path, path_size, "%s", what);
        run_dir_of(what, run_dir, run_dir_size);
        return dpt_checkpoint_read_config(what, &step, argv, settings);
    }
    snprintf(run_dir, run_dir_size, "%s", what);
    entry *e;
    int n;
    dpt_status st = list_checkpoints(what, &e, &n);
    if (st != DPT_OK)
        return dpt_errorf(st, "--resume %s: no checkpoint to resume from (%s)", what,
                          dpt_last_error());
    int64_t best = -1;
    for (int i = 0; i < n; i++) {
        char file[4600], *a, *s;
        snprintf(file, sizeof file, "%s/checkpoints/%s", what, e[i].name);
        if (dpt_checkpoint_read_config(file, &step, &a, &s) != DPT_OK) {
            if (warn)
                fprintf(warn, "dptrain: warning: --resume: skipping %s\n", dpt_last_error());
            continue;
        }
        if (step > best) {
            best = step;
            free(*argv), free(*settings);
            *argv = a, *settings = s;
            snprintf(path, path_size, "%s", file);
        } else {
            free(a), free(s);
        }
    }
    free(e);
    if (best < 0)
        return dpt_errorf(DPT_EIO, "--resume %s: no readable checkpoint in %s/checkpoints", what,
                          what);
    return DPT_OK;
}

int dpt_train_is_jobs_dir(const char *dir) {
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/members", dir);
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

dpt_status dpt_train_resume_job(const char *run, int job, FILE *warn, char *path,
                                size_t path_size, int *found) {
    *found = 0;
    char dir[4200], checkpoints[4300], run_dir[4200], *argv, *settings;
    snprintf(dir, sizeof dir, "%s/members/%02d", run, job);
    snprintf(checkpoints, sizeof checkpoints, "%s/checkpoints", dir);
    struct stat sb;
    if (stat(checkpoints, &sb) != 0)
        return DPT_OK; /* never started, or killed before its folder was made */
    dpt_status st = dpt_train_resume_select(dir, warn, path, path_size, run_dir, sizeof run_dir,
                                            &argv, &settings);
    free(argv), free(settings);
    if (st == DPT_OK)
        *found = 1;
    return DPT_OK; /* nothing readable: the job starts afresh */
}

/* qsort order of member numbers */
static int by_job(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

dpt_status dpt_train_resume_jobs_config(const char *run, char *path, size_t path_size,
                                        char **argv, char **settings) {
    *argv = *settings = NULL;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/members", run);
    DIR *d = opendir(dir);
    if (!d)
        return dpt_errorf(DPT_EIO, "--resume %s: cannot open %s: %s", run, dir, strerror(errno));
    int jobs[1024], n = 0;
    for (struct dirent *de; n < 1024 && (de = readdir(d));) {
        int job, end = 0;
        if (sscanf(de->d_name, "%d%n", &job, &end) == 1 && de->d_name[end] == '\0' && job >= 0)
            jobs[n++] = job;
    }
    closedir(d);
    qsort(jobs, (size_t)n, sizeof *jobs, by_job);
    for (int i = 0; i < n; i++) {
        int found = 0;
        dpt_train_resume_job(run, jobs[i], NULL, path, path_size, &found);
        int64_t step;
        if (found && dpt_checkpoint_read_config(path, &step, argv, settings) == DPT_OK)
            return DPT_OK;
    }
    return dpt_errorf(DPT_EIO, "--resume %s: no member holds a readable checkpoint yet; start "
                               "the run again with --overwrite",
                      run);
}
