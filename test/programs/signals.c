/* signals.c — a program that wants the snapshot signal for itself.
 *   signals own    installs handlers for SIGUSR2 after memledger started,
 *                  through sigaction (SA_SIGINFO, a mask, SA_RESETHAND),
 *                  signal(), SIG_IGN and SIG_DFL, and asks for a snapshot
 *                  after each; prints what its handlers saw as JSON.
 *   signals block  blocks SIGUSR2 in every one of its threads, then asks
 *                  for two snapshots.
 * Each snapshot_wait() exits 3 when no snapshot comes. */
#include "snapshot_wait.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static _Atomic int info_calls, plain_calls, mask_ok = 1, info_ok = 1;

static void on_info(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    /* the kernel's rule: the handler's sa_mask (SIGUSR1) and the signal
     * itself are blocked, and nothing else that was open (SIGTERM) */
    if (!sigismember(&now, SIGUSR1) || !sigismember(&now, SIGUSR2) || sigismember(&now, SIGTERM))
        mask_ok = 0;
    if (sig != SIGUSR2 || !si || si->si_signo != SIGUSR2 || si->si_pid != getpid())
        info_ok = 0;
    info_calls++;
}

static void on_plain(int sig)
{
    if (sig == SIGUSR2)
        plain_calls++;
}

static _Atomic int usr1_calls;
static void on_usr1(int sig) { usr1_calls += sig == SIGUSR1; }

static int own(void)
{
    int seq = 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    /* what it finds installed: the default, as before memledger */
    int r1 = sigaction(SIGUSR2, &sa, &old);
    int found_default = r1 == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL;
    for (int i = 0; i < 3; i++)
        snapshot_wait(++seq);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    int reads_back = (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_info &&
                     sigismember(&now.sa_mask, SIGUSR1);

    void (*prev)(int) = signal(SIGUSR2, on_plain);
    /* as glibc does, the union member: a SA_SIGINFO handler comes back as is */
    union {
        void (*plain)(int);
        void (*info)(int, siginfo_t *, void *);
    } want = {.info = on_info};
    int signal_returns_prev = prev == want.plain;
    snapshot_wait(++seq);

    signal(SIGUSR2, SIG_IGN);
    snapshot_wait(++seq);
    signal(SIGUSR2, SIG_DFL); /* the default would end the process; memledger keeps it alive */
    snapshot_wait(++seq);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_plain;
    sa.sa_flags = SA_RESETHAND; /* one-shot */
    sigaction(SIGUSR2, &sa, NULL);
    snapshot_wait(++seq);
    sigaction(SIGUSR2, NULL, &now);
    int reset_after_one = now.sa_handler == SIG_DFL;
    snapshot_wait(++seq);

    /* another signal is the program's alone */
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("{\"found_default\": %d, \"info_calls\": %d, \"mask_ok\": %d, \"info_ok\": %d, \"reads_back\": %d, "
           "\"signal_returns_prev\": %d, \"plain_calls\": %d, \"reset_after_one\": %d, \"usr1_calls\": %d, "
           "\"snapshots\": %d}\n",
           found_default, (int)info_calls, (int)mask_ok, (int)info_ok, reads_back, signal_returns_prev,
           (int)plain_calls, reset_after_one, (int)usr1_calls, seq);
    return 0;
}

static _Atomic int stop;
static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        free(malloc(64));
    return NULL;
}

static int block(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, NULL); /* threads made from here inherit it */
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, busy, NULL);
    snapshot_wait(1);
    snapshot_wait(2);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    sigset_t pending;
    sigpending(&pending);
    printf("{\"snapshots\": 2, \"pending_in_program\": %d}\n", sigismember(&pending, SIGUSR2));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "own") == 0)
        return own();
    if (argc == 2 && strcmp(argv[1], "block") == 0)
        return block();
    return 2;
}
