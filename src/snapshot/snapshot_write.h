/* snapshot_write.h — writing one snapshot file from the live ledger.
 * Owns: the file's creation (temporary name, 0600, O_EXCL|O_NOFOLLOW, then
 * a rename that never replaces a file: <seq> moves past every snapshot of
 * the pid already in the directory), its contents per format.h and
 * docs/format.md, and the frame table. Runs in the dumper or an API caller, never in a hook or a signal
 * handler: it allocates and symbolizes. Never writes environment values. */
#ifndef ML_SNAPSHOT_WRITE_H
#define ML_SNAPSHOT_WRITE_H

#include "common/common.h"
#include "common/io.h"
#include <sys/types.h>

/* Writes <dir>/memledger.<pid>.<seq>.snap. Returns 0, or an errno value
 * (the temporary file is removed on failure; ECANCELED when
 * ml_snapshot_discard_temp took it away). The final path goes to path_out
 * when it is not NULL, and the number the file took to *seq (past every
 * snapshot of pid already in dir: docs/format.md). On the way, now and then (at most once a minute), it
 * removes the temporary files that dead processes left in `dir` (see
 * snapshot_write.c, "Stale temporary files"). */
int ml_snapshot_write(const char *dir, pid_t pid, unsigned *seq, const char *trigger,
                      char *path_out, size_t cap);

/* The folders above (unwind, Python, CUDA) add header lines with this;
 * up to 8. */
typedef void (*ml_header_fn)(ml_out_t *o);
void ml_snapshot_add_header(ml_header_fn fn);

/* ... and figures to the `memory` line: `name` and the resident bytes
 * `resident` returns when the snapshot is written; up to 8. */
void ml_snapshot_add_memory(const char *name, uint64_t (*resident)(void));

/* How Python frames are named (set by python.c): the encoded word of a
 * Python frame (core/ledger.h). Returns false when it cannot be named;
 * strings must outlive the call. */
typedef struct {
    const char *function, *file;
    int line;
} ml_pyframe_t;
typedef bool (*ml_pyframe_fn)(uint64_t word, ml_pyframe_t *out);
void ml_snapshot_set_pyframe_fn(ml_pyframe_fn fn);

/* Which stack each `s` record of a snapshot is: after a snapshot is
 * written, when want(trigger) says so, fn gets its sequence number and the
 * ledger id of each record in file order (`memledger why`, python/why.c,
 * names stacks by their place in a snapshot). Both run on the writing
 * thread; want() is asked once per snapshot, so it must be cheap. */
typedef bool (*ml_snapshot_want_ids_fn)(const char *trigger);
typedef void (*ml_snapshot_ids_fn)(unsigned seq, const uint32_t *ids, size_t n);
void ml_snapshot_set_ids_observer(ml_snapshot_want_ids_fn want, ml_snapshot_ids_fn fn);

/* Snapshots that could not be written so far (reported in the next one). */
extern _Atomic uint64_t ml_snapshots_failed;

/* Advanced by the snapshot being written as it goes (stacks looked at,
 * frames named, bytes compressed), at least every few milliseconds of its
 * work: whoever waits for a write tells a slow one from a stuck one by it. */
extern _Atomic uint64_t ml_snapshot_progress;

/* For the exit path giving up on a write that stopped: removes the
 * temporary file of the snapshot being written, if it has one open, and
 * takes it from the writer (which, should it ever go on, finds it taken and
 * fails with ECANCELED instead of renaming it). Returns true when there
 * was one; its path goes to `path` (may be NULL). Touches no lock and does
 * not allocate. */
bool ml_snapshot_discard_temp(char *path, size_t cap);

/* fork(): a snapshot the parent's thread was writing is not the child's. */
void ml_snapshot_after_fork_child(void);

#endif
