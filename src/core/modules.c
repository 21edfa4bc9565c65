/* modules.c — the module registry (see modules.h).
 * Entries are appended to memory the library maps and never moved, so
 * readers need no lock: they read the count with acquire and the entries
 * below it. Refreshes are serialized by a spinlock that hooks only try. */

#include "core/modules.h"
#include "core/sysmem.h"
#include "common/io.h"

#include <link.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ml_module_t *mods;
static _Atomic uint32_t nmods;
static _Atomic uint32_t gen = 1;
static _Atomic int refresh_lock;
static unsigned long long last_adds = ~0ull, last_subs = ~0ull;
static uint32_t epoch;
static ml_arena_t paths;
static void (*_Atomic observer)(const ml_module_t *m);
_Atomic uint32_t ml_code_epoch;

/* The loaded modules by address, for ml_modules_locate: rebuilt under the
 * refresh lock whenever the registry changes and published whole; an old
 * table is left where it is (a hook may still be reading it), a few KiB
 * per change from the arena. */
typedef struct {
    uintptr_t lo, hi, bias;
    uint32_t index;
} span_t;
typedef struct {
    uint32_t n;
    uint32_t epoch; /* ml_code_epoch when made: an unload since makes it stale */
    span_t s[];
} spans_t;
static _Atomic(spans_t *) spans;
static ml_arena_t span_arena;

void ml_modules_unloaded(void) { atomic_fetch_add_explicit(&ml_code_epoch, 1, memory_order_release); }

void ml_modules_set_observer(void (*fn)(const ml_module_t *m)) { atomic_store(&observer, fn); }

void ml_modules_init(void)
{
    mods = ml_sysmem_map(ML_MODULES_MAX * sizeof *mods);
    ml_arena_init(&paths, 4u << 20);
    ml_arena_init(&span_arena, 64u << 20);
}

static void read_build_id(ml_module_t *m, const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof *nh;
            const char *desc = name + ((nh->n_namesz + 3) & ~3u);
            const char *next = desc + ((nh->n_descsz + 3) & ~3u);
            if (next > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                size_t n = nh->n_descsz < ML_BUILD_ID_MAX ? nh->n_descsz : ML_BUILD_ID_MAX;
                memcpy(m->build_id, desc, n);
                m->build_id_len = (uint8_t)n;
                return;
            }
            p = next;
        }
    }
}

static const char *module_path(const struct dl_phdr_info *info)
{
    static char exe[4096], abs[4096];
    if (info->dlpi_name && info->dlpi_name[0]) {
        /* dlopen("plugins/x.so") is relative to the directory of that moment:
         * fix it now (realpath with a buffer makes syscalls, no allocation) */
        if (info->dlpi_name[0] != '/' && strchr(info->dlpi_name, '/') && realpath(info->dlpi_name, abs))
            return abs;
        return info->dlpi_name;
    }
    if (!exe[0]) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return "[executable]";
        exe[n] = '\0';
    }
    return exe;
}

static int counters_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    unsigned long long *c = data;
    c[0] = info->dlpi_adds;
    c[1] = info->dlpi_subs;
    return 1;
}

void ml_modules_loader_counts(unsigned long long *adds, unsigned long long *subs)
{
    unsigned long long c[2] = {0, 0};
    dl_iterate_phdr(counters_cb, c);
    if (adds)
        *adds = c[0];
    if (subs)
        *subs = c[1];
}

static int refresh_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    if (lo >= hi)
        return 0;
    const char *path = module_path(info);
    uint32_t n = atomic_load_explicit(&nmods, memory_order_relaxed);
    for (uint32_t i = n; i-- > 0;) {
        ml_module_t *m = &mods[i];
        if (m->lo == lo && m->bias == info->dlpi_addr &&
            !atomic_load_explicit(&m->removed_gen, memory_order_relaxed) &&
            strcmp(m->path, path) == 0) {
            m->seen_epoch = epoch;
            return 0;
        }
    }
    if (n >= ML_MODULES_MAX)
        return 0;
    ml_module_t *m = &mods[n];
    const char *copy = ml_arena_strdup(&paths, path);
    m->path = copy ? copy : "[path dropped]";
    m->bias = info->dlpi_addr;
    m->lo = lo;
    m->hi = hi;
    m->build_id_len = 0;
    read_build_id(m, info);
    m->added_gen = atomic_load_explicit(&gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&m->removed_gen, 0, memory_order_relaxed);
    m->seen_epoch = epoch;
    atomic_store_explicit(&nmods, n + 1, memory_order_release);
    return 0;
}

/* Republishes the table of loaded modules (refresh lock held). */
static void publish_spans(void)
{
    uint32_t n = atomic_load_explicit(&nmods, memory_order_relaxed), k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += !atomic_load_explicit(&mods[i].removed_gen, memory_order_relaxed);
    spans_t *t = ml_arena_alloc(&span_arena, sizeof(spans_t) + (size_t)k * sizeof(span_t));
    if (!t)
        return; /* the old table stays: lookups of new modules fall back to addresses */
    uint32_t j = 0;
    for (uint32_t i = 0; i < n && j < k; i++) {
        const ml_module_t *m = &mods[i];
        if (atomic_load_explicit(&m->removed_gen, memory_order_relaxed))
            continue;
        span_t sp = {m->lo, m->hi, m->bias, i};
        uint32_t at = j++;
        while (at > 0 && t->s[at - 1].lo > sp.lo) { /* insertion: a few hundred at most */
            t->s[at] = t->s[at - 1];
            at--;
        }
        t->s[at] = sp;
    }
    t->n = j;
    t->epoch = atomic_load_explicit(&ml_code_epoch, memory_order_acquire);
    atomic_store_explicit(&spans, t, memory_order_release);
}

static const span_t *span_of(const spans_t *t, uintptr_t pc)
{
    if (!t)
        return NULL;
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) { /* the last span starting at or below pc */
        uint32_t mid = (lo + hi) / 2;
        if (t->s[mid].lo <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo && pc < t->s[lo - 1].hi ? &t->s[lo - 1] : NULL;
}

bool ml_modules_locate(uintptr_t pc, uint32_t *index, uintptr_t *offset)
{
    const spans_t *t = atomic_load_explicit(&spans, memory_order_acquire);
    /* code was unloaded since the table was made: another module may sit
     * where the table still shows the old one */
    if (ML_UNLIKELY(t && t->epoch != atomic_load_explicit(&ml_code_epoch, memory_order_acquire)))
        ml_modules_sync(false);
    const span_t *sp = span_of(atomic_load_explicit(&spans, memory_order_acquire), pc);
    if (!sp) {
        ml_modules_sync(false);
        sp = span_of(atomic_load_explicit(&spans, memory_order_acquire), pc);
        if (!sp)
            return false;
    }
    *index = sp->index;
    *offset = pc - sp->bias;
    return true;
}

uint32_t ml_modules_sync(bool wait)
{
    unsigned long long c[2] = {0, 0};
    if (!mods)
        return atomic_load_explicit(&gen, memory_order_acquire);
    dl_iterate_phdr(counters_cb, c);
    const spans_t *t0 = atomic_load_explicit(&spans, memory_order_acquire);
    bool stale = t0 && t0->epoch != atomic_load_explicit(&ml_code_epoch, memory_order_acquire);
    if (__atomic_load_n(&last_adds, __ATOMIC_ACQUIRE) == c[0] &&
        __atomic_load_n(&last_subs, __ATOMIC_ACQUIRE) == c[1] && !stale)
        return atomic_load_explicit(&gen, memory_order_acquire);
    while (atomic_exchange_explicit(&refresh_lock, 1, memory_order_acquire)) {
        if (!wait)
            return atomic_load_explicit(&gen, memory_order_acquire);
        usleep(100);
    }
    epoch++;
    uint32_t before = atomic_load_explicit(&nmods, memory_order_relaxed);
    dl_iterate_phdr(refresh_cb, NULL);
    uint32_t after = atomic_load_explicit(&nmods, memory_order_relaxed);
    /* the observer hears of the new modules once the loader's lock, which
     * dl_iterate_phdr holds, is given back */
    void (*fn)(const ml_module_t *) = atomic_load(&observer);
    for (uint32_t i = before; fn && i < after; i++)
        fn(&mods[i]);
    bool changed = after != before, removed = false;
    uint32_t g = atomic_load_explicit(&gen, memory_order_relaxed) + 1;
    for (uint32_t i = 0; i < before; i++) {
        ml_module_t *m = &mods[i];
        if (!atomic_load_explicit(&m->removed_gen, memory_order_relaxed) && m->seen_epoch != epoch) {
            atomic_store_explicit(&m->removed_gen, g, memory_order_release);
            changed = removed = true;
        }
    }
    if (removed)
        ml_modules_unloaded();
    if (changed)
        atomic_store_explicit(&gen, g, memory_order_release);
    /* also when nothing changed: an unload the dlclose hook announced
     * before the loader's counters moved is settled now */
    if (changed || (atomic_load_explicit(&spans, memory_order_relaxed) &&
                    atomic_load_explicit(&spans, memory_order_relaxed)->epoch !=
                        atomic_load_explicit(&ml_code_epoch, memory_order_relaxed)))
        publish_spans();
    __atomic_store_n(&last_adds, c[0], __ATOMIC_RELEASE);
    __atomic_store_n(&last_subs, c[1], __ATOMIC_RELEASE);
    atomic_store_explicit(&refresh_lock, 0, memory_order_release);
    return atomic_load_explicit(&gen, memory_order_acquire);
}

uint32_t ml_modules_generation(void) { return atomic_load_explicit(&gen, memory_order_acquire); }

int ml_modules_find(uintptr_t pc, uint32_t g)
{
    uint32_t n = atomic_load_explicit(&nmods, memory_order_acquire);
    int later = -1;
    for (uint32_t i = n; i-- > 0;) {
        const ml_module_t *m = &mods[i];
        if (pc < m->lo || pc >= m->hi)
            continue;
        if (m->added_gen > g) {
            /* Registered after the stack was taken (a hook that found the
             * registry busy): the first module loaded there since is the one. */
            later = (int)i;
            continue;
        }
        uint32_t r = atomic_load_explicit(&m->removed_gen, memory_order_acquire);
        if (r && r <= g)
            continue;
        return (int)i;
    }
    return later;
}

uint32_t ml_modules_count(void) { return atomic_load_explicit(&nmods, memory_order_acquire); }

const ml_module_t *ml_modules_get(uint32_t i) { return &mods[i]; }

char *ml_build_id_hex(const ml_module_t *m, char *buf, size_t cap)
{
    size_t k = 0;
    for (unsigned i = 0; i < m->build_id_len && k + 2 < cap; i++) {
        buf[k++] = "0123456789abcdef"[m->build_id[i] >> 4];
        buf[k++] = "0123456789abcdef"[m->build_id[i] & 15];
    }
    buf[k] = '\0';
    return buf;
}

void ml_modules_after_fork_child(void)
{
    atomic_store_explicit(&refresh_lock, 0, memory_order_relaxed);
}
