/* pycode.h — Python code objects as stable identities that can still be
 * named after the code object is gone.
 * Owns: the table code-object address -> serial, the record (file,
 * function, first line, line table) copied from a code object the first
 * time a captured stack holds it, forgetting an address when its code
 * object is freed, and turning (serial, instruction address) into
 * file:line when a snapshot is written.
 * Must never allocate through the hooked allocator, lock, or read a code
 * object that may be dead: records are copied by the thread whose frame
 * holds the code object, and never touched by the dumper's reads. */
#ifndef ML_PYCODE_H
#define ML_PYCODE_H

#include "common/common.h"
#include <stdatomic.h>
#include "python/pyversions.h"
#include "snapshot/snapshot_write.h"

/* The address of PyCode_Type once Python frames are on; 0 before. */
extern uintptr_t ml_pycode_type;

/* Bumped (release) each time an interned code object is forgotten: a
 * code address -> serial answer remembered under an older epoch may name
 * a dead code object. Starts at 1. */
extern _Atomic uint32_t ml_pycode_epoch;

/* Maps the tables and remembers the layout and the types a record's reads
 * check against (PyUnicode_Type, PyBytes_Type). Returns false when the
 * tables cannot be mapped. */
bool ml_pycode_init(const ml_pylayout_t *layout, uintptr_t code_type, uintptr_t str_type,
                    uintptr_t bytes_type);

/* Serial of the live code object at `code`, interned on first sight (the
 * record is copied then). 0 when it cannot be interned (table full).
 * ML_PYCODE_HIDDEN is or'ed in for code a traceback would not show. */
#define ML_PYCODE_HIDDEN (1u << 31)
uint32_t ml_pycode_serial(uintptr_t code, uint32_t fingerprint);

/* The fingerprint of a live code object (see pycode.c), never 0: from
 * the contents of its file name, name and line table, and its first line.
 * Only needed while code objects can be freed unseen. */
uint32_t ml_pycode_fingerprint(uintptr_t code);

/* Forgets the code object at `code`, which is being freed: a later code
 * object at the same address gets a new serial. */
void ml_pycode_forget(uintptr_t code);

/* Call from the OBJ-domain free hook before the real free: p is forgotten
 * when it is a code object. Reads the type word of any block it is handed
 * (PyObject_Malloc blocks are at least 16 bytes). */
static inline void ml_pycode_on_free(const void *p)
{
    uintptr_t t = __atomic_load_n(&ml_pycode_type, __ATOMIC_ACQUIRE);
    if (t && p && *(const uintptr_t *)((uintptr_t)p + ML_PY_OB_TYPE) == t)
        ml_pycode_forget((uintptr_t)p);
}

/* The line of instruction byte address `addr` (-1: not started, the first
 * line) in the code object of `serial`; -1 when it has none or the serial
 * is unknown. For hooks: answers from a cache of recent (serial, address)
 * pairs, else decodes the copied line table. */
int ml_pycode_line(uint32_t serial, int32_t addr);

/* Names a frame: the record of `serial`, and `line` (-1: none). Strings
 * live as long as the process. Returns false for an unknown serial. */
bool ml_pycode_name(uint32_t serial, int line, ml_pyframe_t *out);

/* The line of byte address `addr` in a line table of the given format
 * (pyversions.h), starting from `firstlineno`; -1 when the table says the
 * instruction has no line. Pure; exposed for the unit test. */
int ml_pyline(int format, const uint8_t *table, size_t len, int firstlineno, int32_t addr);

typedef struct {
    uint64_t interned;   /* records made */
    uint64_t forgotten;  /* code objects freed after being interned */
    uint64_t dropped;    /* code objects that found no room (frames named unknown) */
} ml_pycode_stats_t;
void ml_pycode_stats(ml_pycode_stats_t *s);

#endif
