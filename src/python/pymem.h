/* pymem.h — the CPython allocator domains, as shim/pymem.c wraps them.
 * Owns: the shape of a PyMemAllocatorEx (stable since CPython 3.5), the
 * domain numbers, the allocators each hook forwards to, and the hook set
 * the shim offers. python.c reads the interpreter's allocators into
 * ml_pymem_next, then installs the offered hooks in their place. Must
 * never hold behaviour: the hooks are in shim/pymem.c, the installing in
 * python.c; the library below the shim never names the shim's functions,
 * it is handed them (ml_pymem_offer). */
#ifndef ML_PYMEM_H
#define ML_PYMEM_H

#include "common/common.h"
#include <stdatomic.h>

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
} ml_pymem_alloc_t;

/* PyMemAllocatorDomain */
enum { ML_PYMEM_RAW, ML_PYMEM_MEM, ML_PYMEM_OBJ, ML_PYMEM_DOMAINS };

/* What each domain's hooks forward to. Written before the hooks go in,
 * never after. */
extern ml_pymem_alloc_t ml_pymem_next[ML_PYMEM_DOMAINS];

/* Set when the OBJ hook first runs. Python makes no object before it
 * settles its allocators, so while this is false once frames run, the OBJ
 * hook was replaced (PYTHONMALLOC, -X dev) and code objects are freed
 * unseen (pycode.c then checks fingerprints). */
extern _Atomic bool ml_pymem_obj_seen;

/* The shim's hook set, one per domain, handed over before the library
 * starts (shim/pymem.c does it from a constructor that runs before
 * memledger's own). Until then Python is never hooked. */
void ml_pymem_offer(const ml_pymem_alloc_t hooks[ML_PYMEM_DOMAINS]);

/* True once the shim has offered its hooks. */
bool ml_pymem_offered(void);

/* The hooks of domain d, carrying the next allocator's ctx: a thread that
 * reads the interpreter's allocator while it is being replaced, and gets
 * half of each, still calls a pair that works (the hooks ignore ctx). */
void ml_pymem_hooks(int d, ml_pymem_alloc_t *out);

/* True when `a` is the hook set of domain d (checks the malloc entry). */
bool ml_pymem_is_hook(int d, const ml_pymem_alloc_t *a);

#endif
