/* cuda_entry.h — which CUDA driver entry points memledger wraps, and how a
 * caller ends up holding a wrapper whichever way it found the function.
 * Owns: the table of wrapped entry points (families of one signature each,
 * their exported names, the cuGetProcAddress versions that return them),
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
    ML_CU_INIT,          /* cuInit */
    ML_CU_GPA1,          /* cuGetProcAddress (11.3 to 11.8: four arguments) */
    ML_CU_GPA2,          /* cuGetProcAddress_v2 */
    ML_CU_ALLOC,         /* cuMemAlloc_v2 */
    ML_CU_ALLOC_PITCH,   /* cuMemAllocPitch_v2 */
    ML_CU_FREE,          /* cuMemFree_v2 */
    ML_CU_ALLOC_ASYNC,   /* cuMemAllocAsync(_ptsz) */
    ML_CU_ALLOC_POOL,    /* cuMemAllocFromPoolAsync(_ptsz) */
    ML_CU_FREE_ASYNC,    /* cuMemFreeAsync(_ptsz) */
    ML_CU_ALLOC_MANAGED, /* cuMemAllocManaged */
    ML_CU_HOST_ALLOC,    /* cuMemHostAlloc */
    ML_CU_ALLOC_HOST,    /* cuMemAllocHost_v2 */
    ML_CU_FREE_HOST,     /* cuMemFreeHost */
    ML_CU_CREATE,        /* cuMemCreate */
    ML_CU_RELEASE,       /* cuMemRelease */
    ML_CU_MAP,           /* cuMemMap */
    ML_CU_UNMAP,         /* cuMemUnmap */
    ML_CU_RETAIN,        /* cuMemRetainAllocationHandle */
    ML_CU_ARRAY,         /* cuArrayCreate_v2 */
    ML_CU_ARRAY3D,       /* cuArray3DCreate_v2 */
    ML_CU_ARRAY_DESTROY, /* cuArrayDestroy */
    ML_CU_FAMILIES
};

/* The driver's exported names memledger defines itself (shim/cuda.c), so a
 * program linked to libcuda calls memledger first. */
enum ml_cu_export {
    ML_CUX_cuInit,
    ML_CUX_cuGetProcAddress,
    ML_CUX_cuGetProcAddress_v2,
    ML_CUX_cuMemAlloc_v2,
    ML_CUX_cuMemAllocPitch_v2,
    ML_CUX_cuMemFree_v2,
    ML_CUX_cuMemAllocAsync,
    ML_CUX_cuMemAllocAsync_ptsz,
    ML_CUX_cuMemAllocFromPoolAsync,
    ML_CUX_cuMemAllocFromPoolAsync_ptsz,
    ML_CUX_cuMemFreeAsync,
    ML_CUX_cuMemFreeAsync_ptsz,
    ML_CUX_cuMemAllocManaged,
    ML_CUX_cuMemHostAlloc,
    ML_CUX_cuMemAllocHost_v2,
    ML_CUX_cuMemFreeHost,
    ML_CUX_cuMemCreate,
    ML_CUX_cuMemRelease,
    ML_CUX_cuMemMap,
    ML_CUX_cuMemUnmap,
    ML_CUX_cuMemRetainAllocationHandle,
    ML_CUX_cuArrayCreate_v2,
    ML_CUX_cuArray3DCreate_v2,
    ML_CUX_cuArrayDestroy,
    ML_CUX_COUNT
};

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

/* cuGetProcAddress(_v2) as wrapped: the real one, then the returned
 * pointer exchanged for a wrapper when it is a function memledger wraps. */
ml_cu_result ml_cu_gpa1(void *real, const char *symbol, void **pfn, int version, ml_cu_u64 flags);
ml_cu_result ml_cu_gpa2(void *real, const char *symbol, void **pfn, int version, ml_cu_u64 flags,
                        int *status);
/* cuInit as wrapped: first contact, then the real one. */
ml_cu_result ml_cu_init(void *real, unsigned flags);

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
