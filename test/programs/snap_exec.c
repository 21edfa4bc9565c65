/* snap_exec.c — one pid, two images under the ledger. With arguments it
 * leaks 100 x 1111 bytes, asks for a snapshot, waits for it, and execs
 * its arguments (the pid stays, the ledger starts again at snapshot 1);
 * without, it leaks 200 x 2222 bytes and exits (the exit snapshot, with
 * MEMLEDGER_AT_EXIT=1). Usage: snap_exec [PROGRAM ARGS...] */
#include "snapshot_wait.h"

#include <string.h>

#define NOINLINE __attribute__((noinline))
static void *volatile kept[256];

NOINLINE static unsigned leak_before_exec(void)
{
    unsigned got = 0;
    for (int i = 0; i < 100; i++)
        got += (kept[i] = malloc(1111)) != NULL; /* LEAK:before_exec */
    return got;
}

NOINLINE static unsigned leak_at_exit(void)
{
    unsigned got = 0;
    for (int i = 0; i < 200; i++)
        got += (kept[i] = malloc(2222)) != NULL; /* LEAK:at_exit */
    return got;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        unsigned got = leak_at_exit();
        printf("{\"leaked\": %u}\n", got);
        return got == 200 ? 0 : 1;
    }
    unsigned got = leak_before_exec();
    if (got != 100)
        return 1;
    snapshot_wait(1);
    fflush(stdout);
    execv(argv[1], argv + 1);
    perror("execv");
    return 3;
}
