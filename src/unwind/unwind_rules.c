/* unwind_rules.c — the return-address → unwind-rule map and the service
 * that fills it (see unwind_rules.h).
 *
 * Why a map filled lazily rather than tables built per module: a process
 * that loads libtorch has 220,000 FDEs in that one library, but only the
 * few thousand return addresses on its allocation paths ever matter. The
 * hot path looks a return address up. On a miss it computes the rule then
 * and there when it can take the compute lock and the module's file
 * (snapshot/modfile.c) without waiting: elfutils' CFI reader
 * (dwarf_cfi_addrframe) gives the row that covers the call, reduced to the
 * three facts an x86-64 unwinder needs (~1 us). Otherwise it leaves the
 * address in a small pending set, steps that frame with libunwind, and
 * memledger's own thread computes it later. The map is insert-only under
 * the compute lock, so readers need no lock and never see a half-written
 * entry. */
#include "unwind/unwind_rules.h"
#include "snapshot/dumper.h"
#include "snapshot/modfile.h"
#include "core/modules.h"
#include "core/sysmem.h"

#include <dwarf.h>
#include <pthread.h>
#include <elfutils/libdw.h>
#include <stdlib.h>
#include <string.h>

#define MAP_FIRST_LOG2 12 /* 4096 return addresses to start with, 64 KiB */
#define MAP_MAX_LOG2 22   /* grows up to 4M */
#define PENDING 65536 /* a burst of new code (an import) misses many at once */
static _Atomic uint64_t dirty[PENDING / 64]; /* groups of pending slots that may hold an address */

ml_rule_map_t *_Atomic ml_rules;
_Atomic uint32_t ml_unwind_epoch;
static _Atomic int invalidate_requested;

static _Atomic uint64_t *pending;
static _Atomic int pending_flag;
static _Atomic uint64_t dropped;
/* Serializes computing and publishing rules (the map has one writer at a
 * time): the service takes it, a hook only tries it. The module files the
 * CFI comes from are modfile.c's, locked per module inside it (the
 * symbolizer reads them too). */
static pthread_mutex_t compute_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t map_used;
static _Atomic uint64_t known, unknown; /* read by the snapshot header, on another thread */

static size_t map_bytes(uint64_t mask) { return sizeof(ml_rule_map_t) + (mask + 1) * sizeof(ml_rule_slot_t); }

/* A new map, its pages faulted in now (in one go, by the kernel) rather
 * than one by one under the hooks that read it. */
static ml_rule_map_t *new_map(unsigned log2)
{
    ml_rule_map_t *m = ml_sysmem_map_populated(map_bytes(((uint64_t)1 << log2) - 1));
    if (m)
        m->mask = ((uint64_t)1 << log2) - 1;
    return m;
}

bool ml_unwind_rules_init(void)
{
    atomic_store(&ml_rules, new_map(MAP_FIRST_LOG2));
    pending = ml_sysmem_map(sizeof(uint64_t) * PENDING);
    if (!atomic_load(&ml_rules) || !pending)
        return false;
    /* not exclusive: it locks only the module file it reads (modfile.h),
     * so a snapshot (or a collection) need not wait for it, nor it for
     * them, but while both read the same module */
    ml_dumper_add_service(ml_unwind_rules_service, false);
    return true;
}

void ml_unwind_rules_miss(uint64_t pc)
{
    _Atomic uint64_t *s = &pending[(pc * 0x9e3779b97f4a7c15ull >> 32) & (PENDING - 1)];
    uint64_t expect = 0;
    if (atomic_load_explicit(s, memory_order_relaxed) == pc)
        return;
    if (!atomic_compare_exchange_strong_explicit(s, &expect, pc, memory_order_release,
                                                 memory_order_relaxed)) {
        if (expect != pc)
            atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    /* the group of 64 slots holding it, so the service visits only those */
    size_t i = (size_t)(s - pending);
    atomic_fetch_or_explicit(&dirty[i / 64], 1ull << (i % 64), memory_order_release);
    if (!atomic_exchange_explicit(&pending_flag, 1, memory_order_acq_rel))
        ml_dumper_wake();
}

/* "saved at CFA + n" as libdw spells it: DW_OP_call_frame_cfa, then
 * DW_OP_plus_uconst n (n may wrap to negative). */
static bool cfa_relative(const Dwarf_Op *ops, size_t n, int64_t *off)
{
    if (n != 2 || ops[0].atom != DW_OP_call_frame_cfa)
        return false;
    if (ops[1].atom == DW_OP_plus_uconst || ops[1].atom == DW_OP_consts) {
        *off = (int64_t)ops[1].number;
        return true;
    }
    return false;
}

static uint64_t rule_of_frame(Dwarf_Frame *f)
{
    Dwarf_Addr start, end;
    bool signalp = false;
    if (dwarf_frame_info(f, &start, &end, &signalp) != 16 || signalp)
        return ML_RULE_UNKNOWN;
    Dwarf_Op mem[3], *ops;
    size_t n;
    /* the return address: at CFA - 8, or undefined at the outermost frame */
    if (dwarf_frame_register(f, 16, mem, &ops, &n) != 0)
        return ML_RULE_UNKNOWN;
    int64_t raoff;
    if (n == 0 && ops == mem)
        return ML_RULE_OUTERMOST;
    if (!cfa_relative(ops, n, &raoff) || raoff != -8)
        return ML_RULE_UNKNOWN;
    /* the CFA: a register plus an offset */
    if (dwarf_frame_cfa(f, &ops, &n) != 0 || n != 1)
        return ML_RULE_UNKNOWN;
    unsigned reg;
    int64_t cfaoff;
    if (ops[0].atom == DW_OP_bregx) {
        reg = (unsigned)ops[0].number;
        cfaoff = (int64_t)ops[0].number2;
    } else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
        reg = ops[0].atom - DW_OP_breg0;
        cfaoff = (int64_t)ops[0].number;
    } else {
        return ML_RULE_UNKNOWN;
    }
    if ((reg != 6 && reg != 7) || cfaoff < INT32_MIN || cfaoff > INT32_MAX)
        return ML_RULE_UNKNOWN;
    /* the caller's RBP: unchanged, or saved at CFA + k */
    int rbp_slots = 0;
    if (dwarf_frame_register(f, 6, mem, &ops, &n) != 0)
        return ML_RULE_UNKNOWN;
    if (n == 0 && ops == mem)
        return ML_RULE_UNKNOWN; /* undefined RBP: only outermost frames do this */
    if (n != 0) {
        int64_t k;
        if (!cfa_relative(ops, n, &k) || k % 8 || k / 8 < -127 || k / 8 > 127 || k == 0)
            return ML_RULE_UNKNOWN;
        rbp_slots = (int)(k / 8);
    }
    return ml_rule_make(reg == 7 ? ML_RULE_RSP : ML_RULE_RBP, (int32_t)cfaoff, rbp_slots);
}

/* The rule for return address pc into *rule. False when it cannot be had
 * without waiting (may_wait false, and another thread is reading the
 * module's file): ask again later. */
static bool compute(uint64_t pc, bool may_wait, uint64_t *rule)
{
    *rule = ML_RULE_UNKNOWN;
    int mi = ml_modules_find((uintptr_t)pc, UINT32_MAX);
    if (mi < 0) {
        ml_modules_sync(may_wait);
        mi = ml_modules_find((uintptr_t)pc, UINT32_MAX);
        if (mi < 0)
            return true;
    }
    bool busy;
    ml_modfile_t *mf = ml_modfile_lock((uint32_t)mi, may_wait, &busy);
    if (!mf)
        return !busy;
    Dwarf_Addr bias;
    Dwarf_CFI *cfi = ml_modfile_eh_cfi(mf, &bias);
    Dwarf_Frame *f = NULL;
    /* a return address follows the call: the call's own row is at pc - 1 */
    if (cfi && dwarf_cfi_addrframe(cfi, pc - 1 - bias, &f) == 0) {
        *rule = rule_of_frame(f);
        free(f);
    }
    ml_modfile_unlock(mf);
    return true;
}

static void publish(uint64_t pc, uint64_t rule);

uint64_t ml_unwind_rule_compute(uint64_t pc)
{
    uint64_t r;
    compute(pc, true, &r);
    return r;
}

static _Atomic bool inline_rules = true;

void ml_unwind_rules_set_inline(bool on) { atomic_store(&inline_rules, on); }

bool ml_unwind_rules_now(uint64_t pc, uint64_t *rule)
{
    if (!pending || !atomic_load_explicit(&inline_rules, memory_order_relaxed) ||
        pthread_mutex_trylock(&compute_lock) != 0)
        return false;
    bool done = ml_rule_find(pc, rule);
    if (!done && (done = compute(pc, false, rule)))
        publish(pc, *rule);
    pthread_mutex_unlock(&compute_lock);
    return done;
}

void ml_unwind_rules_invalidate(void)
{
    atomic_store_explicit(&invalidate_requested, 1, memory_order_release);
    if (!atomic_exchange_explicit(&pending_flag, 1, memory_order_acq_rel))
        ml_dumper_wake();
}

/* A library was unloaded: its return addresses may come back as another
 * library's, with other rules. A fresh map replaces the old one (which is
 * left mapped: a hook may still be reading it), and the epoch tells the
 * chain cache that what it knows was built on the old rules. */
static void start_over(void)
{
    ml_rule_map_t *fresh = new_map(MAP_FIRST_LOG2);
    if (!fresh)
        return;
    atomic_store_explicit(&ml_rules, fresh, memory_order_release);
    map_used = 0;
    atomic_store_explicit(&known, 0, memory_order_relaxed);
    atomic_store_explicit(&unknown, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&ml_unwind_epoch, 1, memory_order_release);
    /* the files of unloaded modules are modfile.c's to release */
}

static void insert(ml_rule_map_t *map, uint64_t pc, uint64_t rule)
{
    for (uint64_t i = ml_rule_hash(pc);; i++) {
        ml_rule_slot_t *s = &map->slot[i & map->mask];
        if (atomic_load_explicit(&s->key, memory_order_relaxed) == 0) {
            s->rule = rule;
            atomic_store_explicit(&s->key, pc, memory_order_release);
            return;
        }
    }
}

/* Half full: a map four times larger takes over. The old one stays mapped
 * (a hook may be reading it), which costs a third more than the final map. */
static ml_rule_map_t *grow(ml_rule_map_t *old)
{
    unsigned log2 = (unsigned)__builtin_ctzll(old->mask + 1) + 2;
    if (log2 > MAP_MAX_LOG2)
        return old;
    ml_rule_map_t *m = new_map(log2);
    if (!m)
        return old;
    for (uint64_t i = 0; i <= old->mask; i++) {
        uint64_t k = atomic_load_explicit(&old->slot[i].key, memory_order_relaxed);
        if (k)
            insert(m, k, old->slot[i].rule);
    }
    atomic_store_explicit(&ml_rules, m, memory_order_release);
    return m;
}

static void publish(uint64_t pc, uint64_t rule)
{
    ml_rule_map_t *map = atomic_load_explicit(&ml_rules, memory_order_relaxed);
    if ((map_used + 1) * 2 > map->mask + 1) {
        map = grow(map);
        if ((map_used + 1) * 4 > (map->mask + 1) * 3)
            return; /* full for good: the address keeps its slow path */
    }
    for (uint64_t i = ml_rule_hash(pc);; i++) {
        ml_rule_slot_t *s = &map->slot[i & map->mask];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_relaxed);
        if (k == pc)
            return;
        if (k == 0) {
            s->rule = rule;
            atomic_store_explicit(&s->key, pc, memory_order_release);
            map_used++;
            if (ml_rule_kind(rule) == ML_RULE_UNKNOWN)
                atomic_fetch_add_explicit(&unknown, 1, memory_order_relaxed);
            else
                atomic_fetch_add_explicit(&known, 1, memory_order_relaxed);
            return;
        }
    }
}

bool ml_unwind_rules_service(void)
{
    if (!pending || !atomic_load_explicit(&pending_flag, memory_order_acquire))
        return false;
    pthread_mutex_lock(&compute_lock);
    if (atomic_exchange_explicit(&invalidate_requested, 0, memory_order_acq_rel))
        start_over();
    unsigned done = 0;
    for (size_t g = 0; g < PENDING / 64; g++) {
        if (!atomic_load_explicit(&dirty[g], memory_order_relaxed))
            continue; /* the common case: a plain load per 64 slots */
        uint64_t bits = atomic_exchange_explicit(&dirty[g], 0, memory_order_acquire);
        while (bits) {
            size_t i = g * 64 + (size_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            uint64_t pc = atomic_exchange_explicit(&pending[i], 0, memory_order_acquire);
            uint64_t r;
            if (pc && !ml_rule_find(pc, &r))
                publish(pc, ml_unwind_rule_compute(pc));
            done += pc != 0;
        }
    }
    pthread_mutex_unlock(&compute_lock);
    /* While it finds work, the flag stays up: the hooks' next misses then
     * wake nobody (a write(2) each), the dumper comes back within a
     * millisecond anyway. A pass that found nothing lowers it. */
    if (done)
        return true;
    atomic_store_explicit(&pending_flag, 0, memory_order_release);
    /* a miss between the pass and the store raised no wake-up: look again */
    for (size_t g = 0; g < PENDING / 64; g++)
        if (atomic_load_explicit(&dirty[g], memory_order_acquire)) {
            atomic_store_explicit(&pending_flag, 1, memory_order_release);
            return true;
        }
    return false;
}

void ml_unwind_rules_stats(uint64_t *k, uint64_t *u, uint64_t *d)
{
    *k = atomic_load_explicit(&known, memory_order_relaxed);
    *u = atomic_load_explicit(&unknown, memory_order_relaxed);
    *d = atomic_load_explicit(&dropped, memory_order_relaxed);
}

void ml_unwind_rules_after_fork_child(void)
{
    pthread_mutex_init(&compute_lock, NULL); /* a thread that held it is gone */
    if (pending)
        memset((void *)pending, 0, sizeof(uint64_t) * PENDING);
    memset((void *)dirty, 0, sizeof dirty);
    atomic_store(&pending_flag, 0);
}

uint64_t ml_unwind_rules_resident(void)
{
    ml_rule_map_t *m = atomic_load(&ml_rules);
    if (!m)
        return 0; /* the fast unwinder is off */
    return ml_sysmem_resident(m, map_bytes(m->mask)) +
           ml_sysmem_resident((const void *)pending, sizeof(uint64_t) * PENDING);
}
