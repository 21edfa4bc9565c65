/* why.h — `memledger why` inside the target: who keeps a stack's blocks
 * alive (docs/why.md).
 * Owns: the exchange of files with the CLI in MEMLEDGER_DIR (a request,
 * then the stacks chosen from the snapshot it started, then the answer;
 * common/format.h names them), the search's own thread, its limits, and
 * the answer's contents. The native half of the search is whyheap.h's,
 * the Python half whygraph.h's.
 * Must never run on a hook's path or the hot path: nothing happens until
 * a snapshot finds a request file (one faccessat per snapshot), and then
 * everything runs on a thread of its own, marked as the library's (what it
 * allocates is not tracked). Must never trust a file it did not write:
 * request files are read only when they are regular files of this user,
 * not writable by others, small, and recent. */
#ifndef ML_WHY_H
#define ML_WHY_H

/* From the constructor: watches snapshots for a request. */
void ml_why_init(void);

/* fork(): a search in the parent is not the child's. */
void ml_why_after_fork_child(void);

#endif
