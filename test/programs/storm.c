/* storm.c — 1,000 snapshot signals while two threads churn the heap. For
 * signals 300 to 599 the file size limit (RLIMIT_FSIZE) is 512 bytes, smaller
 * than any snapshot, so the snapshots asked for then cannot be written (the
 * disk is "full"), and SIGXFSZ keeps its default action, which would end
 * the process if the library let it through. Then the limit is lifted, one
 * more snapshot is asked for and awaited, and the program exits with its
 * own status, 42.
 *
 * The program waits for events, not for times: a loaded machine can keep
 * the dumper thread from running for longer than the whole storm (the first
 * snapshot also reads the debug information of every module), so a fixed
 * pause cannot promise that any snapshot met the limit, or that the last
 * one was awaited. It watches the snapshot directory with inotify instead:
 * every snapshot is written to a temporary file first, renamed into place
 * when complete and removed when it could not be written.
 *   - Before lifting the limit it waits until a temporary file has been
 *     removed: a snapshot really met the full disk.
 *   - At the end it waits for a snapshot whose header time is after the last
 *     signal (one that began after it, not one that was already being
 *     written), and then until no snapshot is being written and none has
 *     started for a second (the dumper starts the next one at once when a
 *     request came in while it was writing). */
#include "snapshot_wait.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/inotify.h>
#include <zlib.h>
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

/* The header time (CLOCK_REALTIME, taken as the snapshot is begun) of
 * snapshot `seq`, or 0 when it cannot be read. */
static double snapshot_time(const char *dir, long seq)
{
    char path[4096], buf[4096];
    snprintf(path, sizeof path, "%s/memledger.%d.%ld.snap", dir, (int)getpid(), seq);
    gzFile z = gzopen(path, "rb"); /* the library writes it compressed */
    if (!z)
        return 0;
    int n = gzread(z, buf, sizeof buf - 1);
    gzclose(z);
    buf[n > 0 ? n : 0] = '\0';
    const char *t = strstr(buf, "\ntime\t");
    return t ? strtod(t + 6, NULL) : 0;
}

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the snapshot directory, watched ---- */
static int watch_fd = -1;
static char temp_prefix[64];
static long temps_removed;   /* snapshots that could not be written */
static long temps_open;      /* snapshots being written */
static double last_temp_event; /* CLOCK_MONOTONIC */

static bool is_temp(const char *name)
{
    size_t n = strlen(name);
    return strncmp(name, temp_prefix, strlen(temp_prefix)) == 0 && n > 4 && strcmp(name + n - 4, ".tmp") == 0;
}

static void watch_start(const char *dir)
{
    snprintf(temp_prefix, sizeof temp_prefix, ".memledger.%d.", (int)getpid());
    watch_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (watch_fd < 0 || inotify_add_watch(watch_fd, dir, IN_CREATE | IN_MOVED_FROM | IN_DELETE) < 0) {
        perror("inotify");
        exit(3);
    }
}

/* Takes in the events that came, waiting up to timeout_ms for the first. */
static void watch_read(int timeout_ms)
{
    struct pollfd p = {.fd = watch_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(watch_fd, buf, sizeof buf)) > 0) {
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)q;
            q += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                fprintf(stderr, "storm: inotify lost events\n");
                exit(3);
            }
            if (!ev->len || !is_temp(ev->name))
                continue;
            last_temp_event = now_s(CLOCK_MONOTONIC);
            if (ev->mask & IN_CREATE)
                temps_open++;
            if (ev->mask & IN_MOVED_FROM) /* renamed into place: written */
                temps_open--;
            if (ev->mask & IN_DELETE) { /* removed: could not be written */
                temps_open--;
                temps_removed++;
            }
        }
    }
}

#define WAIT_LIMIT_S 120.0 /* only a broken library takes this long */

static void give_up(const char *what)
{
    fprintf(stderr, "storm: %s within %.0f s\n", what, WAIT_LIMIT_S);
    exit(3);
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
    watch_start(dir); /* before the first signal: no snapshot is begun unwatched */
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    struct timespec pause = {0, 200000};
    for (int i = 0; i < 1000; i++) {
        if (i == 300)
            set_fsize(512); /* snapshots are gzip-compressed: over 1 KiB here */
        if (i == 600)
            set_fsize(orig.rlim_cur);
        kill(getpid(), SIGUSR2);
        nanosleep(&pause, NULL);
        watch_read(0);
        if (i == 599) { /* let the dumper meet the limit before it is lifted */
            double deadline = now_s(CLOCK_MONOTONIC) + WAIT_LIMIT_S;
            while (!temps_removed) {
                if (now_s(CLOCK_MONOTONIC) > deadline)
                    give_up("no snapshot met the file size limit");
                watch_read(10);
            }
        }
    }
    /* one more, after every signal above: wait for a snapshot that began
     * after it, then for the dumper to finish what it has begun */
    struct timespec settle = {0, 200000000};
    nanosleep(&settle, NULL);
    double asked = now_s(CLOCK_REALTIME);
    kill(getpid(), SIGUSR2);
    double deadline = now_s(CLOCK_MONOTONIC) + WAIT_LIMIT_S;
    for (;;) {
        long last = max_seq(dir);
        if (last && snapshot_time(dir, last) >= asked)
            break;
        if (now_s(CLOCK_MONOTONIC) > deadline)
            give_up("no snapshot began after the last signal");
        watch_read(10);
    }
    for (;;) {
        watch_read(10);
        if (!temps_open && now_s(CLOCK_MONOTONIC) - last_temp_event >= 1.0)
            break;
        if (now_s(CLOCK_MONOTONIC) > deadline)
            give_up("the dumper did not go quiet");
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("{\"signals\": 1000, \"last_seq\": %ld}\n", max_seq(dir));
    return 42;
}
