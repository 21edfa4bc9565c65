/* stacktree.h — call stacks kept as a call tree: a node is (parent node,
 * frame word), so stacks that share their outer frames share those nodes
 * and a new stack costs only the frames no stack had before (the shape of
 * memray's frame tree, pprof's location table, perf's callchains).
 * Owns: a tree's nodes (dense ids, append-only: an id never changes its
 * meaning within its tree) and its index (parent, word) -> node, which
 * grows on demand in memory the library maps, up to the tree's ceiling.
 * The ledger keeps one current tree and replaces it with a smaller one
 * when it collects (ledger.c); a tree is unmapped only when no thread can
 * still be reading it (quiesce.h).
 * Must never allocate through the hooked allocator. Lookups never lock;
 * additions take the tree's spinlock, which is never held across a call
 * out of this file, and which fork() takes so a child never inherits it
 * held. */
#ifndef ML_STACKTREE_H
#define ML_STACKTREE_H

#include "common/common.h"
#include <stdatomic.h>

#define ML_NODE_ROOT 0u              /* the parent of every outermost frame */
#define ML_NODE_NONE UINT32_MAX      /* "no such node" */
#define ML_NODE_MAX ((1u << 27) - 1) /* ids fit 27 bits (the index packs a tag beside them) */

typedef struct {
    uint64_t word;                /* the frame, in core/ledger.h's encoding */
    uint32_t parent;              /* the caller's node */
    _Atomic uint32_t stack;       /* a stack whose innermost frame this is (ledger.c's); 0: none yet */
    _Atomic uint32_t first_child; /* the first callee node made under this one; 0: none */
    uint32_t copy;                /* the collector's alone (ledger.c): 0, or this node's place in the
                                     tree being built; the hooks never read it */
} ml_node_t;

#define ML_NODE_CHUNK_LOG2 16 /* nodes are mapped 65,536 (1 MiB) at a time, as ids reach them */
#define ML_NODE_CHUNKS ((ML_NODE_MAX >> ML_NODE_CHUNK_LOG2) + 1)

typedef struct ml_tree ml_tree_t;
struct ml_tree {
    ml_node_t *_Atomic chunk[ML_NODE_CHUNKS];
    uint32_t capacity;         /* the ceiling, in nodes */
    _Atomic uint32_t count;    /* nodes made; ids below it are published */
    _Atomic(void *) index;     /* stacktree.c's */
    _Atomic int lock;
    uint32_t gen;              /* the ledger's number for this tree */
    unsigned nmaps;            /* every index mapped, for the resident figure and the unmap */
    struct {
        void *p;
        uint64_t bytes;
    } maps[32];                /* the index's mappings */
};

/* A new, empty tree for up to max_nodes nodes, its index sized for about
 * `expect` of them at first (0: small). Memory is mapped only as nodes are
 * added. NULL when nothing could be mapped. */
ml_tree_t *ml_tree_new(uint32_t max_nodes, uint32_t gen, uint32_t expect);

/* Gives every mapping of t back. Only when no thread can be reading it. */
void ml_tree_free(ml_tree_t *t);

static inline ml_node_t *ml_tree_node(const ml_tree_t *t, uint32_t id)
{
    /* an id below the count has its chunk: mapped before the id was published */
    return &atomic_load_explicit((ml_node_t * _Atomic *)&t->chunk[id >> ML_NODE_CHUNK_LOG2],
                                 memory_order_relaxed)[id & ((1u << ML_NODE_CHUNK_LOG2) - 1)];
}

/* The child of `parent` for `word`, or ML_NODE_NONE. Lock-free. */
uint32_t ml_tree_find(ml_tree_t *t, uint32_t parent, uint64_t word);

/* Finds or adds the child of `parent` for `word`. The caller holds t's
 * lock. Ordinary additions stop short of the ceiling by a reserve (1/16 of
 * it) that only `use_reserve` additions may take: stacks degraded to fit
 * (ledger.c) still find room after the others are refused. Returns
 * ML_NODE_NONE when there is no room. */
uint32_t ml_tree_add_locked(ml_tree_t *t, uint32_t parent, uint64_t word, bool use_reserve);

void ml_tree_lock(ml_tree_t *t);
void ml_tree_unlock(ml_tree_t *t);

/* Nodes made so far (the root included). */
static inline uint32_t ml_tree_count(ml_tree_t *t) { return atomic_load_explicit(&t->count, memory_order_acquire); }

/* Resident bytes of the nodes and the index (for the snapshot header). */
uint64_t ml_tree_resident(ml_tree_t *t);

#endif
