/* threads.c — N threads allocate with every function of the malloc family,
 * reallocate and free at random, some frees on another thread than the
 * allocation, while snapshot signals keep arriving and short-lived threads
 * are created and exit. At the end the program's own count of what it holds
 * must equal the ledger's live bytes and allocations for the stacks under
 * worker_alloc and worker_realloc, exactly, and its count of everything it
 * allocated there must equal the ledger's totals, exactly. A snapshot
 * writes the stacks that hold memory (or held some at the snapshot before),
 * so the first allocation made at each of those stacks is kept to the end:
 * every stack is in the final snapshot with its totals.
 * Usage: threads NTHREADS OPS_PER_THREAD [TRANSIENT_THREADS] */
#include "snapshot_wait.h"

#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define HELD 2048
#define MAXT 64

static int nthreads = 4;
static long ops_per_thread = 200000;
static int ntransient = 0;
static _Atomic long long held_bytes, held_count;
/* everything allocated: at worker_alloc's stacks and at worker_realloc's */
static _Atomic long long alloc_bytes, alloc_count, realloc_bytes, realloc_count;
static _Atomic int running;

/* one-slot mailbox per thread: a pointer allocated by one thread is freed by another */
typedef struct {
    pthread_mutex_t lock;
    void *ptr;
    size_t size;
} mailbox_t;
static mailbox_t mail[MAXT];

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The first allocation at each stack is kept (pinned) to the end: per
 * calling function (worker, transient), each of worker_alloc's 9 calls and
 * worker_realloc's 2. Threads of one function share its stacks. */
enum { IN_WORKER, IN_TRANSIENT };
#define NPATHS (9 + 2)
static _Atomic int pinned[2][NPATHS];
static void *pins[2 * NPATHS];
static _Atomic int npins;

static bool pin_first(int fn, int path, void *p)
{
    if (atomic_exchange(&pinned[fn][path], 1))
        return false;
    pins[atomic_fetch_add(&npins, 1)] = p;
    return true;
}

/* Every allocating function; *size is what the ledger must record, *path
 * which call made it. */
NOINLINE static void *worker_alloc(uint64_t *s, size_t *size, int *path)
{
    void *p = NULL;
    size_t n = *size;
    switch ((*path = (int)(rnd(s) % 9))) {
    case 0: p = malloc(n); break;
    case 1: p = calloc(1, n); break;
    case 2: if (posix_memalign(&p, 32, n)) p = NULL; break;
    case 3: /* C11 wants a multiple of the alignment */
        *size = n = (n + 63) & ~(size_t)63;
        p = aligned_alloc(64, n);
        break;
    case 4: p = memalign(16, n); break;
    case 5: p = reallocarray(NULL, 1, n); break;
    case 6: p = valloc(n); break;
    case 7: p = pvalloc(n); break; /* the ledger records what was asked */
    default: /* calloc with a count: n rounded to a multiple of 8 */
        *size = n = (n + 7) & ~(size_t)7;
        p = calloc(n / 8, 8);
        break;
    }
    if (p) {
        alloc_bytes += (long long)*size;
        alloc_count++;
    }
    return p;
}

NOINLINE static void *worker_realloc(uint64_t *s, void *p, size_t n, int *path)
{
    *path = rnd(s) % 4 ? 9 : 10;
    void *q = *path == 9 ? realloc(p, n) : reallocarray(p, 1, n);
    if (q) {
        realloc_bytes += (long long)n;
        realloc_count++;
    }
    return q;
}

typedef struct {
    void *p;
    size_t n;
} item_t;

static item_t *held_of[MAXT]; /* allocated by main, outside the counted stacks */

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
    item_t *held = held_of[me];
    int nheld = 0;
    for (long op = 0; op < ops_per_thread; op++) {
        uint64_t r = rnd(&s) % 100;
        if (r < 45 && nheld < HELD) {
            size_t n = 1 + rnd(&s) % 3000;
            if (rnd(&s) % 16 == 0)
                n += 200000; /* now and then a big one */
            int path;
            void *p = worker_alloc(&s, &n, &path);
            if (!p)
                continue;
            held_bytes += (long long)n;
            held_count++;
            if (pin_first(IN_WORKER, path, p))
                continue;
            held[nheld].p = p;
            held[nheld].n = n;
            nheld++;
        } else if (r < 60 && nheld) {
            int i = (int)(rnd(&s) % (uint64_t)nheld);
            size_t n = 1 + rnd(&s) % 5000;
            int path;
            void *q = worker_realloc(&s, held[i].p, n, &path);
            if (q) {
                held_bytes += (long long)n - (long long)held[i].n;
                held[i].p = q;
                held[i].n = n;
                if (pin_first(IN_WORKER, path, q))
                    held[i] = held[--nheld];
            }
        } else if (r < 70 && nheld) {
            /* hand one to the next thread, take what it left for us */
            int i = (int)(rnd(&s) % (uint64_t)nheld);
            mailbox_t *out = &mail[(me + 1) % nthreads], *in = &mail[me];
            pthread_mutex_lock(&out->lock);
            if (!out->ptr) {
                out->ptr = held[i].p;
                out->size = held[i].n;
                held[i] = held[--nheld];
            }
            pthread_mutex_unlock(&out->lock);
            pthread_mutex_lock(&in->lock);
            void *p = in->ptr;
            size_t n = in->size;
            in->ptr = NULL;
            pthread_mutex_unlock(&in->lock);
            if (p) {
                free(p); /* allocated by another thread */
                held_bytes -= (long long)n;
                held_count--;
            }
        } else if (nheld) {
            int i = (int)(rnd(&s) % (uint64_t)nheld);
            free(held[i].p);
            held_bytes -= (long long)held[i].n;
            held_count--;
            held[i] = held[--nheld];
        }
    }
    atomic_fetch_sub(&running, 1);
    return held; /* keeps what it holds */
}

/* Short-lived threads: allocate, reallocate, free most, keep a few here,
 * and exit while snapshots are being taken. */
#define TRANSIENT_KEEP 4
static item_t transient_kept[4096 * TRANSIENT_KEEP];
static _Atomic int ntransient_kept, transient_done;

static void *transient(void *arg)
{
    uint64_t s = 0x2545f4914f6cdd1dull * (uint64_t)((intptr_t)arg + 1);
    item_t mine[32];
    int path[32];
    for (int i = 0; i < 32; i++) {
        mine[i].n = 1 + rnd(&s) % 700;
        mine[i].p = worker_alloc(&s, &mine[i].n, &path[i]);
    }
    for (int i = 0; i < 8; i++) {
        size_t n = 1 + rnd(&s) % 900;
        int rpath;
        void *q = worker_realloc(&s, mine[i].p, n, &rpath);
        if (q) {
            mine[i].p = q;
            mine[i].n = n;
            path[i] = rpath;
        }
    }
    for (int i = 0; i < 32; i++) {
        if (!mine[i].p)
            continue;
        if (pin_first(IN_TRANSIENT, path[i], mine[i].p)) {
            held_bytes += (long long)mine[i].n;
            held_count++;
            continue;
        }
        int k = i < TRANSIENT_KEEP ? atomic_fetch_add(&ntransient_kept, 1) : -1;
        if (k >= 0 && k < (int)(sizeof transient_kept / sizeof *transient_kept)) {
            transient_kept[k] = mine[i];
            held_bytes += (long long)mine[i].n;
            held_count++;
        } else {
            free(mine[i].p);
        }
    }
    atomic_fetch_add(&transient_done, 1);
    return NULL;
}

static long max_seq(void)
{
    const char *dir = getenv("MEMLEDGER_DIR");
    DIR *d = opendir(dir && *dir ? dir : ".");
    long best = 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "memledger.%d.", (int)getpid());
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            long s = strtol(e->d_name + strlen(prefix), NULL, 10);
            best = s > best ? s : best;
        }
    }
    if (d)
        closedir(d);
    return best;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (argc > 2)
        ops_per_thread = atol(argv[2]);
    if (argc > 3)
        ntransient = atoi(argv[3]);
    if (nthreads < 1 || nthreads > MAXT || ntransient < 0 || ntransient > 4096)
        return 2;
    pthread_t t[MAXT];
    for (int i = 0; i < MAXT; i++) {
        pthread_mutex_init(&mail[i].lock, NULL);
        held_of[i] = calloc(HELD, sizeof(item_t));
    }
    running = nthreads;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    int signals = 0, spawned = 0, tried = 0;
    struct timespec ms = {0, 2000000};
    while (atomic_load(&running) > 0) {
        kill(getpid(), SIGUSR2);
        signals++;
        /* threads come and go while snapshots are taken */
        for (int k = 0; k < 4 && tried < ntransient; k++, tried++) {
            pthread_t tt;
            if (pthread_create(&tt, NULL, transient, (void *)(intptr_t)tried) == 0) {
                pthread_detach(tt);
                spawned++;
            }
        }
        nanosleep(&ms, NULL);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    while (atomic_load(&transient_done) < spawned)
        nanosleep(&ms, NULL);
    /* mail left in boxes is still held: it stays counted */
    /* final snapshot, after every signal above was answered and every
     * transient thread has finished */
    struct timespec settle = {0, 300000000};
    nanosleep(&settle, NULL);
    long before = max_seq();
    snapshot_wait((int)before + 1);
    printf("{\"held_bytes\": %lld, \"held_count\": %lld, \"alloc_bytes\": %lld, \"alloc_count\": %lld, "
           "\"realloc_bytes\": %lld, \"realloc_count\": %lld, \"signals\": %d, \"transient\": %d, "
           "\"final_seq\": %ld}\n",
           (long long)held_bytes, (long long)held_count, (long long)alloc_bytes, (long long)alloc_count,
           (long long)realloc_bytes, (long long)realloc_count, signals, spawned, before + 1);
    return 0;
}
