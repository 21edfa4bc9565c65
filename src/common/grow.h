/* grow.h — the one way an array grows: to hold n elements, by doubling.
 * Owns: the capacity arithmetic (doubling, overflow checks) and zeroing
 * what is new, so a caller never writes that loop again.
 * Allocates with realloc: for the CLI and the snapshot writer's dumper
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

/* ml_grow for an array `arr` (a T * lvalue) with capacity `cap` (a size_t
 * lvalue): the element size is taken from the array, so it cannot be wrong. */
#define ML_GROW(arr, cap, n) ml_grow(&(arr), &(cap), (n), sizeof *(arr))

#endif
