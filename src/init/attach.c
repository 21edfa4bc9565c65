/* attach.c — the ledger in a running process (see attach.h).
 *
 * A library dlopen()ed into a running program does not interpose anything:
 * every module bound its calls of malloc, free, sigaction... to libc (or to
 * an allocator preloaded at start) when it was loaded, through the slots of
 * its global offset table. So memledger_attach rewrites those slots, in
 * every loaded module but memledger's own and the dynamic loader's, to the
 * shim's hooks, as heaptrack's injection does; a watcher thread does the
 * same for modules loaded later (the loader's add counter moves).
 *
 * A slot is rewritten only when it leads where the program's calls of that
 * name go now: the definition the loader binds to (found below), the
 * executable's canonical PLT entry for it (a non-PIE executable that takes
 * the function's address), or the module's own lazy-binding stub. A slot
 * bound elsewhere (a library with an allocator of its own, RTLD_DEEPBIND)
 * is left alone. The hooks then forward to that same definition
 * (ml_real_rebind), so the program's memory keeps coming from where it did.
 *
 * Frees go first: once any malloc slot leads to the hooks, every free slot
 * already does, so a block the ledger recorded is always forgotten when
 * freed. A block from before the attach is unknown to the address table,
 * and its free passes through untouched: snapshots count what was
 * allocated since the attach.
 *
 * What attach cannot see: calls through a function pointer taken before it
 * (ctypes' libc.malloc resolved earlier, a pointer kept in a table), and
 * CUDA (the runtime fetched the driver's entry points long ago). */
#include "init/attach.h"
#include "init/reloc.h"
#include "common/config.h"
#include "common/io.h"
#include "common/status.h"
#include "core/modules.h"
#include "core/real.h"
#include "core/sysmem.h"
#include "core/thread.h"
#include "core/track.h"
#include "python/python.h"
#include "snapshot/sigchain.h"
#include "snapshot/status.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/auxv.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>


#define MAX_HOOKS 32
#define MAX_PATCHED (1u << 16)
#define WATCH_NS 50000000L /* how often the watcher looks for new modules */

static ml_hook_t hooks[MAX_HOOKS];
static size_t nhooks;
static uintptr_t target[MAX_HOOKS];    /* where each name's calls go (the hooks forward there too) */
static uintptr_t canonical[MAX_HOOKS]; /* the executable's PLT entry standing for it, or 0 */

typedef struct {
    uintptr_t slot, old, hook;
    bool ro;
} patched_t;
static patched_t *patched;
static size_t npatched, nskipped;
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;

static bool attached, detached;
static _Atomic bool watching, stop_watch;
static pthread_t watcher;
static unsigned long long seen_adds;

void ml_attach_offer(const ml_hook_t *h, size_t n)
{
    for (size_t i = 0; i < n && nhooks < MAX_HOOKS; i++)
        hooks[nhooks++] = h[i];
}

/* ---- where the program's calls go ---- */

static bool is_definition(void *x)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    return x && dladdr1(x, &info, (void **)&sym, RTLD_DL_SYMENT) && info.dli_saddr == x && sym &&
           sym->st_shndx != SHN_UNDEF;
}

static bool ours(uintptr_t lo, uintptr_t hi)
{
    uintptr_t me = (uintptr_t)(void *)memledger_attach;
    return me >= lo && me < hi;
}

/* The definition the loader binds `name` to. dlsym finds the first symbol
 * of that name in the global scope, which for a non-PIE executable that
 * takes the function's address is its PLT entry, not a definition; the
 * definition is then the first one among the objects loaded after it. */
static void *definition(const char *name)
{
    void *x = dlsym(RTLD_DEFAULT, name);
    if (!x || is_definition(x))
        return x;
    void *main_h = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
    struct link_map *lm = NULL;
    if (!main_h || dlinfo(main_h, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
        return NULL;
    Dl_info self;
    if (!dladdr((void *)memledger_attach, &self))
        return NULL;
    for (lm = lm->l_next; lm; lm = lm->l_next) {
        if (!lm->l_name || !lm->l_name[0] || (void *)lm->l_addr == self.dli_fbase)
            continue;
        void *h = dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD);
        if (!h)
            continue;
        void *f = dlsym(h, name);
        dlclose(h);
        if (f && is_definition(f))
            return f;
    }
    return NULL;
}

static void *real_for(const char *name)
{
    for (size_t i = 0; i < nhooks; i++)
        if (strcmp(hooks[i].name, name) == 0)
            return (void *)target[i];
    return definition(name);
}

/* ---- rewriting slots ---- */

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Stores v at slot; a slot in a RELRO page is made writable for the store
 * and read-only again. */
static bool store_slot(uintptr_t slot, uintptr_t v, bool ro)
{
    if (!ro) {
        __atomic_store_n((uintptr_t *)slot, v, __ATOMIC_RELEASE);
        return true;
    }
    uintptr_t page = slot & ~(uintptr_t)(page_size() - 1);
    if (mprotect((void *)page, page_size(), PROT_READ | PROT_WRITE) != 0)
        return false;
    __atomic_store_n((uintptr_t *)slot, v, __ATOMIC_RELEASE);
    mprotect((void *)page, page_size(), PROT_READ);
    return true;
}

typedef struct {
    bool frees; /* this pass: the free hooks, or the others */
    unsigned modules;
} pass_t;

typedef struct {
    uintptr_t bias, lo, hi, relro_lo, relro_hi;
    const ElfW(Sym) *symtab;
    const char *strtab;
    size_t strsz;
} module_t;

static uintptr_t dyn_ptr(const module_t *m, uintptr_t p)
{
    /* the loader rebases these in place where .dynamic is writable */
    return p < m->bias ? p + m->bias : p;
}

static void patch_relocs(const module_t *m, const ElfW(Rela) *r, size_t bytes, bool frees, unsigned *done)
{
    for (size_t k = 0; k < bytes / sizeof *r; k++) {
        unsigned type = (unsigned)ELF64_R_TYPE(r[k].r_info);
        size_t si = ELF64_R_SYM(r[k].r_info);
        if (!si || (type != R_SLOT && type != R_GLOB && !(type == R_ABS && r[k].r_addend == 0)))
            continue;
        const ElfW(Sym) *sym = &m->symtab[si];
        if (sym->st_name >= m->strsz)
            continue;
        const char *name = m->strtab + sym->st_name;
        size_t h = 0;
        while (h < nhooks && (hooks[h].frees != frees || strcmp(hooks[h].name, name) != 0))
            h++;
        if (h == nhooks)
            continue;
        uintptr_t slot = m->bias + r[k].r_offset, hook = (uintptr_t)hooks[h].hook;
        if (slot < m->lo || slot + sizeof(uintptr_t) > m->hi)
            continue;
        uintptr_t cur = __atomic_load_n((uintptr_t *)slot, __ATOMIC_ACQUIRE);
        if (cur == hook)
            continue;
        /* a slot still pointing into its own module is an unresolved lazy
         * binding, unless it is bound to the module's own definition
         * (dladdr cannot tell here: it takes the loader's lock, which a
         * thread in dlopen holds while it waits for the one we hold) */
        bool own = sym->st_shndx != SHN_UNDEF && cur == m->bias + sym->st_value;
        bool lazy = type == R_SLOT && cur >= m->lo && cur < m->hi && !own;
        if (!(cur == target[h] || (canonical[h] && cur == canonical[h]) || lazy)) {
            nskipped++; /* bound elsewhere: left as it is */
            continue;
        }
        if (npatched >= MAX_PATCHED) {
            nskipped++;
            continue;
        }
        bool ro = slot >= m->relro_lo && slot < m->relro_hi;
        if (!store_slot(slot, hook, ro)) {
            nskipped++;
            continue;
        }
        patched[npatched++] = (patched_t){slot, cur, hook, ro};
        (*done)++;
    }
}

static bool skip_module(const struct dl_phdr_info *info)
{
    const char *n = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(n, '/');
    base = base ? base + 1 : n;
    /* the dynamic loader binds nothing through these; the vDSO has no slots */
    return strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld64.so", 7) == 0 ||
           strncmp(base, "linux-vdso", 10) == 0 || strncmp(base, "linux-gate", 10) == 0;
}

static int patch_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    pass_t *pass = data;
    if (skip_module(info))
        return 0;
    module_t m = {.bias = info->dlpi_addr, .lo = UINTPTR_MAX};
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD) {
            if (a < m.lo)
                m.lo = a;
            if (a + ph->p_memsz > m.hi)
                m.hi = a + ph->p_memsz;
        } else if (ph->p_type == PT_DYNAMIC) {
            dyn = (const ElfW(Dyn) *)a;
        } else if (ph->p_type == PT_GNU_RELRO) {
            uintptr_t pg = page_size() - 1;
            m.relro_lo = a & ~pg;
            m.relro_hi = (a + ph->p_memsz) & ~pg;
        }
    }
    if (!dyn || m.lo >= m.hi || ours(m.lo, m.hi))
        return 0;
    uintptr_t jmprel = 0, rela = 0;
    size_t pltrelsz = 0, relasz = 0;
    bool plt_rela = true;
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: m.symtab = (const ElfW(Sym) *)dyn_ptr(&m, d->d_un.d_ptr); break;
        case DT_STRTAB: m.strtab = (const char *)dyn_ptr(&m, d->d_un.d_ptr); break;
        case DT_STRSZ: m.strsz = d->d_un.d_val; break;
        case DT_JMPREL: jmprel = dyn_ptr(&m, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
        case DT_PLTREL: plt_rela = d->d_un.d_val == DT_RELA; break;
        case DT_RELA: rela = dyn_ptr(&m, d->d_un.d_ptr); break;
        case DT_RELASZ: relasz = d->d_un.d_val; break;
        default: break;
        }
    }
    if (!m.symtab || !m.strtab)
        return 0;
    unsigned done = 0;
    if (jmprel && plt_rela)
        patch_relocs(&m, (const ElfW(Rela) *)jmprel, pltrelsz, pass->frees, &done);
    if (rela)
        patch_relocs(&m, (const ElfW(Rela) *)rela, relasz, pass->frees, &done);
    pass->modules += done > 0;
    return 0;
}

static unsigned long long loader_adds(void)
{
    unsigned long long a = 0;
    ml_modules_loader_counts(&a, NULL);
    return a;
}

/* Rewrites every loaded module's slots: the frees everywhere first. Returns
 * the modules where something was rewritten. */
static unsigned patch_all(void)
{
    pthread_mutex_lock(&patch_lock);
    seen_adds = loader_adds();
    pass_t frees = {true, 0}, others = {false, 0};
    dl_iterate_phdr(patch_module, &frees);
    dl_iterate_phdr(patch_module, &others);
    pthread_mutex_unlock(&patch_lock);
    return frees.modules > others.modules ? frees.modules : others.modules;
}

/* ---- modules loaded later ---- */

static void *watch_main(void *arg)
{
    (void)arg;
    ml_thread_make_internal();
    while (!atomic_load(&stop_watch)) {
        struct timespec t = {0, WATCH_NS};
        nanosleep(&t, NULL);
        if (!atomic_load(&stop_watch) && ml_tracking() && loader_adds() != seen_adds)
            patch_all();
    }
    return NULL;
}

static void start_watch(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals go to its own threads */
    atomic_store(&stop_watch, false);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 << 10);
    int err = pthread_create(&watcher, &a, watch_main, NULL);
    pthread_attr_destroy(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        ml_warn("cannot start the thread that watches for new modules: %s; modules loaded from now on "
                "are not tracked", strerror(err));
        return;
    }
    pthread_setname_np(watcher, "memledger-attach");
    atomic_store(&watching, true);
}

void ml_attach_after_fork_child(void)
{
    if (atomic_load(&watching) && ml_tracking()) {
        pthread_mutex_init(&patch_lock, NULL);
        start_watch();
    }
}

/* ---- the entry points ---- */

static int refuse(char *msg, size_t cap, int err, const char *why)
{
    ml_fmt(msg, cap, "%s", why);
    return err;
}

static int attach(const char *settings, char *msg, size_t cap)
{
    int st = atomic_load(&ml_state);
    if (st == ML_ACTIVE)
        return refuse(msg, cap, EALREADY,
                      attached ? "memledger is already attached to this process"
                               : "this process already runs under memledger (it was started with it)");
    if (st == ML_DISABLED)
        return refuse(msg, cap, EALREADY,
                      detached ? "memledger was attached to this process and detached: it cannot attach to "
                                 "the same process twice"
                               : "memledger is loaded in this process but off (MEMLEDGER_ENABLE=0, or it "
                                 "could not start)");
    if (getauxval(AT_SECURE)) /* as at start: nothing at all in a set-user-ID program */
        return refuse(msg, cap, EPERM, "a set-user-ID or set-group-ID program: memledger does nothing in it");
    int expected = ML_OFF;
    if (!atomic_compare_exchange_strong(&ml_state, &expected, ML_STARTING))
        return refuse(msg, cap, EALREADY, "another attach is under way");
    ml_config_load_settings(settings ? settings : "");
    if (!ml_config.enabled) {
        atomic_store(&ml_state, ML_OFF);
        return refuse(msg, cap, EINVAL, "MEMLEDGER_ENABLE=0 in the settings: nothing to do");
    }
    ml_config.cuda = ML_CUDA_OFF;
    patched = ml_sysmem_map(MAX_PATCHED * sizeof *patched);
    if (!patched) {
        atomic_store(&ml_state, ML_OFF);
        return refuse(msg, cap, ENOMEM, "cannot map the table of rewritten slots");
    }
    for (size_t i = 0; i < nhooks; i++) {
        void *def = definition(hooks[i].name);
        void *first = dlsym(RTLD_DEFAULT, hooks[i].name);
        target[i] = (uintptr_t)def;
        canonical[i] = first != def ? (uintptr_t)first : 0;
    }
    ml_real_rebind(real_for);
    attached = true;
    if (!ml_start(true))
        return refuse(msg, cap, ENOMEM, "cannot map the stack store: tracking is off");
    atomic_store(&ml_state, ML_ACTIVE);
    unsigned modules = patch_all();
    start_watch();
    ml_fmt(msg, cap, "%zu call slots in %u modules lead to memledger now (%zu left as they were)", npatched,
           modules, nskipped);
    return 0;
}

ML_EXPORT int memledger_attach(const char *settings, char *msg, size_t cap)
{
    ml_self.busy++; /* what this borrowed thread allocates meanwhile is memledger's own */
    int err = attach(settings, msg, cap);
    ml_self.busy--;
    return err;
}

static int detach(char *msg, size_t cap)
{
    if (!attached || detached || atomic_load(&ml_state) != ML_ACTIVE)
        return refuse(msg, cap, EINVAL, detached ? "memledger was detached from this process already"
                                                 : "memledger was not attached to this process by "
                                                   "'memledger attach'");
    if (atomic_exchange(&watching, false)) {
        atomic_store(&stop_watch, true);
        pthread_join(watcher, NULL);
    }
    pthread_mutex_lock(&patch_lock);
    /* the slots of modules still loaded that still lead to a hook; the
     * allocators before the frees, the reverse of the attach */
    size_t restored = 0;
    for (size_t i = npatched; i-- > 0;) {
        patched_t *p = &patched[i];
        Dl_info info;
        if (!dladdr((void *)p->slot, &info)) /* its module was unloaded */
            continue;
        if (__atomic_load_n((uintptr_t *)p->slot, __ATOMIC_ACQUIRE) == p->hook && store_slot(p->slot, p->old, p->ro))
            restored++;
    }
    pthread_mutex_unlock(&patch_lock);
    detached = true;
    atomic_store(&ml_state, ML_DISABLED); /* a hook still reached passes straight through */
    ml_python_detach();
    if (ml_config.signal)
        ml_sigchain_release(ml_config.signal);
    ml_status_flags(ML_STATUS_DETACHED, ML_STATUS_TRACKING);
    ml_fmt(msg, cap, "%zu call slots put back; the program's own handler for signal %d is back in place",
           restored, ml_config.signal);
    return 0;
}

ML_EXPORT int memledger_detach(char *msg, size_t cap)
{
    ml_self.busy++;
    int err = detach(msg, cap);
    ml_self.busy--;
    return err;
}
