/* init.c — bringing the library up and down in a process.
 * Owns: the constructor (settings, tables, unwinder, dumper), fork
 * handlers, the destructor, and the public API in include/memledger.h.
 * Must never leave a process it cannot serve half-tracked: any failure here
 * turns tracking off, says so in one line, and lets the program run. */

#include "memledger.h"

#include "core/addrtab.h"
#include "unwind/capture.h"
#include "common/common.h"
#include "common/config.h"
#ifdef ML_WITH_CUDA
#include "cuda/cuda_entry.h"
#endif
#include "snapshot/dumper.h"
#include "common/io.h"
#include "core/ledger.h"
#include "core/quiesce.h"
#include "core/modules.h"
#include "python/python.h"
#include "python/why.h"
#include "core/real.h"
#include "snapshot/sigchain.h"
#include "unwind/stack_cache.h"
#include "unwind/unwind_rules.h"
#include "core/thread.h"
#include "core/track.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>


static bool collect(void) { return ml_ledger_collect(false); }

static void fork_prepare(void)
{
    ml_self.busy++;
    ml_ledger_before_fork();
    ml_addrtab_lock_all();
}

static void fork_parent(void)
{
    ml_addrtab_unlock_all();
    ml_ledger_after_fork_parent();
    ml_self.busy--;
}

static void fork_child(void)
{
    ml_addrtab_unlock_all();
    ml_ledger_after_fork_child();
    ml_quiesce_after_fork_child();
    ml_stack_cache_after_fork_child();
    ml_unwind_rules_after_fork_child();
    ml_modules_after_fork_child();
    ml_dumper_after_fork_child();
    ml_why_after_fork_child();
    ml_self.busy--;
}

__attribute__((constructor(102))) static void ml_init(void)
{
    ml_real_resolve();
    ml_sigchain_init();
    int expected = ML_OFF;
    if (!atomic_compare_exchange_strong(&ml_state, &expected, ML_STARTING))
        return;
    ml_self.busy++;
    if (getauxval(AT_SECURE)) {
        /* setuid/setgid: do nothing at all, write nothing anywhere */
        atomic_store(&ml_state, ML_DISABLED);
        ml_self.busy--;
        return;
    }
    ml_config_load();
    if (!ml_config.enabled) {
        atomic_store(&ml_state, ML_DISABLED);
        ml_self.busy--;
        return;
    }
    ml_modules_init();
    if (!ml_ledger_init(ml_config.stacks)) {
        ml_warn("cannot map the stack store (%u stacks): %s; tracking is off", ml_config.stacks,
                strerror(errno));
        ml_dumper_guard_signal();
        atomic_store(&ml_state, ML_DISABLED);
        ml_self.busy--;
        return;
    }
    ml_addrtab_register(&ml_heap_addrs, "heap");
    ml_sample_rate = ml_config.sample_bytes;
    if (!ml_track_init())
        ml_warn("cannot map the sampling filter; tracking every allocation instead");
    ml_capture_init();
    ml_track_set_stack_fn(ml_capture_stack);
#ifdef ML_WITH_CUDA
    ml_cuda_init();
#endif
    ml_python_init();
    ml_why_init();
    ml_modules_sync(true);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    /* the store collects itself on the dumper thread, when asked */
    ml_ledger_set_collect_waker(ml_dumper_wake);
    ml_dumper_add_service(collect, true);
    ml_dumper_start();
    atomic_store(&ml_state, ML_ACTIVE);
    ml_self.busy--;
}

__attribute__((destructor(101))) static void ml_fini(void)
{
    if (atomic_load(&ml_state) != ML_ACTIVE)
        return;
    ml_dumper_shutdown();
}

ML_EXPORT int memledger_snapshot(char *path, size_t cap)
{
    if (atomic_load(&ml_state) != ML_ACTIVE)
        return ENOTSUP;
    return ml_dumper_snapshot_now("api", path, cap);
}

ML_EXPORT int memledger_active(void) { return atomic_load(&ml_state) == ML_ACTIVE; }

ML_EXPORT const char *memledger_version(void) { return MEMLEDGER_VERSION; }
