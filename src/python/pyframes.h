/* pyframes.h — the calling thread's Python frames, read where it stands,
 * and merged into its native stack.
 * Owns: walking the thread's own frame chain (without the GIL, without
 * allocating, without any API that makes frame objects), splitting it into
 * the eval-loop calls that ran it, and the hybrid merge that capture.c
 * calls through ml_capture_set_merge: each native frame of
 * _PyEval_EvalFrameDefault is replaced by the Python frames that call ran.
 * Must never lock, allocate, make a syscall, or read another thread's
 * frames: a thread's own chain is stable only while that thread is the
 * one reading it.
 *
 * A Python frame in a captured stack is one raw word (core/ledger.h):
 *   ML_WORD_PY | serial << 32 | addr
 * with the code object's serial (pycode.h) and the instruction's byte
 * offset in the code, as a 32-bit two's complement value (-1: not
 * started). The stack store keeps it encoded by line instead
 * (ml_pyframes_encode). */
#ifndef ML_PYFRAMES_H
#define ML_PYFRAMES_H

#include "common/common.h"
#include "python/pyversions.h"
#include "snapshot/snapshot_write.h"

typedef struct {
    const ml_pylayout_t *layout;
    void *(*this_thread_state)(void);  /* PyGILState_GetThisThreadState */
    uintptr_t code_type;               /* &PyCode_Type */
    /* _PyEval_EvalFrameDefault's code, and the part the compiler moved
     * out of line (.cold; 0, 0 when none) */
    uintptr_t eval_lo, eval_hi, cold_lo, cold_hi;
} ml_pyframes_conf_t;

/* Sets up the walk; pycode.h must be set up already. */
void ml_pyframes_init(const ml_pyframes_conf_t *conf);

/* The merge (ml_merge_fn): words[0..n) native, innermost first, rewritten
 * into at most max words. A thread without a Python thread state, or with
 * no frame running, keeps its native stack. Python frames beyond the
 * native stack's last eval frame (a native stack cut at MEMLEDGER_DEPTH)
 * follow at the end, outermost last. A chain deeper than 255 Python frames
 * keeps its innermost 127 and outermost 128, with one ML_MARK_PY_ELIDED
 * word between them in place of the rest and of the native frames that
 * ran among them (pyframes.c). */
unsigned ml_pyframes_merge(uint64_t *words, unsigned n, unsigned max);

/* The same merge, interned (ml_merge_intern_fn): the ledger id of the
 * hybrid stack, from pystacks.h when it was seen recently. */
uint32_t ml_pyframes_intern(unsigned domain, uint64_t *words, unsigned n, unsigned max);

#define ML_PYFRAMES_SERIAL_MASK 0x3fffffffu

/* The stack store's word for a raw Python word: the instruction becomes
 * its line (ml_ledger_set_python_encoder). */
uint64_t ml_pyframes_encode(uint64_t raw);

/* Names an encoded Python frame word (ml_pyframe_fn). */
bool ml_pyframes_name(uint64_t word, ml_pyframe_t *out);

/* The calling thread's Python frames only, innermost first, one raw word
 * each into words[max]; returns the number of words. For tests. */
unsigned ml_pyframes_walk(uint64_t *words, unsigned max);

#endif
