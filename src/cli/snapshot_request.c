/* snapshot_request.c — signal a process under the ledger, wait for its
 * snapshot (see snapshot_request.h). A snapshot appears under its final
 * name only once complete, so "a higher sequence number than before" is
 * "a complete new snapshot"; while one is being written its temporary file
 * (.memledger.<pid>.<seq>.snap.<random>.tmp) is there from its start. A
 * process that exits serves the requests it received first (or says on its
 * stderr why not), so a process that ended with no new file means the
 * snapshot will never come: that is said at once, not after the timeout. */
#include "cli/snapshot_request.h"
#include "common/config.h"
#include "common/format.h"
#include "common/grow.h"
#include "common/units.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static bool ended(long pid)
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

int ml_target_open(long pid, ml_target_t *t, char *err, size_t errcap)
{
    char path[PATH_MAX];
    size_t len = 0;
    memset(t, 0, sizeof *t);
    t->pid = pid;
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
                              "'memledger run -- COMMAND' or LD_PRELOAD=libmemledger.so (not signalled)", pid);
        return 2;
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

int ml_target_snapshot(const ml_target_t *t, uint64_t timeout_ms, const volatile sig_atomic_t *cancel, char *path,
                       size_t cap, char *err, size_t errcap)
{
    long before = max_seq(t->dir, t->pid, NULL, 0);
    if (before < 0) {
        snprintf(err, errcap, "cannot read the snapshot directory %s: %s", t->dir, strerror(errno));
        return 1;
    }
    if (kill((pid_t)t->pid, t->sig) != 0) {
        snprintf(err, errcap, "cannot signal process %ld: %s", t->pid, strerror(errno));
        return 1;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char writing[256];
    for (;;) {
        /* whether it ended is asked first: a file renamed just before the
         * end is then still found below */
        bool gone = ended(t->pid);
        long after = max_seq(t->dir, t->pid, writing, sizeof writing);
        if (after > before) {
            snprintf(path, cap, "%s/memledger.%ld.%ld.%s", t->dir, t->pid, after, ML_SNAPSHOT_EXT);
            return 0;
        }
        if (cancel && *cancel) {
            snprintf(err, errcap, "interrupted while waiting for a snapshot of process %ld", t->pid);
            return 1;
        }
        if (gone) {
            snprintf(err, errcap, "process %ld ended without writing the snapshot it was asked for (where memledger "
                                  "could not write one, it said why on the process's stderr)", t->pid);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ms = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
                      (uint64_t)((now.tv_nsec - start.tv_nsec) / 1000000);
        if (ms >= timeout_ms && writing[0]) {
            snprintf(err, errcap, "process %ld is still writing a snapshot (%s/%s) after %llu ms; a big process "
                                  "takes longer: give it more with --timeout", t->pid, t->dir, writing,
                     (unsigned long long)timeout_ms);
            return 1;
        }
        if (ms >= timeout_ms) {
            snprintf(err, errcap, "no snapshot from process %ld in %s within %llu ms (is the signal blocked, "
                                  "or handled by the program itself? see docs/config.md)",
                     t->pid, t->dir, (unsigned long long)timeout_ms);
            return 1;
        }
        usleep(ms < 1000 ? 10000 : 50000);
    }
}
