/* track.h — what a hook tells the ledger: "this address was allocated here"
 * and "this address is gone".
 * Owns: the allocation hot path (sampling decision, stack capture, stack
 * interning, address recording), the library's on/off state, and the
 * per-process counters of internal problems. Must never fail the caller,
 * lock outside the address table, or allocate through the hooked allocator. */
#ifndef ML_TRACK_H
#define ML_TRACK_H

#include "core/addrtab.h"
#include "common/common.h"
#include "core/thread.h"
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

/* A stack taker: captures the calling thread's stack and returns its
 * ledger id. The usual one (unwind/capture.h's ml_capture_stack) lives
 * above this folder, so it is handed in, by init.c; unit tests hand in
 * fixed stacks the same way. Until one is set, allocations are counted
 * in their domain's overflow entry. */
typedef uint32_t (*ml_stack_fn)(unsigned domain);
void ml_track_set_stack_fn(ml_stack_fn fn);

/* ml_track_alloc with the stack taken by `stack` (NULL: the usual capture).
 * For hooks that run below frames of their own to leave out, such as
 * CUPTI callbacks inside the CUDA driver. */
void ml_track_alloc_by(ml_addrtab_t *t, unsigned domain, const void *p, uint64_t size, ml_stack_fn stack);

/* Forgets p and credits its stack. Call *before* the real free: once freed,
 * another thread may be handed the same address. Returns true when p was
 * tracked; its record is returned for a caller that may need to restore it. */
bool ml_track_free(ml_addrtab_t *t, const void *p, uint32_t *id, uint64_t *size);

/* ml_track_free for a record that may be put back (a realloc or a CUDA
 * free that the real call may refuse): when it returns true, the caller
 * holds the id (ml_ledger_hold) until it calls ml_ledger_unhold, after
 * ml_track_restore or once the real call succeeded. */
bool ml_track_free_held(ml_addrtab_t *t, const void *p, uint32_t *id, uint64_t *size);

/* Puts back a record removed by ml_track_free_held (a realloc that failed). */
void ml_track_restore(ml_addrtab_t *t, const void *p, uint32_t id, uint64_t size);

/* A realloc, for every hook that wraps one (malloc family, PyMem): forget
 * p *before* the real call (once it has moved the block, another thread
 * may already own that address), then record the result, or, when the
 * call failed and p is still allocated, put p's record back.
 *   ml_forgot_t f = ml_track_realloc_forget(t, p);
 *   q = real_realloc(p, n);
 *   ml_track_realloc_done(t, domain, p, q, n, p_kept_on_failure, &f); */
typedef struct {
    bool had;
    uint32_t id;
    uint64_t size;
} ml_forgot_t;
ml_forgot_t ml_track_realloc_forget(ml_addrtab_t *t, const void *p);
void ml_track_realloc_done(ml_addrtab_t *t, unsigned domain, const void *p, const void *q, uint64_t size,
                           bool p_kept_on_failure, const ml_forgot_t *f);

extern uint64_t ml_sample_rate; /* MEMLEDGER_SAMPLE_BYTES, 0 in exact mode */

/* Sampling mode's fast paths, inlined into the hooks so that the common
 * case (not sampled) costs a few instructions and no call.
 * ml_sample_skip: true when an allocation of `size` is not sampled (the
 * thread's byte countdown just moves). ml_free_skip: true when p surely was
 * not sampled (its filter bucket is empty), so free need not look it up. */
#define ML_FILTER_LOG2 16
#define ML_FILTER_EMPTY 1 /* a bucket's byte: 1 + its sampled allocations; 0 before sampling is set up */
extern _Atomic uint8_t ml_sample_filter[(size_t)1 << ML_FILTER_LOG2];
static inline bool ml_sample_skip(uint64_t size)
{
    if (ML_LIKELY(!ml_sample_rate))
        return false;
    int64_t left = ml_self.sample_left - (int64_t)(size | (size == 0));
    if (ML_LIKELY(left > 0 && ml_self.sample_left)) {
        ml_self.sample_left = left;
        return true;
    }
    return false; /* ml_track_alloc draws the next gap */
}

/* Allocators hand out 16-byte aligned blocks spread over the heap: the
 * address bits just above the alignment are already a good bucket. */
static inline _Atomic uint8_t *ml_filter_of(const void *p)
{
    return &ml_sample_filter[((uintptr_t)p >> 4) & (((uintptr_t)1 << ML_FILTER_LOG2) - 1)];
}

/* The free hooks' first question, before any other: one load. True only in
 * sampling mode, for an address whose bucket holds no sampled allocation;
 * in exact mode every bucket reads 0 and every free goes on to ask the
 * rest (the state, the thread's guard). */
static inline bool ml_free_gate_passes(const void *p)
{
    return atomic_load_explicit(ml_filter_of(p), memory_order_acquire) == ML_FILTER_EMPTY;
}

static inline bool ml_free_skip(const void *p) { return ml_sample_rate && ml_free_gate_passes(p); }

/* The hooks' first question: does this call need memledger at all? No when
 * tracking is off, when the thread is already inside memledger, or when
 * sampling passes over it (its countdown moves). Answered before the real
 * function is called, so that the hook can end in a tail call to it. */
static inline bool ml_alloc_passes(uint64_t size)
{
    return !ml_tracking() || ml_self.busy || ml_sample_skip(size);
}

/* fork(), in the child: reseeds the calling thread's sampling state (the
 * only thread the child has), so that forked siblings sample differently. */
void ml_track_after_fork_child(void);

/* Sets up what sampling mode needs (opens the free gate: every bucket
 * empty). Call after ml_sample_rate is set and the real functions are
 * resolved. Returns false when it could not (then every allocation is
 * tracked); with the filter static, nothing can fail today. */
bool ml_track_init(void);

/* For a process where memledger will track nothing (turned off, setuid):
 * every free passes the gate straight to the real free. Only once the
 * real functions are resolved. */
void ml_track_pass_all(void);

/* The estimate one sampled allocation of `size` stands for (bytes, count):
 * size/p and 1/p with p = 1 - exp(-size/rate); exact mode gives size and 1. */
void ml_sample_weight_slow(uint64_t size, uint64_t *bytes, uint64_t *count);
static inline void ml_sample_weight(uint64_t size, uint64_t *bytes, uint64_t *count)
{
    if (ML_LIKELY(!ml_sample_rate)) {
        *bytes = size;
        *count = 1;
        return;
    }
    ml_sample_weight_slow(size, bytes, count);
}

#endif
