/* thread.h — what the library keeps per thread, and the re-entry guard.
 * Owns: the initial-exec TLS block. Initial-exec because touching it must
 * never allocate (a dynamic TLS block is malloc'd on first touch, inside the
 * very hook that is asking). Must never hold pointers to memory the thread
 * does not own. */
#ifndef ML_THREAD_H
#define ML_THREAD_H

#include "common/common.h"

/* A code object's serial as this thread last looked it up (pyframes.c),
 * valid while no interned code object has been freed since (epoch). The
 * address is a key, never dereferenced. Small: the whole block must fit
 * the loader's static TLS reserve when the library is dlopen()ed. */
typedef struct {
    uintptr_t code;
    uint32_t serial, epoch;
} ml_pymemo_t;
#define ML_PYMEMO 32

typedef struct {
    int busy;              /* > 0 while this thread is inside the library */
    uint32_t shard;        /* counter shard + 1; 0 until first assigned */
    int64_t sample_left;   /* bytes until the next sampled allocation */
    uint64_t rng;          /* xorshift state for sampling; 0 until seeded */
    ml_pymemo_t py_memo[ML_PYMEMO]; /* owned by pyframes.c */
    uintptr_t stack_lo, stack_hi; /* this thread's stack, for frame-pointer checks */
} ml_thread_t;

extern __thread ml_thread_t ml_self __attribute__((tls_model("initial-exec")));

/* Enters the library. Returns false when this thread is already inside it
 * (the caller then passes straight through to the real function). A signal
 * arriving between the test and the set runs its own complete enter/leave,
 * so the pair needs no atomics, only a compiler barrier. */
static inline bool ml_enter(void)
{
    if (ML_UNLIKELY(ml_self.busy))
        return false;
    ml_self.busy = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return true;
}

static inline void ml_leave(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    ml_self.busy = 0;
}

/* Marks the calling thread as the library's own for good (the dumper):
 * everything it allocates passes through untracked. */
static inline void ml_thread_make_internal(void) { ml_self.busy = 1 << 20; }

#endif
