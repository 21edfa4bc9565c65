/* snapshot_request.c — signal a process under the ledger, wait for its
 * snapshot (see snapshot_request.h). A snapshot appears under its final
 * name only once complete, so "a higher sequence number than before" is
 * "a complete new snapshot". */
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

static long max_seq(const char *dir, long pid)
{
    DIR *d = opendir(dir);
    long best = 0;
    if (!d)
        return -1;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "memledger.%ld.", pid);
    size_t pl = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
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
    long before = max_seq(t->dir, t->pid);
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
    for (;;) {
        long after = max_seq(t->dir, t->pid);
        if (after > before) {
            snprintf(path, cap, "%s/memledger.%ld.%ld.%s", t->dir, t->pid, after, ML_SNAPSHOT_EXT);
            return 0;
        }
        if (cancel && *cancel) {
            snprintf(err, errcap, "interrupted while waiting for a snapshot of process %ld", t->pid);
            return 1;
        }
        if (kill((pid_t)t->pid, 0) != 0 && errno == ESRCH) {
            snprintf(err, errcap, "process %ld ended before its snapshot was written", t->pid);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ms = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
                      (uint64_t)((now.tv_nsec - start.tv_nsec) / 1000000);
        if (ms >= timeout_ms) {
            snprintf(err, errcap, "no snapshot from process %ld in %s within %llu ms (is the signal blocked, "
                                  "or handled by the program itself? see docs/config.md)",
                     t->pid, t->dir, (unsigned long long)timeout_ms);
            return 1;
        }
        usleep(ms < 1000 ? 10000 : 50000);
    }
}
