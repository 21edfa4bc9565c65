/* ledger.h — the stacks: one id per distinct (domain, call stack), holding
 * live and total bytes and counts.
 * Owns: turning a captured stack into a stable id (through the call tree
 * of stacktree.h), the frame-word encoding, the per-thread-sharded
 * counters, the ceiling and what happens past it, and the read side the
 * snapshot writer uses.
 * Must never lock on the allocation path but for a first sighting (the
 * tree's lock), allocate through the hooked allocator, or fail the caller:
 * past the ceiling a stack is kept smaller, then counted in its domain's
 * overflow entry, and the snapshot says how many. */
#ifndef ML_LEDGER_H
#define ML_LEDGER_H

#include "common/common.h"
#include "common/format.h"
#include "core/thread.h"
#include <stdatomic.h>

/* ---- frame words ----
 * A stack is an array of 64-bit words, innermost first. What a capture
 * produces are *raw* words, compared as they are by the caches and by the
 * per-thread path memo (cheap, but meaningful only in this process and
 * only until code is unloaded):
 *   native   a return address (the call site + 1 instruction);
 *   python   ML_WORD_PY | code serial << 32 | instruction byte address
 *            (32-bit two's complement, -1: not started; python/pyframes.h);
 *   mark     ML_MARK_PY_ELIDED(n), put by the Python merge in place of the
 *            middle of a deep Python stack; a mark is its own encoding.
 * The tree holds *encoded* words, stable identities that snapshots name:
 *   native   (module index + 1) << 40 | offset from the module's load bias
 *            (modules.h); ML_WORD_ABS | address when in no known module
 *            (JIT code, or a library just loaded that a hook could not
 *            register: another thread was refreshing the registry), with
 *            the registry's generation then (below): the same address
 *            after a library was unloaded and another loaded there is
 *            another word, and each is named by the module of its time;
 *   python   ML_WORD_PY | code serial << 32 | line + 1 (0: no line);
 *   mark     ML_WORD_MARK | what: not a frame (a domain, elided frames).
 * Python frames are told apart by line, not instruction: two allocations
 * on one line are one frame. */
#define ML_WORD_PY (1ull << 63)
#define ML_WORD_ABS (1ull << 62)
#define ML_WORD_MARK (3ull << 62)
#define ML_WORD_KIND(w) ((w) & (3ull << 62))
#define ML_WORD_MODULE_SHIFT 40
#define ML_WORD_OFFSET_MASK ((1ull << ML_WORD_MODULE_SHIFT) - 1)
/* An address word: the address in bits 0-47 and (generation - 1) mod 2^13
 * in bits 48-60; an address of 2^48 or more (5-level page tables) is kept
 * whole in bits 0-60 with bit 61 set, and without a generation. */
#define ML_WORD_ABS_WIDE (1ull << 61)
#define ML_WORD_ABS_GEN_SHIFT 48
#define ML_WORD_ABS_GEN_MASK 0x1fffu
static inline uint64_t ml_word_abs(uintptr_t pc, uint32_t gen)
{
    if ((uint64_t)pc >> ML_WORD_ABS_GEN_SHIFT)
        return ML_WORD_ABS | ML_WORD_ABS_WIDE | ((uint64_t)pc & (ML_WORD_ABS_WIDE - 1));
    return ML_WORD_ABS | (uint64_t)((gen - 1) & ML_WORD_ABS_GEN_MASK) << ML_WORD_ABS_GEN_SHIFT | pc;
}
static inline uintptr_t ml_word_abs_pc(uint64_t w)
{
    return (uintptr_t)(w & (w & ML_WORD_ABS_WIDE ? ML_WORD_ABS_WIDE - 1 : (1ull << ML_WORD_ABS_GEN_SHIFT) - 1));
}
/* The generation an address word was made under, given the current one
 * (generations only grow; 2^13 changes back at most). */
static inline uint32_t ml_word_abs_gen(uint64_t w, uint32_t now)
{
    if (w & ML_WORD_ABS_WIDE)
        return now;
    uint32_t tag = (uint32_t)(w >> ML_WORD_ABS_GEN_SHIFT) & ML_WORD_ABS_GEN_MASK;
    return now - ((now - 1 - tag) & ML_WORD_ABS_GEN_MASK);
}
#define ML_MARK_DOMAIN(d) (ML_WORD_MARK | 0x100u | (d))
#define ML_MARK_ELIDED (ML_WORD_MARK | 0x200u) /* native frames left out: the store was full */
/* n Python frames left out of the middle of a deep stack (python/pyframes.c) */
#define ML_MARK_PY_ELIDED(n) (ML_WORD_MARK | 0x300u | (uint64_t)(uint32_t)(n) << 32)
#define ML_MARK_IS_PY_ELIDED(w) (((w) & (ML_WORD_MARK | 0xffffffffull)) == (ML_WORD_MARK | 0x300u))
#define ML_MARK_PY_ELIDED_COUNT(w) ((uint32_t)((w) >> 32) & 0x3fffffffu)

/* The most words a stack keeps (the innermost ones). */
#define ML_LEDGER_MAX_WORDS 512

/* How raw Python words become encoded ones (python/pyframes.c sets it:
 * the line of the instruction). Without one, the instruction address
 * stands as the line. */
void ml_ledger_set_python_encoder(uint64_t (*fn)(uint64_t raw));

/* The encoded word of one raw word. */
uint64_t ml_ledger_encode(uint64_t raw);

/* ---- stacks and counters ---- */

/* Counters are split in shards, one array of ml_counts_t per shard. A
 * thread claims a shard of its own the first time it counts and gives it
 * back when it exits; while it owns one, its updates are plain loads and
 * stores (no lock prefix, no shared cache line). Threads beyond
 * ML_SHARDS - 1 share the last shard and update it atomically. The writer
 * sums the shards. A shard's array is mapped in chunks as ids reach them,
 * so memory follows the stacks a thread counted, not the ceiling. */
#define ML_SHARDS 16
#define ML_SHARD_SHARED (ML_SHARDS - 1)
#define ML_COUNT_CHUNK_LOG2 12

typedef struct {
    _Atomic uint64_t alloc_bytes, alloc_count;
    _Atomic uint64_t free_bytes, free_count;
} ml_counts_t;

extern ml_counts_t *_Atomic *ml_counts[ML_SHARDS];

/* Gives the calling thread a shard (sets ml_self.shard to shard + 1). */
void ml_ledger_claim_shard(void);

/* Ids below ML_STACK_FIRST are the overflow entries, one per domain: they
 * take the allocations whose stack found no room even made smaller. */
#define ML_STACK_OVERFLOW(domain) ((uint32_t)(domain))
#define ML_STACK_FIRST ((uint32_t)ML_DOM_COUNT)

/* Sets up the stacks for a ceiling of max_stacks (and the tree for 16 nodes
 * per stack) in memory mapped by the library, touched as used. Returns
 * false on error (the caller then leaves tracking off). */
bool ml_ledger_init(uint32_t max_stacks);

/* Collects (see ledger.c): when the tree has doubled since the last time,
 * or always with `force`. Only from one thread at a time, the dumper's
 * (it allocates, and waits for the hooks). Returns false (nothing more to
 * do soon: ml_dumper_service_fn's contract). */
bool ml_ledger_collect(bool force);

/* Called (from a hook) when the tree has grown enough to collect: init.c
 * hands in the dumper's wake-up. */
void ml_ledger_set_collect_waker(void (*fn)(void));

/* While any record is held — forgotten by a free the real call may still
 * refuse, and then put back — the collector gives no stack id back
 * (track.h's ml_track_free_held). Seq_cst, paired with the collector
 * reading counts and then holds. */
void ml_ledger_hold(void);
void ml_ledger_unhold(void);

/* Thread exit: gives the counter shard and the path memo back
 * (core/thread.c calls it). */
void ml_ledger_thread_exit(void);

/* The id of (domain, raw[0..n)), innermost first, adding it if new. Never
 * fails: past the ceiling the stack is kept with its Python frames and its
 * innermost native frames only, and past that it is the domain's overflow
 * id. */
uint32_t ml_ledger_intern(unsigned domain, const uint64_t *raw, unsigned n);

/* The slow part of ml_ledger_my_counts: maps the chunk of `id`. NULL when
 * it cannot (the count is then dropped and said: problem counts_dropped). */
ml_counts_t *ml_ledger_counts_slow(uint32_t id);

static inline ml_counts_t *ml_ledger_my_counts(uint32_t id)
{
    if (ML_UNLIKELY(!ml_self.shard))
        ml_ledger_claim_shard();
    ml_counts_t *chunk = atomic_load_explicit(&ml_counts[ml_self.shard - 1][id >> ML_COUNT_CHUNK_LOG2],
                                              memory_order_acquire);
    if (ML_UNLIKELY(!chunk))
        return ml_ledger_counts_slow(id);
    return &chunk[id & ((1u << ML_COUNT_CHUNK_LOG2) - 1)];
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
    if (ML_UNLIKELY(!c))
        return;
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
    if (ML_UNLIKELY(!c))
        return;
    bool own = ml_self.shard - 1 != ML_SHARD_SHARED;
    ml_counter_add(&c->free_bytes, bytes, own, memory_order_release);
    ml_counter_add(&c->free_count, count, own, memory_order_release);
}

/* Takes back a count this thread added (a failed realloc). */
static inline void ml_ledger_uncount_free(uint32_t id, uint64_t bytes, uint64_t count)
{
    ml_counts_t *c = ml_ledger_my_counts(id);
    if (ML_UNLIKELY(!c))
        return;
    bool own = ml_self.shard - 1 != ML_SHARD_SHARED;
    ml_counter_add(&c->free_bytes, (uint64_t)0 - bytes, own, memory_order_release);
    ml_counter_add(&c->free_count, (uint64_t)0 - count, own, memory_order_release);
}

/* fork(): before, every lock of the store is taken (a collection in
 * progress is finished first); after, released in the parent; in the
 * child only the calling thread exists, every other shard is free again. */
void ml_ledger_before_fork(void);
void ml_ledger_after_fork_parent(void);
void ml_ledger_after_fork_child(void);

/* ---- read side (snapshot writer) ---- */

typedef struct {
    unsigned domain;
    uint32_t leaf; /* the innermost frame's node; ML_NODE_ROOT for an empty or overflow stack */
    bool overflow;
} ml_stack_view_t;

typedef struct {
    uint64_t live_bytes, live_count, total_bytes, total_count;
} ml_totals_t;

/* Ids are below this (some may be free: ml_ledger_stack says). */
uint32_t ml_ledger_ids(void);
/* The current tree, whose nodes the stacks' leaves are (stacktree.h). */
struct ml_tree;
const struct ml_tree *ml_ledger_tree(void);
/* Fills *v for a published id; returns false while the id is not ready. */
bool ml_ledger_stack(uint32_t id, ml_stack_view_t *v);
/* The encoded words of stack id, innermost first, into out[max]; returns
 * how many (for tests and tools; the writer walks the tree itself). */
unsigned ml_ledger_stack_words(uint32_t id, uint64_t *out, unsigned max);
/* Sums the shards of one id. */
void ml_ledger_totals(uint32_t id, ml_totals_t *t);
/* What collected stacks of a domain had allocated in all (their totals
 * leave with them; the domain's stay exact with these). */
void ml_ledger_retired(unsigned domain, uint64_t *bytes, uint64_t *count);

typedef struct {
    uint32_t capacity;       /* the stack ceiling */
    uint32_t used;           /* stacks held now, overflow entries included */
    uint32_t nodes, nodes_capacity;
    uint64_t collections;    /* times the store was collected */
    uint64_t collected;      /* stacks given back by them */
    uint64_t degraded;       /* stacks kept smaller because the store was full */
    uint64_t overflowed;     /* allocations counted in an overflow entry */
    uint64_t counts_dropped; /* counts lost for want of counter memory */
} ml_ledger_stats_t;

void ml_ledger_stats(ml_ledger_stats_t *s);

/* Resident bytes of the store: tree, stack records and counters. */
uint64_t ml_ledger_resident(void);

#endif
