/* thread.c — the per-thread block itself (see thread.h), and giving back
 * at thread exit what a thread held. Defined here, at the bottom of the
 * library, so that every folder above and the unit tests link it from the
 * one place that owns it. */
#include "core/thread.h"
#include "core/ledger.h"
#include "core/quiesce.h"
#include "core/sysmem.h"

#include <pthread.h>
#include <stdatomic.h>

__thread ml_thread_t ml_self __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
static bool exit_key_ok;

static void (*_Atomic area_release[ML_AREAS])(void *area);

void ml_thread_set_area_release(unsigned which, void (*fn)(void *area)) { atomic_store(&area_release[which], fn); }

void *ml_thread_area_slow(unsigned which, size_t size)
{
    ml_self.area_state[which] = 1;
    void *a = ml_sysmem_map(size);
    if (a) {
        ml_self.area[which] = a;
        ml_thread_want_exit_call();
    } else {
        ml_self.area_state[which] = 2;
    }
    return a;
}

static void on_exit_key(void *arg)
{
    (void)arg;
    ml_ledger_thread_exit();
    ml_quiesce_release();
    for (unsigned i = 0; i < ML_AREAS; i++) {
        void *a = ml_self.area[i];
        void (*fn)(void *) = atomic_load(&area_release[i]);
        ml_self.area[i] = NULL;
        ml_self.area_state[i] = 2; /* never again on this thread: it is going */
        if (a && fn)
            fn(a);
    }
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
