/* Run directories (io): creation, the per-run lock and the check that a new run does not land on
 * an earlier one (dpt/run_dir.h). */
#define _GNU_SOURCE /* flock, gethostname */
#include "dpt/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_BYTES 4096

/* What a run leaves in OUT (train, cv, ensembles, sweeps): --overwrite removes these, nothing
 * else is touched. A new run refuses an OUT holding one that marks a run: train, cv and
 * ensembles write args.txt first, so members/ alone is not one (a sweep writes points/ first). */
static const struct {
    const char *name;
    int marks_run;
} run_entries[] = {{"args.txt", 1},    {"metrics.csv", 1}, {"checkpoints", 1}, {"results.h5", 1},
                   {"ensemble.h5", 1}, {"sweep.csv", 1},   {"points", 1},      {"members", 0},
                   {NULL, 0}};

dpt_status dpt_run_dir_make(const char *dir) {
    char path[PATH_BYTES];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return dpt_errorf(DPT_EINVAL, "%.200s...: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        struct stat sb;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return dpt_errorf(DPT_EIO, "%s: cannot create the folder: %s", path, strerror(errno));
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return dpt_errorf(DPT_EIO, "%s: exists and is not a folder", path);
        *p = c;
        if (!c)
            break;
    }
    if (access(path, W_OK) != 0)
        return dpt_errorf(DPT_EIO, "%s: not writable: %s", path, strerror(errno));
    return DPT_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

/* An empty folder holds nothing a new run could mix with (mkdir -p OUT/checkpoints). */
static int empty_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(d));)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

/* The first entry of an earlier run in `out` (into `found`), or 0. */
static int earlier_run(const char *out, char *found, size_t size) {
    for (int i = 0; run_entries[i].name; i++) {
        char path[PATH_BYTES];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", out, run_entries[i].name);
        if (run_entries[i].marks_run && lstat(path, &sb) == 0 &&
            !(S_ISDIR(sb.st_mode) && empty_dir(path))) {
            snprintf(found, size, "%s%s", run_entries[i].name, S_ISDIR(sb.st_mode) ? "/" : "");
            return 1;
        }
    }
    return 0;
}

static dpt_status remove_earlier_run(const char *out) {
    for (int i = 0; run_entries[i].name; i++) {
        char path[PATH_BYTES];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", out, run_entries[i].name);
        if (lstat(path, &sb) != 0)
            continue;
        /* depth first, never following links: a link inside OUT is removed, not its target */
        int rc = S_ISDIR(sb.st_mode) ? nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS)
                                     : remove(path);
        if (rc != 0)
            return dpt_errorf(DPT_EIO, "--overwrite: cannot remove %s: %s", path,
                              strerror(errno));
    }
    return DPT_OK;
}

static void describe_holder(int fd, char *buf, size_t size) {
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (!buf[0])
        snprintf(buf, size, "its holder wrote nothing yet");
}

dpt_status dpt_run_dir_lock(dpt_run_lock *lk, const char *out, dpt_run_mode mode,
                            const char *command) {
    memset(lk, 0, sizeof *lk);
    dpt_status st = dpt_run_dir_make(out);
    if (st != DPT_OK)
        return st;
    char path[PATH_BYTES];
    if (snprintf(path, sizeof path, "%s/.lock", out) >= (int)sizeof path)
        return dpt_errorf(DPT_EINVAL, "%.200s...: path too long", out);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return dpt_errorf(DPT_EIO, "%s: cannot create the lock: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char holder[600];
        if (err == EWOULDBLOCK)
            describe_holder(fd, holder, sizeof holder);
        close(fd);
        if (err != EWOULDBLOCK)
            return dpt_errorf(DPT_EIO, "%s: cannot lock: %s", path, strerror(err));
        return dpt_errorf(DPT_EIO, "--out %.300s: in use by another run (%s); wait for it to "
                                     "end or choose another --out",
                          out, holder);
    }
    char found[64];
    if (mode == DPT_RUN_NEW && earlier_run(out, found, sizeof found)) {
        close(fd);
        return dpt_errorf(DPT_EINVAL, "--out %.300s: holds an earlier run (%s); continue it with "
                                      "--resume %.300s, replace it with --overwrite, or choose "
                                      "another --out",
                          out, found, out);
    }
    if (mode == DPT_RUN_OVERWRITE && (st = remove_earlier_run(out)) != DPT_OK) {
        close(fd);
        return st;
    }
    char host[256] = "?", when[32] = "?";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    char text[1200];
    int n = snprintf(text, sizeof text, "pid %ld on host %s since %s: %.900s\n", (long)getpid(),
                     host, when, command ? command : "dptrain");
    if (n > (int)sizeof text - 1)
        n = (int)sizeof text - 1;
    /* best effort: the lock itself is the flock; the text only names the holder */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)n, 0) != n)
        (void)ftruncate(fd, 0);
    lk->held = 1;
    lk->fd = fd;
    return DPT_OK;
}

void dpt_run_dir_unlock(dpt_run_lock *lk) {
    if (!lk || !lk->held)
        return;
    if (ftruncate(lk->fd, 0) != 0) {
        /* the flock is released by close either way; a stale text names a finished run */
    }
    close(lk->fd);
    lk->held = 0;
    lk->fd = -1;
}
