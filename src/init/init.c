/* init.c — bringing the library up and down in a process.
 * Owns: the constructor (settings, tables, unwinder, dumper), the start
 * sequence that `memledger attach` shares (attach.c), fork handlers, the
 * destructor, and the public API in include/memledger.h.
 * Must never leave a process it cannot serve half-tracked: any failure here
 * turns tracking off, says so in one line, and lets the program run.
 *
 * Loaded at process start (LD_PRELOAD, or linked), the constructor starts
 * tracking. Loaded later by `memledger attach` (dlopen into a running
 * process), the program's calls do not reach memledger's hooks, so the
 * constructor only gets ready and waits for memledger_attach (attach.c). */

#include "memledger.h"

#include "core/addrtab.h"
#include "unwind/capture.h"
#include "common/common.h"
#include "common/config.h"
#ifdef ML_WITH_CUDA
#include "cuda/cuda_entry.h"
#endif
#include "snapshot/dumper.h"
#include "snapshot/modfile.h"
#include "common/io.h"
#include "core/ledger.h"
#include "core/quiesce.h"
#include "core/modules.h"
#include "python/python.h"
#include "init/rebind.h"
#include "python/why.h"
#include "core/real.h"
#include "snapshot/sigchain.h"
#include "unwind/stack_cache.h"
#include "unwind/unwind_rules.h"
#include "core/thread.h"
#include "core/track.h"
#include "init/attach.h"
#include "snapshot/status.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>


static bool collect(void) { return ml_ledger_collect(false); }

static _Atomic unsigned forks; /* children forked under the ledger: the next one is worker forks */

static void fork_prepare(void)
{
    ml_self.busy++;
    atomic_fetch_add(&forks, 1);
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
    unsigned worker = atomic_exchange(&forks, 0);
    ml_addrtab_unlock_all();
    ml_track_after_fork_child();
    ml_status_after_fork_child(worker, (int)getppid());
    ml_ledger_after_fork_child();
    ml_quiesce_after_fork_child();
    ml_stack_cache_after_fork_child();
    ml_unwind_rules_after_fork_child();
    ml_modfile_after_fork_child();
    ml_modules_after_fork_child();
    ml_rebind_after_fork_child();
    ml_dumper_after_fork_child();
    ml_attach_after_fork_child();
    ml_why_after_fork_child();
    ml_self.busy--;
}

/* Tracking is off for good: frees need not ask anything. */
static void disabled_pass_all(void)
{
    if (ml_real.free)
        ml_track_pass_all();
}

bool ml_start(bool attached)
{
    /* first: what follows may already have something to say on it */
    ml_status_open(ML_STATUS_TRACKING | (attached ? ML_STATUS_ATTACHED : 0));
    ml_modules_init();
    if (!ml_ledger_init(ml_config.stacks)) {
        ml_warn("cannot map the stack store (%u stacks): %s; tracking is off", ml_config.stacks,
                strerror(errno));
        if (!attached)
            ml_dumper_guard_signal();
        atomic_store(&ml_state, ML_DISABLED);
        disabled_pass_all();
        ml_status_flags(0, ML_STATUS_TRACKING);
        return false;
    }
    ml_addrtab_register(&ml_heap_addrs, "heap");
    ml_sample_rate = ml_config.sample_bytes;
    if (!ml_track_init())
        ml_warn("cannot map the sampling filter; tracking every allocation instead");
    ml_capture_init();
    ml_track_set_stack_fn(ml_capture_stack);
#ifdef ML_WITH_CUDA
    if (!attached) /* attach sees no CUDA: the runtime fetched its entry points long ago */
        ml_cuda_init();
#endif
    if (attached)
        ml_python_init_running();
    else
        ml_python_init();
    ml_why_init();
    ml_modules_sync(true);
    ml_rebind_init(); /* libraries whose malloc bypasses the hooks (RTLD_DEEPBIND) */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    /* the store collects itself on the dumper thread, when asked */
    ml_ledger_set_collect_waker(ml_dumper_wake);
    ml_dumper_add_service(collect, true);
    ml_modfile_init();
    ml_dumper_start();
    return true;
}

/* Whether the list `list` (LD_PRELOAD's, or /etc/ld.so.preload's: names
 * separated by spaces, colons or newlines) names a file called `base`. */
static bool list_names(const char *list, size_t len, const char *base)
{
    size_t bl = strlen(base);
    for (size_t i = 0; i < len;) {
        while (i < len && (list[i] == ' ' || list[i] == ':' || list[i] == '\n' || list[i] == '\t'))
            i++;
        size_t j = i;
        while (j < len && list[j] != ' ' && list[j] != ':' && list[j] != '\n' && list[j] != '\t')
            j++;
        size_t k = j;
        while (k > i && list[k - 1] != '/')
            k--;
        if (j - k == bl && memcmp(list + k, base, bl) == 0)
            return true;
        i = j;
    }
    return false;
}

/* Whether the process was started with this very library preloaded: its
 * file name, or "libmemledger", in LD_PRELOAD or /etc/ld.so.preload. */
static bool preloaded(const char *self_path)
{
    const char *base = strrchr(self_path, '/');
    base = base ? base + 1 : self_path;
    const char *pre = getenv("LD_PRELOAD");
    if (pre && (strstr(pre, "libmemledger") || (*base && list_names(pre, strlen(pre), base))))
        return true;
    char buf[4096];
    int fd = open("/etc/ld.so.preload", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 && *base && list_names(buf, (size_t)n, base);
}

/* True when this library was loaded into a process already running (by
 * `memledger attach`): the program's malloc is another object's, and no
 * preload list names this library. Preloaded or linked, the first malloc
 * in the process's scope is memledger's; but a non-PIE executable that
 * takes malloc's address (Debian's python3) is where the scope finds it,
 * its PLT entry standing for it, so a preload list is asked first: the
 * library may have been renamed or copied (a package's own name for it). */
static bool loaded_late(void)
{
    Dl_info first, self;
    if (!dladdr((void *)ml_start, &self))
        return false;
    if (self.dli_fname && preloaded(self.dli_fname))
        return false;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    return m && dladdr(m, &first) && first.dli_fbase != self.dli_fbase;
}

__attribute__((constructor(102))) static void ml_init(void)
{
    ml_real_resolve();
    ml_sigchain_init();
    if (loaded_late())
        return; /* memledger_attach starts it (attach.c) */
    int expected = ML_OFF;
    if (!atomic_compare_exchange_strong(&ml_state, &expected, ML_STARTING))
        return;
    ml_self.busy++;
    if (getauxval(AT_SECURE)) {
        /* setuid/setgid: do nothing at all, write nothing anywhere */
        atomic_store(&ml_state, ML_DISABLED);
        disabled_pass_all();
        ml_self.busy--;
        return;
    }
    ml_config_load();
    if (!ml_config.enabled) {
        atomic_store(&ml_state, ML_DISABLED);
        disabled_pass_all();
        ml_self.busy--;
        return;
    }
    if (ml_start(false))
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
