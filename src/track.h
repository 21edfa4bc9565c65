/* track.h — what a hook tells the ledger: "this address was allocated here"
 * and "this address is gone".
 * Owns: the allocation hot path (sampling decision, stack capture, stack
 * interning, address recording), the library's on/off state, and the
 * per-process counters of internal problems. Must never fail the caller,
 * lock outside the address table, or allocate through the hooked allocator. */
#ifndef ML_TRACK_H
#define ML_TRACK_H

#include "addrtab.h"
#include "common.h"
#include <stdatomic.h>

enum ml_state { ML_OFF, ML_STARTING, ML_ACTIVE, ML_DISABLED };
extern _Atomic int ml_state;

/* The heap address space: malloc-family and PyMem addresses. */
extern ml_addrtab_t ml_heap_addrs;

static inline bool ml_tracking(void)
{
    return atomic_load_explicit(&ml_state, memory_order_relaxed) == ML_ACTIVE;
}

/* Records an allocation of `size` bytes at p in `domain`, charged to the
 * calling thread's stack. Call after the real allocation succeeded. */
void ml_track_alloc(ml_addrtab_t *t, unsigned domain, const void *p, uint64_t size);

/* Forgets p and credits its stack. Call *before* the real free: once freed,
 * another thread may be handed the same address. Returns true when p was
 * tracked; its record is returned for a caller that may need to restore it. */
bool ml_track_free(ml_addrtab_t *t, const void *p, uint32_t *id, uint64_t *size);

/* Puts back a record removed by ml_track_free (a realloc that failed). */
void ml_track_restore(ml_addrtab_t *t, const void *p, uint32_t id, uint64_t size);

/* Problems the hooks met and passed through, reported in each snapshot. */
typedef struct {
    _Atomic uint64_t sampled_out;   /* allocations not sampled (sampling mode) */
} ml_track_stats_t;
extern ml_track_stats_t ml_track_stats;

/* The estimate one sampled allocation of `size` stands for (bytes, count):
 * size/p and 1/p with p = 1 - exp(-size/rate); exact mode gives size and 1. */
void ml_sample_weight(uint64_t size, uint64_t *bytes, uint64_t *count);

#endif
