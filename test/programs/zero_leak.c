/* zero_leak.c — a leak of zero-byte blocks. Between snapshot 1 and 2 it
 * keeps ZERO_ITER malloc(0) blocks and ZERO_ITER calloc(0, 16) blocks (each
 * really costs the allocator a minimum chunk), at lines the test finds by
 * their LEAK markers, and frees as many malloc(48) blocks as it makes
 * (churn: no growth). Snapshot 3 follows ZERO_ITER more of each leak, so a
 * diff of all three sees the zero-byte stacks grow in every interval.
 * Prints the number of blocks it kept, which the test checks. */
#include "snapshot_wait.h"

#include <stdlib.h>

#define ZERO_ITER 1000
#define NOINLINE __attribute__((noinline))

static void *kept[4 * ZERO_ITER];
static int nkept;

static void keep(void *p)
{
    if (!p) { /* glibc answers malloc(0) with a unique pointer; NULL would prove nothing */
        fprintf(stderr, "a zero-byte allocation returned NULL\n");
        exit(3);
    }
    kept[nkept++] = p;
}

NOINLINE static void leak_malloc0(void) { keep(malloc(0)); /* LEAK:malloc0 */ }
NOINLINE static void leak_calloc0(void) { keep(calloc(0, 16)); /* LEAK:calloc0 */ }
NOINLINE static void churn(void)
{
    char *volatile p = malloc(48); /* MARK:churn */
    if (!p)
        exit(3);
    p[0] = 1;
    free(p);
}

static void round_of_leaks(void)
{
    for (int i = 0; i < ZERO_ITER; i++) {
        leak_malloc0();
        leak_calloc0();
        churn();
    }
}

int main(void)
{
    snapshot_wait(1);
    for (int seq = 2; seq <= 3; seq++) { /* one call site: the same stacks grow in both intervals */
        round_of_leaks();
        snapshot_wait(seq);
    }
    /* every kept pointer is used: the compiler cannot drop the calls */
    unsigned long distinct = 0;
    for (int i = 0; i < nkept; i++)
        distinct += kept[i] != NULL && (i == 0 || kept[i] != kept[i - 1]);
    printf("{\"kept\": %d, \"distinct\": %lu}\n", nkept, distinct);
    return 0;
}
