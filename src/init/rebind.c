/* rebind.c — malloc-family bindings that lead past the hooks (see rebind.h).
 *
 * Why: a preloaded hook is found because the loader looks a name up in the
 * global scope, where the preloaded library comes first. A library opened
 * with RTLD_DEEPBIND is looked up in its own dependencies first (glibc puts
 * the searchlist of the object opened ahead of the global scope, for it and
 * for every object loaded along with it), so its malloc and free bind
 * straight to libc. Its allocations would not be seen, and a block the
 * program allocated and the library freed would stay live in the ledger for
 * ever: a false leak. dlopen is not interposed to strip the flag (heaptrack
 * does that): a wrapper changes the caller whose RPATH the loader searches,
 * and dropping the flag changes how every other name of the library binds.
 *
 * What: each relocation of a malloc-family name (JUMP_SLOT, GLOB_DAT, or an
 * absolute pointer without addend) is read at its slot, and the slot is
 *   the hook (or, in a non-PIE executable's process, the executable's PLT
 *   entry that stands for its address and calls it)
 *                              seen already: nothing to do;
 *   the function the hook forwards to (ml_real): the module bypasses the
 *                              hook; the slot gets the hook, which forwards
 *                              the call to that same function;
 *   not bound yet (a lazy slot points into its own module, at the PLT):
 *                              the slot gets the hook when the module's own
 *                              scope binds the name to the function the hook
 *                              forwards to, and the global scope to the hook.
 *                              Either binding then ends in that function:
 *                              the global one through the hook, the deep one
 *                              directly. The scope is a handle's
 *                              searchlist, asked with dlsym: the program's
 *                              handle (the library opened and every library
 *                              loaded with it bind in its searchlist), or on
 *                              the dumper thread the module's own.
 *   anything else (an allocator of the module's own, another namespace's
 *                              libc): left alone; the module is named as
 *                              unseen, in the snapshot and on stderr.
 * So no call changes what it does; the hook only sees it on its way. Slots
 * under RELRO are made writable for the store and read-only again. The
 * hooks' addresses come from the shim (ml_rebind_offer), not from a lookup,
 * which in a non-PIE executable that takes malloc's address (Debian's
 * python3) answers with the executable's PLT entry.
 *
 * When: from the dlsym hook, the first time a handle is looked in (a program
 * reaches a library it opened through dlsym, so the slots point at the
 * hooks before its first call into the library): the handle's module and
 * the new modules it needs (DT_NEEDED, by name, and theirs in turn); and on
 * the dumper thread each time it wakes, so before every snapshot: every new
 * module. What a library's constructors allocated or freed while dlopen ran
 * is not seen. The modules there at start are taken as seen, never read:
 * they were bound through the global scope (RTLD_DEEPBIND comes with
 * dlopen), and some are not initialised yet when memledger starts.
 *
 * Safety: a module must stay loaded, and be relocated, while its slots are
 * read and written. The program's handle keeps its module and what that
 * needs; the dlsym hook's thread asks the loader for nothing more, since it
 * may be inside a dlopen (a constructor looking a symbol up), where opening
 * a dependency not initialised yet would run its initialiser early. The
 * dumper thread is never inside the loader: it holds each new module open
 * with RTLD_NOLOAD, which also waits for a dlopen under way on another
 * thread to finish with it, and a module gone already or in another link
 * namespace is skipped. Neither calls the loader from inside
 * dl_iterate_phdr's callback, which holds a lock dlopen takes second. One
 * thread scans at a time and none waits for it: another finds the scan busy
 * and goes on (the dlsym hook then tries again at the next lookup). */
#include "init/rebind.h"
#include "init/reloc.h"
#include "common/io.h"
#include "core/modules.h"
#include "core/real.h"
#include "core/sysmem.h"
#include "core/thread.h"
#include "snapshot/dumper.h"
#include "snapshot/snapshot_write.h"
#include "unwind/unwind_rules.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdatomic.h>
#include <time.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


enum { NNAMES = 11 };
static const char *const names[NNAMES] = {"malloc",        "free",     "calloc", "realloc", "reallocarray",
                                          "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc",
                                          "malloc_usable_size"};
static uintptr_t hook[NNAMES];   /* memledger's own entry point (the shim's offer); 0: unknown */
static uintptr_t global[NNAMES]; /* the name's address in the global scope, when calls bound there reach
                                    the hook: the hook, or a non-PIE executable's PLT entry for it; else 0 */
static uintptr_t next[NNAMES];   /* what the hook forwards to (ml_real); 0: none of its own */
static ml_rebind_hooks_t offered;
static uintptr_t self_key; /* memledger's own module's dlpi_phdr */
static _Atomic bool ready;
static uintptr_t page_size;

/* ---- what the snapshots say ---- */

typedef struct {
    const char *path;
    uintptr_t bias;
    uint32_t redirected; /* slots that bypassed the hooks, now pointing at them */
    uint32_t unseen;     /* slots leading to another allocator, left alone */
} report_t;

#define MAX_REPORTS 4096
static report_t *reports;
static _Atomic uint32_t nreports;
static ml_arena_t paths;

static void header(ml_out_t *o)
{
    uint32_t n = atomic_load_explicit(&nreports, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++) {
        const report_t *r = &reports[i];
        if (r->redirected) {
            ml_out_printf(o, "malloc_bypass\tredirected\t%u\t", r->redirected);
            ml_out_field(o, r->path);
            ml_out_char(o, '\n');
        }
        if (r->unseen) {
            ml_out_printf(o, "malloc_bypass\tunseen\t%u\t", r->unseen);
            ml_out_field(o, r->path);
            ml_out_char(o, '\n');
        }
    }
}

/* Records what a module's scan found, once per module (a module scanned
 * again after an unload elsewhere finds its slots as they were left). */
static void report(const char *path, uintptr_t bias, uint32_t redirected, uint32_t unseen, int unseen_name)
{
    uint32_t n = atomic_load_explicit(&nreports, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++)
        if (reports[i].bias == bias && strcmp(reports[i].path, path) == 0)
            return;
    if (unseen)
        ml_warn("%s binds %s past memledger's hooks, to an allocator they do not forward to (opened with "
                "RTLD_DEEPBIND, it finds its own first; or it lives in another link namespace): its allocations "
                "are not seen",
                path, names[unseen_name]);
    if (!reports || n >= MAX_REPORTS)
        return;
    const char *copy = ml_arena_strdup(&paths, path);
    reports[n] = (report_t){copy ? copy : "[path dropped]", bias, redirected, unseen};
    atomic_store_explicit(&nreports, n + 1, memory_order_release);
}

/* ---- the modules scanned ---- */

/* dlpi_phdr of each module scanned (or there at start), an open-addressing
 * set; emptied when the loader unloads anything, since another module may
 * then take the place (a scan again finds the slots as they were left). */
#define SEEN_LOG2 15
static uintptr_t *seen;
static uint32_t nseen;

static uint32_t seen_slot(uintptr_t key)
{
    uint32_t i = (uint32_t)((key >> 4) * 0x9e3779b97f4a7c15ull >> (64 - SEEN_LOG2));
    while (seen[i] && seen[i] != key)
        i = (i + 1) & ((1u << SEEN_LOG2) - 1);
    return i;
}

static void seen_clear(void)
{
    memset(seen, 0, sizeof *seen << SEEN_LOG2);
    nseen = 0;
}

static void seen_add(uintptr_t key)
{
    if (nseen >= (3u << SEEN_LOG2) / 4)
        seen_clear();
    uint32_t i = seen_slot(key);
    if (!seen[i]) {
        seen[i] = key;
        nseen++;
    }
}

/* A module not scanned yet, as dl_iterate_phdr listed it (its name copied:
 * it is used once the callback has returned). */
typedef struct {
    uintptr_t key, bias;
    const ElfW(Phdr) *phdr;
    ElfW(Half) phnum;
    const char *name;
    bool picked;
} module_t;

#define MAX_BATCH 256
static module_t batch[MAX_BATCH];
static char batch_names[64 << 10];

typedef struct {
    unsigned long long adds, subs;
    unsigned n;
    size_t used;
    bool more, mark; /* more: the batch is full; mark: only mark them seen */
} listing_t;

static int list_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    listing_t *l = data;
    if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        return 1;
    l->adds = info->dlpi_adds;
    l->subs = info->dlpi_subs;
    uintptr_t key = (uintptr_t)info->dlpi_phdr;
    if (!key || seen[seen_slot(key)] == key)
        return 0;
    if (l->mark) {
        seen_add(key);
        return 0;
    }
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    size_t len = strlen(name) + 1;
    if (l->n == MAX_BATCH || l->used + len > sizeof batch_names) {
        l->more = true;
        return 0;
    }
    memcpy(batch_names + l->used, name, len);
    batch[l->n++] = (module_t){key, info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum, batch_names + l->used, false};
    l->used += len;
    return 0;
}

/* Lists the modules not scanned yet into batch[]; after an unload, every
 * module again. */
static unsigned long long last_subs;

static listing_t list_modules(void)
{
    listing_t l;
    for (;;) {
        memset(&l, 0, sizeof l);
        dl_iterate_phdr(list_cb, &l);
        if (l.subs == last_subs)
            return l;
        seen_clear();
        last_subs = l.subs;
    }
}

static int (*loader_dlclose(void))(void *)
{
    /* the loader's own: memledger's dlclose would announce an unload */
    return (int (*)(void *))ml_real_dlsym()(RTLD_NEXT, "dlclose");
}

#ifdef R_SLOT

static int name_index(const char *s)
{
    for (int i = 0; i < NNAMES; i++)
        if (s[0] == names[i][0] && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* A module while its relocations are read: its span, its RELRO range, and
 * what its scope binds each name to (asked once, when needed). */
typedef struct {
    const module_t *m;
    uintptr_t lo, hi, relro_lo, relro_hi;
    const ElfW(Dyn) *dyn;
    void *scope; /* a handle whose searchlist stands for the module's own scope */
    uintptr_t own[NNAMES];
    bool own_asked[NNAMES];
    uint32_t redirected, unseen;
    int unseen_name;
} scan_t;

static uintptr_t own_binding(scan_t *s, int k)
{
    if (!s->own_asked[k]) {
        s->own_asked[k] = true;
        s->own[k] = s->scope ? (uintptr_t)ml_real_dlsym()(s->scope, names[k]) : 0;
    }
    return s->own[k];
}

/* A pointer from the dynamic section: glibc relocates most in place, the
 * vDSO's are not; either way it must land in the module. */
static uintptr_t dyn_ptr(const scan_t *s, uintptr_t v)
{
    if (v >= s->lo && v < s->hi)
        return v;
    if (v + s->m->bias >= s->lo && v + s->m->bias < s->hi)
        return v + s->m->bias;
    return 0;
}

/* The module's span, RELRO range and dynamic section; false without one. */
static bool layout(scan_t *s, const module_t *m)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->lo = UINTPTR_MAX;
    const ElfW(Phdr) *dyn = NULL;
    for (ElfW(Half) i = 0; i < m->phnum; i++) {
        const ElfW(Phdr) *ph = &m->phdr[i];
        uintptr_t a = m->bias + ph->p_vaddr;
        if (ph->p_type == PT_LOAD) {
            s->lo = a < s->lo ? a : s->lo;
            s->hi = a + ph->p_memsz > s->hi ? a + ph->p_memsz : s->hi;
        } else if (ph->p_type == PT_DYNAMIC) {
            dyn = ph;
        } else if (ph->p_type == PT_GNU_RELRO) {
            /* as the loader protects it: both ends rounded down to a page */
            s->relro_lo = a & ~(page_size - 1);
            s->relro_hi = (a + ph->p_memsz) & ~(page_size - 1);
        }
    }
    if (!dyn || s->lo >= s->hi)
        return false;
    s->dyn = (const ElfW(Dyn) *)(m->bias + dyn->p_vaddr);
    return true;
}

static bool writable(const scan_t *s, uintptr_t a)
{
    for (ElfW(Half) i = 0; i < s->m->phnum; i++) {
        const ElfW(Phdr) *ph = &s->m->phdr[i];
        uintptr_t lo = s->m->bias + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && a >= lo && a + sizeof(uintptr_t) <= lo + ph->p_memsz)
            return (ph->p_flags & PF_W) != 0;
    }
    return false;
}

/* Points the slot at v; false when its page cannot be written. */
static bool store(const scan_t *s, uintptr_t *slot, uintptr_t v)
{
    uintptr_t a = (uintptr_t)slot;
    if (a >= s->relro_lo && a < s->relro_hi) {
        void *page = (void *)(a & ~(page_size - 1));
        if (mprotect(page, page_size, PROT_READ | PROT_WRITE) != 0)
            return false;
        __atomic_store_n(slot, v, __ATOMIC_RELEASE);
        mprotect(page, page_size, PROT_READ); /* should this fail, the page merely stays writable */
        return true;
    }
    if (!writable(s, a))
        return false;
    __atomic_store_n(slot, v, __ATOMIC_RELEASE);
    return true;
}

static void relocation(scan_t *s, const ElfW(Rela) *r, const ElfW(Sym) *symtab, const char *strtab, size_t strsz)
{
    uint32_t type = (uint32_t)ELF64_R_TYPE(r->r_info), si = (uint32_t)ELF64_R_SYM(r->r_info);
    if (!si || !(type == R_SLOT || type == R_GLOB || (type == R_ABS && r->r_addend == 0)))
        return;
    const ElfW(Sym) *sym = &symtab[si];
    if (sym->st_name >= strsz)
        return;
    int k = name_index(strtab + sym->st_name);
    if (k < 0 || !hook[k] || !next[k])
        return;
    uintptr_t *slot = (uintptr_t *)(s->m->bias + r->r_offset);
    if ((uintptr_t)slot < s->lo || (uintptr_t)slot + sizeof *slot > s->hi)
        return;
    uintptr_t v = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (v == hook[k] || (v == global[k] && v))
        return;
    bool bypass = v == next[k];
    if (!bypass) {
        uintptr_t own = own_binding(s, k);
        bool unbound = type == R_SLOT && v >= s->lo && v < s->hi && v != own;
        if (!unbound) {
            s->unseen++; /* bound to an allocator of its own, or another namespace's */
            s->unseen_name = k;
            return;
        }
        /* Bound in the global scope it would reach the hook; in its own,
         * the function the hook forwards to. Otherwise its binding, when
         * it comes, says. */
        if (own != next[k] || !global[k])
            return;
    }
    if (!store(s, slot, hook[k])) {
        s->unseen++;
        s->unseen_name = k;
        return;
    }
    s->redirected += bypass;
}

static void relocations(scan_t *s, uintptr_t rel, uintptr_t size, const ElfW(Sym) *symtab, const char *strtab,
                        size_t strsz)
{
    if (!rel || size > s->hi - rel)
        return;
    const ElfW(Rela) *r = (const ElfW(Rela) *)rel, *end = r + size / sizeof *r;
    for (; r < end; r++)
        relocation(s, r, symtab, strtab, strsz);
}

/* Reads and rewrites one module's slots; `scope` is a handle whose
 * searchlist binds as the module's own scope does. The module must stay
 * loaded meanwhile: the caller holds a handle that keeps it. */
static void scan_module(const module_t *m, void *scope)
{
    scan_t s;
    if (m->key == self_key || !layout(&s, m))
        return; /* memledger's own slots lead where it chose */
    s.scope = scope;
    uintptr_t symtab = 0, strtab = 0, strsz = 0, rela = 0, relasz = 0, jmprel = 0, pltrelsz = 0;
    long pltrel = DT_RELA;
    for (const ElfW(Dyn) *d = s.dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = dyn_ptr(&s, d->d_un.d_ptr); break;
        case DT_STRTAB: strtab = dyn_ptr(&s, d->d_un.d_ptr); break;
        case DT_STRSZ: strsz = d->d_un.d_val; break;
        case DT_RELA: rela = dyn_ptr(&s, d->d_un.d_ptr); break;
        case DT_RELASZ: relasz = d->d_un.d_val; break;
        case DT_JMPREL: jmprel = dyn_ptr(&s, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
        case DT_PLTREL: pltrel = (long)d->d_un.d_val; break;
        default: break;
        }
    }
    if (!symtab || !strtab || strsz > s.hi - strtab)
        return;
    relocations(&s, rela, relasz, (const ElfW(Sym) *)symtab, (const char *)strtab, strsz);
    if (pltrel == DT_RELA)
        relocations(&s, jmprel, pltrelsz, (const ElfW(Sym) *)symtab, (const char *)strtab, strsz);
    if (s.redirected || s.unseen)
        report(m->name[0] ? m->name : "[executable]", m->bias, s.redirected, s.unseen, s.unseen_name);
}

static const char *base_name(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

/* Picks the unscanned modules that module m needs (DT_NEEDED), by name:
 * m is held, so they are too. */
static void pick_needed(const module_t *m, unsigned n)
{
    scan_t s;
    if (!layout(&s, m))
        return;
    uintptr_t strtab = 0, strsz = 0;
    for (const ElfW(Dyn) *d = s.dyn; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_STRTAB)
            strtab = dyn_ptr(&s, d->d_un.d_ptr);
        else if (d->d_tag == DT_STRSZ)
            strsz = d->d_un.d_val;
    }
    if (!strtab || strsz > s.hi - strtab)
        return;
    for (const ElfW(Dyn) *d = s.dyn; d->d_tag != DT_NULL; d++) {
        if (d->d_tag != DT_NEEDED || d->d_un.d_val >= strsz)
            continue;
        const char *want = base_name((const char *)strtab + d->d_un.d_val);
        for (unsigned i = 0; i < n; i++)
            if (!batch[i].picked && strcmp(base_name(batch[i].name), want) == 0)
                batch[i].picked = true;
    }
}

#else /* no relocation types known for this machine: nothing is rewritten */

static void scan_module(const module_t *m, void *scope)
{
    (void)m;
    (void)scope;
}

static void pick_needed(const module_t *m, unsigned n)
{
    (void)m;
    (void)n;
}

#endif

/* ---- scanning ---- */

static _Atomic int scanning;
static unsigned long long last_adds = ~0ull;


/* The loader's allocations and frees for a scan are tracked as any others:
 * a call into it may free a block it allocated for the program (an earlier
 * error message, a dependency's old search list), which must not be missed. */
static bool scan_begin(void) { return !atomic_exchange_explicit(&scanning, 1, memory_order_acquire); }

static void scan_end(void) { atomic_store_explicit(&scanning, 0, memory_order_release); }

/* The dumper thread is scanning (sync_all): the program must not call
 * into the new library before its slots are redirected, so the scan is
 * waited for and then taken over, but for 100 ms at most: that thread may
 * be waiting for the loader's lock, which this one holds when it is inside
 * a dlopen (a constructor looking a symbol up). True once it is ours. */
static bool wait_scan(void)
{
    for (int i = 0; i < 4000; i++) {
        struct timespec t = {0, 25000};
        nanosleep(&t, NULL);
        if (scan_begin())
            return true;
    }
    return false;
}

/* From a lookup in `handle`, on the program's thread, which may be inside
 * a dlopen (a constructor looking a symbol up): the loader is not asked to
 * open anything. The handle's module and the modules loaded with it that
 * it needs are held by the handle, and they bind in the handle's scope
 * (for a deep-bound library, the scope it and its dependencies bind in).
 * Other new modules are left to the dumper thread, woken for them. */
static bool sync_handle(void *handle)
{
    struct link_map *root = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &root) != 0 || !root)
        return true; /* not a handle the loader knows: nothing to scan */
    unsigned long long adds = 0;
    ml_modules_loader_counts(&adds, NULL);
    if (adds == last_adds)
        return true;
    if (!scan_begin() && !wait_scan())
        return false;
    if (adds == last_adds) { /* the dumper thread's scan took them all */
        scan_end();
        return true;
    }
    listing_t l = list_modules();
    bool others = l.more;
    for (unsigned i = 0; i < l.n; i++)
        batch[i].picked = batch[i].bias == root->l_addr && strcmp(batch[i].name, root->l_name ? root->l_name : "") == 0;
    /* the handle's module, then what it needs, and so on (a module may
     * pick one listed before it: round again until none is left) */
    for (bool more = true; more;) {
        more = false;
        for (unsigned i = 0; i < l.n; i++) {
            if (!batch[i].picked || batch[i].key == 0)
                continue;
            scan_module(&batch[i], handle);
            seen_add(batch[i].key);
            pick_needed(&batch[i], l.n);
            batch[i].key = 0; /* done */
            more = true;
        }
    }
    for (unsigned i = 0; i < l.n; i++)
        others = others || batch[i].key != 0;
    if (!others)
        last_adds = l.adds;
    scan_end();
    if (others)
        ml_dumper_wake();
    return true;
}

static unsigned long long last_subs_now(void)
{
    unsigned long long subs = 0;
    ml_modules_loader_counts(NULL, &subs);
    return subs;
}

/* On the dumper thread, which is never inside the loader: each new module
 * is held open while read (RTLD_NOLOAD: it also waits for a dlopen under
 * way on another thread to finish with it). */
static bool sync_all(void)
{
    unsigned long long adds = 0;
    ml_modules_loader_counts(&adds, NULL);
    if (adds == last_adds || !scan_begin())
        return false;
    /* the dumper thread's allocations pass untracked; not the loader's here */
    unsigned busy = ml_self.busy;
    ml_self.busy = 0;
    for (;;) {
        listing_t l = list_modules();
        for (unsigned i = 0; i < l.n; i++) {
            const module_t *m = &batch[i];
            void *h = m->name[0] ? dlopen(m->name, RTLD_LAZY | RTLD_NOLOAD) : NULL;
            struct link_map *lm = NULL;
            /* NULL: gone already, or in another namespace (dlmopen): not ours */
            if (h && dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_addr == m->bias)
                scan_module(m, h);
            seen_add(m->key);
            if (h) {
                int (*close_fn)(void *) = loader_dlclose();
                if (close_fn)
                    close_fn(h);
            }
            if (l.subs != last_subs_now()) {
                /* the program closed it meanwhile and ours was the last
                 * reference: say what the dlclose hook would have said */
                ml_modules_unloaded();
                ml_unwind_rules_invalidate();
                ml_rebind_forget_handles();
            }
        }
        if (!l.more) {
            last_adds = l.adds;
            break;
        }
    }
    ml_self.busy = busy;
    scan_end();
    return false;
}

/* The dumper service: never more to do soon. */
static bool service(void) { return sync_all(); }

#define NHANDLES 64
static _Atomic(void *) handles[NHANDLES];

void ml_rebind_handle(void *handle)
{
    if (!atomic_load_explicit(&ready, memory_order_acquire) || ml_self.busy)
        return; /* not started, or inside memledger already (its own lookups) */
    _Atomic(void *) *h = &handles[((uintptr_t)handle >> 4) * 0x9e3779b97f4a7c15ull >> 58];
    if (atomic_load_explicit(h, memory_order_relaxed) == handle)
        return;
    if (sync_handle(handle))
        atomic_store_explicit(h, handle, memory_order_relaxed);
}

void ml_rebind_forget_handles(void)
{
    for (unsigned i = 0; i < NHANDLES; i++)
        atomic_store_explicit(&handles[i], NULL, memory_order_relaxed);
}

static int self_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t probe = (uintptr_t)data;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && probe >= a && probe < a + ph->p_memsz) {
            self_key = (uintptr_t)info->dlpi_phdr;
            return 1;
        }
    }
    return 0;
}

void ml_rebind_init(void)
{
    page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    seen = ml_sysmem_map(sizeof *seen << SEEN_LOG2);
    reports = ml_sysmem_map(MAX_REPORTS * sizeof *reports);
    if (!seen || !reports || !ml_arena_init(&paths, 1u << 20) || !page_size)
        return; /* nothing rewritten: such a library's allocations stay unseen */
    dl_iterate_phdr(self_cb, (void *)(uintptr_t)&ml_rebind_init);
    const uintptr_t fns[NNAMES] = {
        (uintptr_t)ml_real.malloc,        (uintptr_t)ml_real.free,           (uintptr_t)ml_real.calloc,
        (uintptr_t)ml_real.realloc,       (uintptr_t)ml_real.reallocarray,   (uintptr_t)ml_real.posix_memalign,
        (uintptr_t)ml_real.aligned_alloc, (uintptr_t)ml_real.memalign,       (uintptr_t)ml_real.valloc,
        (uintptr_t)ml_real.pvalloc,       (uintptr_t)ml_real.malloc_usable_size};
    const ml_rebind_fn own[NNAMES] = {offered.malloc,        offered.free,     offered.calloc,
                                      offered.realloc,       offered.reallocarray, offered.posix_memalign,
                                      offered.aligned_alloc, offered.memalign, offered.valloc,
                                      offered.pvalloc,       offered.malloc_usable_size};
    for (int i = 0; i < NNAMES; i++) {
        hook[i] = (uintptr_t)own[i];
        next[i] = fns[i];
        /* What a call bound in the global scope reaches: memledger's entry
         * point, found there first; or, in a non-PIE executable that takes
         * the name's address, its PLT entry (an undefined symbol with a
         * value), which calls through to the first definition, memledger's
         * as the first library preloaded. An executable that defines the
         * name itself: nothing bound globally reaches the hook. */
        uintptr_t g = (uintptr_t)ml_real_dlsym()(RTLD_DEFAULT, names[i]);
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        if (g && hook[i] && (g == hook[i] || (dladdr1((void *)g, &info, (void **)&sym, RTLD_DL_SYMENT) && sym &&
                                              sym->st_shndx == SHN_UNDEF)))
            global[i] = g;
    }
    /* What is loaded now was bound through the global scope (RTLD_DEEPBIND
     * comes with dlopen), and some of it is not initialised yet: it is
     * taken as seen, never opened or read. */
    listing_t l;
    memset(&l, 0, sizeof l);
    l.mark = true;
    dl_iterate_phdr(list_cb, &l);
    last_adds = l.adds;
    last_subs = l.subs;
    ml_snapshot_add_header(header);
    ml_dumper_add_service(service, false);
    atomic_store_explicit(&ready, true, memory_order_release);
}

void ml_rebind_offer(const ml_rebind_hooks_t *hooks) { offered = *hooks; }

void ml_rebind_after_fork_child(void) { atomic_store_explicit(&scanning, 0, memory_order_relaxed); }
