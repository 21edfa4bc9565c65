/* status.h — the process's status page, as `memledger` reads it from outside
 * (the layout and why: src/common/status.h).
 * Owns: making the page (a sealed memfd, mapped shared), filling in who the
 * process is and where it writes, counting snapshot requests, and recording
 * how each snapshot went. Must never fail the program: without a page (no
 * memfd, or the program closed the descriptor) the CLI falls back to
 * /proc/PID/environ and waiting for the file. ml_status_request is
 * async-signal-safe; the rest runs on the constructor, the attach call or
 * the dumper thread. */
#ifndef ML_SNAPSHOT_STATUS_H
#define ML_SNAPSHOT_STATUS_H

#include "common/common.h"
#include "common/status.h"

/* Makes the page and fills in the pid, the signal and the directory from
 * ml_config; `flags` as in common/status.h. Returns false when there is no
 * page (the program runs on). */
bool ml_status_open(uint32_t flags);

/* Counts one snapshot request (the signal handler: async-signal-safe). */
void ml_status_request(void);

/* Requests counted so far (0 without a page). */
uint64_t ml_status_requests(void);

/* A snapshot that began when ml_status_requests() was `covered` finished
 * as number `seq`, written (err 0) or not (an errno value). */
void ml_status_done(uint64_t covered, uint64_t seq, int err);

/* Sets or clears flags. */
void ml_status_flags(uint32_t set, uint32_t clear);

/* The PyMem hooks' state (ML_STATUS_PY_*) and a line saying why, or NULL. */
void ml_status_python(int state, const char *note);

/* fork(): the child drops the parent's page (the mapping is shared) and
 * makes its own, saying it is the parent's `worker`th child. */
void ml_status_after_fork_child(uint32_t worker, int parent);

#endif
