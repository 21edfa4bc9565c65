/* exit_snapshot.c — snapshots asked for around exit(), for
 * test_exit_snapshot.py. Each mode prints what it did on stdout, a line at
 * a time (the test reads them as they come).
 *   exit_snapshot big BITS THREADS
 *       a big process: 2^BITS distinct live stacks (so a snapshot takes
 *       seconds: no delay of any kind is added), then THREADS threads that
 *       churn the heap until the end (a busy service; the test pins the
 *       process to one CPU, so they also share it with memledger's thread).
 *       It asks for snapshot 1, waits until its temporary file appears
 *       (the write is under way), asks for another (received, not begun),
 *       prints "writing", reads one line from stdin (the test's go-ahead)
 *       and calls exit(0) while snapshot 1 is still being written.
 *   exit_snapshot late
 *       a request that arrives just before exit: a few stacks, then the
 *       signal and exit(0) at once.
 *   exit_snapshot wait
 *       waits, allocating, until its snapshot 1 has begun (its file is
 *       there), then exits at once: `memledger snapshot PID` racing the
 *       process's end (10 s at most).
 *   exit_snapshot selfexit BITS
 *       exit() on memledger's own thread in the middle of a write: the
 *       program blocks SIGUSR2 (so only memledger's thread takes it) and
 *       its own handler, chained after memledger's, calls exit(9) on the
 *       second signal, sent while snapshot 1 is being written. */
#include "many_stacks.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* True when a temporary file of this process's snapshot `seq` is in dir. */
static int writing(const char *dir, int seq)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, ".memledger.%d.%d.", (int)getpid(), seq);
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d)))
        found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return found;
}

static void *churn(void *arg)
{
    (void)arg;
    for (;;) /* until the process ends */
        free(malloc(64));
    return NULL;
}

static int big(int bits, int threads)
{
    void **blocks = malloc(sizeof *blocks << bits);
    double t0 = now_s();
    unsigned got = many_stacks(bits, 24, blocks);
    printf("stacks %u %.2f\n", got, now_s() - t0);
    fflush(stdout);
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, churn, NULL);
    }
    const char *dir = getenv("MEMLEDGER_DIR");
    double asked = now_s();
    kill(getpid(), SIGUSR2);
    while (!writing(dir, 1)) {
        if (now_s() - asked > 300) {
            printf("snapshot 1 never began\n");
            return 3;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    kill(getpid(), SIGUSR2); /* received while snapshot 1 is written: not begun at exit */
    printf("writing %.2f\n", now_s() - asked);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 4;
    printf("exit %.2f\n", now_s() - asked);
    fflush(stdout);
    exit(0);
}

static void *late_blocks[1 << 10];

static int late(void)
{
    many_stacks(10, 24, late_blocks);
    kill(getpid(), SIGUSR2);
    exit(0);
}

/* True when snapshot 1 of this process has begun or is done in dir. */
static int begun(const char *dir)
{
    char done[128];
    snprintf(done, sizeof done, "%s/memledger.%d.1.snap", dir, (int)getpid());
    return writing(dir, 1) || access(done, F_OK) == 0;
}

static int wait_mode(void)
{
    const char *dir = getenv("MEMLEDGER_DIR");
    printf("ready\n");
    fflush(stdout);
    double t0 = now_s();
    /* `memledger snapshot` marks its request, so the program's own handler
     * never sees it: the snapshot's file is the sign it came. A write that
     * fails at once may come and go unseen: then the end comes later. */
    for (unsigned i = 0; !begun(dir) && now_s() - t0 < 10; i++) {
        late_blocks[i % 1024] = malloc(32);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    exit(0);
}

static volatile sig_atomic_t usr2_calls;

static void exit_on_second(int sig)
{
    (void)sig;
    if (++usr2_calls == 2)
        exit(9); /* not async-signal-safe; programs do it */
}

static int selfexit(int bits)
{
    void **blocks = malloc(sizeof *blocks << bits);
    many_stacks(bits, 24, blocks);
    signal(SIGUSR2, exit_on_second);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    kill(getpid(), SIGUSR2);
    const char *dir = getenv("MEMLEDGER_DIR");
    double asked = now_s();
    while (!writing(dir, 1)) {
        if (now_s() - asked > 300)
            return 3;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    kill(getpid(), SIGUSR2);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "big") == 0)
        return big(atoi(argv[2]), atoi(argv[3]));
    if (argc == 2 && strcmp(argv[1], "late") == 0)
        return late();
    if (argc == 2 && strcmp(argv[1], "wait") == 0)
        return wait_mode();
    if (argc == 3 && strcmp(argv[1], "selfexit") == 0)
        return selfexit(atoi(argv[2]));
    fprintf(stderr, "usage: exit_snapshot big BITS THREADS | late | wait | selfexit BITS\n");
    return 2;
}
