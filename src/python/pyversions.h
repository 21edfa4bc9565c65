/* pyversions.h — where each CPython version keeps what memledger reads.
 * Owns: one layout per supported version (structure offsets of the thread
 * state, frames, code objects, strings, bytes and gc state), taken from
 * that version's own headers for 3.8-3.12 and from the _Py_DebugOffsets the
 * interpreter publishes in _PyRuntime for 3.13. test/test_pylayout.py
 * compiles a probe against each installed version's headers and compares.
 * Must never guess: a version it does not know gets no layout, and the
 * caller then keeps stacks native. Never reads memory except the debug
 * offsets it is handed. */
#ifndef ML_PYVERSIONS_H
#define ML_PYVERSIONS_H

#include "common/common.h"

/* How a version chains its frames. */
enum ml_py_frames {
    ML_PYF_OBJECT,   /* 3.8-3.10: PyFrameObject, one per _PyEval_EvalFrameDefault call */
    ML_PYF_ENTRY,    /* 3.11: _PyInterpreterFrame; a frame flagged is_entry ends an eval call */
    ML_PYF_CSTACK,   /* 3.12+: _PyInterpreterFrame; an eval call pushes a frame owned by the C stack */
};

/* How a version maps an instruction to its line. */
enum ml_py_lines {
    ML_PYL_LNOTAB,     /* 3.8, 3.9: co_lnotab (address delta, signed line delta) pairs */
    ML_PYL_LINETABLE,  /* 3.10: co_linetable (address delta, line delta; -128 = no line) pairs */
    ML_PYL_LOCATIONS,  /* 3.11+: co_linetable location entries (PEP 657) */
};

#define ML_PY_OWNED_BY_CSTACK 3 /* _PyInterpreterFrame.owner of an eval call's entry frame (3.12+) */

/* The same on every supported version (checked by the test too): where an
 * object's type is, a str's length, and its state bits. */
#define ML_PY_OB_TYPE 8
#define ML_PY_UNI_LENGTH 16
#define ML_PY_UNI_KIND_SHIFT 2   /* 3 bits: 1, 2 or 4 bytes per character */
#define ML_PY_UNI_COMPACT_BIT 5
#define ML_PY_UNI_ASCII_BIT 6

typedef struct {
    unsigned hex;           /* 0x030b for 3.11 */
    uint8_t frames, lines;  /* enum ml_py_frames, enum ml_py_lines */
    /* thread state -> innermost frame: *(tstate + ts_frame); when cf_current
     * is not -1, that is a _PyCFrame and *(it + cf_current) is the frame */
    int16_t ts_frame, cf_current;
    int16_t fr_back, fr_code;
    int16_t fr_instr;       /* int f_lasti (ML_PYF_OBJECT) or a code-unit pointer */
    int16_t fr_owner, fr_is_entry;  /* -1 where the version has none */
    int16_t lasti_bytes;    /* bytes per f_lasti unit (ML_PYF_OBJECT): 1, or 2 on 3.10 */
    int16_t co_filename, co_name, co_qualname;  /* co_qualname -1 before 3.11 */
    int16_t co_firstlineno, co_lines, co_code_adaptive;  /* co_code_adaptive -1 before 3.11 */
    int16_t uni_state, uni_ascii_size, uni_compact_size;
    int16_t bytes_size, bytes_sval;
    /* gc state: in _PyRuntime (3.8) or in the main interpreter (3.9+) */
    int16_t gc_in_runtime, gc_in_interp;
    int16_t gc_enabled, gc_count0, gc_stride;
} ml_pylayout_t;

/* The built-in layout for major.minor `hex` (0x0308 ... 0x030c), or NULL. */
const ml_pylayout_t *ml_pylayout_builtin(unsigned hex);

/* Builds the layout of a version that publishes _Py_DebugOffsets (3.13)
 * from the structure at the start of `runtime` (the _PyRuntime symbol).
 * Returns false when the cookie, version or build kind (free-threaded)
 * is not one this file knows. */
bool ml_pylayout_from_debug_offsets(const void *runtime, unsigned hex, ml_pylayout_t *out);

#endif
