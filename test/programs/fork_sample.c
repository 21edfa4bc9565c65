/* fork_sample.c — a master that forks two workers which make the very same
 * allocations (LEAK_COUNT blocks of LEAK_SIZE bytes at leak_site, kept),
 * each then snapshotting itself. Under sampling (MEMLEDGER_SAMPLE_BYTES)
 * the two must take different samples: a child that kept its parent's
 * random state would take exactly its sibling's. The master allocates
 * first, as a real master does (so its sampler is seeded and running),
 * and nothing between the forks. Prints the workers' pids as JSON. */
#include "snapshot_wait.h"

#include <sys/wait.h>

#define NOINLINE __attribute__((noinline))
#define LEAK_SIZE 4096
#define LEAK_COUNT 4000

static void *kept[LEAK_COUNT];

NOINLINE static void leak_site(int i) { kept[i] = malloc(LEAK_SIZE); /* LEAK:worker */ }

static void worker(void)
{
    for (int i = 0; i < LEAK_COUNT; i++)
        leak_site(i);
    snapshot_wait(1);
    _exit(0);
}

NOINLINE static void master_setup(void)
{
    for (int i = 0; i < 1000; i++)
        free(malloc(1000 + i));
}

int main(void)
{
    master_setup();
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = fork();
        if (w[i] == 0)
            worker();
    }
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        int st = 0;
        waitpid(w[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    printf("{\"workers\": [%d, %d]}\n", (int)w[0], (int)w[1]);
    return ok ? 0 : 1;
}
