/* stacktree.c — a call tree of stacks (see stacktree.h).
 *
 * Nodes live in chunks of 65,536, each mapped when the first id in it is
 * handed out, so memory (address space included: a ulimit -v counts it)
 * follows the nodes made, not the ceiling. A node is written once, before
 * it is published, and never changes but for its `stack` field.
 *
 * A node's first child is kept in the node itself; only the others go in
 * the index. Most nodes have one child (a call chain below a new frame is
 * a chain of new nodes, each the first under the one before), so most
 * lookups read the parent — just visited — and the child made right after
 * it, and most additions touch no index at all.
 *
 * The index is open addressing with linear probing over 32-bit slots: a
 * node id (27 bits) and 5 more bits of the hash (the tag), so a probe
 * loads a node only when the tag matches. It grows by doubling when it is
 * 70% full: under the lock, every node is rehashed into a new mapping,
 * which is then published; the old mapping is kept (a reader may still be
 * probing it) but its pages are given back to the kernel, so a late reader
 * reads zeros there — an empty slot, that is a miss — and a miss is always
 * settled under the lock against the current index. Nothing is removed, so
 * a published slot never changes.
 *
 * Why a lock for additions: growing a lock-free table needs helpers and
 * forwarding marks on every slot; additions are first sightings of frames,
 * not allocations, and short, and the lock is never held across a call
 * out, so a spin is the simplest thing that is correct. */
#include "core/stacktree.h"
#include "core/sysmem.h"

#include <string.h>

#define TAG_SHIFT 27
#define ID_MASK ((1u << TAG_SHIFT) - 1)
#define FIRST_LOG2 12
#define MAX_LOG2 29

typedef struct {
    uint32_t mask;
    uint32_t used;
    _Atomic uint32_t slot[];
} index_t;

static inline uint64_t hash(uint32_t parent, uint64_t word)
{
    uint64_t h = (word ^ ((uint64_t)parent << 32 | parent)) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static inline uint32_t tag_of(uint64_t h) { return (uint32_t)(h >> 59); }

static bool remember(ml_tree_t *t, void *p, uint64_t bytes)
{
    if (t->nmaps >= ML_ARRAY_LEN(t->maps))
        return false;
    t->maps[t->nmaps].p = p;
    t->maps[t->nmaps++].bytes = bytes;
    return true;
}

/* populate: the caller fills it at once (a rehash), so every page is
 * touched anyway: one call rather than a fault a page */
static index_t *new_index(ml_tree_t *t, unsigned log2, bool populate)
{
    uint64_t slots = (uint64_t)1 << log2;
    uint64_t bytes = sizeof(index_t) + slots * sizeof(uint32_t);
    index_t *ix = populate ? ml_sysmem_map_populated(bytes) : ml_sysmem_map(bytes);
    if (!ix)
        return NULL;
    if (!remember(t, ix, bytes)) {
        ml_sysmem_unmap(ix, bytes);
        return NULL;
    }
    ix->mask = (uint32_t)(slots - 1);
    return ix;
}

#define CHUNK_BYTES (sizeof(ml_node_t) << ML_NODE_CHUNK_LOG2)

/* Maps the chunk of node n (lock held, or the tree not yet shared). */
static bool have_chunk(ml_tree_t *t, uint32_t n)
{
    uint32_t c = n >> ML_NODE_CHUNK_LOG2;
    if (atomic_load_explicit(&t->chunk[c], memory_order_relaxed))
        return true;
    ml_node_t *p = ml_sysmem_map(CHUNK_BYTES);
    if (!p)
        return false;
    atomic_store_explicit(&t->chunk[c], p, memory_order_release);
    return true;
}

ml_tree_t *ml_tree_new(uint32_t max_nodes, uint32_t gen, uint32_t expect)
{
    ml_tree_t *t = ml_sysmem_map(sizeof *t);
    if (!t)
        return NULL;
    t->capacity = max_nodes > ML_NODE_MAX ? ML_NODE_MAX : max_nodes;
    unsigned log2 = FIRST_LOG2;
    while (log2 < MAX_LOG2 && ((uint64_t)1 << log2) < (uint64_t)expect * 2) /* no more than half full */
        log2++;
    index_t *ix = have_chunk(t, 0) ? new_index(t, log2, false) : NULL;
    if (!ix) {
        ml_tree_free(t);
        return NULL;
    }
    atomic_store_explicit(&t->index, ix, memory_order_release);
    /* node 0 is the root: its word and parent are never looked at */
    ml_tree_node(t, ML_NODE_ROOT)->parent = ML_NODE_NONE;
    t->gen = gen;
    atomic_store_explicit(&t->count, 1, memory_order_release);
    return t;
}

void ml_tree_free(ml_tree_t *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->nmaps; i++)
        ml_sysmem_unmap(t->maps[i].p, (size_t)t->maps[i].bytes);
    for (uint32_t c = 0; c < ML_NODE_CHUNKS; c++)
        ml_sysmem_unmap(atomic_load_explicit(&t->chunk[c], memory_order_relaxed), CHUNK_BYTES);
    ml_sysmem_unmap(t, sizeof *t);
}

__attribute__((no_sanitize("thread"))) static inline bool same(const ml_tree_t *t, uint32_t id, uint32_t parent,
                                                               uint64_t word)
{
    /* immutable once published; the slot's acquire load ordered this read */
    const ml_node_t *n = ml_tree_node(t, id);
    return n->parent == parent && n->word == word;
}

uint32_t ml_tree_find(ml_tree_t *t, uint32_t parent, uint64_t word)
{
    uint32_t first = atomic_load_explicit(&ml_tree_node(t, parent)->first_child, memory_order_acquire);
    if (!first)
        return ML_NODE_NONE; /* no children at all */
    if (same(t, first, parent, word))
        return first;
    index_t *ix = atomic_load_explicit(&t->index, memory_order_acquire);
    uint64_t h = hash(parent, word);
    uint32_t tag = tag_of(h), mask = ix->mask, i = (uint32_t)h & mask;
    for (uint32_t probe = 0; probe <= mask; probe++, i = (i + 1) & mask) {
        uint32_t v = atomic_load_explicit(&ix->slot[i], memory_order_acquire);
        if (!v)
            return ML_NODE_NONE;
        if ((v >> TAG_SHIFT) == tag && same(t, v & ID_MASK, parent, word))
            return v & ID_MASK;
    }
    return ML_NODE_NONE;
}

void ml_tree_lock(ml_tree_t *t)
{
    while (atomic_exchange_explicit(&t->lock, 1, memory_order_acquire))
        while (atomic_load_explicit(&t->lock, memory_order_relaxed))
            __builtin_ia32_pause();
}

void ml_tree_unlock(ml_tree_t *t) { atomic_store_explicit(&t->lock, 0, memory_order_release); }

static void put(index_t *ix, uint32_t id, uint64_t h)
{
    uint32_t i = (uint32_t)h & ix->mask;
    while (atomic_load_explicit(&ix->slot[i], memory_order_relaxed))
        i = (i + 1) & ix->mask;
    atomic_store_explicit(&ix->slot[i], id | tag_of(h) << TAG_SHIFT, memory_order_release);
    ix->used++;
}

/* Doubles the index (lock held). False when it cannot: the old one stays. */
static bool grow(ml_tree_t *t)
{
    index_t *old = atomic_load_explicit(&t->index, memory_order_relaxed);
    unsigned log2 = (unsigned)__builtin_ctz(old->mask + 1) + 1;
    if (log2 > MAX_LOG2)
        return false;
    index_t *ix = new_index(t, log2, true);
    if (!ix)
        return false;
    for (uint32_t i = 0; i <= old->mask; i++) {
        uint32_t v = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (v) {
            const ml_node_t *n = ml_tree_node(t, v & ID_MASK);
            put(ix, v & ID_MASK, hash(n->parent, n->word));
        }
    }
    atomic_store_explicit(&t->index, ix, memory_order_release);
    ml_sysmem_discard(old, sizeof(index_t) + ((size_t)old->mask + 1) * sizeof(uint32_t));
    return true;
}

/* Past a tree's first 64 KiB of nodes, the node that starts a 64 KiB
 * stretch makes the whole stretch present in one call: nodes are handed
 * out in order, so a tree that got this far fills it, and a page faulted
 * in one at a time costs about twice as much (12 us against 6 on the
 * benchmark's machine, see docs/performance.md). 64 KiB, not a chunk, so
 * that the lock is held for at most 16 pages' worth. */
#define PREFAULT_BYTES 65536u
static inline void prefault(ml_tree_t *t, uint32_t n)
{
    uint32_t i = n & ((1u << ML_NODE_CHUNK_LOG2) - 1);
    size_t off = (size_t)i * sizeof(ml_node_t), start = off & ~(size_t)(PREFAULT_BYTES - 1);
    if (n * sizeof(ml_node_t) < PREFAULT_BYTES || (i && (off - sizeof(ml_node_t)) >= start))
        return; /* in the first stretch, or not the first node of its stretch */
    size_t len = CHUNK_BYTES - start < PREFAULT_BYTES ? CHUNK_BYTES - start : PREFAULT_BYTES;
    ml_sysmem_prefault((char *)ml_tree_node(t, n - i) + start, len);
}

/* A new node (lock held); ML_NODE_NONE past the ceiling. It is published
 * by the caller (first_child or an index slot), after this. */
static uint32_t make(ml_tree_t *t, uint32_t parent, uint64_t word, bool use_reserve)
{
    uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
    uint32_t limit = use_reserve ? t->capacity : t->capacity - t->capacity / 16;
    if (n >= limit || !have_chunk(t, n))
        return ML_NODE_NONE;
    ml_node_t *node = ml_tree_node(t, n);
    prefault(t, n);
    node->word = word;
    node->parent = parent;
    atomic_store_explicit(&node->stack, 0, memory_order_relaxed);
    atomic_store_explicit(&node->first_child, 0, memory_order_relaxed);
    node->copy = 0;
    atomic_store_explicit(&t->count, n + 1, memory_order_release);
    return n;
}

uint32_t ml_tree_add_locked(ml_tree_t *t, uint32_t parent, uint64_t word, bool use_reserve)
{
    _Atomic uint32_t *first = &ml_tree_node(t, parent)->first_child;
    uint32_t f = atomic_load_explicit(first, memory_order_relaxed);
    if (!f) {
        uint32_t n = make(t, parent, word, use_reserve);
        if (n != ML_NODE_NONE)
            atomic_store_explicit(first, n, memory_order_release);
        return n;
    }
    if (same(t, f, parent, word))
        return f;
    uint64_t h = hash(parent, word);
    uint32_t tag = tag_of(h);
    for (;;) {
        index_t *ix = atomic_load_explicit(&t->index, memory_order_relaxed);
        uint32_t mask = ix->mask, i = (uint32_t)h & mask;
        uint32_t v;
        while ((v = atomic_load_explicit(&ix->slot[i], memory_order_relaxed)) != 0) {
            if ((v >> TAG_SHIFT) == tag && same(t, v & ID_MASK, parent, word))
                return v & ID_MASK;
            i = (i + 1) & mask;
        }
        if ((uint64_t)(ix->used + 1) * 10 > (uint64_t)(mask + 1) * 7) {
            if (grow(t))
                continue; /* probe again in the bigger index */
            if ((uint64_t)(ix->used + 1) * 20 > (uint64_t)(mask + 1) * 19)
                return ML_NODE_NONE; /* cannot grow and nearly full: keep probes short */
        }
        uint32_t n = make(t, parent, word, use_reserve);
        if (n == ML_NODE_NONE)
            return n;
        atomic_store_explicit(&ix->slot[i], n | tag << TAG_SHIFT, memory_order_release);
        ix->used++;
        return n;
    }
}

uint64_t ml_tree_resident(ml_tree_t *t)
{
    uint64_t r = 0;
    ml_tree_lock(t);
    for (unsigned i = 0; i < t->nmaps; i++)
        r += ml_sysmem_resident(t->maps[i].p, (size_t)t->maps[i].bytes);
    for (uint32_t c = 0; c < ML_NODE_CHUNKS; c++) {
        const ml_node_t *p = atomic_load_explicit(&t->chunk[c], memory_order_relaxed);
        if (p)
            r += ml_sysmem_resident(p, CHUNK_BYTES);
    }
    ml_tree_unlock(t);
    return r;
}
