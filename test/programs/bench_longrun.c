/* bench_longrun.c — the long-run benchmark: LIVE blocks kept live over
 * STACKS distinct call stacks (paths through a binary tree of calls), then
 * ROUNDS of steady churn that frees and re-makes a tenth of them through
 * the same stacks (the live set and the stacks do not change), then a
 * latency probe: one thread allocates and frees in a loop, timing each,
 * while the main thread asks for a snapshot. Prints one JSON line.
 * Usage: bench_longrun LIVE STACKS ROUNDS */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))
#define LEVELS 17

static volatile long sink;
NOINLINE static void *node(int level, unsigned bits, size_t n);
/* two different call sites per level: a path of LEVELS bits is a distinct stack */
NOINLINE static void *left(int level, unsigned bits, size_t n)
{
    void *p = node(level, bits, n);
    sink++;
    return p;
}
NOINLINE static void *right(int level, unsigned bits, size_t n)
{
    void *p = node(level, bits, n);
    sink--;
    return p;
}
NOINLINE static void *node(int level, unsigned bits, size_t n)
{
    if (level == 0)
        return malloc(n);
    return (bits & 1) ? left(level - 1, bits >> 1, n) : right(level - 1, bits >> 1, n);
}

/* one call site for building and churning: the same path is the same stack */
NOINLINE static void *make(unsigned path, long i)
{
    void *p = node(LEVELS, path, 16 + (size_t)(i % 4) * 16);
    sink++; /* not a tail call: make's frame stays, and with it one call site */
    return p;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

static _Atomic int probing, in_snapshot;
static double worst_in, worst_out;
static long probes_in;

static int realtime;

static void *probe(void *arg)
{
    (void)arg;
    /* run above everything else on the machine, so what delays an
     * allocation here is memledger, not the scheduler */
    struct sched_param sp = {.sched_priority = 1};
    realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
    void *p[4] = {0};
    unsigned i = 0;
    while (atomic_load(&probing)) {
        int during = atomic_load(&in_snapshot);
        double t0 = now();
        free(p[i & 3]);
        p[i & 3] = malloc(32 + (i & 255));
        double dt = now() - t0;
        if (during) {
            probes_in++;
            worst_in = dt > worst_in ? dt : worst_in;
        } else {
            worst_out = dt > worst_out ? dt : worst_out;
        }
        i++;
    }
    for (int k = 0; k < 4; k++)
        free(p[k]);
    return NULL;
}

static long newest(const char *dir, char *path, size_t cap)
{
    DIR *d = opendir(dir);
    char prefix[64];
    long best = 0;
    snprintf(prefix, sizeof prefix, "memledger.%d.", (int)getpid());
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            long s = atol(e->d_name + strlen(prefix));
            if (s > best) {
                best = s;
                snprintf(path, cap, "%s/%s", dir, e->d_name);
            }
        }
    if (d)
        closedir(d);
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    long live = atol(argv[1]), stacks = atol(argv[2]), rounds = atol(argv[3]);
    void **keep = calloc((size_t)live, sizeof *keep);
    unsigned *path = calloc((size_t)live, sizeof *path);
    /* One loop, one call site: building and churning reach make() the
     * same way, so a path is one stack whichever phase allocates it. */
    uint64_t x = 88172645463325252ull;
    long churned = 0, steps = live + rounds * (live / 10), rss_built = 0;
    double t0 = now(), t1 = t0;
    for (long step = 0; step < steps; step++) {
        long i = step;
        if (step == live) {
            t1 = now();
            rss_built = rss_kib();
        }
        if (step >= live) {
            /* steady churn: the same live set, the same stacks */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            i = (long)(x % (uint64_t)live);
            free(keep[i]);
            churned++;
        } else {
            path[i] = (unsigned)(i % stacks);
        }
        keep[i] = make(path[i], i);
    }
    if (steps == live) {
        t1 = now();
        rss_built = rss_kib();
    }
    double t2 = now();
    long rss_churned = rss_kib();

    /* snapshot under load, when running under memledger */
    double snap_s = -1;
    long snap_bytes = -1;
    char snap[4200] = "";
    const char *dir = getenv("MEMLEDGER_DIR");
    if (dir && getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "memledger")) {
        pthread_t t;
        atomic_store(&probing, 1);
        pthread_create(&t, NULL, probe, NULL);
        struct timespec settle = {0, 200000000};
        nanosleep(&settle, NULL);
        long before = newest(dir, snap, sizeof snap);
        atomic_store(&in_snapshot, 1);
        double s0 = now();
        kill(getpid(), SIGUSR2);
        struct timespec ms = {0, 1000000};
        while (newest(dir, snap, sizeof snap) == before)
            nanosleep(&ms, NULL);
        snap_s = now() - s0;
        atomic_store(&in_snapshot, 0);
        nanosleep(&settle, NULL);
        atomic_store(&probing, 0);
        pthread_join(t, NULL);
        struct stat st;
        if (stat(snap, &st) == 0)
            snap_bytes = (long)st.st_size;
    }
    printf("{\"live\": %ld, \"stacks\": %ld, \"build_ns_per_alloc\": %.1f, \"churn_ns_per_pair\": %.1f, "
           "\"rss_built_kib\": %ld, \"rss_churned_kib\": %ld, \"snapshot_s\": %.3f, \"snapshot_bytes\": %ld, "
           "\"snapshot_path\": \"%s\", \"worst_alloc_us_during_snapshot\": %.1f, \"probes_during_snapshot\": %ld, "
           "\"worst_alloc_us_otherwise\": %.1f, \"probe_realtime\": %s}\n",
           live, stacks, (t1 - t0) * 1e9 / (double)live, churned ? (t2 - t1) * 1e9 / (double)churned : 0.0,
           rss_built, rss_churned, snap_s, snap_bytes, snap, worst_in * 1e6, probes_in, worst_out * 1e6, realtime ? "true" : "false");
    return 0;
}
