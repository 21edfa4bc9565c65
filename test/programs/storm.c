/* storm.c — 1,000 snapshot signals while two threads churn the heap. For
 * signals 300 to 599 the file size limit (RLIMIT_FSIZE) is 2 KiB, smaller
 * than any snapshot, so the snapshots asked for then cannot be written (the
 * disk is "full"), and SIGXFSZ keeps its default action, which would end
 * the process if the library let it through. Then the limit is lifted, one
 * more snapshot is asked for and awaited, and the program exits with its
 * own status, 42. */
#include "snapshot_wait.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#define NOINLINE __attribute__((noinline))

static _Atomic int stop;

NOINLINE static void *churn_alloc(size_t n) { return malloc(n); }

static void *churn(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *held[256] = {0};
    while (!atomic_load(&stop)) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        unsigned i = s % 256;
        free(held[i]);
        held[i] = churn_alloc(1 + s % 4000);
    }
    return NULL;
}

static long max_seq(const char *dir)
{
    DIR *d = opendir(dir);
    long best = 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "memledger.%d.", (int)getpid());
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && !strstr(e->d_name, ".tmp")) {
            long v = strtol(e->d_name + strlen(prefix), NULL, 10);
            best = v > best ? v : best;
        }
    if (d)
        closedir(d);
    return best;
}

static void set_fsize(rlim_t soft)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = soft;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        perror("setrlimit");
        exit(3);
    }
}

int main(void)
{
    const char *dir = getenv("MEMLEDGER_DIR");
    struct rlimit orig;
    getrlimit(RLIMIT_FSIZE, &orig);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    struct timespec pause = {0, 200000};
    for (int i = 0; i < 1000; i++) {
        if (i == 300)
            set_fsize(2048);
        if (i == 600)
            set_fsize(orig.rlim_cur);
        kill(getpid(), SIGUSR2);
        nanosleep(&pause, NULL);
        if (i == 599) { /* let the dumper meet the limit before it is lifted */
            struct timespec ms = {0, 50000000};
            nanosleep(&ms, NULL);
        }
    }
    /* one more, after every signal above: wait for a snapshot that began after it */
    struct timespec settle = {0, 200000000};
    nanosleep(&settle, NULL);
    long before = max_seq(dir);
    kill(getpid(), SIGUSR2);
    for (int i = 0; i < 60000 && max_seq(dir) <= before; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("{\"signals\": 1000, \"last_seq\": %ld}\n", max_seq(dir));
    return 42;
}
