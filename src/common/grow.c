/* grow.c — arrays that grow by doubling (see grow.h). The pointer is read
 * and written with memcpy, so one function serves every element type
 * without type-punning a T ** to a void **. */
#include "common/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ML_GROW_FIRST 16

/* Arrays past this size are advised onto huge pages, when asked for. */
#define HUGE_FROM ((size_t)4 << 20)

static bool prefer_huge;

void ml_grow_prefer_huge_pages(bool on) { prefer_huge = on; }

void ml_advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t from = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t to = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (prefer_huge && p && bytes >= HUGE_FROM && to > from)
        (void)madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* Makes the array hold exactly nc (> *cap) elements, the new ones zero.
 * A first allocation is calloc's: a large one is fresh pages that are
 * zero already, so nothing is written and a page nobody uses is never
 * faulted in (a diff of two large snapshots zeroed 200 MB otherwise). */
static bool resize(void *arrp, size_t *cap, size_t nc, size_t elem)
{
    if (!elem || nc > SIZE_MAX / elem) {
        errno = ENOMEM;
        return false;
    }
    void *arr;
    memcpy(&arr, arrp, sizeof arr);
    void *p = arr ? realloc(arr, nc * elem) : calloc(nc, elem);
    if (!p) {
        errno = ENOMEM;
        return false;
    }
    ml_advise_huge(p, nc * elem); /* before the memset faults the pages in */
    if (arr)
        memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
    memcpy(arrp, &p, sizeof p);
    *cap = nc;
    return true;
}

bool ml_grow(void *arrp, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return true;
    size_t nc = *cap ? *cap : ML_GROW_FIRST;
    while (nc < n) {
        if (nc > SIZE_MAX / 2) {
            nc = n;
            break;
        }
        nc *= 2;
    }
    return resize(arrp, cap, nc, elem);
}

bool ml_reserve(void *arrp, size_t *cap, size_t n, size_t elem)
{
    return n <= *cap || resize(arrp, cap, n, elem);
}
