/* mldeep.c — a library that a program opens with RTLD_DEEPBIND, so that
 * its malloc family binds straight to libc, past any preloaded allocator
 * (test_deepbind.py). Built twice: mldeep_lazy (lazy binding, partial
 * RELRO: the slots are bound on first call) and mldeep_now (-z now, full
 * RELRO: every slot bound at load and read-only). `release` holds free as
 * a data pointer, bound at load either way. It keeps what it allocates,
 * and frees and reallocates blocks the program allocated. Its constructor
 * also hands its functions to the program (deepbind_register), which can
 * then call them without ever looking them up with dlsym. */
#include "mldeep.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static void *kept[64];
static int nkept;
static void (*release)(void *) = free;

static void *keep(void *p)
{
    if (p && nkept < 64)
        kept[nkept++] = p;
    return p;
}

EXPORT void *deep_malloc(size_t n) { return keep(malloc(n)); /* LEAK:deep_malloc */ }
EXPORT void *deep_calloc(size_t k, size_t n) { return keep(calloc(k, n)); /* LEAK:deep_calloc */ }
EXPORT void *deep_realloc(void *p, size_t n) { return keep(realloc(p, n)); /* LEAK:deep_realloc */ }
EXPORT void deep_free(void *p) { free(p); }
EXPORT void deep_release(void *p) { release(p); }

/* How many blocks it keeps, and their bytes touched (so none is unused). */
EXPORT int deep_kept(void)
{
    for (int i = 0; i < nkept; i++)
        memset(kept[i], 1, 1);
    return nkept;
}

__attribute__((constructor)) static void offer(void)
{
    static const deep_api_t api = {deep_malloc, deep_calloc, deep_realloc, deep_free, deep_release, deep_kept};
    void (*reg)(const deep_api_t *) = (void (*)(const deep_api_t *))dlsym(RTLD_DEFAULT, "deepbind_register");
    if (reg)
        reg(&api);
}
