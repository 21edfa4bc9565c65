/* many_stacks.h — for test programs: allocations at 2^bits distinct call
 * stacks, cheaply. Each level of the walk calls through one of two
 * functions, picked by one bit, so every bit pattern is its own chain of
 * return addresses; all of them end in many_stacks_leaf. Built at -O0, so
 * nothing is inlined or tail-called away. */
#ifndef ML_TEST_MANY_STACKS_H
#define ML_TEST_MANY_STACKS_H

#include <stdlib.h>

#define MS_NOINLINE __attribute__((noinline))

MS_NOINLINE static void *many_stacks_leaf(size_t n) { return malloc(n); /* LEAK:many_stacks */ }

static void *many_stacks_walk(unsigned bits, int depth, size_t n);
MS_NOINLINE static void *many_stacks_zero(unsigned bits, int depth, size_t n) { return many_stacks_walk(bits, depth, n); }
MS_NOINLINE static void *many_stacks_one(unsigned bits, int depth, size_t n) { return many_stacks_walk(bits, depth, n); }

MS_NOINLINE static void *many_stacks_walk(unsigned bits, int depth, size_t n)
{
    if (depth == 0)
        return many_stacks_leaf(n);
    void *p = (bits & 1) ? many_stacks_one(bits >> 1, depth - 1, n) : many_stacks_zero(bits >> 1, depth - 1, n);
    return p;
}

/* Allocates n bytes at each of 2^depth distinct stacks into out[]. Returns
 * how many allocations succeeded. */
static inline unsigned many_stacks(int depth, size_t n, void **out)
{
    unsigned ok = 0;
    for (unsigned b = 0; b < (1u << depth); b++) {
        out[b] = many_stacks_walk(b, depth, n);
        ok += out[b] != NULL;
    }
    return ok;
}

#endif
