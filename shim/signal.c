/* shim/signal.c — the signal-disposition entry points: sigaction, signal,
 * bsd_signal, sysv_signal, __sysv_signal and sigset.
 * For the snapshot signal, while memledger's handler is installed, they
 * answer from the program's view kept by src/snapshot/sigchain.c (memledger's handler
 * stays in the kernel and chains to the program's); every other signal goes
 * straight to the next definition. Must never do more than that. */

#include "common/common.h"
#include "snapshot/sigchain.h"
#include "init/attach.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

typedef void (*handler_t)(int);
typedef handler_t (*setter_t)(int, handler_t);

/* The next definition of a signal()-like function, looked up once. */
static setter_t next_setter(_Atomic(setter_t) *cache, const char *name)
{
    setter_t f = atomic_load_explicit(cache, memory_order_acquire);
    if (!f) {
        f = (setter_t)dlsym(RTLD_NEXT, name);
        atomic_store_explicit(cache, f, memory_order_release);
    }
    return f;
}

ML_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    if (!ml_sigchain_owns(sig))
        return ml_sigaction_next(sig, act, oact);
    ml_sigchain_swap(sig, act, oact);
    return 0;
}

/* signal() and friends for the owned signal, with the flags glibc gives each. */
static handler_t set_owned(int sig, handler_t h, int flags, bool mask_self)
{
    if (h == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (mask_self)
        sigaddset(&sa.sa_mask, sig);
    ml_sigchain_swap(sig, &sa, &old);
    return old.sa_handler;
}

ML_EXPORT handler_t signal(int sig, handler_t h)
{
    static _Atomic(setter_t) next;
    if (!ml_sigchain_owns(sig)) {
        setter_t f = next_setter(&next, "signal");
        return f ? f(sig, h) : SIG_ERR;
    }
    return set_owned(sig, h, SA_RESTART, true); /* BSD semantics, as glibc's */
}

ML_EXPORT handler_t bsd_signal(int sig, handler_t h)
{
    static _Atomic(setter_t) next;
    if (!ml_sigchain_owns(sig)) {
        setter_t f = next_setter(&next, "bsd_signal");
        return f ? f(sig, h) : SIG_ERR;
    }
    return set_owned(sig, h, SA_RESTART, true);
}

ML_EXPORT handler_t sysv_signal(int sig, handler_t h)
{
    static _Atomic(setter_t) next;
    if (!ml_sigchain_owns(sig)) {
        setter_t f = next_setter(&next, "sysv_signal");
        return f ? f(sig, h) : SIG_ERR;
    }
    return set_owned(sig, h, SA_RESETHAND | SA_NODEFER, false); /* one-shot */
}

/* What `signal` means in a strict ISO C build (glibc redirects it here). */
ML_EXPORT handler_t __sysv_signal(int sig, handler_t h)
{
    static _Atomic(setter_t) next;
    if (!ml_sigchain_owns(sig)) {
        setter_t f = next_setter(&next, "__sysv_signal");
        return f ? f(sig, h) : SIG_ERR;
    }
    return set_owned(sig, h, SA_RESETHAND | SA_NODEFER, false);
}

/* System V sigset: SIG_HOLD only blocks the signal in the caller, which the
 * next definition does without touching the disposition. */
ML_EXPORT handler_t sigset(int sig, handler_t h)
{
    static _Atomic(setter_t) next;
    if (!ml_sigchain_owns(sig) || h == SIG_HOLD) {
        setter_t f = next_setter(&next, "sigset");
        return f ? f(sig, h) : SIG_ERR;
    }
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, &old);
    handler_t prev = set_owned(sig, h, 0, false);
    return prev != SIG_ERR && sigismember(&old, sig) ? SIG_HOLD : prev;
}

/* For `memledger attach` (src/init/attach.c): after it, the program's own
 * calls for the snapshot signal are answered here too. Local aliases give
 * these functions' own addresses (see shim/malloc.c). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* sigset: still called by old programs */
#define LOCAL(name) ML_OWN_ALIAS(name, ml_local_##name)
LOCAL(sigaction);
LOCAL(signal);
LOCAL(bsd_signal);
LOCAL(sysv_signal);
LOCAL(__sysv_signal);
LOCAL(sigset);

__attribute__((constructor(101))) static void offer(void)
{
    static const ml_hook_t mine[] = {
        {"sigaction", (void *)ml_local_sigaction, false},     {"signal", (void *)ml_local_signal, false},
        {"bsd_signal", (void *)ml_local_bsd_signal, false},   {"sysv_signal", (void *)ml_local_sysv_signal, false},
        {"__sysv_signal", (void *)ml_local___sysv_signal, false}, {"sigset", (void *)ml_local_sigset, false},
    };
    ml_attach_offer(mine, ML_ARRAY_LEN(mine));
}
#pragma GCC diagnostic pop
