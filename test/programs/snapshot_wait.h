/* snapshot_wait.h — for test programs: ask this process's ledger for
 * snapshot `seq` through the real signal path, and wait until the file is
 * complete (it appears under its final name only once written). It looks in
 * MEMLEDGER_DIR, or in ML_TEST_SNAPDIR where a test sets MEMLEDGER_DIR to
 * something the library must refuse (and so writes to the current
 * directory instead). */
#ifndef ML_TEST_SNAPSHOT_WAIT_H
#define ML_TEST_SNAPSHOT_WAIT_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static inline void snapshot_wait(int seq)
{
    char path[4096];
    const char *dir = getenv("ML_TEST_SNAPDIR");
    if (!dir)
        dir = getenv("MEMLEDGER_DIR");
    snprintf(path, sizeof path, "%s/memledger.%d.%d.snap", dir && *dir ? dir : ".", (int)getpid(), seq);
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
