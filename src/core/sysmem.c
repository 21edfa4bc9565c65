/* sysmem.c — anonymous mappings and the bump arena (see sysmem.h).
 * Never calls the allocator: mmap(2) only. */
#include "core/sysmem.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *ml_sysmem_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *ml_sysmem_map_populated(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void ml_sysmem_prefault(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    if (p)
        (void)madvise(p, size, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)size;
#endif
}

void ml_sysmem_discard(void *p, size_t size)
{
    if (p)
        madvise(p, size, MADV_DONTNEED);
}

void ml_sysmem_unmap(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

bool ml_arena_init(ml_arena_t *a, size_t cap)
{
    a->base = ml_sysmem_map(cap);
    a->cap = a->base ? cap : 0;
    atomic_store_explicit(&a->used, 0, memory_order_relaxed);
    return a->base != NULL;
}

void *ml_arena_alloc(ml_arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    size_t off = atomic_fetch_add_explicit(&a->used, n, memory_order_relaxed);
    if (off + n > a->cap || off + n < off)
        return NULL; /* exhausted; `used` stays past cap so later calls fail fast */
    return a->base + off;
}

char *ml_arena_strdup(ml_arena_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ml_arena_alloc(a, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

uint64_t ml_sysmem_resident(const void *p, size_t size)
{
    if (!p || !size)
        return 0;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char vec[4096];
    uint64_t resident = 0;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1), end = (uintptr_t)p + size;
    while (a < end) {
        size_t len = end - a < page * sizeof vec ? end - a : page * sizeof vec;
        size_t pages = (len + page - 1) / page;
        if (mincore((void *)a, len, vec) != 0)
            return resident;
        for (size_t i = 0; i < pages; i++)
            resident += (vec[i] & 1) ? page : 0;
        a += pages * page;
    }
    return resident;
}
