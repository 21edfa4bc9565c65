/* snapshot_request.h — asking a running process for a snapshot and waiting
 * until the file is complete: what `memledger snapshot` and `memledger
 * watch` share. Owns finding where a process writes (MEMLEDGER_DIR) and
 * which signal it listens to (MEMLEDGER_SIGNAL), from /proc/PID/environ.
 * Must never signal a process that has no libmemledger.so loaded: the
 * signal's default action would kill it. Prints nothing: errors come back
 * as text for the caller to show. */
#ifndef ML_SNAPSHOT_REQUEST_H
#define ML_SNAPSHOT_REQUEST_H

#include "common/common.h"

#include <limits.h>
#include <signal.h>

typedef struct {
    long pid;
    int sig;
    char dir[2 * PATH_MAX + 2];
} ml_target_t;

/* Checks that `pid` runs the ledger and answers snapshot signals, and finds
 * its snapshot directory. Returns 0, or the exit status to end with (2: not
 * a process under memledger; 1: something else failed) with `err` set. */
int ml_target_open(long pid, ml_target_t *t, char *err, size_t errcap);

/* Signals the target and waits up to `timeout_ms` for a snapshot newer than
 * any there was; writes its path into `path`. Returns 0, or 1 with `err`
 * set (no snapshot in time, the process ended, the signal failed, or
 * `*cancel` became non-zero while waiting; `cancel` may be NULL). */
int ml_target_snapshot(const ml_target_t *t, uint64_t timeout_ms, const volatile sig_atomic_t *cancel, char *path,
                       size_t cap, char *err, size_t errcap);

#endif
