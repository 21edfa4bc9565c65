/* real.c — resolving the next allocator in line, and the bootstrap arena
 * (see real.h). Never allocates through the hooked allocator: the arena is
 * static and the resolution guard is initial-exec TLS. */

#include "core/real.h"
#include "common/io.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

ml_real_t ml_real;

static __thread int resolving __attribute__((tls_model("initial-exec")));

/* dlsym, dlerror and the loader's own bookkeeping ask for a few hundred
 * bytes; 64 KiB leaves room for a pathological libdl. */
_Alignas(64) char ml_boot_mem[ML_BOOT_SIZE];
static _Atomic size_t boot_used;

void *ml_bootstrap_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    size_t need = size + 16 + align; /* 16-byte header holds the size */
    size_t off = atomic_fetch_add(&boot_used, need);
    if (off + need > ML_BOOT_SIZE || need < size)
        return NULL;
    uintptr_t base = (uintptr_t)ml_boot_mem + off + 16;
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = size;
    return (void *)p;
}

size_t ml_bootstrap_size(const void *p) { return ((const size_t *)p)[-1]; }

bool ml_real_resolving(void) { return resolving != 0; }

static void *next(const char *name, bool required)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f && required) {
        ml_warn("cannot find the real %s (%s); aborting", name, "dlsym(RTLD_NEXT) returned NULL");
        abort();
    }
    return f;
}

/* Looks each function up with `find` (NULL: the next definition after
 * memledger's, dlsym(RTLD_NEXT)); `keep` keeps the current value of a
 * required one that is not found instead of aborting. */
static void resolve_with(void *(*find)(const char *name), bool keep)
{
    ml_real_t r;
#define LOOK(field, req)                                                                           \
    do {                                                                                       \
        r.field = find ? find(#field) : NULL;                                                  \
        if (!find)                                                                             \
            r.field = next(#field, (req) && !keep);                                            \
        else if (!r.field && (req) && keep)                                                    \
            r.field = ml_real.field;                                                           \
    } while (0)
    LOOK(free, true);
    LOOK(calloc, true);
    LOOK(realloc, true);
    LOOK(reallocarray, false);
    LOOK(posix_memalign, true);
    LOOK(aligned_alloc, false);
    LOOK(memalign, false);
    LOOK(valloc, false);
    LOOK(pvalloc, false);
    LOOK(malloc_usable_size, false);
    LOOK(malloc, true);
#undef LOOK
    /* An allocator preloaded behind us may lack some of these (jemalloc has
     * no pvalloc or reallocarray): the next definition is then glibc's,
     * which would hand out glibc memory that jemalloc's free cannot take.
     * Only functions from the malloc's own object are used; the shim
     * builds the others from posix_memalign and realloc. */
    Dl_info mi;
    if (dladdr((void *)r.malloc, &mi)) {
        void **optional[] = {(void **)&r.reallocarray, (void **)&r.aligned_alloc, (void **)&r.memalign,
                             (void **)&r.valloc, (void **)&r.pvalloc, (void **)&r.malloc_usable_size};
        for (size_t i = 0; i < sizeof optional / sizeof *optional; i++) {
            Dl_info fi;
            if (*optional[i] && (!dladdr(*optional[i], &fi) || fi.dli_fbase != mi.dli_fbase))
                *optional[i] = NULL;
        }
    }
    /* malloc last, and published with release: the hooks test it alone. */
    ml_real.free = r.free;
    ml_real.calloc = r.calloc;
    ml_real.realloc = r.realloc;
    ml_real.reallocarray = r.reallocarray;
    ml_real.posix_memalign = r.posix_memalign;
    ml_real.aligned_alloc = r.aligned_alloc;
    ml_real.memalign = r.memalign;
    ml_real.valloc = r.valloc;
    ml_real.pvalloc = r.pvalloc;
    ml_real.malloc_usable_size = r.malloc_usable_size;
    __atomic_store_n(&ml_real.malloc, r.malloc, __ATOMIC_RELEASE);
}

void ml_real_resolve(void)
{
    if (ML_LIKELY(__atomic_load_n(&ml_real.malloc, __ATOMIC_ACQUIRE)))
        return;
    resolving++;
    resolve_with(NULL, false);
    resolving--;
}

void ml_real_rebind(void *(*find)(const char *name))
{
    resolving++;
    resolve_with(find, true);
    resolving--;
}

/* The load base of the object that holds fn; NULL when none does. */
static void *object_of(const void *fn)
{
    Dl_info i;
    return fn && dladdr(fn, &i) ? i.dli_fbase : NULL;
}

bool ml_real_is_allocator(const void *fn)
{
    void *base = object_of(fn);
    if (!base)
        return false;
    if (!ml_real.malloc && !ml_real_resolving())
        ml_real_resolve();
    /* libc's own definitions too: with an allocator behind memledger they
     * are not the ones it forwards to, yet the program's other calls all go
     * to that allocator, and memory from one cannot be freed by the other */
    return base == object_of((void *)ml_real.malloc) || base == object_of((void *)gnu_get_libc_version);
}

/* dlsym's versions: the libc.so.6 one since glibc 2.34, then libdl's on
 * x86-64 and on aarch64. */
static const char *const dlsym_versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
static _Atomic(ml_dlsym_fn) real_dlsym;

ml_dlsym_fn ml_real_dlsym(void)
{
    ml_dlsym_fn f = atomic_load_explicit(&real_dlsym, memory_order_acquire);
    if (ML_LIKELY(f))
        return f;
    /* RTLD_NEXT first (the definition after ours), then the global scope
     * (memledger loaded by dlopen): neither holds a versioned dlsym of ours. */
    void *const scopes[] = {RTLD_NEXT, RTLD_DEFAULT};
    for (size_t s = 0; s < 2 && !f; s++)
        for (size_t i = 0; i < sizeof dlsym_versions / sizeof *dlsym_versions && !f; i++)
            f = (ml_dlsym_fn)dlvsym(scopes[s], "dlsym", dlsym_versions[i]);
    if (!f) {
        ml_warn("cannot find the real dlsym (dlvsym found no version of it); aborting");
        abort();
    }
    atomic_store_explicit(&real_dlsym, f, memory_order_release);
    return f;
}
