/* python.h — CPython in the process.
 * Owns: finding the interpreter (in the program at start, or a libpython
 * loaded later by an embedder), telling its version, putting the PyMem
 * hooks in (shim/pymem.c), starting the frame merge (pyframes.h) and the
 * frame naming, and the snapshot's python header lines.
 * Must never call into the interpreter from a hook, and never make Python
 * objects; the GIL is taken in one place only: on the dumper thread, to
 * swap a running interpreter's allocators after `memledger attach`. */
#ifndef ML_PYTHON_H
#define ML_PYTHON_H

#include "python/pyversions.h"

/* From the constructor, before the first module sync: attaches to a
 * CPython already in the process, or watches the module registry for a
 * libpython to come. Does nothing with MEMLEDGER_PYTHON=0. */
void ml_python_init(void);

/* `memledger attach`: the interpreter (if the process has one) is running.
 * Leaves the swap of its allocators to the dumper thread, which takes the
 * GIL for it; the status page says how it went. */
void ml_python_init_running(void);

/* `memledger detach`: the dumper thread puts the allocators back (where
 * ours are still on top), holding the GIL. */
void ml_python_detach(void);

/* The dumper thread's service (ml_dumper_add_service), each time it wakes:
 * attaches to a libpython the registry noticed since. Never from a hook:
 * it asks the loader. */
void ml_python_service(void);

/* The interpreter memledger attached to, for `memledger why` (why.c). */
typedef struct {
    void *handle;                 /* where its symbols are found (dlsym) */
    const ml_pylayout_t *layout;  /* NULL when Python frames are off */
    unsigned hex;                 /* 0x030b for 3.11 */
    const char *version;          /* "3.11.2" */
    const char *why_not;          /* frames off: why; else NULL */
} ml_python_info_t;

/* Fills *out; false while no interpreter is attached. */
bool ml_python_info(ml_python_info_t *out);

/* The main interpreter's gc state (struct _gc_runtime_state), or 0 when
 * Python frames are off or the interpreter is not up (starting, or
 * finalizing: its state is freed at the end). Reading it is safe only
 * while that holds. */
uintptr_t ml_python_gc_state(void);

#endif
