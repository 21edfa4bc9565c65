/* unwind_fast.h — the table-driven x86-64 unwinder.
 * Owns: leaving memledger's own frames by frame pointer, and stepping each
 * caller frame with its rule from unwind_rules.h; optionally recording the
 * loads a walk depended on, so stack_cache.c can later confirm that a
 * stack is the same one by repeating only those loads.
 * Must never lock, allocate, make a syscall, or read outside the calling
 * thread's stack on a walk. The one exception is once per thread, on its
 * first walk: finding its stack bounds (gettid and getrlimit, or
 * pthread_getattr_np, which may allocate; the thread is inside memledger
 * then, so that allocation passes through untracked). */
#ifndef ML_UNWIND_FAST_H
#define ML_UNWIND_FAST_H

#include "common/common.h"

/* Where the program called into memledger: the first return address
 * outside the library, the stack pointer just above it, the program's RBP
 * at the call, and this thread's stack top. */
typedef struct {
    uintptr_t pc0, sp0, bp0, hi, lo;
    uint64_t epoch; /* the store epoch, ml_unwind_epoch and ml_code_epoch before the walk: what it was made with */
} ml_entry_t;

/* Sets up the per-thread walk memo's release at thread exit. */
void ml_unwind_fast_init(void);

/* Finds the calling thread's stack bounds into ml_self (once per thread;
 * the syscalls above). */
void ml_thread_stack_bounds(void);

/* Fills *e by walking memledger's own frames (always built with frame
 * pointers). Must be called from a function of the library. Returns false
 * when the frames do not lead out (then only libunwind can help). */
bool ml_unwind_entry(ml_entry_t *e);

/* The loads a walk depended on: slot offsets from sp0 and the values found
 * there (bit 0 of an offset set: the value is stored relative to sp0 — an
 * RBP, not a code address). */
#define ML_CHECK_MAX 128
#define ML_CHECK_LIVE_BP (-7) /* "the RBP register at entry", not a slot */
typedef struct {
    unsigned n;
    int32_t pos[ML_CHECK_MAX];
    uint64_t expect[ML_CHECK_MAX];
} ml_checks_t;

#define ML_WALK_DEFER UINT32_MAX

/* Walks from e, up to max frames, into words[]: where the calling
 * thread's previous walk still holds (its loads read the same values
 * now), from its frames, else step by step with the rules, and a frame
 * without a rule by one libunwind step (such a walk records no checks).
 * Records the loads into *checks when it is not NULL (and the walk
 * needed no more than ML_CHECK_MAX; otherwise checks->n is set to
 * ML_CHECK_MAX + 1). Returns the number of words, or ML_WALK_DEFER when a
 * frame has no rule yet (it is reported to the rule service). */
unsigned ml_unwind_walk(const ml_entry_t *e, uint64_t *words, unsigned max, ml_checks_t *checks);

#endif
