/* thread.c — the per-thread block itself (see thread.h), and giving back
 * at thread exit what a thread held. Defined here, at the bottom of the
 * library, so that every folder above and the unit tests link it from the
 * one place that owns it. */
#include "core/thread.h"
#include "core/ledger.h"
#include "core/quiesce.h"

#include <pthread.h>
#include <stdatomic.h>

__thread ml_thread_t ml_self __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
static bool exit_key_ok;

static void (*_Atomic walk_release)(void *memo);

void ml_thread_set_walk_memo_release(void (*fn)(void *memo)) { atomic_store(&walk_release, fn); }

static void on_exit_key(void *arg)
{
    (void)arg;
    ml_ledger_thread_exit();
    ml_quiesce_release();
    void *w = ml_self.walk_memo;
    void (*fn)(void *) = atomic_load(&walk_release);
    ml_self.walk_memo = NULL;
    ml_self.walk_memo_state = 2; /* never again on this thread: it is going */
    if (w && fn)
        fn(w);
}

bool ml_thread_init(void)
{
    if (!exit_key_ok)
        exit_key_ok = pthread_key_create(&exit_key, on_exit_key) == 0;
    return exit_key_ok;
}

bool ml_thread_exit_call_possible(void) { return exit_key_ok; }

void ml_thread_want_exit_call(void)
{
    if (ml_self.exit_call || !exit_key_ok)
        return;
    ml_self.exit_call = true;
    pthread_setspecific(exit_key, (void *)1); /* any non-NULL value: the destructor runs */
}
