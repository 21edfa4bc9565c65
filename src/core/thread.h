/* thread.h — what the library keeps per thread, and the re-entry guard.
 * Owns: the initial-exec TLS block. Initial-exec because touching it must
 * never allocate (a dynamic TLS block is malloc'd on first touch, inside the
 * very hook that is asking). Must never hold pointers to memory the thread
 * does not own. */
#ifndef ML_THREAD_H
#define ML_THREAD_H

#include "common/common.h"

/* Per-thread areas that folders above map on first use (this block must
 * stay small: it has to fit the loader's static TLS reserve when the
 * library is dlopen()ed), given back at thread exit by the function their
 * owner registered. */
enum {
    ML_AREA_WALK, /* unwind_fast.c's last walk and rule cache */
    ML_AREA_PY,   /* pyframes.c's code memo */
    ML_AREAS
};

typedef struct {
    int busy;              /* > 0 while this thread is inside the library */
    uint32_t shard;        /* counter shard + 1; 0 until first assigned */
    int64_t sample_left;   /* bytes until the next sampled allocation */
    uint64_t rng;          /* xorshift state for sampling; 0 until seeded */
    uintptr_t stack_lo, stack_hi; /* this thread's stack, for frame-pointer checks */
    void *path_memo;       /* ledger.c's memo of the last stack, mapped on first use */
    uint8_t memo_state;    /* 0 none yet, 1 mapped, 2 never (unmappable, or the thread is exiting) */
    bool exit_call;        /* ml_thread_want_exit_call done */
    void *area[ML_AREAS];  /* mapped on first use by their owners */
    uint8_t area_state[ML_AREAS]; /* 0 none yet, 1 mapped, 2 never (unmappable, or the thread is exiting) */
    uint32_t qslot;        /* quiesce.h's slot + 1; 0 unclaimed; UINT32_MAX: the shared counter */
    uint64_t qepoch;       /* the store epoch this thread announced last */
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

/* Asks that ml_thread_exit run when the calling thread exits: it gives
 * back what the thread holds (its counter shard, its quiesce slot, its
 * path memo). May allocate (pthread_setspecific), so only from inside the
 * library, where that passes through. */
void ml_thread_want_exit_call(void);

/* How area `which` (its owner a folder above) is given back at thread exit. */
void ml_thread_set_area_release(unsigned which, void (*fn)(void *area));

/* The calling thread's area `which`, mapped (size bytes, zeroed) on first
 * use; NULL when it cannot be, or the thread is exiting. */
void *ml_thread_area_slow(unsigned which, size_t size);
static inline void *ml_thread_area(unsigned which, size_t size)
{
    void *a = ml_self.area[which];
    return ML_LIKELY(a != NULL) ? a : ml_self.area_state[which] ? NULL : ml_thread_area_slow(which, size);
}

/* Sets up the thread-exit key (from the constructor). */
bool ml_thread_init(void);

/* False when the key could not be made: nothing is given back at exit,
 * so whatever must be is not handed out per thread (counter shards). */
bool ml_thread_exit_call_possible(void);

/* Marks the calling thread as the library's own for good (the dumper):
 * everything it allocates passes through untracked. */
static inline void ml_thread_make_internal(void) { ml_self.busy = 1 << 20; }

#endif
