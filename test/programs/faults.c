/* faults.c — programs for the fault tests; each prints one JSON line.
 *   faults stacks   allocates at 4096 distinct stacks from one call site,
 *                   then, between snapshots 1 and 2, 100 bytes at each of
 *                   4096 others, twice over (the test runs it with a stack
 *                   table of 1024)
 *   faults nomem    lowers RLIMIT_AS to just above what the process maps,
 *                   makes 200,000 small allocations (the address table cannot
 *                   grow), lifts the limit, and takes snapshot 2
 *   faults quiet    allocates, asks for two snapshots without waiting for
 *                   them, and exits 0 (for snapshot directories that cannot
 *                   be written)
 *   faults quiet_big  the same, then mallocs 512 MiB (for a ledger that
 *                   could not start: the address space must be the program's) */
#include "many_stacks.h"
#include "snapshot_wait.h"

#include <malloc.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>

#define NOINLINE __attribute__((noinline))

static void *blocks[1 << 12], *blocks2[1 << 12];

static int stacks(void)
{
    many_stacks(12, 100, blocks); /* fills the table */
    snapshot_wait(1);
    unsigned got = 0;
    for (int k = 0; k < 2; k++) /* the same 4096 stacks twice */
        got += many_stacks(12, 100, k ? blocks2 : blocks);
    snapshot_wait(2);
    printf("{\"allocations\": %u, \"bytes\": %u}\n", got, got * 100);
    return 0;
}

NOINLINE static void *nomem_leaf(size_t n) { return malloc(n); /* LEAK:nomem */ }

static long vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            kib = strtol(line + 7, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

#define NOMEM_N 200000
static void *kept[NOMEM_N];

static int nomem(void)
{
    /* the program's own heap must not need new address space: grow it
     * now, keep it (no trimming, no mmap for big blocks) */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_ARENA_MAX, 1);
    free(malloc(64 << 20));
    free(nomem_leaf(16)); /* the stack exists before the limit */
    snapshot_wait(1);
    struct rlimit orig, low;
    getrlimit(RLIMIT_AS, &orig);
    low = orig;
    low.rlim_cur = (rlim_t)(vm_size_kib() + 256) * 1024;
    if (setrlimit(RLIMIT_AS, &low) != 0)
        return 3;
    int got = 0;
    for (int i = 0; i < NOMEM_N; i++)
        got += (kept[i] = nomem_leaf(24)) != NULL;
    setrlimit(RLIMIT_AS, &orig);
    snapshot_wait(2);
    printf("{\"allocations\": %d}\n", got);
    return 0;
}

static int quiet(bool big)
{
    long sum = 0;
    for (int i = 0; i < 100000; i++) {
        char *p = malloc(32 + i % 100);
        p[0] = (char)i;
        sum += p[0];
        free(p);
    }
    kill(getpid(), SIGUSR2);
    struct timespec ms = {0, 150000000};
    nanosleep(&ms, NULL);
    kill(getpid(), SIGUSR2);
    nanosleep(&ms, NULL);
    void *b = big ? malloc((size_t)512 << 20) : NULL;
    printf("{\"done\": 1, \"sum\": %ld, \"big\": %d}\n", sum, b != NULL);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "stacks") == 0)
        return stacks();
    if (argc == 2 && strcmp(argv[1], "nomem") == 0)
        return nomem();
    if (argc == 2 && strcmp(argv[1], "quiet") == 0)
        return quiet(false);
    if (argc == 2 && strcmp(argv[1], "quiet_big") == 0)
        return quiet(true);
    return 2;
}
