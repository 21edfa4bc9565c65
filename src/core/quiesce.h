/* quiesce.h — knowing when no thread can still hold what the ledger is
 * about to take back (a stack id, a tree, a cache entry).
 * Owns: the store epoch, each thread's announcement of the epoch it works
 * under while it is inside an allocation hook, and waiting for every
 * thread to have moved on (a grace period, as in RCU).
 * A thread announces on entry (two loads and a store, no fence: the
 * waiting side makes every thread fence with membarrier(2); where the
 * kernel lacks it, and in ThreadSanitizer builds, which cannot see that
 * barrier, the announcement and the reload are sequentially consistent
 * operations instead, as are the waiting side's) and clears on exit.
 * Whatever a thread takes from a cache is valid only if the cache entry
 * carries the epoch the thread announced.
 * Must never allocate through the hooked allocator or lock on the hook
 * side; only the collector (the dumper thread) waits. */
#ifndef ML_QUIESCE_H
#define ML_QUIESCE_H

#include "common/common.h"
#include "core/thread.h"
#include <stdatomic.h>

#define ML_QSLOTS 1024

typedef struct {
    _Alignas(ML_CACHELINE) _Atomic uint64_t epoch; /* 0: outside */
} ml_qslot_t;

extern _Atomic uint64_t ml_store_epoch;
extern ml_qslot_t *ml_qslots;
extern _Atomic uint64_t ml_q_shared; /* threads without a slot of their own, inside */
extern _Atomic bool ml_q_fence;      /* no membarrier: announcements are sequentially consistent */

/* Sets up the slots and asks the kernel for expedited membarriers.
 * Returns false when the slots cannot be mapped. */
bool ml_quiesce_init(void);

/* Claims a slot for the calling thread (ml_self.qslot); threads beyond
 * ML_QSLOTS share a counter instead. */
void ml_quiesce_claim(void);

/* Entering: returns the epoch to validate cache entries against. */
static inline uint64_t ml_quiesce_enter(void)
{
    if (ML_UNLIKELY(!ml_self.qslot))
        ml_quiesce_claim();
    uint64_t e = atomic_load_explicit(&ml_store_epoch, memory_order_relaxed);
    /* then read again after announcing: a collector that moved the epoch
     * in between either sees the announcement or is seen here */
    uint64_t now;
    if (ML_UNLIKELY(atomic_load_explicit(&ml_q_fence, memory_order_relaxed))) {
        /* no barrier from the collector: the store and the load are both
         * in the single order of sequentially consistent operations, as
         * the collector's epoch increment and slot reads are */
        if (ML_LIKELY(ml_self.qslot != UINT32_MAX))
            atomic_store_explicit(&ml_qslots[ml_self.qslot - 1].epoch, e, memory_order_seq_cst);
        else
            atomic_fetch_add_explicit(&ml_q_shared, 1, memory_order_seq_cst);
        now = atomic_load_explicit(&ml_store_epoch, memory_order_seq_cst);
    } else {
        if (ML_LIKELY(ml_self.qslot != UINT32_MAX))
            atomic_store_explicit(&ml_qslots[ml_self.qslot - 1].epoch, e, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&ml_q_shared, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        now = atomic_load_explicit(&ml_store_epoch, memory_order_acquire);
    }
    ml_self.qepoch = now;
    return now;
}

static inline void ml_quiesce_leave(void)
{
    if (ML_LIKELY(ml_self.qslot != UINT32_MAX))
        atomic_store_explicit(&ml_qslots[ml_self.qslot - 1].epoch, 0, memory_order_release);
    else
        atomic_fetch_sub_explicit(&ml_q_shared, 1, memory_order_release);
}

/* The epoch the calling thread announced last (for caches it fills). */
static inline uint64_t ml_quiesce_epoch(void) { return ml_self.qepoch; }

/* The collector's side: moves the epoch on and waits until no thread is
 * still inside under an older one. Returns the new epoch. */
uint64_t ml_quiesce_advance_and_wait(void);

/* Thread exit: gives the slot back. */
void ml_quiesce_release(void);

/* After fork in the child: only the calling thread exists. */
void ml_quiesce_after_fork_child(void);

#endif
