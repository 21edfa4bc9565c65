/* real.h — the allocator functions memledger forwards to.
 * Owns: their resolution through dlsym(RTLD_NEXT) (so a jemalloc or tcmalloc
 * preloaded behind memledger still serves memory) and the static bootstrap
 * arena that answers the allocations dlsym itself makes while resolving.
 * Must never call glibc's __libc_* functions directly: that would bypass the
 * allocator the program chose. */
#ifndef ML_REAL_H
#define ML_REAL_H

#include "common/common.h"

typedef struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
} ml_real_t;

extern ml_real_t ml_real;

/* Resolves every entry of ml_real. Idempotent and safe to race; while it runs
 * on a thread, that thread's allocations come from the bootstrap arena. */
void ml_real_resolve(void);

/* `memledger attach`: the program was not linked against memledger's
 * hooks, so the next definition after memledger's is not the one its calls
 * reach. Re-resolves every entry with `find` (name -> the function the
 * program's calls go to), keeping a required one `find` does not know.
 * Only before any hook is reachable. */
void ml_real_rebind(void *(*find)(const char *name));

/* True while the calling thread is inside ml_real_resolve. */
bool ml_real_resolving(void);

/* The dlsym that memledger's own dlsym (shim/dlsym.c) forwards to, found
 * with dlvsym, which memledger does not hook. Never NULL: without it no
 * program could run, so failing to find it aborts with a message. */
typedef void *(*ml_dlsym_fn)(void *handle, const char *name);
ml_dlsym_fn ml_real_dlsym(void);

/* True when fn is a function of the allocator memledger forwards to (the
 * object ml_real.malloc comes from: libc, or a jemalloc or tcmalloc
 * preloaded behind memledger) or of the C library itself. A malloc-family
 * name that dlsym finds there through a library handle is an entry point
 * past memledger, so the caller is handed memledger's own. Takes the
 * loader's lock (dladdr); for dlsym, never for a hook. */
bool ml_real_is_allocator(const void *fn);

/* Bootstrap arena: serves allocations made before the real functions exist. */
void *ml_bootstrap_alloc(size_t size, size_t align);
#define ML_BOOT_SIZE (64 * 1024)
extern char ml_boot_mem[ML_BOOT_SIZE];
static inline bool ml_bootstrap_owns(const void *p)
{
    return (const char *)p >= ml_boot_mem && (const char *)p < ml_boot_mem + ML_BOOT_SIZE;
}
/* Size that was asked for a bootstrap block (for realloc out of the arena). */
size_t ml_bootstrap_size(const void *p);

#endif
