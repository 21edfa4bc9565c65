/* inline_chain.cpp — a leak reached through three inlined functions, for
 * the inlined frames of issue 16. Built -O2 -g: chain_a, chain_b and
 * chain_c are always inlined into leak_round (a real function), so the
 * call to malloc sits in leak_round's code and only DWARF's inlined
 * subroutines say that it was chain_c's line, called from chain_b's line,
 * called from chain_a's line. Between snapshots 1 and 2 it keeps
 * INLINE_BLOCKS blocks of INLINE_SIZE bytes; the test finds each line by its
 * LINE marker. Prints how many blocks it kept, which the test checks. */
#include "snapshot_wait.h"

#include <cstdlib>

#define INLINE_BLOCKS 300
#define INLINE_SIZE 1234
#define ALWAYS_INLINE __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))

/* a global the compiler must fill: the allocations cannot be dropped */
void *inline_kept[INLINE_BLOCKS];
static int inline_nkept;

static inline ALWAYS_INLINE void chain_c(size_t size)
{
    void *p = malloc(size); /* LINE:c */
    inline_kept[inline_nkept++] = p;
}

static inline ALWAYS_INLINE void chain_b(size_t size)
{
    chain_c(size); /* LINE:b */
}

static inline ALWAYS_INLINE void chain_a(size_t size)
{
    chain_b(size); /* LINE:a */
}

NOINLINE void leak_round(size_t size)
{
    for (int i = 0; i < INLINE_BLOCKS; i++)
        chain_a(size); /* LINE:round */
}

int main()
{
    snapshot_wait(1);
    leak_round(INLINE_SIZE);
    snapshot_wait(2);
    int kept = 0;
    for (int i = 0; i < INLINE_BLOCKS; i++)
        kept += inline_kept[i] != NULL;
    printf("{\"kept\": %d}\n", kept);
    return 0;
}
