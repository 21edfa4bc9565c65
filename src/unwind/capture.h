/* capture.h — one contract for taking the calling thread's stack.
 * Owns: choosing the unwinder, trimming memledger's own frames, and the
 * order of the caches a capture tries. Must never lock,
 * allocate through the hooked allocator, or make a syscall per call: it
 * runs inside every hook.
 *
 * A stack is an array of 64-bit words, innermost first (core/ledger.h
 * defines the encoding). The first word is the caller of the hooked
 * function: memledger's own frames never appear. */
#ifndef ML_CAPTURE_H
#define ML_CAPTURE_H

#include "common/common.h"
#include "core/ledger.h"


/* An unwinder: fills pcs[] with return addresses, innermost first, starting
 * anywhere at or below its caller; returns how many. */
typedef unsigned (*ml_unwinder_fn)(uintptr_t *pcs, unsigned max);

/* Picks the unwinder from ml_config and learns memledger's own text range. */
void ml_capture_init(void);

/* Replaces the unwinder (tests give fixed stacks this way); NULL restores. */
void ml_capture_set_unwinder(ml_unwinder_fn fn);

/* Captures the calling thread's stack into words[cap] (raw words, see
 * core/ledger.h): at most ml_config.depth native frames, expanded by the
 * Python merge up to cap. Returns the number of words. */
unsigned ml_capture(uint64_t *words, unsigned cap);

/* Captures the calling thread's stack, adds it to the ledger if new, and
 * returns its ledger id. The hot path: a chain seen before is recognised
 * by stack_cache.c without unwinding. */
uint32_t ml_capture_stack(unsigned domain);

/* Capacity of a captured stack, in words. */
#define ML_STACK_WORDS ML_LEDGER_MAX_WORDS

/* The unwinders, usable directly by tests and benchmarks. */
unsigned ml_unwind_libunwind(uintptr_t *pcs, unsigned max);
unsigned ml_unwind_fp(uintptr_t *pcs, unsigned max);

/* True when pc lies in memledger's own code. */
bool ml_capture_is_self(uintptr_t pc);

/* Hook for the Python frame merge (pyframes.c sets it when the process is
 * CPython): rewrites n native words in place into a hybrid stack of at most
 * max words and returns the new count. */
typedef unsigned (*ml_merge_fn)(uint64_t *words, unsigned n, unsigned max);
void ml_capture_set_merge(ml_merge_fn fn);

/* The same merge, also interning (pyframes.c, which keeps a cache of
 * merged stacks): returns the ledger id of the hybrid stack of n native
 * words, which it may rewrite (max words of room). When set, it is used
 * instead of merge + ml_ledger_intern. */
typedef uint32_t (*ml_merge_intern_fn)(unsigned domain, uint64_t *words, unsigned n, unsigned max);
void ml_capture_set_merge_intern(ml_merge_intern_fn fn);

/* Captures that needed the slow unwinder (a return address without a rule
 * yet, or code without unwind information). */
uint64_t ml_capture_slow_count(void);

#endif
