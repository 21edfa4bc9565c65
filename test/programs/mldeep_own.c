/* mldeep_own.c — a library with an allocator of its own (malloc and free
 * over a static arena), opened with RTLD_DEEPBIND: its own calls bind to
 * it, not to libc, so memledger cannot see them and must say so
 * (test_deepbind.py --own). */
#include <stddef.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static _Alignas(16) char arena[1 << 20];
static size_t used;

EXPORT void *malloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (used + n > sizeof arena)
        return NULL;
    void *p = arena + used;
    used += n;
    return p;
}
EXPORT void free(void *p) { (void)p; }
EXPORT void *calloc(size_t k, size_t n)
{
    void *p = malloc(k * n);
    if (p)
        memset(p, 0, k * n);
    return p;
}
EXPORT void *realloc(void *p, size_t n)
{
    void *q = malloc(n);
    if (q && p)
        memcpy(q, p, n); /* the arena is contiguous: reading past a small block stays inside it */
    return q;
}

static void *kept[64];

/* Keeps n blocks of its own of `size` bytes; returns how many it got. */
EXPORT int own_leak(int n, size_t size)
{
    int got = 0;
    for (int i = 0; i < n && i < 64; i++)
        if ((kept[i] = malloc(size)) != NULL) /* LEAK:own_malloc */
            got++;
    return got;
}
