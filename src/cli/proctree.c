/* proctree.c — walking a process tree through /proc (see proctree.h). */
#include "cli/proctree.h"
#include "common/grow.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ml_proc_stat(long pid, long *ppid, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may hold spaces and parentheses: fields start after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return false;
    char state;
    long pp;
    unsigned long long st;
    /* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
     * cstime priority nice num_threads itrealvalue starttime */
    if (sscanf(p + 1, " %c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
               &state, &pp, &st) != 3)
        return false;
    *ppid = pp;
    *start = st;
    return true;
}

char *ml_proc_cmdline(long pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return buf;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0' || buf[i] == '\n')
            buf[i] = ' ';
    buf[n] = '\0';
    return buf;
}

typedef struct {
    long pid, ppid;
    unsigned long long start;
} entry_t;

static int by_start(const void *a, const void *b)
{
    const ml_proc_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

ml_proc_t *ml_proctree(long root, size_t *n)
{
    *n = 0;
    long rpp;
    unsigned long long rst;
    if (!ml_proc_stat(root, &rpp, &rst))
        return NULL;
    entry_t *all = NULL;
    size_t nall = 0, cap_all = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        entry_t x = {pid, 0, 0};
        if (*end || pid <= 0 || !ml_proc_stat(pid, &x.ppid, &x.start))
            continue;
        if (!ML_GROW(all, cap_all, nall + 1)) {
            closedir(d);
            free(all);
            return NULL;
        }
        all[nall++] = x;
    }
    closedir(d);
    ml_proc_t *out = NULL;
    size_t nout = 0, cap_out = 0;
    bool ok = ML_GROW(out, cap_out, 1);
    if (ok)
        out[nout++] = (ml_proc_t){root, rpp, rst, 0, NULL};
    /* level by level: the children of the previous level, by start time */
    for (size_t lo = 0, hi = nout; ok && lo < hi; lo = hi, hi = nout) {
        for (size_t i = 0; ok && i < nall; i++) {
            bool child = false;
            for (size_t k = lo; k < hi && !child; k++)
                child = all[i].ppid == out[k].pid && all[i].pid != out[k].pid;
            if (!child)
                continue;
            ok = ML_GROW(out, cap_out, nout + 1);
            if (ok)
                out[nout++] = (ml_proc_t){all[i].pid, all[i].ppid, all[i].start, out[lo].depth + 1, NULL};
        }
        if (ok)
            qsort(out + hi, nout - hi, sizeof *out, by_start);
    }
    free(all);
    char buf[4096];
    for (size_t i = 0; ok && i < nout; i++) {
        out[i].cmdline = strdup(ml_proc_cmdline(out[i].pid, buf, sizeof buf));
        ok = out[i].cmdline != NULL;
    }
    if (!ok) {
        ml_proctree_free(out, nout);
        errno = ENOMEM;
        return NULL;
    }
    *n = nout;
    return out;
}

void ml_proctree_free(ml_proc_t *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].cmdline);
    free(p);
}
