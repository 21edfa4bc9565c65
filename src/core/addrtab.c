/* addrtab.c — the sharded address table (see addrtab.h).
 *
 * Each shard is a linear-probing table of 16-byte entries behind a spinlock.
 * With 512 shards two threads rarely meet on one lock, and an uncontended
 * lock costs one atomic exchange — the same as a lock-free CAS — while
 * letting removal compact tombstones and growth happen in place. A shard
 * grows (doubling, from the kernel) when live entries pass 5/8 of it and is
 * rehashed at the same size when tombstones crowd it.
 *
 * Why the locks are safe here: they are taken only inside a hook, where the
 * thread's re-entry guard is set, so a signal handler on the same thread
 * that allocates passes through without touching the table; fork() takes
 * them all first (ml_addrtab_lock_all) so the child inherits none held. */
#include "core/addrtab.h"
#include "core/sysmem.h"

#include <sched.h>

#define EMPTY 0ull
#define TOMB (~0ull)
#define MIN_LOG2 8

static ml_addrtab_t *tables;
static _Atomic int tables_lock;

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline void lock(_Atomic int *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire)) {
        int spins = 0;
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++spins < 64)
                __builtin_ia32_pause();
            else
                sched_yield();
        }
    }
}

static inline void unlock(_Atomic int *l) { atomic_store_explicit(l, 0, memory_order_release); }

void ml_addrtab_register(ml_addrtab_t *t, const char *name)
{
    t->name = name;
    lock(&tables_lock);
    t->next_table = tables;
    tables = t;
    unlock(&tables_lock);
}

static inline ml_addr_shard_t *shard_of(ml_addrtab_t *t, uint64_t h)
{
    return &t->shard[h & (ML_ADDR_SHARDS - 1)];
}

static inline uint64_t slot_of(const ml_addr_shard_t *s, uint64_t h)
{
    return (h >> 9) & (((uint64_t)1 << s->log2cap) - 1);
}

/* Rebuilds the shard at 2^log2 entries. Returns false when out of memory
 * (the shard is left as it was). */
static bool rebuild(ml_addr_shard_t *s, uint32_t log2)
{
    uint64_t cap = (uint64_t)1 << log2;
    /* the rehash below writes entries all over the new table, so every
     * page is touched at once: one populating call instead of a fault a
     * page (a fault costs 12 us on the benchmark's machine) */
    ml_addr_entry_t *e = ml_sysmem_map_populated(cap * sizeof *e);
    if (!e)
        return false;
    uint64_t oldcap = s->log2cap ? (uint64_t)1 << s->log2cap : 0;
    ml_addr_entry_t *old = s->e;
    s->e = e;
    s->log2cap = log2;
    for (uint64_t i = 0; i < oldcap; i++) {
        uint64_t k = old[i].key;
        if (k == EMPTY || k == TOMB)
            continue;
        uint64_t j = slot_of(s, mix(k));
        while (e[j].key != EMPTY)
            j = (j + 1) & (cap - 1);
        e[j] = old[i];
    }
    s->tombs = 0;
    ml_sysmem_unmap(old, oldcap * sizeof *old);
    return true;
}

static bool make_room(ml_addr_shard_t *s)
{
    uint64_t cap = s->log2cap ? (uint64_t)1 << s->log2cap : 0;
    if ((s->used + s->tombs + 1) * 8 <= cap * 7 && (s->used + 1) * 8 <= cap * 5)
        return true;
    uint32_t log2 = s->log2cap ? s->log2cap : MIN_LOG2 - 1;
    if ((s->used + 1) * 8 > cap * 5 / 2 || !cap)
        log2++; /* live entries need the space: grow; else only purge tombstones */
    return rebuild(s, log2);
}

enum ml_addr_insert ml_addrtab_insert(ml_addrtab_t *t, uint64_t addr, uint32_t id, uint64_t size,
                                      uint32_t *old_id, uint64_t *old_size)
{
    uint64_t h = mix(addr);
    ml_addr_shard_t *s = shard_of(t, h);
    uint64_t val = ((uint64_t)id << ML_ADDR_SIZE_BITS) |
                   (size > ML_ADDR_SIZE_MAX ? ML_ADDR_SIZE_MAX : size);
    bool had = false;
    lock(&s->lock);
    if (ML_UNLIKELY(!make_room(s))) {
        unlock(&s->lock);
        atomic_fetch_add_explicit(&t->nomem, 1, memory_order_relaxed);
        return ML_ADDR_DROPPED;
    }
    uint64_t mask = ((uint64_t)1 << s->log2cap) - 1;
    uint64_t i = slot_of(s, h), free_slot = UINT64_MAX;
    for (;; i = (i + 1) & mask) {
        uint64_t k = s->e[i].key;
        if (k == addr) {
            *old_id = (uint32_t)(s->e[i].val >> ML_ADDR_SIZE_BITS);
            *old_size = s->e[i].val & ML_ADDR_SIZE_MAX;
            s->e[i].val = val;
            had = true;
            break;
        }
        if (k == TOMB && free_slot == UINT64_MAX)
            free_slot = i;
        if (k == EMPTY) {
            if (free_slot == UINT64_MAX)
                free_slot = i;
            else
                s->tombs--;
            s->e[free_slot].key = addr;
            s->e[free_slot].val = val;
            s->used++;
            break;
        }
    }
    unlock(&s->lock);
    if (!had)
        return ML_ADDR_NEW;
    atomic_fetch_add_explicit(&t->replaced, 1, memory_order_relaxed);
    return ML_ADDR_REPLACED;
}

static bool lookup(ml_addrtab_t *t, uint64_t addr, uint32_t *id, uint64_t *size, bool remove)
{
    uint64_t h = mix(addr);
    ml_addr_shard_t *s = shard_of(t, h);
    bool found = false;
    lock(&s->lock);
    if (s->log2cap) {
        uint64_t mask = ((uint64_t)1 << s->log2cap) - 1;
        for (uint64_t i = slot_of(s, h);; i = (i + 1) & mask) {
            uint64_t k = s->e[i].key;
            if (k == EMPTY)
                break;
            if (k != addr)
                continue;
            found = true;
            *id = (uint32_t)(s->e[i].val >> ML_ADDR_SIZE_BITS);
            *size = s->e[i].val & ML_ADDR_SIZE_MAX;
            if (!remove)
                break;
            s->used--;
            if (s->e[(i + 1) & mask].key == EMPTY) {
                /* End of a probe run: this slot and the tombstones before it
                 * can become empty again, keeping churn from filling the shard. */
                s->e[i].key = EMPTY;
                for (uint64_t j = (i - 1) & mask; s->e[j].key == TOMB; j = (j - 1) & mask) {
                    s->e[j].key = EMPTY;
                    s->tombs--;
                }
            } else {
                s->e[i].key = TOMB;
                s->tombs++;
            }
            break;
        }
    }
    unlock(&s->lock);
    return found;
}

bool ml_addrtab_remove(ml_addrtab_t *t, uint64_t addr, uint32_t *id, uint64_t *size)
{
    return lookup(t, addr, id, size, true);
}

bool ml_addrtab_find(ml_addrtab_t *t, uint64_t addr, uint32_t *id, uint64_t *size)
{
    return lookup(t, addr, id, size, false);
}

size_t ml_addrtab_copy_shard(ml_addrtab_t *t, unsigned shard, ml_addr_entry_t *out, size_t cap)
{
    ml_addr_shard_t *s = &t->shard[shard % ML_ADDR_SHARDS];
    size_t n = 0;
    lock(&s->lock);
    uint64_t slots = s->log2cap ? (uint64_t)1 << s->log2cap : 0;
    for (uint64_t i = 0; i < slots && n < cap; i++)
        if (s->e[i].key != EMPTY && s->e[i].key != TOMB)
            out[n++] = s->e[i];
    size_t used = (size_t)s->used;
    unlock(&s->lock);
    return used > n ? used : n;
}

void ml_addrtab_stats(ml_addrtab_stats_t *st)
{
    st->entries = st->bytes = st->replaced = st->nomem = 0;
    lock(&tables_lock);
    for (ml_addrtab_t *t = tables; t; t = t->next_table) {
        for (int i = 0; i < ML_ADDR_SHARDS; i++) {
            ml_addr_shard_t *s = &t->shard[i];
            lock(&s->lock);
            st->entries += s->used;
            st->bytes += s->log2cap ? ((uint64_t)sizeof(ml_addr_entry_t) << s->log2cap) : 0;
            unlock(&s->lock);
        }
        st->bytes += sizeof *t;
        st->replaced += atomic_load_explicit(&t->replaced, memory_order_relaxed);
        st->nomem += atomic_load_explicit(&t->nomem, memory_order_relaxed);
    }
    unlock(&tables_lock);
}

void ml_addrtab_lock_all(void)
{
    lock(&tables_lock);
    for (ml_addrtab_t *t = tables; t; t = t->next_table)
        for (int i = 0; i < ML_ADDR_SHARDS; i++)
            lock(&t->shard[i].lock);
}

void ml_addrtab_unlock_all(void)
{
    for (ml_addrtab_t *t = tables; t; t = t->next_table)
        for (int i = 0; i < ML_ADDR_SHARDS; i++)
            unlock(&t->shard[i].lock);
    unlock(&tables_lock);
}
