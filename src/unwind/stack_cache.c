/* stack_cache.c — the validated chain cache (see stack_cache.h).
 *
 * Entries use a sequence lock: a writer makes the counter odd, writes, and
 * makes it even again; a reader reads the counter, the entry and the
 * counter again, and trusts what it read only if both were the same even
 * value. Every field is read and written with relaxed atomics, so a torn
 * read is a miss, never undefined behaviour; a position read from a torn
 * entry is still bounds-checked before it is dereferenced. */
#include "unwind/stack_cache.h"
#include "core/sysmem.h"
#include "unwind/unwind_rules.h"

#include <stdatomic.h>
#include <string.h>

#define ENTRIES_LOG2 12 /* 4096 chains, about 2 KiB each, touched as used */
#define MAX_WORDS ML_STACK_CACHE_WORDS

/* The checks are kept in two lists, return addresses (compared as they
 * are) and RBP values (compared relative to sp0), so the validation loops
 * have no branch inside; the RBP register at entry has its own field. */
typedef struct {
    _Atomic uint32_t seq;
    _Atomic uint32_t id;
    _Atomic uint8_t domain, nwords, nra, nbp, live_bp;
    _Atomic uint64_t pc0, depth, live_bp_expect;
    _Atomic uint64_t epoch; /* the walk's entry epoch (unwind_fast.h): its id and rules valid then */
    /* a walk of at most MAX_WORDS frames loads one return address and at
     * most one RBP per frame */
    _Atomic uint32_t ra_pos[MAX_WORDS];
    _Atomic uint64_t ra_expect[MAX_WORDS];
    _Atomic uint32_t bp_pos[MAX_WORDS];
    _Atomic uint64_t bp_expect[MAX_WORDS];
    _Atomic uint64_t words[MAX_WORDS];
} entry_t;

static entry_t *table;

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define ST(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

bool ml_stack_cache_init(void)
{
    table = ml_sysmem_map(sizeof(entry_t) << ENTRIES_LOG2);
    return table != NULL;
}

static inline entry_t *slot(uint64_t pc0, uint64_t depth, unsigned domain)
{
    uint64_t h = (pc0 ^ (depth << 24) ^ domain) * 0x9e3779b97f4a7c15ull;
    return &table[h >> (64 - ENTRIES_LOG2)];
}

__attribute__((no_sanitize_address)) bool ml_stack_cache_find(const ml_entry_t *e, unsigned domain, uint64_t *words,
                                                               unsigned cap, unsigned *n, uint32_t *id)
{
    if (ML_UNLIKELY(!table))
        return false;
    uint64_t depth = e->hi - e->sp0;
    entry_t *x = slot(e->pc0, depth, domain);
    uint32_t s1 = atomic_load_explicit(&x->seq, memory_order_acquire);
    if ((s1 & 1) || LD(x->pc0) != e->pc0 || LD(x->depth) != depth || LD(x->domain) != domain ||
        LD(x->epoch) != e->epoch)
        return false;
    unsigned nra = LD(x->nra), nbp = LD(x->nbp), nw = LD(x->nwords);
    if (nra > MAX_WORDS || nbp > MAX_WORDS || nw > MAX_WORDS || (words && nw > cap) || depth < 8)
        return false;
    /* Offsets are clamped, not tested: an entry torn by a concurrent writer
     * can then only make us read our own stack, and the sequence check
     * below throws the result away. */
    const uintptr_t s0 = e->sp0;
    const uint32_t lim = depth - 8 > UINT32_MAX ? UINT32_MAX : (uint32_t)(depth - 8);
    uint64_t diff = 0;
    for (unsigned i = 0; i < nra; i++) {
        uint32_t off = LD(x->ra_pos[i]);
        off = off < lim ? off : lim;
        diff |= *(const uint64_t *)(s0 + off) ^ LD(x->ra_expect[i]);
    }
    for (unsigned i = 0; i < nbp; i++) {
        uint32_t off = LD(x->bp_pos[i]);
        off = off < lim ? off : lim;
        diff |= (*(const uint64_t *)(s0 + off) - s0) ^ LD(x->bp_expect[i]);
    }
    if (LD(x->live_bp))
        diff |= (e->bp0 - s0) ^ LD(x->live_bp_expect);
    if (diff)
        return false;
    uint32_t cached = LD(x->id);
    if (words)
        for (unsigned i = 0; i < nw; i++)
            words[i] = LD(x->words[i]);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&x->seq, memory_order_relaxed) != s1)
        return false;
    *n = nw;
    *id = cached;
    return true;
}

void ml_stack_cache_put(const ml_entry_t *e, unsigned domain, const uint64_t *words, unsigned n,
                        const ml_checks_t *checks, uint32_t id)
{
    if (!table || n > MAX_WORDS || checks->n > ML_CHECK_MAX)
        return;
    unsigned ra = 0, bp = 0;
    for (unsigned i = 0; i < checks->n; i++) {
        ra += !(checks->pos[i] & 1);
        bp += (checks->pos[i] & 1) && checks->pos[i] != ML_CHECK_LIVE_BP;
    }
    if (ra > MAX_WORDS || bp > MAX_WORDS)
        return;
    uint64_t depth = e->hi - e->sp0;
    entry_t *x = slot(e->pc0, depth, domain);
    uint32_t s = atomic_load_explicit(&x->seq, memory_order_relaxed);
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(&x->seq, &s, s + 1, memory_order_acquire,
                                                            memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    ST(x->pc0, e->pc0);
    ST(x->depth, depth);
    ST(x->epoch, e->epoch);
    ST(x->domain, (uint8_t)domain);
    ST(x->id, id);
    ST(x->nwords, (uint8_t)n);
    unsigned nra = 0, nbp = 0;
    ST(x->live_bp, 0);
    for (unsigned i = 0; i < checks->n; i++) {
        int32_t p = checks->pos[i];
        if (p == ML_CHECK_LIVE_BP) {
            ST(x->live_bp, 1);
            ST(x->live_bp_expect, checks->expect[i]);
        } else if (p & 1) {
            ST(x->bp_pos[nbp], (uint32_t)(p & ~1));
            ST(x->bp_expect[nbp], checks->expect[i]);
            nbp++;
        } else {
            ST(x->ra_pos[nra], (uint32_t)p);
            ST(x->ra_expect[nra], checks->expect[i]);
            nra++;
        }
    }
    ST(x->nra, (uint8_t)nra);
    ST(x->nbp, (uint8_t)nbp);
    for (unsigned i = 0; i < n; i++)
        ST(x->words[i], words[i]);
    atomic_store_explicit(&x->seq, s + 2, memory_order_release);
}

void ml_stack_cache_after_fork_child(void)
{
    if (!table)
        return;
    for (size_t i = 0; i < ((size_t)1 << ENTRIES_LOG2); i++) {
        uint32_t s = atomic_load_explicit(&table[i].seq, memory_order_relaxed);
        if (s & 1) /* make it even and never matching: pc0 0 */
            atomic_store_explicit(&table[i].pc0, 0, memory_order_relaxed),
            atomic_store_explicit(&table[i].seq, s + 1, memory_order_release);
    }
}

uint64_t ml_stack_cache_resident(void) { return ml_sysmem_resident(table, sizeof(entry_t) << ENTRIES_LOG2); }
