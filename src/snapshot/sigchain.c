/* sigchain.c — the program's view of the snapshot signal (see sigchain.h).
 *
 * The view is a struct sigaction that a program thread may replace while a
 * signal handler on another thread reads it. Each replacement takes a fresh
 * slot of a small ring and then publishes the slot's number, so a reader
 * copies a slot nobody is writing unless RING more replacements land during
 * its copy of a few dozen bytes. */
#include "snapshot/sigchain.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>
#include <ucontext.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

#define RING 8

static _Atomic(sigaction_fn) next_fn;
static _Atomic int owned_sig;
static struct sigaction view[RING];
static _Atomic unsigned view_cur, view_next;

void ml_sigchain_init(void)
{
    if (atomic_load_explicit(&next_fn, memory_order_acquire))
        return;
    sigaction_fn f = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    atomic_store_explicit(&next_fn, f, memory_order_release);
}

int ml_sigaction_next(int sig, const struct sigaction *act, struct sigaction *oact)
{
    sigaction_fn f = atomic_load_explicit(&next_fn, memory_order_acquire);
    if (ML_UNLIKELY(!f)) {
        ml_sigchain_init();
        f = atomic_load_explicit(&next_fn, memory_order_acquire);
    }
    /* glibc's own definition, if the lookup failed (it never has) */
    if (ML_UNLIKELY(!f)) {
        extern int __sigaction(int, const struct sigaction *, struct sigaction *);
        f = __sigaction;
    }
    return f(sig, act, oact);
}

void ml_sigchain_own(int sig, const struct sigaction *prev)
{
    view[0] = *prev;
    atomic_store_explicit(&view_cur, 0, memory_order_release);
    atomic_store_explicit(&view_next, 1, memory_order_relaxed);
    atomic_store_explicit(&owned_sig, sig, memory_order_release);
}

bool ml_sigchain_owns(int sig)
{
    return sig > 0 && atomic_load_explicit(&owned_sig, memory_order_acquire) == sig;
}

static void view_get(struct sigaction *out)
{
    *out = view[atomic_load_explicit(&view_cur, memory_order_acquire) % RING];
}

static void view_set(const struct sigaction *sa)
{
    unsigned i = atomic_fetch_add_explicit(&view_next, 1, memory_order_relaxed) % RING;
    view[i] = *sa;
    atomic_store_explicit(&view_cur, i, memory_order_release);
}

void ml_sigchain_release(int sig)
{
    if (!ml_sigchain_owns(sig))
        return;
    struct sigaction a;
    view_get(&a);
    atomic_store_explicit(&owned_sig, 0, memory_order_release);
    ml_sigaction_next(sig, &a, NULL);
}

void ml_sigchain_swap(int sig, const struct sigaction *act, struct sigaction *oact)
{
    (void)sig;
    struct sigaction old;
    view_get(&old);
    if (act)
        view_set(act);
    if (oact)
        *oact = old;
}

void ml_sigchain_call(int sig, siginfo_t *info, void *uctx)
{
    struct sigaction a;
    view_get(&a);
    bool siginfo = (a.sa_flags & SA_SIGINFO) != 0;
    if (siginfo ? !a.sa_sigaction : a.sa_handler == SIG_DFL || a.sa_handler == SIG_IGN)
        return;
    if (a.sa_flags & SA_RESETHAND) { /* one-shot: the program's view goes back to default */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        view_set(&dfl);
    }
    /* the mask the kernel would have set for the program's handler: the
     * interrupted mask, plus its sa_mask, plus sig unless SA_NODEFER */
    sigset_t m;
    sigemptyset(&m);
    if (uctx)
        memcpy(&m, &((ucontext_t *)uctx)->uc_sigmask, sizeof(uint64_t)); /* the kernel's word */
    else
        pthread_sigmask(SIG_SETMASK, NULL, &m);
    sigorset(&m, &m, &a.sa_mask);
    if (!(a.sa_flags & SA_NODEFER))
        sigaddset(&m, sig);
    else
        sigdelset(&m, sig);
    pthread_sigmask(SIG_SETMASK, &m, NULL); /* sigreturn restores the mask */
    if (siginfo)
        a.sa_sigaction(sig, info, uctx);
    else
        a.sa_handler(sig);
}
