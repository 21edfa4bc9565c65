/* exit_thread.c — a thread calls exit() while a snapshot is being written.
 * The program first allocates at 2^13 distinct stacks (so a snapshot takes
 * a while to write), then a thread asks for a snapshot, waits until its
 * temporary file appears in MEMLEDGER_DIR, and calls exit(7) right then,
 * while the main thread keeps allocating. Prints "caught 1" when it did
 * see the temporary file (exit raced a write), "caught 0" when the write
 * finished before it could look. */
#include "many_stacks.h"
#include "snapshot_wait.h"

#include <dirent.h>
#include <pthread.h>
#include <string.h>

static void *blocks[1 << 13];

static int temp_file_present(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        found |= strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return found;
}

static void *exiter(void *arg)
{
    (void)arg;
    const char *dir = getenv("MEMLEDGER_DIR");
    kill(getpid(), SIGUSR2);
    int caught = 0;
    for (int i = 0; i < 200000 && !caught; i++)
        caught = temp_file_present(dir);
    printf("caught %d\n", caught);
    fflush(stdout);
    exit(7);
}

int main(void)
{
    many_stacks(13, 24, blocks);
    pthread_t t;
    pthread_create(&t, NULL, exiter, NULL);
    for (;;) /* load until the other thread ends the process */
        free(malloc(100));
}
