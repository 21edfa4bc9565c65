/* cuda_entry.h — which CUDA driver entry points memledger wraps, and how a
 * caller ends up holding a wrapper whichever way it found the function.
 * Owns: what is made from the list of wrapped entry points (cuda_entries.def):
 * the families and exported names, the handlers' declarations, the table
 * of names, families and cuGetProcAddress versions (cuda_entry.c); and
 * binding a pointer the driver handed out to a wrapper that calls exactly
 * that pointer, the backend chosen on first contact with the driver
 * (MEMLEDGER_CUDA), and the snapshot's `cuda` header line.
 * Must never load anything CUDA into a process that has not loaded the
 * driver itself, never hand out a wrapper for a function it does not
 * wrap, and never fail a lookup that would have succeeded without it. */
#ifndef ML_CUDA_ENTRY_H
#define ML_CUDA_ENTRY_H

#include "common/common.h"
#include "cuda/cuda_api.h"
#include <stdatomic.h>

/* A family is one signature and one recording rule; the legacy and
 * per-thread-stream (_ptsz) forms of an entry point share one. */
enum ml_cu_family {
#define ML_CU_FAMILY(family, ...) family,
#define ML_CU_MORE(...)
#include "cuda/cuda_entries.def"
    ML_CU_FAMILIES
};

/* The driver's exported names memledger defines itself (shim/cuda.c), so a
 * program linked to libcuda calls memledger first: ML_CUX_<name>. */
enum ml_cu_export {
#define ML_CU_FAMILY(family, name, ...) ML_CUX_##name,
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"
    ML_CUX_COUNT
};

/* A parenthesized list of the .def (params, args) without its parentheses. */
#define ML_CU_UNPACK(...) __VA_ARGS__

/* Per family, its handler and the type of the driver function it calls,
 * <handler>_real_t. A handler takes that function as `real` (NULL answers
 * CUDA_ERROR_NOT_INITIALIZED), then the entry point's parameters; it
 * calls the real function with them and returns its result unchanged.
 * Defined in cuda_record.c (ml_cu_init and ml_cu_gpa1/2: cuda_entry.c).
 * Declared for every line, so that an ML_CU_MORE line whose parameters
 * differ from its family's does not compile. */
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti)                     \
    typedef ml_cu_result(*handler##_real_t) params;                                                 \
    ml_cu_result handler(void *real, ML_CU_UNPACK params);
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"

/* The real function behind an exported name: the next definition after
 * memledger, else the one in an already loaded libcuda.so.1. NULL when
 * neither exists (the wrapper then answers CUDA_ERROR_NOT_INITIALIZED). */
void *ml_cuda_next(enum ml_cu_export e);

/* Wrappers for pointers handed out at run time: ML_CU_SLOTS per family,
 * each calling the pointer in its slot. A family rarely needs more than
 * two (its legacy and per-thread-stream forms). */
#define ML_CU_SLOTS 4
extern _Atomic(void *) ml_cu_slot[ML_CU_FAMILIES][ML_CU_SLOTS];
extern void *const ml_cu_wrappers[ML_CU_FAMILIES][ML_CU_SLOTS]; /* cuda_wrappers.c */

static inline void *ml_cu_slot_fn(unsigned family, unsigned k)
{
    return atomic_load_explicit(&ml_cu_slot[family][k], memory_order_acquire);
}

/* What the hooked dlsym hands out. ml_cuda_dlsym_wants: true when
 * dlsym(handle, name) must go through ml_cuda_dlsym_result (name is an
 * entry point memledger wraps, and CUDA tracking is on). The result is a
 * wrapper calling exactly p, or p itself. */
bool ml_cuda_dlsym_wants(const char *name);
void *ml_cuda_dlsym_result(const char *name, void *p);

/* Who records CUDA allocations, decided once, on first contact with the
 * driver (a wrapped entry point called, or looked up by dlsym or
 * cuGetProcAddress). */
enum ml_cuda_backend {
    ML_CUDA_UNUSED,   /* no contact yet */
    ML_CUDA_STARTING, /* one thread is deciding */
    ML_CUDA_BY_HOOKS,
    ML_CUDA_BY_CUPTI,
    ML_CUDA_BY_NONE,  /* MEMLEDGER_CUDA=off */
};
extern _Atomic int ml_cuda_backend;

/* Makes first contact if not made yet (a no-op when the calling thread is
 * inside memledger). */
void ml_cuda_contact(void);

/* True when the wrappers should record the call being made now. */
bool ml_cuda_hooks_record(void);

/* Sets up what the library needs before any contact: the snapshot header.
 * Loads nothing and maps nothing. */
void ml_cuda_init(void);

/* Counted problems, reported as `problem` lines. */
extern _Atomic uint64_t ml_cuda_unwrapped; /* wrapped functions handed out bare: no free slot */

#endif
