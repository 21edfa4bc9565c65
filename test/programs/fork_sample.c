/* fork_sample.c — a master that forks two workers which make the very same
 * allocations: LEAK_COUNT blocks of LEAK_SIZE bytes, kept, spread over
 * DEPTHS distinct stacks (block i is allocated DEPTH(i) calls deep in
 * nest()), each worker then snapshotting itself. Under sampling
 * (MEMLEDGER_SAMPLE_BYTES) the two must take different samples: a child
 * that kept its parent's random state would take exactly its sibling's,
 * stack for stack. The master allocates first, as a real master does (so
 * its sampler is seeded and running), and nothing between the forks.
 * Prints the workers' pids as JSON. */
#include "snapshot_wait.h"

#include <sys/wait.h>

#define NOINLINE __attribute__((noinline))
#define LEAK_SIZE 4096
#define LEAK_COUNT 4000
#define DEPTHS 32

static void *kept[LEAK_COUNT];
static volatile int sink;

NOINLINE static void leak_site(int i) { kept[i] = malloc(LEAK_SIZE); /* LEAK:worker */ }

/* d more calls, then the allocation: one stack per depth */
NOINLINE static void nest(int d, int i)
{
    if (d == 0)
        leak_site(i);
    else
        nest(d - 1, i);
    sink++; /* not a tail call: each level keeps its frame */
}

static void worker(void)
{
    for (int i = 0; i < LEAK_COUNT; i++)
        nest(i % DEPTHS, i);
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
