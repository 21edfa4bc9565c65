/* shim/malloc.c — the malloc family's entry points.
 * Each hook is a few boring lines: guard, call the real function, tell the
 * ledger. Must never do anything else: decisions live in src/core/track.c.
 * Before the real functions are resolved, allocations come from the static
 * bootstrap arena (dlsym itself calls calloc while we resolve). */

#include "common/common.h"
#include "common/format.h"
#include "core/real.h"
#include "core/thread.h"
#include "core/track.h"
#include "init/attach.h"
#include "init/rebind.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Serves an allocation made before ml_real is usable. */
static void *early(size_t n, size_t align)
{
    if (!ml_real_resolving())
        ml_real_resolve();
    if (ml_real_resolving() || !ml_real.malloc)
        return ml_bootstrap_alloc(n, align);
    return NULL; /* resolved now: caller goes the normal way */
}

/* The real allocator runs outside the guard: it never calls back into
 * malloc, and the untracked cases (off, nested, not sampled) then cost a
 * load or two after it. */
#define HOOK_ALLOC(expr_real, size)                                                          \
    do {                                                                                     \
        void *p_ = expr_real;                                                                \
        if (ML_UNLIKELY(!p_) || !ml_tracking() || ml_sample_skip(size) || !ml_enter())       \
            return p_;                                                                       \
        ml_track_alloc(&ml_heap_addrs, ML_DOM_MALLOC, p_, (size));                            \
        ml_leave();                                                                          \
        return p_;                                                                           \
    } while (0)

/* malloc, calloc and free, the hottest three, come in two halves: the
 * exported hook answers "untracked?" and then ends in a tail call to the
 * real function (no frame of its own, so an untracked call costs a few
 * loads and a jump); everything else is in the _slow half. */
static ML_NOINLINE void *malloc_slow(size_t n)
{
    if (ML_UNLIKELY(!ml_real.malloc)) {
        void *p = early(n, 16);
        if (p || !ml_real.malloc)
            return p;
    }
    HOOK_ALLOC(ml_real.malloc(n), n);
}

ML_EXPORT void *malloc(size_t n)
{
    /* sampling's countdown first: while it runs, nothing else matters */
    if (ML_LIKELY(ml_sample_skip(n) && ml_real.malloc != NULL))
        return ml_real.malloc(n);
    if (ML_LIKELY(ml_real.malloc != NULL) && ml_alloc_passes(n))
        return ml_real.malloc(n);
    return malloc_slow(n);
}

static ML_NOINLINE void *calloc_slow(size_t k, size_t n)
{
    if (ML_UNLIKELY(!ml_real.malloc)) {
        size_t total;
        if (__builtin_mul_overflow(k, n, &total))
            return NULL;
        void *p = early(total, 16); /* the arena is static, hence zeroed */
        if (p || !ml_real.malloc)
            return p;
    }
    HOOK_ALLOC(ml_real.calloc(k, n), (uint64_t)k * n);
}

ML_EXPORT void *calloc(size_t k, size_t n)
{
    if (ML_LIKELY(ml_sample_skip((uint64_t)k * n) && ml_real.malloc != NULL))
        return ml_real.calloc(k, n);
    if (ML_LIKELY(ml_real.malloc != NULL) && ml_alloc_passes((uint64_t)k * n))
        return ml_real.calloc(k, n);
    return calloc_slow(k, n);
}

static ML_NOINLINE void free_slow(void *p)
{
    if (!p || ML_UNLIKELY(ml_bootstrap_owns(p)))
        return;
    if (ml_tracking() && !ml_free_skip(p) && ml_enter()) {
        uint32_t id;
        uint64_t size;
        ml_track_free(&ml_heap_addrs, p, &id, &size);
        ml_leave();
    }
    ml_real.free(p);
}

ML_EXPORT void free(void *p)
{
    if (ML_LIKELY(!ml_bootstrap_owns(p)) && ml_free_gate_passes(p)) {
        ml_real.free(p);
        return;
    }
    free_slow(p);
}

static void *realloc_common(void *p, size_t n, void *(*real)(void *, size_t, size_t), size_t k)
{
    ml_forgot_t f = ml_track_realloc_forget(&ml_heap_addrs, p);
    void *q = real ? real(p, k, n) : ml_real.realloc(p, n);
    size_t total = real ? k * n : n;
    /* realloc(p, 0) may free p and return NULL: then p is gone */
    ml_track_realloc_done(&ml_heap_addrs, ML_DOM_MALLOC, p, q, total, total != 0, &f);
    return q;
}

static void *from_bootstrap(void *p, size_t n)
{
    void *q = malloc(n);
    size_t old = ml_bootstrap_size(p);
    if (q)
        memcpy(q, p, old < n ? old : n);
    return q;
}

ML_EXPORT void *realloc(void *p, size_t n)
{
    if (ML_UNLIKELY(p && ml_bootstrap_owns(p)))
        return from_bootstrap(p, n);
    if (ML_UNLIKELY(!ml_real.malloc) && !p)
        return malloc(n);
    if (!ml_tracking() || !ml_enter())
        return ml_real.realloc(p, n);
    void *q = realloc_common(p, n, NULL, 0);
    ml_leave();
    return q;
}

ML_EXPORT void *reallocarray(void *p, size_t k, size_t n)
{
    size_t total;
    if (__builtin_mul_overflow(k, n, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (ML_UNLIKELY((p && ml_bootstrap_owns(p)) || !ml_real.reallocarray))
        return realloc(p, total);
    if (!ml_tracking() || !ml_enter())
        return ml_real.reallocarray(p, k, n);
    void *q = realloc_common(p, n, ml_real.reallocarray, k);
    ml_leave();
    return q;
}

ML_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (ML_UNLIKELY(!ml_real.malloc)) {
        void *p = early(n, align);
        if (p || !ml_real.malloc) {
            if (!p)
                return ENOMEM;
            *out = p;
            return 0;
        }
    }
    if (!ml_tracking() || !ml_enter())
        return ml_real.posix_memalign(out, align, n);
    int r = ml_real.posix_memalign(out, align, n);
    if (r == 0 && *out)
        ml_track_alloc(&ml_heap_addrs, ML_DOM_MALLOC, *out, n);
    ml_leave();
    return r;
}

/* The aligned family; where the allocator in use lacks the function (see
 * real.c), it is served by posix_memalign, which every allocator has. */
#define ALIGNED_HOOK(name, real_call, align, n, emulated_size)                               \
    if (ML_UNLIKELY(!ml_real.malloc)) {                                                      \
        void *p = early(n, align);                                                           \
        if (p || !ml_real.malloc)                                                            \
            return p;                                                                        \
    }                                                                                        \
    if (ML_UNLIKELY(!ml_real.name))                                                          \
        return aligned_emulated((align), (n), (emulated_size));                              \
    HOOK_ALLOC(real_call, n)

static void *aligned_emulated(size_t align, size_t n, size_t size)
{
    void *p = NULL;
    if (!ml_tracking() || !ml_enter())
        return ml_real.posix_memalign(&p, align, size) == 0 ? p : NULL;
    if (ml_real.posix_memalign(&p, align, size) == 0 && p)
        ml_track_alloc(&ml_heap_addrs, ML_DOM_MALLOC, p, n);
    else
        p = NULL;
    ml_leave();
    return p;
}

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return n ? (n + page - 1) & ~(page - 1) : page;
}

ML_EXPORT void *aligned_alloc(size_t align, size_t n) { ALIGNED_HOOK(aligned_alloc, ml_real.aligned_alloc(align, n), align, n, n); }

ML_EXPORT void *memalign(size_t align, size_t n) { ALIGNED_HOOK(memalign, ml_real.memalign(align, n), align, n, n); }

ML_EXPORT void *valloc(size_t n) { ALIGNED_HOOK(valloc, ml_real.valloc(n), (size_t)sysconf(_SC_PAGESIZE), n, n); }

ML_EXPORT void *pvalloc(size_t n) { ALIGNED_HOOK(pvalloc, ml_real.pvalloc(n), (size_t)sysconf(_SC_PAGESIZE), n, page_round(n)); }

ML_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (ml_bootstrap_owns(p))
        return ml_bootstrap_size(p);
    if (ML_UNLIKELY(!ml_real.malloc_usable_size))
        ml_real_resolve();
    return ml_real.malloc_usable_size ? ml_real.malloc_usable_size(p) : 0;
}

/* ---- the entry points' own addresses ----
 * Hidden aliases: memledger's own definitions, whatever the process's
 * lookup finds (in a non-PIE executable that takes malloc's address, a
 * lookup answers with the executable's PLT entry). Three users:
 *  - init/rebind.h points a library's slots bound past the hooks
 *    (RTLD_DEEPBIND) at them;
 *  - shim/dlsym.c hands them out for a lookup through a library handle:
 *    ctypes.CDLL("libc.so.6").malloc, cffi's dlopen("c") and C code calling
 *    dlsym(dlopen("libc.so.6"), "malloc") find libc's own definition, past
 *    every interposer;
 *  - `memledger attach` points a running program's calls here by
 *    rewriting its modules' GOT slots (src/init/attach.c). */
#define OWN(f) ML_OWN_ALIAS(f, ml_own_##f);
OWN(malloc)
OWN(free)
OWN(calloc)
OWN(realloc)
OWN(reallocarray)
OWN(posix_memalign)
OWN(aligned_alloc)
OWN(memalign)
OWN(valloc)
OWN(pvalloc)
OWN(malloc_usable_size)
#undef OWN

__attribute__((constructor(101))) static void offer(void)
{
    static const ml_rebind_hooks_t own = {
        (ml_rebind_fn)ml_own_malloc,        (ml_rebind_fn)ml_own_free,          (ml_rebind_fn)ml_own_calloc,
        (ml_rebind_fn)ml_own_realloc,       (ml_rebind_fn)ml_own_reallocarray, (ml_rebind_fn)ml_own_posix_memalign,
        (ml_rebind_fn)ml_own_aligned_alloc, (ml_rebind_fn)ml_own_memalign,      (ml_rebind_fn)ml_own_valloc,
        (ml_rebind_fn)ml_own_pvalloc,       (ml_rebind_fn)ml_own_malloc_usable_size};
    ml_rebind_offer(&own);
    static const ml_hook_t mine[] = {
        {"free", (void *)ml_own_free, true},
        {"malloc", (void *)ml_own_malloc, false},
        {"calloc", (void *)ml_own_calloc, false},
        {"realloc", (void *)ml_own_realloc, false},
        {"reallocarray", (void *)ml_own_reallocarray, false},
        {"posix_memalign", (void *)ml_own_posix_memalign, false},
        {"aligned_alloc", (void *)ml_own_aligned_alloc, false},
        {"memalign", (void *)ml_own_memalign, false},
        {"valloc", (void *)ml_own_valloc, false},
        {"pvalloc", (void *)ml_own_pvalloc, false},
    };
    ml_attach_offer(mine, ML_ARRAY_LEN(mine));
}

void *ml_shim_alloc_entry(const char *name)
{
    static const struct {
        const char *name;
        void *fn;
    } family[] = {
        {"malloc", (void *)ml_own_malloc},       {"calloc", (void *)ml_own_calloc},
        {"realloc", (void *)ml_own_realloc},     {"reallocarray", (void *)ml_own_reallocarray},
        {"free", (void *)ml_own_free},           {"posix_memalign", (void *)ml_own_posix_memalign},
        {"aligned_alloc", (void *)ml_own_aligned_alloc}, {"memalign", (void *)ml_own_memalign},
        {"valloc", (void *)ml_own_valloc},       {"pvalloc", (void *)ml_own_pvalloc},
        {"malloc_usable_size", (void *)ml_own_malloc_usable_size},
    };
    /* most names dlsym sees start with none of these letters */
    if (!name || !name[0] || !strchr("acfmprv", name[0]))
        return NULL;
    for (size_t i = 0; i < sizeof family / sizeof *family; i++)
        if (strcmp(name, family[i].name) == 0)
            return family[i].fn;
    return NULL;
}
