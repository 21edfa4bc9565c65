/* dumper.h — when snapshots get written: on the signal, on an interval, at
 * exit, on request through the API; and keeping that working across fork.
 * Owns: the signal handler (which only wakes the dumper thread and chains
 * to the handler the program had, except for memledger's own marked
 * requests, common/status.h), the dumper thread, sequence numbers.
 * Must never write a snapshot from the signal handler. */
#ifndef ML_DUMPER_H
#define ML_DUMPER_H

#include "common/common.h"

/* Installs the signal handler and starts the dumper thread. */
void ml_dumper_start(void);

/* When tracking could not start: takes the snapshot signal all the same,
 * writing nothing, so `memledger snapshot` or a stray kill -USR2 cannot end
 * the process (the signal's default action) where it would have written a
 * snapshot had memledger started. The program's own handler still runs. */
void ml_dumper_guard_signal(void);

/* Wakes the dumper thread for background work (async-signal-safe: one
 * write(2) to an eventfd). */
void ml_dumper_wake(void);

/* Work the folders above hand the dumper thread (unwind rules from CFI,
 * attaching to a libpython loaded later): run each time the thread wakes.
 * A service returns true when it has more to do soon (the thread then
 * wakes again within a millisecond). `exclusive`: never while a snapshot
 * is being written (the service and the writer share state). Up to 8. */
typedef bool (*ml_dumper_service_fn)(void);
void ml_dumper_add_service(ml_dumper_service_fn fn, bool exclusive);

/* Writes a snapshot now from the calling thread (API, exit). Returns 0 or
 * an errno value; the path goes to path_out when given. */
int ml_dumper_snapshot_now(const char *trigger, char *path_out, size_t cap);

/* fork(): the child gets its own sequence, wake-up channel and thread. */
void ml_dumper_after_fork_child(void);

/* Process exit (the destructor): waits for a snapshot being written for as
 * long as it makes progress (MEMLEDGER_EXIT_STALL bounds a stretch without
 * any), writes a "signal" snapshot for the requests received and not yet
 * begun, then the exit snapshot when MEMLEDGER_AT_EXIT asks for one. What
 * it cannot write it names on stderr, one line each for the snapshot in
 * flight and for those that were still to come. */
void ml_dumper_shutdown(void);

#endif
