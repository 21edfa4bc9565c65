/* dumper.c — the snapshot triggers and the dumper thread (see dumper.h).
 *
 * The signal handler is async-signal-safe by construction: it bumps an
 * atomic request counter (and the status page's), writes 8 bytes to an
 * eventfd, and chains to the program's previous handler, unless the
 * request carries memledger's mark (common/status.h): those are
 * memledger's own and the program never sees them. The dumper thread sleeps in poll() on that
 * eventfd (with the interval as timeout), and after each snapshot checks
 * whether new requests came in while it was writing, so every signal is
 * followed by a snapshot that started after it, however many arrive.
 *
 * Exit. A snapshot asked for is written, or the user is told it was not:
 *   - a snapshot being written when exit() runs is waited for as long as it
 *     moves (ml_snapshot_progress); a big process's takes seconds, and a
 *     busy machine can stretch that many times over, so there is no bound
 *     on the whole wait, only on a stretch with no progress at all
 *     (MEMLEDGER_EXIT_STALL). Past that, one line names the snapshot and
 *     why, and its temporary file is removed;
 *   - requests received and not yet served (the counter `requests` ahead of
 *     `served`) are served by the exiting thread, a "signal" snapshot before
 *     the exit one; those that cannot be (the writer stopped, or they came
 *     in while the last snapshot was being written) are named on stderr;
 *   - a request after all that (exit_done) is answered by one line from the
 *     handler (write(2) only).
 * The exiting thread holds nothing the writer needs (the loader drops its
 * lock before running destructors; the writer takes no lock of the
 * program's), so waiting cannot deadlock with the hooks; the one way the
 * writer could wait for the exiting thread is exit() called on the
 * writer's own thread (a program's handler chained from ours), and that is
 * seen (lock_owner) and not waited for. */

#include "snapshot/dumper.h"
#include "common/config.h"
#include "common/io.h"
#include "snapshot/modfile.h"
#include "snapshot/sigchain.h"
#include "snapshot/status.h"
#include "snapshot/snapshot_write.h"
#include "snapshot/symbolize.h"
#include "core/thread.h"
#include "core/track.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int wake_fd = -1;
static _Atomic uint64_t requests; /* signals received (the handler counts them) */
static _Atomic uint64_t served;   /* `requests` when the last signal snapshot began */
static _Atomic unsigned seq;
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uintptr_t lock_owner; /* pthread_self() of dump_lock's holder; 0 when free */
static _Atomic int shutting_down;    /* exit() has begun: no snapshot starts but the exit path's */
static _Atomic int exit_done;        /* the exit path has begun its last snapshot, or given up */
static _Atomic int late_told;        /* a request after exit_done has been answered on stderr */
static _Atomic unsigned writing_seq; /* the snapshot being written; 0 when none */
static const char *_Atomic writing_trigger;

static void lock_take(void)
{
    pthread_mutex_lock(&dump_lock);
    atomic_store(&lock_owner, (uintptr_t)pthread_self());
}

static void lock_drop(void)
{
    atomic_store(&lock_owner, 0);
    pthread_mutex_unlock(&dump_lock);
}

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
            lock_take();
            more |= !atomic_load(&shutting_down) && services[i].fn();
            lock_drop();
        } else {
            /* outside the lock: a service may wait for the loader, whose
             * lock a snapshot's caller may hold */
            more |= services[i].fn();
        }
    }
    return more;
}

/* A request the exit path will not see: said once (ml_warn is one write(2)
 * of a string formatted on the stack). */
static void tell_late(int sig)
{
    if (!atomic_exchange(&late_told, 1))
        ml_warn("a snapshot request (signal %d) came in after the process's last snapshot at exit had begun; "
                "it was not written", sig);
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
    atomic_fetch_add(&requests, 1);
    ml_status_request();
    uint64_t one = 1;
    if (wake_fd >= 0) {
        ssize_t w = write(wake_fd, &one, sizeof one);
        (void)w;
        if (atomic_load(&exit_done))
            tell_late(sig);
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
    uint64_t covered = ml_status_requests(); /* the requests this snapshot answers */
    sigset_t xfsz, old;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, &old);
    unsigned n = atomic_fetch_add(&seq, 1) + 1;
    atomic_store(&writing_trigger, trigger);
    atomic_store(&writing_seq, n);
    int err = ml_snapshot_write(ml_config.dir, getpid(), &n, trigger, path_out, cap);
    for (unsigned cur = atomic_load(&seq); n > cur && !atomic_compare_exchange_weak(&seq, &cur, n);)
        ; /* the file took a later number (docs/format.md): the next one follows it */
    atomic_store(&writing_seq, 0);
    ml_modfile_sweep(); /* the files of unloaded modules it opened to name frames */
    if (err == EFBIG) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&xfsz, NULL, &zero) == SIGXFSZ)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    static int last_err;
    if (err == ECANCELED) /* the exit path gave up on it, and said so */
        return err;
    ml_status_done(covered, n, err); /* the outcome, for `memledger snapshot` to read from outside */
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
    lock_take();
    int err = atomic_load(&shutting_down) ? ECANCELED : write_locked(trigger, path_out, cap);
    lock_drop();
    return err;
}

/* The snapshot that serves every request received so far; the caller holds
 * dump_lock. A request counts as served once a snapshot began after it. */
static void serve_requests_locked(void)
{
    uint64_t want = atomic_load(&requests);
    if (want == atomic_load(&served))
        return;
    atomic_store(&served, want);
    write_locked("signal", NULL, 0);
}

static void serve_requests(void)
{
    lock_take();
    if (!atomic_load(&shutting_down)) /* else the exit path serves them */
        serve_requests_locked();
    lock_drop();
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
        /* the services again before a snapshot: what they ran before the
         * wait may be stale (a library opened since, its malloc slots not
         * redirected yet, would bypass the hooks once the program goes on) */
        if (atomic_load(&requests) != atomic_load(&served)) {
            run_services();
            serve_requests();
            continue;
        }
        if (interval && now_ms() >= due) {
            run_services();
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
    atomic_store(&lock_owner, 0);
    atomic_store(&writing_seq, 0);
    atomic_store(&seq, 0);
    atomic_store(&requests, 0);
    atomic_store(&served, 0);
    /* a thread that forks while another is in exit(): the child is not exiting */
    atomic_store(&shutting_down, 0);
    atomic_store(&exit_done, 0);
    atomic_store(&late_told, 0);
    ml_snapshot_after_fork_child();
    ml_symbolize_reset();
    if (wake_fd >= 0)
        close(wake_fd); /* shared with the parent: its wake-ups are not ours */
    wake_fd = -1;
    start_thread();
}

/* ---- exit ---- */

/* The exit path waits a short while at a time, on the monotonic clock
 * where the C library takes one for mutexes (a wall clock set back would
 * stretch a wait on it). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define LOCK_CLOCK CLOCK_MONOTONIC
#define lock_until(m, t) pthread_mutex_clocklock((m), CLOCK_MONOTONIC, (t))
#else
#define LOCK_CLOCK CLOCK_REALTIME
#define lock_until(m, t) pthread_mutex_timedlock((m), (t))
#endif

static int64_t stall_limit_ms(void)
{
    return ml_config.exit_stall_ms < INT64_MAX ? (int64_t)ml_config.exit_stall_ms : INT64_MAX;
}

/* Takes dump_lock for the exit path, waiting as long as whoever holds it
 * makes progress. Returns 0 with the lock held; EDEADLK when this thread
 * holds it already (exit() from inside a write on this very thread);
 * ETIMEDOUT when the holder made no progress for the stall limit. */
static int exit_lock(int64_t *stalled_ms)
{
    if (atomic_load(&lock_owner) == (uintptr_t)pthread_self())
        return EDEADLK;
    uint64_t seen = atomic_load(&ml_snapshot_progress);
    int64_t moved = now_ms();
    for (;;) {
        struct timespec until;
        clock_gettime(LOCK_CLOCK, &until);
        until.tv_nsec += 50 * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        int r = lock_until(&dump_lock, &until);
        if (r == 0) {
            atomic_store(&lock_owner, (uintptr_t)pthread_self());
            return 0;
        }
        if (r != ETIMEDOUT)
            return r;
        uint64_t now_progress = atomic_load(&ml_snapshot_progress);
        int64_t t = now_ms();
        if (now_progress != seen) {
            seen = now_progress;
            moved = t;
        } else if (t - moved >= stall_limit_ms()) {
            *stalled_ms = t - moved;
            return ETIMEDOUT;
        }
    }
}

/* Says what the exit path could not write when it could not take the lock:
 * the snapshot in flight (removing its temporary file), then what was
 * still to come (requests not yet begun, the exit snapshot). */
static void tell_abandoned(int why, int64_t stalled_ms)
{
    unsigned n = atomic_load(&writing_seq);
    const char *trigger = atomic_load(&writing_trigger);
    char reason[160], temp[PATH_MAX + 160], removed[PATH_MAX + 200] = "";
    if (why == EDEADLK)
        ml_fmt(reason, sizeof reason, "exit() was called on the thread writing it (from a signal handler)");
    else if (why == ETIMEDOUT)
        ml_fmt(reason, sizeof reason, "no progress for %lld.%llds while the process exited (MEMLEDGER_EXIT_STALL)",
               (long long)(stalled_ms / 1000), (long long)(stalled_ms % 1000 / 100));
    else
        ml_fmt(reason, sizeof reason, "exit could not wait for it: %s", strerror(why));
    if (ml_snapshot_discard_temp(temp, sizeof temp)) {
        const char *base = strrchr(temp, '/');
        ml_fmt(removed, sizeof removed, "; its temporary file %s was removed", base ? base + 1 : temp);
    }
    if (n)
        ml_warn("snapshot %u (%s) was not written into %s (MEMLEDGER_DIR): %s%s", n, trigger ? trigger : "?",
                ml_config.dir, reason, removed);
    else
        ml_warn("memledger's thread was busy when the process exited: %s%s", reason, removed);
    uint64_t waiting = atomic_load(&requests) - atomic_load(&served);
    if (!waiting && !ml_config.at_exit)
        return;
    char asked[96] = "";
    if (waiting)
        ml_fmt(asked, sizeof asked, "%llu requested snapshot%s received before exit", (unsigned long long)waiting,
               waiting == 1 ? "" : "s");
    ml_warn("not written either, since %s: %s%s%s", n ? "that write did not end" : "the thread did not come free",
            ml_config.at_exit ? "the exit snapshot" : "", ml_config.at_exit && waiting ? " and " : "", asked);
}

void ml_dumper_shutdown(void)
{
    /* From here no snapshot starts but the ones below (write_one and the
     * dumper thread see shutting_down under the lock). */
    atomic_store(&shutting_down, 1);
    int64_t stalled_ms = 0;
    int why = exit_lock(&stalled_ms);
    if (why) {
        atomic_store(&exit_done, 1);
        tell_abandoned(why, stalled_ms);
        return;
    }
    ml_self.busy++;
    /* requests received before exit, and those that come in while they are
     * written: twice at most, so a storm of signals cannot hold exit */
    for (int round = 0; round < 2; round++)
        serve_requests_locked();
    if (ml_config.at_exit) {
        /* the exit snapshot begins after every request counted now */
        atomic_store(&served, atomic_load(&requests));
        atomic_store(&exit_done, 1);
        write_locked("exit", NULL, 0);
    } else {
        atomic_store(&exit_done, 1);
    }
    uint64_t left = atomic_load(&requests) - atomic_load(&served);
    if (left && !atomic_exchange(&late_told, 1))
        ml_warn("%llu snapshot request%s came in while the process was exiting, after its last snapshot had begun; "
                "not written",
                (unsigned long long)left, left == 1 ? "" : "s");
    ml_self.busy--;
    lock_drop();
}
