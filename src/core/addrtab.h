/* addrtab.h — address → (stack id, size) for every live tracked allocation,
 * so a free is charged to the stack that allocated it.
 * Owns: a hash table split into many independently locked shards, in memory
 * the library maps itself. Must never allocate through the hooked allocator
 * and never hold a shard lock across a call out of this file. */
#ifndef ML_ADDRTAB_H
#define ML_ADDRTAB_H

#include "common/common.h"
#include <stdatomic.h>

#define ML_ADDR_SHARDS 512
#define ML_ADDR_SIZE_BITS 40 /* sizes up to 1 TiB */
#define ML_ADDR_SIZE_MAX ((1ull << ML_ADDR_SIZE_BITS) - 1)

typedef struct {
    uint64_t key;
    uint64_t val; /* id << 40 | size */
} ml_addr_entry_t;

typedef struct {
    _Alignas(64) _Atomic int lock;
    uint32_t log2cap; /* 0 until the first insert */
    uint64_t used, tombs;
    ml_addr_entry_t *e;
} ml_addr_shard_t;

typedef struct ml_addrtab {
    const char *name;
    ml_addr_shard_t shard[ML_ADDR_SHARDS];
    struct ml_addrtab *next_table; /* all tables, for fork */
    _Atomic uint64_t replaced;     /* inserts that found the address still present */
    _Atomic uint64_t nomem;        /* inserts dropped because the table could not grow */
} ml_addrtab_t;

/* Registers a zero-initialised table (for fork handling). */
void ml_addrtab_register(ml_addrtab_t *t, const char *name);

enum ml_addr_insert {
    ML_ADDR_NEW,      /* recorded */
    ML_ADDR_REPLACED, /* recorded over a stale record of the same address (a
                         free the ledger never saw): old_id and old_size hold it */
    ML_ADDR_DROPPED,  /* not recorded: the table could not grow (counted) */
};

/* Records addr. Sizes above ML_ADDR_SIZE_MAX are clamped. */
enum ml_addr_insert ml_addrtab_insert(ml_addrtab_t *t, uint64_t addr, uint32_t id, uint64_t size,
                                      uint32_t *old_id, uint64_t *old_size);

/* Starts loading the slot addr will use, so the cache miss overlaps the
 * stack capture that comes before the insert. Reads the shard without its
 * lock: a stale answer only prefetches the wrong line. */
static inline void ml_addrtab_prefetch(const ml_addrtab_t *t, uint64_t addr)
{
    uint64_t x = addr;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    const ml_addr_shard_t *s = &t->shard[x & (ML_ADDR_SHARDS - 1)];
    uint32_t log2 = __atomic_load_n(&s->log2cap, __ATOMIC_RELAXED);
    const ml_addr_entry_t *e = __atomic_load_n(&s->e, __ATOMIC_RELAXED);
    if (e)
        __builtin_prefetch(&e[(x >> 9) & (((uint64_t)1 << log2) - 1)], 1);
}

/* Removes addr. Returns true and its record when it was present. */
bool ml_addrtab_remove(ml_addrtab_t *t, uint64_t addr, uint32_t *id, uint64_t *size);

/* Looks addr up without removing it. */
bool ml_addrtab_find(ml_addrtab_t *t, uint64_t addr, uint32_t *id, uint64_t *size);

/* Copies the live records of one shard (0 .. ML_ADDR_SHARDS-1) into
 * out[cap], under the shard's lock, and returns how many the shard holds:
 * when that is more than cap, only cap were copied (call again with more
 * room). For `memledger why` (python/whyheap.c), which reads every live
 * block on request; never from a hook. */
size_t ml_addrtab_copy_shard(ml_addrtab_t *t, unsigned shard, ml_addr_entry_t *out, size_t cap);

typedef struct {
    uint64_t entries;     /* live records */
    uint64_t bytes;       /* memory the tables map */
    uint64_t replaced, nomem;
} ml_addrtab_stats_t;

/* Sums every registered table (takes each shard lock briefly). */
void ml_addrtab_stats(ml_addrtab_stats_t *s);

/* fork(): the parent takes every lock before, both sides release after, so
 * the child never inherits a shard in the middle of a change. */
void ml_addrtab_lock_all(void);
void ml_addrtab_unlock_all(void);

#endif
