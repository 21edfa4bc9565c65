/* status.h — what a process under the ledger and the `memledger` command
 * tell each other from outside: the mark on a snapshot request, and the
 * status page. Shared by the library (src/snapshot/status.c writes the
 * page) and the CLI (src/cli/snapshot_request.c reads it).
 * Owns: constants and one struct layout. Must never hold behaviour.
 *
 * The mark: `memledger snapshot` sends the snapshot signal with sigqueue(3)
 * and the value ML_REQUEST_MARK. The library's handler sees si_code
 * SI_QUEUE and that value, serves the request and does not chain it to the
 * program's own handler for the signal: gunicorn's master re-executes
 * itself on SIGUSR2. A plain `kill -USR2` (si_code SI_USER) still chains.
 *
 * The page: a small memfd ("memledger-status"), mapped shared by the
 * library and reachable from outside as /proc/PID/fd/N (the same
 * permission as reading /proc/PID/environ). It says where the process
 * writes snapshots, which signal it takes, and how the last snapshot went,
 * so `memledger snapshot` can report a directory it cannot write into at
 * once, with the library's reason, instead of waiting for a file that
 * never comes. Fields under `gen` are written by the dumper thread alone
 * as a seqlock: `gen` is odd while they change. */
#ifndef ML_STATUS_H
#define ML_STATUS_H

#include "common/common.h"

#define ML_REQUEST_MARK ((uintptr_t)0x6d6c65646765723fULL) /* "?regdelm": memledger's own request */

#define ML_STATUS_NAME "memledger-status"          /* memfd name: /proc/PID/fd/N -> "/memfd:memledger-status (deleted)" */
#define ML_STATUS_MAGIC 0x7375746174736c6dULL      /* "mlstatus" */
#define ML_STATUS_VERSION 1
#define ML_STATUS_DIR_MAX 4096
#define ML_STATUS_NOTE_MAX 256

/* flags */
#define ML_STATUS_TRACKING 1u  /* allocations are being tracked */
#define ML_STATUS_ATTACHED 2u  /* started by `memledger attach`, not at process start */
#define ML_STATUS_DETACHED 4u  /* `memledger detach` ended the tracking */

/* python: the PyMem hooks */
enum { ML_STATUS_PY_NONE, ML_STATUS_PY_PENDING, ML_STATUS_PY_HOOKED, ML_STATUS_PY_FAILED };

typedef struct {
    uint64_t magic;
    uint32_t version, size;          /* ML_STATUS_VERSION, sizeof(ml_status_t) */
    int32_t pid;                     /* the process the page belongs to (a forked child makes its own) */
    int32_t signal;                  /* the snapshot signal; 0: none */
    uint32_t flags;                  /* ML_STATUS_* */
    int32_t python;                  /* ML_STATUS_PY_* */
    uint32_t worker;                 /* n: the nth child its parent forked under the ledger; 0: not forked so */
    int32_t parent;                  /* the pid that forked it (with worker), else 0 */
    uint64_t start_time_ns;          /* Unix time tracking began (process start, or the attach) */
    uint64_t requests;               /* snapshot signals the handler took (atomic, any sender) */
    uint64_t gen;                    /* seqlock over what follows */
    uint64_t covered;                /* `requests` when the last finished snapshot began */
    uint64_t seq;                    /* that snapshot's sequence number */
    int32_t error;                   /* its errno; 0: it was written */
    int32_t reserved;
    uint64_t written, failed;        /* snapshots written and failed so far */
    char dir[ML_STATUS_DIR_MAX];     /* MEMLEDGER_DIR, absolute */
    char note[ML_STATUS_NOTE_MAX];   /* the library's word on Python after an attach */
} ml_status_t;

#endif
