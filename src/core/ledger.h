/* ledger.h — the stack table: one entry per distinct (domain, call stack),
 * holding live and total bytes and counts.
 * Owns: interning a captured stack into a stable id, the per-thread-sharded
 * counters, and the read side the snapshot writer uses.
 * Must never lock, allocate through the hooked allocator, or make a syscall
 * on the allocation path; must never fail the caller (a full table counts
 * into a per-domain overflow entry). */
#ifndef ML_LEDGER_H
#define ML_LEDGER_H

#include "common/common.h"
#include "common/format.h"
#include "core/thread.h"
#include <stdatomic.h>

/* A stack is an array of 64-bit words, innermost first. A native frame is
 * one word: a return address (the call site + 1 instruction). A Python
 * frame is two words: ML_WORD_PY | x, then y (see python/pyframes.h). */
#define ML_WORD_PY (1ull << 63)

/* Counters are split in shards, one array of ml_counts_t per shard. A
 * thread claims a shard of its own the first time it counts and gives it
 * back when it exits; while it owns one, its updates are plain loads and
 * stores (no lock prefix, no shared cache line). Threads beyond
 * ML_SHARDS - 1 share the last shard and update it atomically. The writer
 * sums the shards. */
#define ML_SHARDS 16
#define ML_SHARD_SHARED (ML_SHARDS - 1)

typedef struct {
    _Atomic uint64_t alloc_bytes, alloc_count;
    _Atomic uint64_t free_bytes, free_count;
} ml_counts_t;

extern ml_counts_t *ml_counts[ML_SHARDS];

/* Gives the calling thread a shard (sets ml_self.shard to shard + 1). */
void ml_ledger_claim_shard(void);

/* Ids below ML_DOM_COUNT are the overflow entries, one per domain: they take
 * the allocations whose stack found no room. */
#define ML_STACK_OVERFLOW(domain) ((uint32_t)(domain))
#define ML_STACK_FIRST ((uint32_t)ML_DOM_COUNT)

/* Sets up the table for `capacity` stacks in memory mapped by the library.
 * Returns false on error (the caller then leaves tracking off). */
bool ml_ledger_init(uint32_t capacity);

/* Stack hashing, word by word, so the unwinder can hash while it walks:
 *   h = ml_hash_begin(); for each word: h = ml_hash_word(h, w);
 *   hash = ml_hash_end(h, domain, n);
 * Each step is a bijection of the state (odd multiplier), the end mixes
 * high bits down. Equal hashes are always confirmed word by word. */
static inline uint64_t ml_hash_begin(void) { return 0x9e3779b97f4a7c15ull; }
static inline uint64_t ml_hash_word(uint64_t h, uint64_t w) { return (h ^ w) * 0xff51afd7ed558ccdull; }
static inline uint64_t ml_hash_end(uint64_t h, unsigned domain, unsigned n)
{
    h ^= ((uint64_t)domain << 56) ^ ((uint64_t)n << 40);
    h ^= h >> 32;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h ? h : 1;
}

/* Hashes a whole stack (the same value as the step-by-step form). */
uint64_t ml_stack_hash(unsigned domain, const uint64_t *words, unsigned n);

/* Returns the id of (domain, words[0..n)), adding it if new. Never fails:
 * returns the domain's overflow id when the table or its frame store is full. */
uint32_t ml_ledger_intern(unsigned domain, const uint64_t *words, unsigned n, uint64_t hash);

/* Called once per new stack, before it is published; returns the module
 * generation its frames belong to (modules.c's ml_modules_sync in the
 * library; unit tests leave it unset). */
void ml_ledger_set_generation_fn(uint32_t (*fn)(void));

static inline ml_counts_t *ml_ledger_my_counts(uint32_t id)
{
    if (ML_UNLIKELY(!ml_self.shard))
        ml_ledger_claim_shard();
    return &ml_counts[ml_self.shard - 1][id];
}

static inline void ml_counter_add(_Atomic uint64_t *c, uint64_t v, bool own, memory_order mo)
{
    if (ML_LIKELY(own))
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, mo);
    else
        atomic_fetch_add_explicit(c, v, mo);
}

static inline void ml_ledger_count_alloc(uint32_t id, uint64_t bytes, uint64_t count)
{
    ml_counts_t *c = ml_ledger_my_counts(id);
    bool own = ml_self.shard - 1 != ML_SHARD_SHARED;
    ml_counter_add(&c->alloc_bytes, bytes, own, memory_order_relaxed);
    ml_counter_add(&c->alloc_count, count, own, memory_order_release);
}

/* Release order, paired with the writer reading frees before allocations:
 * a free the writer sees always has its allocation seen too, so live values
 * in a snapshot never go negative. */
static inline void ml_ledger_count_free(uint32_t id, uint64_t bytes, uint64_t count)
{
    ml_counts_t *c = ml_ledger_my_counts(id);
    bool own = ml_self.shard - 1 != ML_SHARD_SHARED;
    ml_counter_add(&c->free_bytes, bytes, own, memory_order_release);
    ml_counter_add(&c->free_count, count, own, memory_order_release);
}

/* Takes back a count this thread added (a failed realloc). */
static inline void ml_ledger_uncount_free(uint32_t id, uint64_t bytes, uint64_t count)
{
    ml_counts_t *c = ml_ledger_my_counts(id);
    bool own = ml_self.shard - 1 != ML_SHARD_SHARED;
    ml_counter_add(&c->free_bytes, (uint64_t)0 - bytes, own, memory_order_release);
    ml_counter_add(&c->free_count, (uint64_t)0 - count, own, memory_order_release);
}

/* fork(): in the child only the calling thread exists; every other shard
 * is free again. */
void ml_ledger_after_fork_child(void);

/* ---- read side (snapshot writer) ---- */

typedef struct {
    unsigned domain;
    unsigned n;            /* words */
    const uint64_t *words;
    uint32_t modgen;
} ml_stack_view_t;

typedef struct {
    uint64_t live_bytes, live_count, total_bytes, total_count;
} ml_totals_t;

/* Number of ids handed out so far (some may still be in the making). */
uint32_t ml_ledger_ids(void);
/* Fills *v for a published id; returns false while the id is not ready. */
bool ml_ledger_stack(uint32_t id, ml_stack_view_t *v);
/* Sums the shards of one id. */
void ml_ledger_totals(uint32_t id, ml_totals_t *t);

typedef struct {
    uint32_t capacity;       /* stacks the table was sized for */
    uint32_t used;           /* ids handed out, overflow entries included */
    uint64_t overflowed;     /* interning attempts that fell into overflow */
    uint64_t words_used, words_cap;
} ml_ledger_stats_t;

void ml_ledger_stats(ml_ledger_stats_t *s);

/* Resident bytes of the stack table and its counters. */
uint64_t ml_ledger_resident(void);

#endif
