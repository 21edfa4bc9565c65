/* snapshot_wait.h — for test programs: ask this process's ledger for
 * snapshot `seq` through the real signal path, and wait until the file is
 * complete (it appears under its final name only once written). It looks in
 * MEMLEDGER_DIR, or in ML_TEST_SNAPDIR where a test sets MEMLEDGER_DIR to
 * something the library must refuse (and so writes to the current
 * directory instead). */
#ifndef ML_TEST_SNAPSHOT_WAIT_H
#define ML_TEST_SNAPSHOT_WAIT_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The highest <k> of dir's names memledger.<pid>.<k>.snap, of any type. */
static inline int snapshot_highest(const char *dir, int pid)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "memledger.%d.", pid), best = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char *end = NULL; /* not a literal: the header is also included from C++ */
        long k = strncmp(e->d_name, prefix, (size_t)n) == 0 ? strtol(e->d_name + n, &end, 10) : 0;
        if (k > best && end && strcmp(end, ".snap") == 0)
            best = (int)k;
    }
    if (d)
        closedir(d);
    return best;
}

/* Snapshot `seq` of this process is memledger.<pid>.<seq>.snap, or, where
 * that number or a later one was taken before (an earlier process with
 * this pid left snapshots, or something was planted there), the number
 * after the highest taken: the library never writes over another file. */
static inline void snapshot_wait(int seq)
{
    char path[4096];
    const char *dir = getenv("ML_TEST_SNAPDIR");
    if (!dir)
        dir = getenv("MEMLEDGER_DIR");
    if (!dir || !*dir)
        dir = ".";
    int taken = snapshot_highest(dir, (int)getpid());
    snprintf(path, sizeof path, "%s/memledger.%d.%d.snap", dir, (int)getpid(), seq > taken ? seq : taken + 1);
    kill(getpid(), SIGUSR2);
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 60000; i++) {
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) /* not a symlink planted there */
            return;
        nanosleep(&ms, NULL);
    }
    fprintf(stderr, "snapshot %s never appeared\n", path);
    exit(3);
}

#endif
