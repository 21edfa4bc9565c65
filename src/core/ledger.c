/* ledger.c — the lock-free stack table (see ledger.h).
 *
 * How it works. A stack is hashed while it is captured. The table is an
 * open-addressing array of 64-bit slots, twice the stack capacity, probed
 * linearly from hash & mask; a slot holds 40 more bits of the hash (the tag)
 * and a 24-bit stack id, 0 while the entry is being made. Interning a stack:
 *   1. walk the probe sequence;
 *   2. a slot whose tag matches and whose id is published is compared word
 *      by word against the stored frames; equal means found;
 *   3. an empty slot is claimed with one CAS (tag, id 0), a dense id is
 *      taken from a counter, the frames are copied into an append-only word
 *      store, the stack's info is written, and the slot is completed with a
 *      release store. Nothing is ever removed, so a published slot never
 *      changes. Eight-byte slots keep the table — the one part touched at
 *      random — at 16 bytes per stack of capacity.
 * A slot that is claimed but not yet published is skipped, not waited for:
 * waiting could spin forever on a thread that died in fork() (the child
 * inherits the half-made slot). Skipping may create a second entry for the
 * same stack; the snapshot reader sums entries with equal frames, so the
 * counts stay exact.
 *
 * Counters live apart from the slots, indexed by the dense id, one array per
 * shard; each thread adds only to its own shard. Dense ids keep the touched
 * memory proportional to the stacks seen, not to the table's capacity.
 *
 * Invariants: ids < ML_STACK_FIRST are overflow entries and never sit in a
 * slot (a stack that did not fit sits there as overflow_mark()); an id's info and words are immutable once `ready` is set; a slot of
 * 0 is empty. */
#include "core/ledger.h"
#include "common/config.h"
#include "common/io.h"
#include "core/sysmem.h"

#include <pthread.h>
#include <string.h>

typedef _Atomic uint64_t slot_t; /* tag << 24 | id */
#define ID_BITS 24
#define ID_MASK ((1u << ID_BITS) - 1)

static inline uint64_t tag_of(uint64_t hash)
{
    uint64_t t = hash >> ID_BITS;
    return t ? t : 1;
}

typedef struct {
    uint32_t words_off;
    uint16_t n;
    uint8_t domain;
    _Atomic uint8_t ready;
    uint32_t modgen;
    uint32_t pad;
} info_t;

#define MAX_PROBE 128
#define AVG_WORDS 48 /* word store sized for this many words per stack */

ml_counts_t *ml_counts[ML_SHARDS];

/* shard ownership: bit i set while a thread owns shard i */
static _Atomic uint32_t owned;
/* shards ever used (the highest + 1): the writer reads no further, so it
 * never maps pages of shards no thread touched */
static _Atomic uint32_t shards_used = ML_SHARDS;
static _Atomic bool shared_used = true; /* the shared shard ever written */
static pthread_key_t release_key;
static bool release_key_ok;

static void release_shard(void *arg)
{
    (void)arg;
    uint32_t s = ml_self.shard;
    /* counts made after this (later destructors) go to the shared shard */
    atomic_store_explicit(&shared_used, true, memory_order_release);
    ml_self.shard = ML_SHARD_SHARED + 1;
    if (s && s - 1 != ML_SHARD_SHARED)
        atomic_fetch_and_explicit(&owned, ~(1u << (s - 1)), memory_order_release);
}

void ml_ledger_claim_shard(void)
{
    uint32_t cur = atomic_load_explicit(&owned, memory_order_relaxed);
    for (;;) {
        uint32_t free_bits = ~cur & ((1u << ML_SHARD_SHARED) - 1);
        if (!free_bits || !release_key_ok) {
            atomic_store_explicit(&shared_used, true, memory_order_release);
            ml_self.shard = ML_SHARD_SHARED + 1;
            return;
        }
        uint32_t bit = (uint32_t)__builtin_ctz(free_bits);
        if (atomic_compare_exchange_weak_explicit(&owned, &cur, cur | (1u << bit), memory_order_acquire,
                                                  memory_order_relaxed)) {
            ml_self.shard = bit + 1;
            uint32_t used = atomic_load_explicit(&shards_used, memory_order_relaxed);
            while (used < bit + 1 && !atomic_compare_exchange_weak_explicit(&shards_used, &used, bit + 1,
                                                                            memory_order_release,
                                                                            memory_order_relaxed))
                ;
            /* any non-NULL value: the destructor runs at thread exit */
            pthread_setspecific(release_key, (void *)1);
            return;
        }
    }
}

void ml_ledger_after_fork_child(void)
{
    uint32_t s = ml_self.shard;
    atomic_store_explicit(&owned, s && s - 1 != ML_SHARD_SHARED ? 1u << (s - 1) : 0, memory_order_relaxed);
}

static slot_t *slots;
static uint64_t slot_mask;
static info_t *infos;
static uint32_t capacity;
static _Atomic uint32_t next_id;
static uint64_t *words_store;
static uint64_t words_cap;
static _Atomic uint64_t words_used;
static _Atomic uint64_t overflowed;
static uint32_t (*generation_fn)(void);

void ml_ledger_set_generation_fn(uint32_t (*fn)(void)) { generation_fn = fn; }

bool ml_ledger_init(uint32_t cap)
{
    uint64_t nslots = 1;
    while (nslots < (uint64_t)cap * 2)
        nslots <<= 1;
    capacity = cap + ML_STACK_FIRST;
    words_cap = (uint64_t)cap * AVG_WORDS;
    slots = ml_sysmem_map(nslots * sizeof(slot_t));
    infos = ml_sysmem_map((size_t)capacity * sizeof(info_t));
    words_store = ml_sysmem_map(words_cap * sizeof(uint64_t));
    bool ok = slots && infos && words_store;
    for (int s = 0; s < ML_SHARDS && ok; s++) {
        ml_counts[s] = ml_sysmem_map((size_t)capacity * sizeof(ml_counts_t));
        ok = ml_counts[s] != NULL;
    }
    if (!ok) { /* give the address space back: the program runs on without us */
        ml_sysmem_unmap(slots, nslots * sizeof(slot_t));
        ml_sysmem_unmap(infos, (size_t)capacity * sizeof(info_t));
        ml_sysmem_unmap(words_store, words_cap * sizeof(uint64_t));
        for (int s = 0; s < ML_SHARDS; s++) {
            ml_sysmem_unmap(ml_counts[s], (size_t)capacity * sizeof(ml_counts_t));
            ml_counts[s] = NULL;
        }
        slots = NULL;
        infos = NULL;
        words_store = NULL;
        return false;
    }
    release_key_ok = pthread_key_create(&release_key, release_shard) == 0;
    /* with the key, threads own shards from 0 up; without it all share the last */
    atomic_store_explicit(&shards_used, release_key_ok ? 0 : ML_SHARDS, memory_order_relaxed);
    atomic_store_explicit(&shared_used, !release_key_ok, memory_order_relaxed);
    slot_mask = nslots - 1;
    for (uint32_t d = 0; d < ML_STACK_FIRST; d++) {
        infos[d].domain = (uint8_t)d;
        atomic_store_explicit(&infos[d].ready, 1, memory_order_release);
    }
    atomic_store_explicit(&next_id, ML_STACK_FIRST, memory_order_relaxed);
    return true;
}

uint64_t ml_stack_hash(unsigned domain, const uint64_t *words, unsigned n)
{
    uint64_t h = ml_hash_begin();
    for (unsigned i = 0; i < n; i++)
        h = ml_hash_word(h, words[i]);
    return ml_hash_end(h, domain, n);
}

static bool same(uint32_t id, unsigned domain, const uint64_t *words, unsigned n)
{
    const info_t *in = &infos[id];
    return in->n == n && in->domain == domain &&
           (n == 0 || memcmp(&words_store[in->words_off], words, n * sizeof(uint64_t)) == 0);
}

/* The id a slot holds for a stack that came after the table was full:
 * the top ids, which no stack reaches (ML_MAX_STACKS is below them). A tag
 * that matches is taken as the same stack without comparing frames: any
 * stack not in the table is an overflow anyway. */
static inline uint32_t overflow_mark(unsigned domain) { return ID_MASK - domain; }
_Static_assert(ML_MAX_STACKS <= ID_MASK - ML_DOM_COUNT, "stack ids would reach the overflow marks");
static _Atomic bool told_full;

static uint32_t fill(slot_t *s, uint64_t tag, unsigned domain, const uint64_t *words, unsigned n)
{
    uint32_t id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    uint64_t off = atomic_fetch_add_explicit(&words_used, n, memory_order_relaxed);
    if (id >= capacity || off + n > words_cap || off > UINT32_MAX) {
        /* The slot keeps the hash and says "overflow": the next allocation
         * at this stack finds it there instead of claiming one more slot,
         * which would fill the slots too and make every later lookup probe
         * to the limit. */
        atomic_store_explicit(s, (tag << ID_BITS) | overflow_mark(domain), memory_order_release);
        atomic_fetch_add_explicit(&overflowed, 1, memory_order_relaxed);
        if (!atomic_exchange_explicit(&told_full, true, memory_order_relaxed))
            ml_warn("the stack table is full (MEMLEDGER_STACKS=%u): allocations at stacks not seen before "
                    "are counted from now on without their stack; raise MEMLEDGER_STACKS "
                    "or sample (MEMLEDGER_SAMPLE_BYTES, see docs/config.md)",
                    (unsigned)(capacity - ML_STACK_FIRST));
        return ML_STACK_OVERFLOW(domain);
    }
    if (n)
        memcpy(&words_store[off], words, n * sizeof(uint64_t));
    info_t *in = &infos[id];
    in->words_off = (uint32_t)off;
    in->n = (uint16_t)n;
    in->domain = (uint8_t)domain;
    in->modgen = generation_fn ? generation_fn() : 0;
    atomic_store_explicit(&in->ready, 1, memory_order_release);
    atomic_store_explicit(s, (tag << ID_BITS) | id, memory_order_release);
    return id;
}

uint32_t ml_ledger_intern(unsigned domain, const uint64_t *words, unsigned n, uint64_t hash)
{
    if (ML_UNLIKELY(n > UINT16_MAX))
        n = UINT16_MAX;
    const uint64_t tag = tag_of(hash);
    uint64_t i = hash & slot_mask;
    for (unsigned probe = 0; probe < MAX_PROBE; probe++, i = (i + 1) & slot_mask) {
        slot_t *s = &slots[i];
        uint64_t v = atomic_load_explicit(s, memory_order_acquire);
        if (v == 0) {
            if (atomic_compare_exchange_strong_explicit(s, &v, tag << ID_BITS, memory_order_acq_rel,
                                                        memory_order_acquire))
                return fill(s, tag, domain, words, n);
            /* lost the race: v is what the winner put there */
        }
        if ((v >> ID_BITS) != tag)
            continue;
        uint32_t id = (uint32_t)(v & ID_MASK);
        if (id > ID_MASK - ML_DOM_COUNT) { /* a stack that did not fit */
            if (id == overflow_mark(domain)) {
                atomic_fetch_add_explicit(&overflowed, 1, memory_order_relaxed);
                return ML_STACK_OVERFLOW(domain);
            }
            continue;
        }
        if (id && same(id, domain, words, n))
            return id;
    }
    atomic_fetch_add_explicit(&overflowed, 1, memory_order_relaxed);
    return ML_STACK_OVERFLOW(domain);
}

uint32_t ml_ledger_ids(void)
{
    uint32_t n = atomic_load_explicit(&next_id, memory_order_acquire);
    return n < capacity ? n : capacity;
}

bool ml_ledger_stack(uint32_t id, ml_stack_view_t *v)
{
    if (id >= capacity)
        return false;
    const info_t *in = &infos[id];
    if (!atomic_load_explicit(&in->ready, memory_order_acquire))
        return false;
    v->domain = in->domain;
    v->n = in->n;
    v->words = &words_store[in->words_off];
    v->modgen = in->modgen;
    return true;
}

void ml_ledger_totals(uint32_t id, ml_totals_t *t)
{
    uint64_t fb = 0, fc = 0, ab = 0, ac = 0;
    /* only shards some thread wrote: reading the others would map pages */
    uint32_t n = atomic_load_explicit(&shards_used, memory_order_acquire);
    uint32_t shard[ML_SHARDS], k = 0;
    for (uint32_t s = 0; s < n && s < ML_SHARD_SHARED; s++)
        shard[k++] = s;
    if (atomic_load_explicit(&shared_used, memory_order_acquire))
        shard[k++] = ML_SHARD_SHARED;
    /* Frees first (acquire), then allocations: see ml_ledger_count_free. */
    for (uint32_t i = 0; i < k; i++) {
        uint32_t s = shard[i];
        fb += atomic_load_explicit(&ml_counts[s][id].free_bytes, memory_order_acquire);
        fc += atomic_load_explicit(&ml_counts[s][id].free_count, memory_order_acquire);
    }
    for (uint32_t i = 0; i < k; i++) {
        uint32_t s = shard[i];
        ab += atomic_load_explicit(&ml_counts[s][id].alloc_bytes, memory_order_acquire);
        ac += atomic_load_explicit(&ml_counts[s][id].alloc_count, memory_order_acquire);
    }
    t->total_bytes = ab;
    t->total_count = ac;
    t->live_bytes = ab >= fb ? ab - fb : 0;
    t->live_count = ac >= fc ? ac - fc : 0;
}

void ml_ledger_stats(ml_ledger_stats_t *s)
{
    s->capacity = capacity - ML_STACK_FIRST;
    s->used = ml_ledger_ids();
    s->overflowed = atomic_load_explicit(&overflowed, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(&words_used, memory_order_relaxed);
    s->words_used = w < words_cap ? w : words_cap;
    s->words_cap = words_cap;
}

uint64_t ml_ledger_resident(void)
{
    uint64_t r = ml_sysmem_resident(slots, (slot_mask + 1) * sizeof(slot_t)) +
                 ml_sysmem_resident(infos, (size_t)capacity * sizeof(info_t)) +
                 ml_sysmem_resident(words_store, words_cap * sizeof(uint64_t));
    uint32_t n = atomic_load_explicit(&shards_used, memory_order_acquire);
    for (uint32_t s = 0; s < n && s < ML_SHARD_SHARED; s++)
        r += ml_sysmem_resident(ml_counts[s], (size_t)capacity * sizeof(ml_counts_t));
    if (atomic_load_explicit(&shared_used, memory_order_acquire))
        r += ml_sysmem_resident(ml_counts[ML_SHARD_SHARED], (size_t)capacity * sizeof(ml_counts_t));
    return r;
}
