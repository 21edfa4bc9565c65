/* pystacks.h — merged (native + Python) stacks seen recently, recognised
 * without merging, hashing or probing the ledger again.
 * Owns: a direct-mapped table keyed by (domain, native words, Python frame
 * keys), each entry holding them and the ledger id of their merged stack.
 * The merge is a pure function of those inputs, so an entry that compares
 * equal word for word is exact. Must never lock or allocate; entries are
 * guarded by per-entry sequence counters, so a reader never trusts a half
 * written entry (one a thread left half written across fork() stays odd,
 * and so unused, in the child: a slot lost, nothing wrong). */
#ifndef ML_PYSTACKS_H
#define ML_PYSTACKS_H

#include "common/common.h"

#define ML_PYSTACKS_MAX 256 /* native words, and Python keys, the largest entries hold */

bool ml_pystacks_init(void);

/* How the Python part of a key is made. ML_PYKEYS_SERIAL: one key per frame
 * from code serials (pyframes.c's keys). ML_PYKEYS_RAW: the frames' raw
 * instruction pointers (3.11+, whose bytecode lies inside its code
 * object, so the pointer names the code object and the instruction); such
 * an entry is valid only while no interned code object has been freed
 * (pycode.h's ml_pycode_epoch), which the table checks. The two kinds never
 * match each other. */
enum { ML_PYKEYS_SERIAL, ML_PYKEYS_RAW };

/* The ledger id of the merged stack of (domain, native[n], py[nf]), or 0. */
uint32_t ml_pystacks_find(unsigned domain, const uint64_t *native, unsigned n, const uint64_t *py, unsigned nf,
                          int kind);

/* Remembers it (skipped when too long or the entry is being written). */
void ml_pystacks_put(unsigned domain, const uint64_t *native, unsigned n, const uint64_t *py, unsigned nf,
                     int kind, uint32_t id);

#endif
