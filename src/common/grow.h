/* grow.h — the one way an array grows: to hold n elements, by doubling,
 * or to an exact size a caller knows ahead.
 * Owns: the capacity arithmetic (doubling, overflow checks) and zeroing
 * what is new, so a caller never writes that loop again.
 * Allocates with calloc, then realloc: for the CLI and the snapshot writer's dumper
 * thread only, never for code reachable from an allocation hook (the
 * library's hooks must not call the allocator they interpose). */
#ifndef ML_GROW_H
#define ML_GROW_H

#include "common/common.h"

/* Makes the array whose pointer is at `arrp` (a T **, passed as void *)
 * hold at least `n` elements of `elem` (> 0) bytes. *cap is its capacity
 * in elements; when it is too small it doubles (from 16 when it is 0)
 * until it suffices, and the elements past the old capacity are zeroed.
 * On failure (the size overflows, or realloc fails) it returns false with
 * errno ENOMEM and leaves the array and *cap as they were. */
bool ml_grow(void *arrp, size_t *cap, size_t n, size_t elem);

/* Makes the array hold at least `n` elements, exactly `n` when it has to
 * grow: for a caller that knows how many are coming (a snapshot's header
 * says how many stacks it holds), so no doubling leaves half of a large
 * array unused. The new elements are zero; failure as ml_grow's. */
bool ml_reserve(void *arrp, size_t *cap, size_t n, size_t elem);

/* For a process that builds arrays of hundreds of megabytes and exits
 * (the CLI): arrays from then on, of 4 MiB and more, are advised onto
 * transparent huge pages where the kernel gives them on request. A page
 * fault is several microseconds on a virtual machine; a huge page is 512
 * pages' worth in one. Off by default: the library's dumper thread runs
 * in someone else's process and keeps its resident memory small. */
void ml_grow_prefer_huge_pages(bool on);

/* Advises the whole 2 MiB pages inside [p, p + bytes) onto huge pages,
 * when ml_grow_prefer_huge_pages is on and the block is 4 MiB or more. */
void ml_advise_huge(void *p, size_t bytes);

/* ml_grow for an array `arr` (a T * lvalue) with capacity `cap` (a size_t
 * lvalue): the element size is taken from the array, so it cannot be wrong. */
#define ML_GROW(arr, cap, n) ml_grow(&(arr), &(cap), (n), sizeof *(arr))
#define ML_RESERVE(arr, cap, n) ml_reserve(&(arr), &(cap), (n), sizeof *(arr))

#endif
