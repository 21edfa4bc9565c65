/* forker.c — leaks before fork, then parent and child each leak at their
 * own site and snapshot themselves twice, while a thread churns through
 * fork so the address table is busy when the child is made. */
#include "snapshot_wait.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define NOINLINE __attribute__((noinline))

static void *kept[100];
static int nkept;
static _Atomic int stop;

NOINLINE static void before_fork_leak(void) { kept[nkept++] = malloc(777); /* LEAK:before */ }
NOINLINE static void parent_leak(void) { kept[nkept++] = malloc(2222); /* LEAK:parent */ }
NOINLINE static void child_leak(void) { kept[nkept++] = malloc(1111); /* LEAK:child */ }

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        free(malloc(100));
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    for (int i = 0; i < 3; i++)
        before_fork_leak();
    struct timespec ms = {0, 20000000};
    nanosleep(&ms, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        snapshot_wait(1);
        for (int i = 0; i < 7; i++)
            child_leak();
        snapshot_wait(2);
        _exit(0);
    }
    snapshot_wait(1);
    for (int i = 0; i < 4; i++)
        parent_leak();
    snapshot_wait(2);
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("{\"parent\": %d, \"child\": %d, \"child_status\": %d}\n", (int)getpid(), (int)pid, status);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
