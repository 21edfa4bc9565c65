/* dumper.c — the snapshot triggers and the dumper thread (see dumper.h).
 *
 * The signal handler is async-signal-safe by construction: it bumps an
 * atomic request counter (and the status page's), writes 8 bytes to an
 * eventfd, and chains to the program's previous handler, unless the
 * request carries memledger's mark (common/status.h): those are
 * memledger's own and the program never sees them. The dumper thread sleeps in poll() on that
 * eventfd (with the interval as timeout), and after each snapshot checks
 * whether new requests came in while it was writing, so every signal is
 * followed by a snapshot that started after it, however many arrive. */

#include "snapshot/dumper.h"
#include "common/config.h"
#include "common/io.h"
#include "snapshot/sigchain.h"
#include "snapshot/status.h"
#include "snapshot/snapshot_write.h"
#include "snapshot/symbolize.h"
#include "core/thread.h"
#include "core/track.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int wake_fd = -1;
static _Atomic uint64_t requests;
static _Atomic unsigned seq;
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int shutting_down;

static struct {
    ml_dumper_service_fn fn;
    bool exclusive;
} services[8];
static _Atomic unsigned nservices;

void ml_dumper_add_service(ml_dumper_service_fn fn, bool exclusive)
{
    unsigned i = atomic_load(&nservices);
    if (i >= ML_ARRAY_LEN(services))
        return;
    services[i].fn = fn;
    services[i].exclusive = exclusive;
    atomic_store(&nservices, i + 1);
}

/* Runs every service once; true when one has more to do soon. */
static bool run_services(void)
{
    bool more = false;
    unsigned n = atomic_load(&nservices);
    for (unsigned i = 0; i < n && !atomic_load(&shutting_down); i++) {
        if (services[i].exclusive) {
            pthread_mutex_lock(&dump_lock);
            more |= !atomic_load(&shutting_down) && services[i].fn();
            pthread_mutex_unlock(&dump_lock);
        } else {
            /* outside the lock: a service may wait for the loader, whose
             * lock a snapshot's caller may hold */
            more |= services[i].fn();
        }
    }
    return more;
}

/* A request `memledger snapshot` sent (sigqueue with memledger's mark),
 * not a signal the program or a person sent. */
static bool marked(const siginfo_t *info)
{
    return info && info->si_code == SI_QUEUE && (uintptr_t)info->si_value.sival_ptr == ML_REQUEST_MARK;
}

static void handler(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
    ml_status_request();
    uint64_t one = 1;
    if (wake_fd >= 0) {
        ssize_t w = write(wake_fd, &one, sizeof one);
        (void)w;
    }
    errno = saved;
    /* The program's own handler runs for any other sender (gunicorn uses
     * SIGUSR2), never for memledger's request: gunicorn's master would
     * re-execute itself for each snapshot. */
    if (!marked(info))
        ml_sigchain_call(sig, info, uctx);
}

/* Writes one snapshot; the caller holds dump_lock. A full disk shows up as
 * SIGXFSZ when the file passes RLIMIT_FSIZE: its default action would end
 * the process, so it stays blocked here and the one this write raised is
 * taken back before the mask is restored. */
static int write_locked(const char *trigger, char *path_out, size_t cap)
{
    sigset_t xfsz, old;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, &old);
    unsigned n = atomic_fetch_add(&seq, 1) + 1;
    int err = ml_snapshot_write(ml_config.dir, getpid(), n, trigger, path_out, cap);
    if (err == EFBIG) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&xfsz, NULL, &zero) == SIGXFSZ)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    static int last_err;
    if (err && err != last_err) /* one line per kind of failure, not per snapshot */
        ml_warn("cannot write snapshot %u into %s (MEMLEDGER_DIR): %s; the program runs on", n,
                ml_config.dir, strerror(err));
    last_err = err;
    return err;
}

/* Once the process is exiting no snapshot starts but the exit one: a thread
 * calling exit() must never find a half-written file being cut off. */
static int write_one(const char *trigger, char *path_out, size_t cap)
{
    pthread_mutex_lock(&dump_lock);
    uint64_t covered = ml_status_requests(); /* the requests this snapshot answers */
    int err = atomic_load(&shutting_down) ? ECANCELED : write_locked(trigger, path_out, cap);
    if (err != ECANCELED) /* the outcome, for `memledger snapshot` to read from outside */
        ml_status_done(covered, atomic_load(&seq), err);
    pthread_mutex_unlock(&dump_lock);
    return err;
}

void ml_dumper_wake(void)
{
    int saved = errno;
    uint64_t one = 1;
    if (wake_fd >= 0) {
        ssize_t w = write(wake_fd, &one, sizeof one);
        (void)w;
    }
    errno = saved;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *dumper_main(void *arg)
{
    (void)arg;
    ml_thread_make_internal();
    uint64_t done = 0;
    int64_t interval = (int64_t)ml_config.interval_ms;
    int64_t due = interval ? now_ms() + interval : 0;
    for (;;) {
        /* what the hooks asked for comes first (unwind rules: until they
         * exist, those stacks take the slow unwinder) */
        bool more = run_services();
        int timeout = -1;
        if (interval) {
            int64_t left = due - now_ms();
            timeout = left > 0 ? (int)(left < INT32_MAX ? left : INT32_MAX) : 0;
        }
        if (more && (timeout < 0 || timeout > 1))
            timeout = 1;
        struct pollfd p = {.fd = wake_fd, .events = POLLIN};
        int r = poll(&p, 1, timeout);
        if (atomic_load(&shutting_down))
            return NULL;
        if (r < 0 && errno != EINTR)
            return NULL;
        if (r > 0) {
            uint64_t v;
            ssize_t rd = read(wake_fd, &v, sizeof v);
            (void)rd;
        }
        uint64_t want = atomic_load(&requests);
        if (want != done) {
            done = want;
            write_one("signal", NULL, 0);
            continue;
        }
        if (interval && now_ms() >= due) {
            write_one("interval", NULL, 0);
            due = now_ms() + interval;
        }
    }
}

static void start_thread(void)
{
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        ml_warn("cannot create the dumper's eventfd: %s; snapshots only through the API",
                strerror(errno));
        return;
    }
    /* The dumper runs with every signal blocked except the snapshot signal:
     * program signals go to program threads, and a program that blocks the
     * snapshot signal everywhere can still be snapshotted. */
    sigset_t all, old;
    sigfillset(&all);
    if (ml_config.signal)
        sigdelset(&all, ml_config.signal);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 1 << 20);
    int err = pthread_create(&t, &a, dumper_main, NULL);
    pthread_attr_destroy(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        ml_warn("cannot start the dumper thread: %s; snapshots only through the API", strerror(err));
        return;
    }
    pthread_setname_np(t, "memledger");
}

void ml_dumper_start(void)
{
    start_thread();
    if (!ml_config.signal || wake_fd < 0)
        return;
    struct sigaction sa, prev;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (ml_sigaction_next(ml_config.signal, &sa, &prev) != 0) {
        ml_warn("cannot install the handler for signal %d: %s", ml_config.signal, strerror(errno));
        return;
    }
    ml_sigchain_own(ml_config.signal, &prev);
}

void ml_dumper_guard_signal(void)
{
    if (!ml_config.signal)
        return;
    struct sigaction sa, prev;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler; /* wake_fd is -1: it only counts and chains */
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (ml_sigaction_next(ml_config.signal, &sa, &prev) == 0)
        ml_sigchain_own(ml_config.signal, &prev);
}

int ml_dumper_snapshot_now(const char *trigger, char *path_out, size_t cap)
{
    ml_self.busy++;
    int err = write_one(trigger, path_out, cap);
    ml_self.busy--;
    return err;
}

void ml_dumper_after_fork_child(void)
{
    pthread_mutex_init(&dump_lock, NULL);
    atomic_store(&seq, 0);
    atomic_store(&requests, 0);
    ml_symbolize_reset();
    if (wake_fd >= 0)
        close(wake_fd); /* shared with the parent: its wake-ups are not ours */
    wake_fd = -1;
    start_thread();
}

void ml_dumper_shutdown(void)
{
    /* A snapshot being written when exit() runs is finished, not abandoned:
     * no half file, no temporary left behind; after this none starts. The
     * wait is bounded, so a stuck writer cannot hold the exit hostage. */
    atomic_store(&shutting_down, 1);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    if (pthread_mutex_timedlock(&dump_lock, &deadline) != 0)
        return;
    if (ml_config.at_exit) {
        ml_self.busy++;
        write_locked("exit", NULL, 0);
        ml_self.busy--;
    }
    pthread_mutex_unlock(&dump_lock);
}
