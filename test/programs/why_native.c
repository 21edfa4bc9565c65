/* why_native.c — native leaks with native roots, for test_why_native.py: a C
 * program, no Python. After a warm-up round it takes snapshot 1, then each
 * of ITER rounds keeps:
 *   global  a block in leak_table, an exported global array
 *   array   a block held by a malloc'd array of pointers that hangs from a
 *           static global: a chain of two native pointers from a module's
 *           data
 *   lost    a block whose only pointer is dropped: nothing refers to it
 * Then it prints "ready" and waits (allocating and freeing meanwhile)
 * until the file named by argv[1] exists, and prints "done N" where N is
 * the sum of the first bytes of what it kept. */
#include "snapshot_wait.h"

#include <stdint.h>
#include <string.h>

#define ITER 10
#define NOINLINE __attribute__((noinline))

void *leak_table[64];

static void **blocks; /* a malloc'd array of 64 pointers */
static volatile uintptr_t lost_sum;

NOINLINE static void leak_global(int i)
{
    leak_table[i] = malloc(7000); /* LEAK:global */
    memset(leak_table[i], i, 7000);
}

NOINLINE static void leak_array(int i)
{
    if (!blocks)
        blocks = calloc(64, sizeof *blocks);
    blocks[i] = malloc(9000); /* LEAK:array */
    memset(blocks[i], i, 9000);
}

NOINLINE static void leak_lost(int i)
{
    char *p = malloc(11000); /* LEAK:lost */
    memset(p, i, 11000);
    lost_sum += (uintptr_t)p[10] + 1; /* the pointer itself is dropped */
}

static void round_of_leaks(int i)
{
    leak_global(i);
    leak_array(i);
    leak_lost(i);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    round_of_leaks(0);
    snapshot_wait(1);
    for (int i = 1; i <= ITER; i++)
        round_of_leaks(i);
    printf("ready\n");
    fflush(stdout);
    struct stat st;
    struct timespec ms = {0, 2000000};
    while (stat(argv[1], &st) != 0) {
        free(malloc(100)); /* the program goes on allocating */
        nanosleep(&ms, NULL);
    }
    long sum = 0;
    for (int i = 0; i <= ITER; i++)
        sum += ((unsigned char *)leak_table[i])[0];
    for (int i = 0; i <= ITER; i++)
        sum += ((unsigned char *)blocks[i])[0];
    printf("done %ld %lu\n", sum, (unsigned long)lost_sum);
    return 0;
}
