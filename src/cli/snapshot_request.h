/* snapshot_request.h — asking a running process for a snapshot and waiting
 * until the file is complete: what `memledger snapshot` (one process or a
 * tree) and `memledger watch` share. Owns finding where a process writes
 * and which signal it listens to (its status page, common/status.h, or
 * else MEMLEDGER_DIR and MEMLEDGER_SIGNAL in /proc/PID/environ), sending
 * the marked request (sigqueue with ML_REQUEST_MARK, so the program's own
 * handler for the signal never runs for it), and reading the outcome.
 * Must never signal a process that has no libmemledger.so loaded: the
 * signal's default action would kill it. Prints nothing: errors come back
 * as text for the caller to show. */
#ifndef ML_SNAPSHOT_REQUEST_H
#define ML_SNAPSHOT_REQUEST_H

#include "common/common.h"
#include "common/status.h"

#include <limits.h>
#include <signal.h>

typedef struct {
    long pid;
    int sig;
    char dir[2 * PATH_MAX + 2];
    int status_fd;         /* its status page, open; -1 when it has none */
    ml_status_t status;    /* as last read */
    /* a request under way (ml_target_request) */
    long before;           /* without a page: the highest sequence number before */
    uint64_t requests;     /* with a page: its request count before */
    uint64_t started_ms;
} ml_target_t;

/* Checks that `pid` runs the ledger and answers snapshot signals, and finds
 * its snapshot directory. Returns 0, or the exit status to end with (2: not
 * a process under memledger; 1: something else failed) with `err` set.
 * Close it with ml_target_close. */
int ml_target_open(long pid, ml_target_t *t, char *err, size_t errcap);

/* Closes what ml_target_open opened. */
void ml_target_close(ml_target_t *t);

/* Reads the target's status page again into t->status; false when it has none. */
bool ml_target_read_status(ml_target_t *t);

/* Sends the target a marked snapshot request. Returns 0, or 1 with `err` set. */
int ml_target_request(ml_target_t *t, char *err, size_t errcap);

/* Looks once whether the request's snapshot is there. Returns 0 with its
 * path in `path` (complete), -1 while it is not yet, 1 with `err` set when
 * it never will be: the process could not write it (the library's reason,
 * from its status page), or the process ended, or `timeout_ms` passed since
 * the request. */
int ml_target_poll(ml_target_t *t, uint64_t timeout_ms, char *path, size_t cap, char *err, size_t errcap);

/* Request and poll until done: `*cancel` becoming non-zero (may be NULL)
 * ends the wait with 1 and `err` set. */
int ml_target_snapshot(ml_target_t *t, uint64_t timeout_ms, const volatile sig_atomic_t *cancel, char *path,
                       size_t cap, char *err, size_t errcap);

/* Finds a process's status page and reads it; the descriptor (open) into
 * *fd. False when it has none (no memledger, an older one, or the program
 * closed it). */
bool ml_status_find(long pid, int *fd, ml_status_t *out);
/* Reads an open page consistently; false when it is not one. */
bool ml_status_read_fd(int fd, long pid, ml_status_t *out);

/* True when pid no longer runs: gone, or a zombie its parent has not
 * reaped yet (a main thread that called pthread_exit() while other
 * threads run on is not taken for one). */
bool ml_process_ended(long pid);

#endif
