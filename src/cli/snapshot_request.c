/* snapshot_request.c — signal a process under the ledger, wait for its
 * snapshot (see snapshot_request.h). With a status page, the library says
 * when a snapshot that began after the request has finished, and whether
 * it was written. Without one, a snapshot appears under its final name only
 * once complete, so "a higher sequence number than before" is "a complete
 * new snapshot"; while one is being written its temporary file
 * (.memledger.<pid>.<seq>.snap.<random>.tmp) is there from its start. A
 * process that exits serves the requests it received first (or says on its
 * stderr why not), so a process that ended with no snapshot means the
 * snapshot will never come: that is said at once, not after the timeout. */
#include "cli/snapshot_request.h"
#include "common/config.h"
#include "common/format.h"
#include "common/grow.h"
#include "common/units.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    /* read until a read falls short of the room, keeping a byte for the NUL */
    while (ML_GROW(buf, cap, n + 4096)) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) {
            fclose(f);
            buf[n] = '\0';
            *len = n;
            return buf;
        }
    }
    fclose(f);
    free(buf);
    return NULL;
}

static const char *env_of(const char *environ, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = environ; p < environ + len; p += strlen(p) + 1)
        if (strncmp(p, name, nl) == 0 && p[nl] == '=')
            return p + nl + 1;
    return NULL;
}

/* The highest sequence number of pid's complete snapshots in dir (0: none;
 * -1: the directory cannot be read); when `writing` is given, the name of
 * a temporary file of pid's goes there ("" when none). */
static long max_seq(const char *dir, long pid, char *writing, size_t cap)
{
    DIR *d = opendir(dir);
    long best = 0;
    if (!d)
        return -1;
    char prefix[64], temp[64];
    snprintf(prefix, sizeof prefix, "memledger.%ld.", pid);
    snprintf(temp, sizeof temp, ".memledger.%ld.", pid);
    size_t pl = strlen(prefix), tl = strlen(temp);
    if (writing && cap)
        writing[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d))) {
        if (writing && cap && strncmp(e->d_name, temp, tl) == 0) {
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0)
                snprintf(writing, cap, "%s", e->d_name);
        }
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        char *end;
        long s = strtol(e->d_name + pl, &end, 10);
        if (strcmp(end, "." ML_SNAPSHOT_EXT) == 0 && s > best && s <= (long)ML_SEQ_MAX)
            best = s;
    }
    closedir(d);
    return best;
}

/* True when pid no longer runs: gone, or a zombie its parent has not
 * reaped yet (kill(pid, 0) still succeeds on one). A main thread that
 * called pthread_exit() shows as a zombie too while the other threads run
 * on: then there is more than one task. */
bool ml_process_ended(long pid)
{
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')'); /* the name may hold anything */
    if (!close_paren || close_paren[1] != ' ' || (close_paren[2] != 'Z' && close_paren[2] != 'X'))
        return false;
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    int tasks = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        tasks += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return tasks <= 1;
}

bool ml_status_read_fd(int fd, long pid, ml_status_t *out)
{
    /* a seqlock: two reads that agree, neither taken while it was written */
    for (int tries = 0; tries < 1000; tries++) {
        ml_status_t a;
        if (pread(fd, &a, sizeof a, 0) != (ssize_t)sizeof a)
            return false;
        if (a.magic != ML_STATUS_MAGIC || a.version != ML_STATUS_VERSION || a.size != sizeof a || a.pid != pid)
            return false;
        if (a.gen & 1) {
            usleep(100);
            continue;
        }
        if (pread(fd, out, sizeof *out, 0) != (ssize_t)sizeof *out)
            return false;
        if (out->gen == a.gen) {
            out->dir[sizeof out->dir - 1] = '\0';
            out->note[sizeof out->note - 1] = '\0';
            return true;
        }
    }
    return false;
}

bool ml_status_find(long pid, int *fd, ml_status_t *out)
{
    char dpath[64];
    snprintf(dpath, sizeof dpath, "/proc/%ld/fd", pid);
    DIR *d = opendir(dpath);
    if (!d)
        return false;
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d))) {
        char link[PATH_MAX], target[128];
        snprintf(link, sizeof link, "%s/%s", dpath, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, "/memfd:" ML_STATUS_NAME, strlen("/memfd:" ML_STATUS_NAME)) != 0)
            continue;
        int f = open(link, O_RDONLY | O_CLOEXEC);
        if (f < 0)
            continue;
        if (ml_status_read_fd(f, pid, out)) {
            *fd = f;
            found = true;
        } else {
            close(f);
        }
    }
    closedir(d);
    return found;
}

void ml_target_close(ml_target_t *t)
{
    if (t->status_fd >= 0)
        close(t->status_fd);
    t->status_fd = -1;
}

bool ml_target_read_status(ml_target_t *t)
{
    return t->status_fd >= 0 && ml_status_read_fd(t->status_fd, t->pid, &t->status);
}

/* From the status page: 0, or the exit status with err set. */
static int open_from_status(ml_target_t *t, char *err, size_t errcap)
{
    const ml_status_t *st = &t->status;
    if (st->flags & ML_STATUS_DETACHED) {
        snprintf(err, errcap, "memledger was detached from process %ld ('memledger detach'); it takes no "
                              "snapshots now (not signalled)", t->pid);
        return 2;
    }
    if (!(st->flags & ML_STATUS_TRACKING)) {
        snprintf(err, errcap, "process %ld has libmemledger.so loaded but is not tracking (it could not "
                              "start; see its stderr) (not signalled)", t->pid);
        return 2;
    }
    if (st->signal == 0) {
        snprintf(err, errcap, "process %ld runs with MEMLEDGER_SIGNAL=off; it does not answer snapshot signals",
                 t->pid);
        return 2;
    }
    t->sig = st->signal;
    snprintf(t->dir, sizeof t->dir, "%s", st->dir);
    return 0;
}

int ml_target_open(long pid, ml_target_t *t, char *err, size_t errcap)
{
    char path[PATH_MAX];
    size_t len = 0;
    memset(t, 0, sizeof *t);
    t->pid = pid;
    t->status_fd = -1;
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    char *maps = read_file(path, &len);
    if (!maps) {
        snprintf(err, errcap, "cannot read %s: %s (no such process, or not yours)", path, strerror(errno));
        return 2;
    }
    bool loaded = strstr(maps, "/libmemledger") != NULL;
    free(maps);
    if (!loaded) {
        snprintf(err, errcap, "process %ld does not have libmemledger.so loaded; start it with "
                              "'memledger run -- COMMAND' or LD_PRELOAD=libmemledger.so, or attach to it "
                              "with 'memledger attach %ld' (not signalled)", pid, pid);
        return 2;
    }
    if (ml_status_find(pid, &t->status_fd, &t->status)) {
        int rc = open_from_status(t, err, errcap);
        if (rc)
            ml_target_close(t);
        return rc;
    }
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    char *env = read_file(path, &len);
    if (!env) {
        snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno));
        return 2;
    }
    t->sig = SIGUSR2;
    const char *v = env_of(env, len, "MEMLEDGER_SIGNAL");
    if (v && !ml_parse_signal(v, &t->sig))
        t->sig = SIGUSR2; /* the library fell back to the default too */
    bool enabled = true;
    const char *en = env_of(env, len, "MEMLEDGER_ENABLE");
    if (en && !ml_parse_bool(en, &enabled))
        enabled = true;
    if (!enabled || t->sig == 0) {
        snprintf(err, errcap, "process %ld runs with %s; it does not answer snapshot signals", pid,
                 !enabled ? "MEMLEDGER_ENABLE=0" : "MEMLEDGER_SIGNAL=off");
        free(env);
        return 2;
    }
    const char *d = env_of(env, len, "MEMLEDGER_DIR");
    if (d && d[0] == '/') {
        snprintf(t->dir, sizeof t->dir, "%s", d);
    } else {
        /* relative: the library resolved it against its starting directory,
         * which is the process's cwd unless it has moved since */
        char cwdlink[64], cwd[PATH_MAX];
        snprintf(cwdlink, sizeof cwdlink, "/proc/%ld/cwd", pid);
        ssize_t n = readlink(cwdlink, cwd, sizeof cwd - 1);
        if (n <= 0) {
            snprintf(err, errcap, "cannot read %s: %s", cwdlink, strerror(errno));
            free(env);
            return 2;
        }
        cwd[n] = '\0';
        /* no MEMLEDGER_DIR: the cwd itself, so the path printed is the plain
         * one (not "cwd/./memledger.PID.SEQ.snap") */
        if (d && *d)
            snprintf(t->dir, sizeof t->dir, "%s/%s", cwd, d);
        else
            snprintf(t->dir, sizeof t->dir, "%s", cwd);
    }
    free(env);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int ml_target_request(ml_target_t *t, char *err, size_t errcap)
{
    if (t->status_fd >= 0 && ml_target_read_status(t)) {
        t->requests = t->status.requests;
    } else {
        ml_target_close(t); /* gone since: wait for the file instead */
        t->before = max_seq(t->dir, t->pid, NULL, 0);
        if (t->before < 0) {
            snprintf(err, errcap, "cannot read the snapshot directory %s: %s", t->dir, strerror(errno));
            return 1;
        }
    }
    /* marked: the library serves it and never hands it to the program's
     * own handler for the signal (gunicorn's master re-executes on USR2) */
    union sigval v = {.sival_ptr = (void *)ML_REQUEST_MARK};
    if (sigqueue((pid_t)t->pid, t->sig, v) != 0) {
        snprintf(err, errcap, "cannot signal process %ld: %s", t->pid, strerror(errno));
        return 1;
    }
    t->started_ms = now_ms();
    return 0;
}

/* Why a process could not write: the library's errno, said plainly. */
static void write_failure(const ml_target_t *t, char *err, size_t errcap)
{
    int e = t->status.error;
    const char *name = strerrorname_np(e);
    char who[96] = "";
    struct stat st;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%ld", t->pid);
    if ((e == EACCES || e == EPERM || e == EROFS) && stat(proc, &st) == 0)
        snprintf(who, sizeof who, " (the process runs as uid %u)", (unsigned)st.st_uid);
    snprintf(err, errcap, "process %ld could not write snapshot %llu into %s: %s (%s)%s", t->pid,
             (unsigned long long)t->status.seq, t->dir, strerror(e), name ? name : "?", who);
}

int ml_target_poll(ml_target_t *t, uint64_t timeout_ms, char *path, size_t cap, char *err, size_t errcap)
{
    /* whether it ended is asked first: a snapshot finished just before the
     * end is then still found below */
    bool gone = ml_process_ended(t->pid);
    char writing[256];
    if (t->status_fd >= 0) {
        if (ml_target_read_status(t) && t->status.covered > t->requests) {
            if (t->status.error) {
                write_failure(t, err, errcap);
                return 1;
            }
            snprintf(path, cap, "%s/memledger.%ld.%llu.%s", t->dir, t->pid, (unsigned long long)t->status.seq,
                     ML_SNAPSHOT_EXT);
            return 0;
        }
    } else {
        long after = max_seq(t->dir, t->pid, NULL, 0);
        if (after > t->before) {
            snprintf(path, cap, "%s/memledger.%ld.%ld.%s", t->dir, t->pid, after, ML_SNAPSHOT_EXT);
            return 0;
        }
    }
    if (gone) {
        snprintf(err, errcap, "process %ld ended without writing the snapshot it was asked for (where memledger "
                              "could not write one, it said why on the process's stderr)", t->pid);
        return 1;
    }
    if (now_ms() - t->started_ms < timeout_ms)
        return -1;
    if (max_seq(t->dir, t->pid, writing, sizeof writing) >= 0 && writing[0]) {
        snprintf(err, errcap, "process %ld is still writing a snapshot (%s/%s) after %llu ms; a big process "
                              "takes longer: give it more with --timeout", t->pid, t->dir, writing,
                 (unsigned long long)timeout_ms);
        return 1;
    }
    {
        snprintf(err, errcap, "no snapshot from process %ld in %s within %llu ms (is the signal blocked, "
                              "or handled by the program itself? see docs/config.md)",
                 t->pid, t->dir, (unsigned long long)timeout_ms);
        return 1;
    }
    return -1;
}

int ml_target_snapshot(ml_target_t *t, uint64_t timeout_ms, const volatile sig_atomic_t *cancel, char *path,
                       size_t cap, char *err, size_t errcap)
{
    int rc = ml_target_request(t, err, errcap);
    if (rc)
        return rc;
    for (;;) {
        rc = ml_target_poll(t, timeout_ms, path, cap, err, errcap);
        if (rc >= 0)
            return rc;
        if (cancel && *cancel) {
            snprintf(err, errcap, "interrupted while waiting for a snapshot of process %ld", t->pid);
            return 1;
        }
        uint64_t ms = now_ms() - t->started_ms;
        /* with a page, a look costs one pread: look often */
        usleep(t->status_fd >= 0 ? 2000 : ms < 1000 ? 10000 : 50000);
    }
}
