/* cython.h — the Python-level name of a C function Cython generated.
 * Owns: decoding Cython's symbol names (__pyx_pw_ the Python-callable
 * wrapper, __pyx_pf_ its body, __pyx_f_ a cdef function) into
 * module.Class.function: each dotted part of the module and each class is
 * written as <length><name>_, the function last, after an optional counter.
 * CLI-side (stackset.c); never in the library. */
#ifndef ML_CYTHON_H
#define ML_CYTHON_H

#include "common/common.h"

/* Writes the Python-level name of `symbol` into out[cap] and returns true,
 * or returns false when the symbol is not one Cython generates (or out is
 * too small). Compiler suffixes (.constprop.0, .cold, ...) are ignored. */
bool ml_cython_name(const char *symbol, char *out, size_t cap);

#endif
