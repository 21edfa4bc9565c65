/* sysmem.h — memory the library maps for itself, straight from the kernel.
 * Owns: anonymous mappings and a lock-free bump arena on top of them.
 * Must never call malloc or anything that might: this is what the ledger
 * uses instead of the allocator it is watching. */
#ifndef ML_SYSMEM_H
#define ML_SYSMEM_H

#include "common/common.h"
#include <stdatomic.h>

/* Maps `size` bytes of zeroed, reserve-on-touch memory. Returns NULL on error. */
void *ml_sysmem_map(size_t size);
void ml_sysmem_unmap(void *p, size_t size);
/* Gives the pages of [p, p+size) back to the kernel; the range stays mapped
 * and reads as zeros from then on (for a table a reader may still probe). */
void ml_sysmem_discard(void *p, size_t size);
/* The same, with every page faulted in at once (for small tables that will
 * be touched all over, so the faults do not land one by one on hot paths). */
void *ml_sysmem_map_populated(size_t size);

/* Makes the pages of [p, p + size) present and writable in one call
 * (MADV_POPULATE_WRITE, Linux 5.14+) instead of a fault each; a no-op
 * where the kernel cannot. p must be page-aligned. */
void ml_sysmem_prefault(void *p, size_t size);

/* Bytes of [p, p+size) that are resident (mincore). For the snapshot's
 * account of the library's own memory; not for hooks. */
uint64_t ml_sysmem_resident(const void *p, size_t size);

/* A bump arena: chunks are never freed one by one, only the whole arena. */
typedef struct {
    char *base;
    size_t cap;
    _Atomic size_t used;
} ml_arena_t;

/* Reserves `cap` bytes. Returns false on error (the arena stays empty). */
bool ml_arena_init(ml_arena_t *a, size_t cap);
/* Returns 16-byte aligned zeroed memory, or NULL when the arena is exhausted. */
void *ml_arena_alloc(ml_arena_t *a, size_t n);
/* Copies a string into the arena; NULL when exhausted. */
char *ml_arena_strdup(ml_arena_t *a, const char *s);

#endif
