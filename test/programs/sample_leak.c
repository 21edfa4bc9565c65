/* sample_leak.c — for the sampling test: between two snapshots, leak
 * 100 MiB in 4 KiB blocks and 100 MiB in 256-byte blocks, at two known
 * sites, while churning other sizes (allocated and freed at once). */
#include "snapshot_wait.h"

#include <stdlib.h>

#define NOINLINE __attribute__((noinline, noclone))
#define MIB (1024 * 1024)

NOINLINE static void *leak_big(void) { return malloc(4096); /* LEAK:big */ }
NOINLINE static void *leak_small(void) { return malloc(256); /* LEAK:small */ }

int main(void)
{
    static void *volatile keep[100 * MIB / 256 + 100 * MIB / 4096];
    size_t k = 0;
    snapshot_wait(1);
    for (int i = 0; i < 100 * MIB / 4096; i++) {
        keep[k++] = leak_big();
        for (int j = 0; j < 16; j++) {
            keep[k++] = leak_small();
            free(malloc(64 + (size_t)(i + j) % 2000)); /* churn */
        }
    }
    snapshot_wait(2);
    printf("%zu blocks, last %p\n", k, keep[k - 1]);
    return 0;
}
