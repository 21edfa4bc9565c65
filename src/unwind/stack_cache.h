/* stack_cache.h — recently seen call chains, recognised without unwinding.
 * Owns: a direct-mapped table keyed by (domain, first return address,
 * distance from the stack top), each entry holding a chain's words, its
 * ledger id, and the loads its walk depended on (unwind_fast.h). A hit
 * repeats those loads — independent of each other, so they run in
 * parallel — and is exact: equal loads mean an equal walk.
 * Must never lock or allocate; entries are guarded by per-entry sequence
 * counters so a reader never trusts a half-written entry. */
#ifndef ML_STACK_CACHE_H
#define ML_STACK_CACHE_H

#include "common/common.h"
#include "unwind/unwind_fast.h"

/* The longest chain an entry holds, in words. */
#define ML_STACK_CACHE_WORDS 64

bool ml_stack_cache_init(void);

/* On a hit, copies the chain into words[cap] (when words is not NULL),
 * sets *n and *id, and returns true. */
bool ml_stack_cache_find(const ml_entry_t *e, unsigned domain, uint64_t *words, unsigned cap, unsigned *n,
                         uint32_t *id);

/* Remembers a walk (skipped when its entry is being written by another
 * thread, or the walk is too long to cache). */
void ml_stack_cache_put(const ml_entry_t *e, unsigned domain, const uint64_t *words, unsigned n,
                        const ml_checks_t *checks, uint32_t id);

/* Resident bytes of the cache. */
uint64_t ml_stack_cache_resident(void);

/* After fork in the child: an entry a vanished thread was writing stays
 * odd forever; make it usable again. */
void ml_stack_cache_after_fork_child(void);

#endif
