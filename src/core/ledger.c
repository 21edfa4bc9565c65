/* ledger.c — the stacks and their counters (see ledger.h).
 *
 * A stack is a leaf of the current call tree (stacktree.h): its innermost
 * frame's node, reached from the root through its frames, outermost
 * first. The stack id is dense and separate from the node id, because
 * counters are kept per stack and most nodes are not the innermost frame
 * of anything; the leaf node holds the id of its stack in its `stack`
 * field. A second domain at the same leaf (rare: one call site allocating
 * from two domains) hangs below the leaf as a mark node carrying it.
 *
 * A first sighting is cheap. Each thread remembers the raw words of the
 * last stack it interned and the node of each (the path memo). A new
 * stack almost always shares a long outer part with the one before it
 * (the same request handler, the same import, one level deeper), so it is
 * compared against the memo from the outermost frame on, word against
 * word, and only the frames past the first difference are encoded and
 * looked up in the tree: a first sighting costs its new frames, not its
 * depth. Raw words mean the same frame only while no code is unloaded
 * (modules.h's ml_code_epoch), and node ids only within their tree: the
 * memo is dropped when either moves.
 *
 * Collecting. Finding a leak needs the stacks that hold memory now and
 * how they change, not every stack the process ever allocated from:
 * `import torch` alone sees over a million, almost all holding nothing a
 * moment later. So when the tree has doubled since the last collection,
 * the dumper thread (ml_ledger_collect) copies into a new tree the paths
 * of the stacks that hold memory, publishes it, and waits until no thread
 * can still hold an id or a node of the old one (quiesce.h). Then the
 * stacks made in the old tree meanwhile follow if they hold memory, the
 * ids of the others are free for new stacks (their totals go to their
 * domain's retired totals, so the domain lines stay exact), and the old
 * tree is unmapped. Live stacks keep their ids: the address table refers
 * to them. A stack that dies and comes back is a first sighting again;
 * collections are rare (the tree must double), so that is cheap.
 *
 * Past the ceiling (MEMLEDGER_STACKS stacks, 16 nodes per stack) a stack
 * is kept smaller — its Python frames and its innermost native frames,
 * below a mark that says frames were left out — in a reserve kept for
 * that; past the reserve it is counted in its domain's overflow entry.
 * Both are counted and the snapshot says so.
 *
 * Counters live apart from the tree, indexed by stack id, one array per
 * shard, each mapped chunk by chunk as ids reach it; each thread adds only
 * to its own shard. */
#include "core/ledger.h"
#include "common/config.h"
#include "common/io.h"
#include "core/modules.h"
#include "core/quiesce.h"
#include "core/stacktree.h"
#include "core/sysmem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t leaf;
    uint8_t domain;
    _Atomic uint8_t state; /* 0: free (never made, or collected), 1: a stack */
    uint16_t gen;          /* low bits of the tree its leaf is in */
} info_t;

#define CHUNK ((uint32_t)1 << ML_COUNT_CHUNK_LOG2)
#define KEEP_NATIVE 8 /* native frames a degraded stack keeps, innermost first */
#define MEMO_MAX 240
#define COLLECT_FLOOR (1u << 20) /* nodes: below this a tree is never collected */

/* The path memo: the last stack this thread interned, outermost first. */
typedef struct {
    uint32_t gen, code_epoch, n;
    uint64_t raw[MEMO_MAX];
    uint32_t node[MEMO_MAX];
} memo_t;

ml_counts_t *_Atomic *ml_counts[ML_SHARDS];

/* shard ownership: bit i set while a thread owns shard i */
static _Atomic uint32_t owned;
/* shards ever used (the highest + 1): the writer reads no further */
static _Atomic uint32_t shards_used = ML_SHARDS;
static _Atomic bool shared_used = true; /* the shared shard ever written */

static _Atomic(ml_tree_t *) current;
static uint32_t tree_gen = 1;
static uint32_t node_capacity;
/* Stack records, mapped 65,536 at a time as ids reach them. */
#define INFO_CHUNK_LOG2 16
#define INFO_CHUNKS ((ML_MAX_STACKS + ML_DOM_COUNT) / (1u << INFO_CHUNK_LOG2) + 1)
static info_t *_Atomic info_chunks[INFO_CHUNKS];
#define INFO(id) (&atomic_load_explicit(&info_chunks[(id) >> INFO_CHUNK_LOG2], memory_order_acquire)[(id) & ((1u << INFO_CHUNK_LOG2) - 1)])
static uint32_t capacity; /* stacks, overflow entries included */
static uint32_t nchunks;
static _Atomic uint32_t next_id;
/* ids given back by collections, handed out again before next_id moves
 * (under ids_lock; grown by the collector) */
static uint32_t *free_ids;
static _Atomic uint32_t nfree;
static uint32_t free_cap;
static _Atomic int ids_lock;
static _Atomic uint64_t degraded, overflowed, counts_dropped, collections, collected;
static _Atomic uint64_t retired_bytes[ML_DOM_COUNT], retired_count[ML_DOM_COUNT];
static _Atomic uint32_t collect_at = COLLECT_FLOOR;
static _Atomic bool collect_asked; /* the waker was called since the last collection */
static _Atomic uint64_t holds;      /* records forgotten that may be put back */
static void (*_Atomic waker)(void);
static uint64_t (*_Atomic py_encoder)(uint64_t raw);
static pthread_mutex_t collect_lock = PTHREAD_MUTEX_INITIALIZER;

static void spin_lock(_Atomic int *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire))
        while (atomic_load_explicit(l, memory_order_relaxed))
            __builtin_ia32_pause();
}

static void spin_unlock(_Atomic int *l) { atomic_store_explicit(l, 0, memory_order_release); }

/* ---- per thread: the shard and the memo ---- */

void ml_ledger_thread_exit(void)
{
    uint32_t s = ml_self.shard;
    /* counts made after this (later destructors) go to the shared shard */
    atomic_store_explicit(&shared_used, true, memory_order_release);
    ml_self.shard = ML_SHARD_SHARED + 1;
    if (s && s - 1 != ML_SHARD_SHARED)
        atomic_fetch_and_explicit(&owned, ~(1u << (s - 1)), memory_order_release);
    void *m = ml_self.path_memo;
    ml_self.path_memo = NULL;
    ml_self.memo_state = 2; /* never again on this thread: it is going */
    ml_sysmem_unmap(m, sizeof(memo_t));
}

void ml_ledger_claim_shard(void)
{
    uint32_t cur = atomic_load_explicit(&owned, memory_order_relaxed);
    for (;;) {
        uint32_t free_bits = ~cur & ((1u << ML_SHARD_SHARED) - 1);
        if (!free_bits || !ml_thread_exit_call_possible()) {
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
            ml_thread_want_exit_call();
            return;
        }
    }
}

static memo_t *memo(void)
{
    if (ML_LIKELY(ml_self.path_memo != NULL))
        return ml_self.path_memo;
    if (ml_self.memo_state)
        return NULL; /* could not be mapped, or the thread is exiting */
    ml_self.memo_state = 1;
    memo_t *m = ml_sysmem_map(sizeof(memo_t));
    if (!m) {
        ml_self.memo_state = 2;
        return NULL;
    }
    ml_self.path_memo = m;
    ml_thread_want_exit_call();
    return m;
}

void ml_ledger_after_fork_child(void)
{
    uint32_t s = ml_self.shard;
    atomic_store_explicit(&owned, s && s - 1 != ML_SHARD_SHARED ? 1u << (s - 1) : 0, memory_order_relaxed);
    ml_tree_t *t = atomic_load_explicit(&current, memory_order_relaxed);
    if (t)
        atomic_store_explicit(&t->lock, 0, memory_order_relaxed);
    atomic_store_explicit(&ids_lock, 0, memory_order_relaxed);
    pthread_mutex_init(&collect_lock, NULL);
}

void ml_ledger_before_fork(void)
{
    /* a collection is never half done in a child */
    pthread_mutex_lock(&collect_lock);
    ml_tree_lock(atomic_load_explicit(&current, memory_order_relaxed));
    spin_lock(&ids_lock);
}

void ml_ledger_after_fork_parent(void)
{
    spin_unlock(&ids_lock);
    ml_tree_unlock(atomic_load_explicit(&current, memory_order_relaxed));
    pthread_mutex_unlock(&collect_lock);
}

/* ---- setting up ---- */

/* Maps the records of the chunk of id (ids_lock held, or at start). */
static bool have_info_chunk(uint32_t id)
{
    uint32_t c = id >> INFO_CHUNK_LOG2;
    if (atomic_load_explicit(&info_chunks[c], memory_order_relaxed))
        return true;
    info_t *p = ml_sysmem_map(sizeof(info_t) << INFO_CHUNK_LOG2);
    if (!p)
        return false;
    atomic_store_explicit(&info_chunks[c], p, memory_order_release);
    return true;
}

/* Room for one more free id (ids_lock held): the collector's side. */
static bool free_room(void)
{
    if (nfree < free_cap)
        return true;
    uint32_t cap = free_cap ? free_cap * 2 : 4096;
    uint32_t *p = ml_sysmem_map((size_t)cap * sizeof *p);
    if (!p)
        return false;
    if (free_ids)
        memcpy(p, free_ids, (size_t)nfree * sizeof *p);
    ml_sysmem_unmap(free_ids, (size_t)free_cap * sizeof *p);
    free_ids = p;
    free_cap = cap;
    return true;
}

bool ml_ledger_init(uint32_t max_stacks)
{
    capacity = max_stacks + ML_STACK_FIRST;
    nchunks = (capacity + CHUNK - 1) / CHUNK;
    uint64_t nodes = (uint64_t)max_stacks * 16;
    node_capacity = nodes > ML_NODE_MAX ? ML_NODE_MAX : (uint32_t)nodes;
    ml_tree_t *t = have_info_chunk(0) ? ml_tree_new(node_capacity, tree_gen, 0) : NULL;
    bool ok = t && ml_quiesce_init();
    for (int s = 0; s < ML_SHARDS && ok; s++) {
        ml_counts[s] = ml_sysmem_map((size_t)nchunks * sizeof *ml_counts[s]);
        ok = ml_counts[s] != NULL;
    }
    if (!ok) { /* give the address space back: the program runs on without us */
        ml_tree_free(t);
        ml_sysmem_unmap(atomic_load(&info_chunks[0]), sizeof(info_t) << INFO_CHUNK_LOG2);
        atomic_store(&info_chunks[0], NULL);
        for (int s = 0; s < ML_SHARDS; s++) {
            ml_sysmem_unmap(ml_counts[s], (size_t)nchunks * sizeof *ml_counts[s]);
            ml_counts[s] = NULL;
        }
        return false;
    }
    ml_thread_init();
    /* with the exit call, threads own shards from 0 up; without it all share the last */
    bool per_thread = ml_thread_exit_call_possible();
    atomic_store_explicit(&shards_used, per_thread ? 0 : ML_SHARDS, memory_order_relaxed);
    atomic_store_explicit(&shared_used, !per_thread, memory_order_relaxed);
    for (uint32_t d = 0; d < ML_STACK_FIRST; d++) {
        INFO(d)->leaf = ML_NODE_ROOT;
        INFO(d)->domain = (uint8_t)d;
        atomic_store_explicit(&INFO(d)->state, 1, memory_order_release);
    }
    atomic_store_explicit(&next_id, ML_STACK_FIRST, memory_order_release);
    atomic_store_explicit(&current, t, memory_order_release);
    return true;
}

void ml_ledger_set_collect_waker(void (*fn)(void)) { atomic_store_explicit(&waker, fn, memory_order_release); }

ml_counts_t *ml_ledger_counts_slow(uint32_t id)
{
    uint32_t c = id >> ML_COUNT_CHUNK_LOG2;
    if (c >= nchunks) {
        atomic_fetch_add_explicit(&counts_dropped, 1, memory_order_relaxed);
        return NULL;
    }
    ml_counts_t *_Atomic *slot = &ml_counts[ml_self.shard - 1][c];
    ml_counts_t *chunk = ml_sysmem_map(CHUNK * sizeof(ml_counts_t)), *expect = NULL;
    if (!chunk) {
        atomic_fetch_add_explicit(&counts_dropped, 1, memory_order_relaxed);
        return NULL;
    }
    /* the shared shard's threads may race for a chunk: one mapping wins */
    if (!atomic_compare_exchange_strong_explicit(slot, &expect, chunk, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        ml_sysmem_unmap(chunk, CHUNK * sizeof(ml_counts_t));
        chunk = expect;
    }
    return &chunk[id & (CHUNK - 1)];
}

/* ---- frame words ---- */

void ml_ledger_set_python_encoder(uint64_t (*fn)(uint64_t raw))
{
    atomic_store_explicit(&py_encoder, fn, memory_order_release);
}

uint64_t ml_ledger_encode(uint64_t raw)
{
    if (raw & ML_WORD_PY) {
        uint64_t (*fn)(uint64_t) = atomic_load_explicit(&py_encoder, memory_order_acquire);
        return fn ? fn(raw) : raw;
    }
    uint32_t index;
    uintptr_t offset;
    if (ML_LIKELY(ml_modules_locate((uintptr_t)raw, &index, &offset)) && index + 1 < (1u << 22) &&
        offset <= ML_WORD_OFFSET_MASK)
        return (uint64_t)(index + 1) << ML_WORD_MODULE_SHIFT | offset;
    return ml_word_abs((uintptr_t)raw, ml_modules_generation());
}

/* ---- stacks ---- */

/* The stack of (leaf, domain) in t, or 0 when it has none yet. Lock-free. */
static uint32_t stack_find(ml_tree_t *t, uint32_t leaf, unsigned domain)
{
    uint32_t s = atomic_load_explicit(&ml_tree_node(t, leaf)->stack, memory_order_acquire);
    if (!s || INFO(s)->domain == domain)
        return s;
    uint32_t h = ml_tree_find(t, leaf, ML_MARK_DOMAIN(domain));
    return h == ML_NODE_NONE ? 0 : atomic_load_explicit(&ml_tree_node(t, h)->stack, memory_order_acquire);
}

/* Makes id free for a new stack (an id that finds no room to be kept is
 * lost: it only makes the ceiling one lower). */
static void give_back(uint32_t id)
{
    spin_lock(&ids_lock);
    if (free_room())
        free_ids[nfree++] = id;
    spin_unlock(&ids_lock);
}

/* A fresh stack id, or 0 past the ceiling (less its reserve unless
 * use_reserve). */
static uint32_t new_id(bool use_reserve)
{
    uint32_t id = 0;
    spin_lock(&ids_lock);
    if (nfree) {
        id = free_ids[--nfree];
    } else {
        uint32_t n = atomic_load_explicit(&next_id, memory_order_relaxed);
        uint32_t limit = use_reserve ? capacity : capacity - (capacity - ML_STACK_FIRST) / 16;
        if (n < limit && have_info_chunk(n)) {
            id = n;
            atomic_store_explicit(&next_id, n + 1, memory_order_release);
        }
    }
    spin_unlock(&ids_lock);
    return id;
}

/* Hangs stack `id` of `domain` on leaf (t's lock held): on the leaf
 * itself, or on its domain's mark below it when the leaf carries another
 * domain's stack. False when there is no room, or when the place holds a
 * stack already (*had gets it then). */
static bool attach(ml_tree_t *t, uint32_t leaf, unsigned domain, uint32_t id, bool use_reserve, uint32_t *had)
{
    uint32_t holder = leaf;
    uint32_t s = atomic_load_explicit(&ml_tree_node(t, leaf)->stack, memory_order_acquire);
    if (s && INFO(s)->domain != domain) {
        holder = ml_tree_add_locked(t, leaf, ML_MARK_DOMAIN(domain), use_reserve);
        if (holder == ML_NODE_NONE)
            return false;
        s = atomic_load_explicit(&ml_tree_node(t, holder)->stack, memory_order_acquire);
    }
    if (s) {
        *had = s;
        return false;
    }
    atomic_store_explicit(&ml_tree_node(t, holder)->stack, id, memory_order_release);
    return true;
}

/* The stack of (leaf, domain) in t, made with id *pre if new (t's lock
 * held; *pre becomes 0 when used); 0 when there is no room. */
static uint32_t stack_make_locked(ml_tree_t *t, uint32_t leaf, unsigned domain, bool use_reserve, uint32_t *pre,
                                  bool *made)
{
    uint32_t s = stack_find(t, leaf, domain);
    if (s)
        return s;
    uint32_t id = *pre;
    INFO(id)->leaf = leaf;
    INFO(id)->domain = (uint8_t)domain;
    INFO(id)->gen = (uint16_t)t->gen;
    atomic_store_explicit(&INFO(id)->state, 1, memory_order_release);
    uint32_t had = 0;
    if (!attach(t, leaf, domain, id, use_reserve, &had)) {
        /* no room for the domain's mark: the caller gives the id back */
        atomic_store_explicit(&INFO(id)->state, 0, memory_order_release);
        return had;
    }
    *pre = 0;
    *made = true;
    return id;
}

/* True when the stacks are near their ceiling: a collection may give some
 * back before new stacks must be kept smaller. */
static bool crowded(void)
{
    return atomic_load_explicit(&next_id, memory_order_relaxed) >= capacity - capacity / 4 && !nfree;
}

/* The memo learns that position i is node c (raw word raw[nraw-1-i]). */
static inline uint32_t learn(memo_t *m, unsigned i, const uint64_t *raw, unsigned nraw, uint32_t c)
{
    if (m && i < MEMO_MAX) {
        m->raw[i] = raw[nraw - 1 - i];
        m->node[i] = c;
    }
    return c;
}

/* Adds enc[0..n) (outermost first) below `node`; t's lock is taken here.
 * Returns the stack, or 0 when it found no room. The memo, when given,
 * learns each node from position k0 on. The id is taken before any node
 * is added: a path whose stack could not be made would stay in the tree
 * as nodes nobody uses, and with the ids spent those fill the node
 * ceiling, reserve included, before a collection can clear them. */
static uint32_t add_rest(ml_tree_t *t, unsigned domain, uint32_t node, const uint64_t *enc, unsigned n,
                         bool use_reserve, memo_t *m, const uint64_t *raw, unsigned nraw, unsigned k0, bool *made)
{
    unsigned k = 0;
    uint32_t id = 0, pre = 0;
    *made = false;
    ml_tree_lock(t);
    for (uint32_t c; k < n && (c = ml_tree_find(t, node, enc[k])) != ML_NODE_NONE; k++)
        node = learn(m, k0 + k, raw, nraw, c);
    if (k == n)
        id = stack_find(t, node, domain); /* made meanwhile, or a stack kept smaller met again */
    if (!id && (pre = new_id(use_reserve)) != 0) {
        for (uint32_t c; k < n && (c = ml_tree_add_locked(t, node, enc[k], use_reserve)) != ML_NODE_NONE; k++)
            node = learn(m, k0 + k, raw, nraw, c);
        if (k == n)
            id = stack_make_locked(t, node, domain, use_reserve, &pre, made);
        if (pre)
            give_back(pre);
    }
    uint32_t count = ml_tree_count(t);
    ml_tree_unlock(t);
    if (m) {
        unsigned valid = k0 + k;
        m->n = valid < MEMO_MAX ? valid : MEMO_MAX;
    }
    if ((count >= atomic_load_explicit(&collect_at, memory_order_relaxed) || crowded()) &&
        !atomic_exchange_explicit(&collect_asked, true, memory_order_relaxed)) {
        void (*w)(void) = atomic_load_explicit(&waker, memory_order_acquire);
        if (w)
            w(); /* the dumper thread collects (ml_ledger_collect), once asked */
    }
    return id;
}

/* A stack that found no room, kept smaller (see the top). Off the common
 * path, with its own frame: the hooks' stacks stay small. */
static ML_NOINLINE uint32_t degrade(ml_tree_t *t, unsigned domain, const uint64_t *raw, unsigned n)
{
    uint64_t enc[ML_LEDGER_MAX_WORDS + 1], keep[ML_LEDGER_MAX_WORDS];
    unsigned k = 0, natives = 0;
    for (unsigned i = 0; i < n; i++) /* innermost first */
        if ((raw[i] & ML_WORD_PY) || natives++ < KEEP_NATIVE)
            keep[k++] = raw[i];
    enc[0] = ML_MARK_ELIDED;
    for (unsigned i = 0; i < k; i++)
        enc[1 + i] = ml_ledger_encode(keep[k - 1 - i]);
    bool made;
    uint32_t id = add_rest(t, domain, ML_NODE_ROOT, enc, k + 1, true, NULL, NULL, 0, 0, &made);
    if (id) {
        if (made && !atomic_fetch_add_explicit(&degraded, 1, memory_order_relaxed))
            ml_warn("the stack store is full (MEMLEDGER_STACKS=%u stacks at once): new stacks are kept with "
                    "their Python frames and innermost native frames only; raise MEMLEDGER_STACKS "
                    "(docs/config.md)",
                    capacity - ML_STACK_FIRST);
        return id;
    }
    if (!atomic_fetch_add_explicit(&overflowed, 1, memory_order_relaxed))
        ml_warn("the stack store is full even for smaller stacks (MEMLEDGER_STACKS=%u): allocations at new "
                "stacks are counted without their stack from now on",
                capacity - ML_STACK_FIRST);
    return ML_STACK_OVERFLOW(domain);
}

/* A first sighting: frames k.. (counted from the outermost) have no node
 * below `node` yet; `first` is frame k's encoded word. The rest is encoded
 * outside the lock (encoding may ask the loader about a module new to us)
 * and added. */
static ML_NOINLINE uint32_t first_sighting(ml_tree_t *t, unsigned domain, const uint64_t *raw, unsigned n,
                                           unsigned k, uint32_t node, uint64_t first, memo_t *m)
{
    uint64_t enc[ML_LEDGER_MAX_WORDS];
    unsigned rest = n - k;
    if (rest)
        enc[0] = first;
    for (unsigned j = 1; j < rest; j++)
        enc[j] = ml_ledger_encode(raw[n - 1 - (k + j)]);
    bool made;
    uint32_t id = add_rest(t, domain, node, enc, rest, false, m, raw, n, k, &made);
    return id ? id : degrade(t, domain, raw, n);
}

uint32_t ml_ledger_intern(unsigned domain, const uint64_t *raw, unsigned n)
{
    if (ML_UNLIKELY(n > ML_LEDGER_MAX_WORDS))
        n = ML_LEDGER_MAX_WORDS; /* the innermost ones: where it was allocated */
    ml_tree_t *t = atomic_load_explicit(&current, memory_order_acquire);
    memo_t *m = memo();
    uint32_t node = ML_NODE_ROOT;
    unsigned k = 0;
    if (m) {
        uint32_t code_epoch = atomic_load_explicit(&ml_code_epoch, memory_order_acquire);
        if (m->gen != t->gen || m->code_epoch != code_epoch) {
            m->gen = t->gen;
            m->code_epoch = code_epoch;
            m->n = 0;
        }
        unsigned lim = n < m->n ? n : m->n;
        for (; k < lim; k++) {
            uint64_t r = raw[n - 1 - k];
            if (m->raw[k] == r)
                continue;
            /* A Python frame of the same code at another instruction is
             * still the same frame when that instruction is on the same
             * line (consecutive allocations in one line). */
            if (!(r & m->raw[k] & ML_WORD_PY) || (r ^ m->raw[k]) >> 32 ||
                ml_ledger_encode(r) != ml_tree_node(t, m->node[k])->word)
                break;
            m->raw[k] = r;
        }
        if (k)
            node = m->node[k - 1];
    }
    /* lock-free while every frame has its node already */
    for (; k < n; k++) {
        uint64_t w = ml_ledger_encode(raw[n - 1 - k]);
        uint32_t c = ml_tree_find(t, node, w);
        if (c == ML_NODE_NONE) {
            if (m)
                m->n = k < MEMO_MAX ? k : MEMO_MAX;
            return first_sighting(t, domain, raw, n, k, node, w, m);
        }
        node = c;
        if (m && k < MEMO_MAX) {
            m->raw[k] = raw[n - 1 - k];
            m->node[k] = c;
        }
    }
    if (m)
        m->n = n < MEMO_MAX ? n : MEMO_MAX;
    uint32_t id = stack_find(t, node, domain);
    return ML_LIKELY(id) ? id : first_sighting(t, domain, raw, n, n, node, 0, m);
}

/* ---- collecting (the dumper thread) ---- */

void ml_ledger_hold(void) { atomic_fetch_add_explicit(&holds, 1, memory_order_seq_cst); }

void ml_ledger_unhold(void) { atomic_fetch_sub_explicit(&holds, 1, memory_order_seq_cst); }

/* Copies stack id's path from `from` into `to` (to's lock held) and hangs
 * it there. Returns false when `to` has no room. */
static bool migrate(ml_tree_t *from, ml_tree_t *to, uint32_t id, uint64_t *words)
{
    unsigned n = 0;
    for (uint32_t x = INFO(id)->leaf; x != ML_NODE_ROOT && n < ML_LEDGER_MAX_WORDS + 1;
         x = ml_tree_node(from, x)->parent)
        words[n++] = ml_tree_node(from, x)->word;
    uint32_t node = ML_NODE_ROOT;
    while (n--) {
        node = ml_tree_add_locked(to, node, words[n], true);
        if (node == ML_NODE_NONE)
            return false;
    }
    uint32_t had;
    attach(to, node, INFO(id)->domain, id, true, &had); /* when taken, id is an orphan: still named, no longer found */
    INFO(id)->leaf = node;
    INFO(id)->gen = (uint16_t)to->gen;
    return true;
}

/* Gives id back: its totals to its domain's retired totals, its counters
 * to zero (nobody holds it any more: the caller waited for that). */
static void retire(uint32_t id, const ml_totals_t *tt)
{
    unsigned d = INFO(id)->domain;
    atomic_fetch_add_explicit(&retired_bytes[d], tt->total_bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&retired_count[d], tt->total_count, memory_order_relaxed);
    for (uint32_t s = 0; s < ML_SHARDS; s++) {
        ml_counts_t *chunk = atomic_load_explicit(&ml_counts[s][id >> ML_COUNT_CHUNK_LOG2], memory_order_acquire);
        if (!chunk)
            continue;
        ml_counts_t *c = &chunk[id & (CHUNK - 1)];
        atomic_store_explicit(&c->alloc_bytes, 0, memory_order_relaxed);
        atomic_store_explicit(&c->alloc_count, 0, memory_order_relaxed);
        atomic_store_explicit(&c->free_bytes, 0, memory_order_relaxed);
        atomic_store_explicit(&c->free_count, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&INFO(id)->state, 0, memory_order_release);
    give_back(id);
}

/* The mark of a node to be copied, in its `copy` field until the copy's
 * id replaces it. */
#define COPY_MARK UINT32_MAX

/* Takes the marks of an abandoned collection off the old tree's nodes. */
static void unmark(ml_tree_t *old, uint32_t total)
{
    for (uint32_t x = 1; x < total; x++)
        ml_tree_node(old, x)->copy = 0;
}

/* The next collection's threshold: the tree twice as big as it is now
 * (the nodes kept, and those the hooks add from here on). */
static void collect_later(uint32_t count)
{
    atomic_store_explicit(&collect_at, count * 2 > COLLECT_FLOOR ? count * 2 : COLLECT_FLOOR, memory_order_relaxed);
    atomic_store_explicit(&collect_asked, false, memory_order_relaxed);
}

bool ml_ledger_collect(bool force)
{
    ml_tree_t *old = atomic_load_explicit(&current, memory_order_acquire);
    if (!old || (!force && ml_tree_count(old) < atomic_load_explicit(&collect_at, memory_order_relaxed) &&
                 !(crowded() && atomic_load_explicit(&collect_asked, memory_order_relaxed))))
        return false;
    pthread_mutex_lock(&collect_lock);
    uint32_t n0 = ml_ledger_ids();
    uint64_t *keep = calloc((size_t)n0 / 64 + 1, sizeof *keep);
    if (!keep) {
        pthread_mutex_unlock(&collect_lock);
        return false; /* no memory for it now: the old tree stays, and grows */
    }
    /* 1. what stays: what holds memory. Its nodes are marked from each
     * leaf up (stopping at a node marked already), in the nodes' own
     * `copy` field (no array as long as the tree beside it), and counted. */
    uint32_t total = ml_tree_count(old), kept = 0;
    for (uint32_t id = ML_STACK_FIRST; id < n0; id++) {
        if (!atomic_load_explicit(&INFO(id)->state, memory_order_acquire) || INFO(id)->leaf >= total)
            continue;
        ml_totals_t tt;
        ml_ledger_totals(id, &tt);
        if (!tt.live_count && !tt.live_bytes)
            continue;
        keep[id / 64] |= 1ull << (id % 64);
        for (uint32_t x = INFO(id)->leaf; x != ML_NODE_ROOT && !ml_tree_node(old, x)->copy;
             x = ml_tree_node(old, x)->parent) {
            ml_tree_node(old, x)->copy = COPY_MARK;
            kept++;
        }
    }
    /* Copied in id order, parents before children (a parent is always
     * older): each kept node is added once, however many stacks share it.
     * Most nodes are their parent's first child, kept in the parent, not
     * in the index: an index of a slot per node kept starts about half
     * full, and grows as the tree does. */
    uint64_t *words = malloc((ML_LEDGER_MAX_WORDS + 1) * sizeof *words);
    ml_tree_t *fresh = words ? ml_tree_new(node_capacity, tree_gen + 1, kept / 2 + 1) : NULL;
    if (!fresh) {
        unmark(old, total);
        free(words);
        free(keep);
        pthread_mutex_unlock(&collect_lock);
        return false;
    }
    bool room = true;
    ml_tree_lock(fresh);
    for (uint32_t x = 1; x < total && room; x++) {
        ml_node_t *o = ml_tree_node(old, x);
        if (!o->copy)
            continue;
        uint32_t parent = o->parent == ML_NODE_ROOT ? ML_NODE_ROOT : ml_tree_node(old, o->parent)->copy;
        o->copy = ml_tree_add_locked(fresh, parent, o->word, true);
        room = o->copy != ML_NODE_NONE;
    }
    for (uint32_t id = ML_STACK_FIRST; id < n0 && room; id++) {
        if (!(keep[id / 64] >> (id % 64) & 1))
            continue;
        uint32_t leaf = INFO(id)->leaf == ML_NODE_ROOT ? ML_NODE_ROOT : ml_tree_node(old, INFO(id)->leaf)->copy, had;
        attach(fresh, leaf, INFO(id)->domain, id, true, &had); /* when taken: an orphan, still named */
        INFO(id)->leaf = leaf;
        INFO(id)->gen = (uint16_t)fresh->gen;
    }
    ml_tree_unlock(fresh);
    if (!room) { /* the new tree could not hold what the old one did: keep the old */
        unmark(old, total);
        ml_tree_free(fresh);
        free(words);
        free(keep);
        pthread_mutex_unlock(&collect_lock);
        return false;
    }
    /* 2. the new tree is the one; wait until no thread holds the old */
    tree_gen = fresh->gen;
    atomic_store_explicit(&current, fresh, memory_order_release);
    ml_quiesce_advance_and_wait();
    /* 3. stacks made in the old tree meanwhile follow; the rest go */
    uint32_t n1 = ml_ledger_ids();
    uint64_t gone = 0;
    for (uint32_t id = ML_STACK_FIRST; id < n1; id++) {
        if (!atomic_load_explicit(&INFO(id)->state, memory_order_acquire))
            continue;
        ml_totals_t tt;
        ml_ledger_totals(id, &tt);
        bool kept = id < n0 && (keep[id / 64] >> (id % 64) & 1);
        if (!kept && INFO(id)->gen != (uint16_t)fresh->gen) {
            /* a hold read after the counts: a free counted there that may
             * still be undone shows here (see ml_ledger_hold) */
            bool wanted = tt.live_count || tt.live_bytes || atomic_load_explicit(&holds, memory_order_seq_cst);
            bool moved = false;
            if (wanted) { /* one stack at a time: the hooks add to this tree meanwhile */
                ml_tree_lock(fresh);
                moved = migrate(old, fresh, id, words);
                ml_tree_unlock(fresh);
            }
            if (!moved) {
                retire(id, &tt);
                gone++;
            }
        }
    }
    uint32_t count = ml_tree_count(fresh);
    ml_tree_free(old);
    collect_later(count);
    atomic_fetch_add_explicit(&collections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&collected, gone, memory_order_relaxed);
    free(words);
    free(keep);
    pthread_mutex_unlock(&collect_lock);
    return false;
}

/* ---- read side ---- */

uint32_t ml_ledger_ids(void) { return atomic_load_explicit(&next_id, memory_order_acquire); }

bool ml_ledger_stack(uint32_t id, ml_stack_view_t *v)
{
    if (id >= ml_ledger_ids() || !atomic_load_explicit(&INFO(id)->state, memory_order_acquire))
        return false;
    v->domain = INFO(id)->domain;
    v->leaf = INFO(id)->leaf;
    v->overflow = id < ML_STACK_FIRST;
    return true;
}

const ml_tree_t *ml_ledger_tree(void) { return atomic_load_explicit(&current, memory_order_acquire); }

unsigned ml_ledger_stack_words(uint32_t id, uint64_t *out, unsigned max)
{
    ml_stack_view_t v;
    if (!ml_ledger_stack(id, &v))
        return 0;
    const ml_tree_t *t = ml_ledger_tree();
    unsigned n = 0;
    for (uint32_t node = v.leaf; node != ML_NODE_ROOT && n < max; node = ml_tree_node(t, node)->parent)
        out[n++] = ml_tree_node(t, node)->word;
    return n;
}

void ml_ledger_totals(uint32_t id, ml_totals_t *t)
{
    uint64_t fb = 0, fc = 0, ab = 0, ac = 0;
    /* only shards some thread wrote: reading the others would map pages */
    uint32_t n = atomic_load_explicit(&shards_used, memory_order_acquire);
    const ml_counts_t *cs[ML_SHARDS];
    uint32_t k = 0;
    for (uint32_t s = 0; s <= ML_SHARD_SHARED; s++) {
        if (s < ML_SHARD_SHARED ? s >= n : !atomic_load_explicit(&shared_used, memory_order_acquire))
            continue;
        const ml_counts_t *chunk = atomic_load_explicit(&ml_counts[s][id >> ML_COUNT_CHUNK_LOG2],
                                                        memory_order_acquire);
        if (chunk)
            cs[k++] = &chunk[id & (CHUNK - 1)];
    }
    /* Frees first (acquire), then allocations: see ml_ledger_count_free. */
    for (uint32_t i = 0; i < k; i++) {
        fb += atomic_load_explicit(&cs[i]->free_bytes, memory_order_acquire);
        fc += atomic_load_explicit(&cs[i]->free_count, memory_order_acquire);
    }
    for (uint32_t i = 0; i < k; i++) {
        ab += atomic_load_explicit(&cs[i]->alloc_bytes, memory_order_acquire);
        ac += atomic_load_explicit(&cs[i]->alloc_count, memory_order_acquire);
    }
    t->total_bytes = ab;
    t->total_count = ac;
    t->live_bytes = ab >= fb ? ab - fb : 0;
    t->live_count = ac >= fc ? ac - fc : 0;
}

void ml_ledger_retired(unsigned domain, uint64_t *bytes, uint64_t *count)
{
    *bytes = atomic_load_explicit(&retired_bytes[domain], memory_order_relaxed);
    *count = atomic_load_explicit(&retired_count[domain], memory_order_relaxed);
}

void ml_ledger_stats(ml_ledger_stats_t *s)
{
    ml_tree_t *t = atomic_load_explicit(&current, memory_order_acquire);
    s->capacity = capacity - ML_STACK_FIRST;
    spin_lock(&ids_lock);
    s->used = ml_ledger_ids() - nfree;
    spin_unlock(&ids_lock);
    s->nodes = t ? ml_tree_count(t) : 0;
    s->nodes_capacity = t ? t->capacity : 0;
    s->degraded = atomic_load_explicit(&degraded, memory_order_relaxed);
    s->overflowed = atomic_load_explicit(&overflowed, memory_order_relaxed);
    s->counts_dropped = atomic_load_explicit(&counts_dropped, memory_order_relaxed);
    s->collections = atomic_load_explicit(&collections, memory_order_relaxed);
    s->collected = atomic_load_explicit(&collected, memory_order_relaxed);
}

uint64_t ml_ledger_resident(void)
{
    ml_tree_t *t = atomic_load_explicit(&current, memory_order_acquire);
    uint64_t r = t ? ml_tree_resident(t) : 0;
    for (uint32_t c = 0; c < INFO_CHUNKS; c++) {
        const info_t *p = atomic_load_explicit(&info_chunks[c], memory_order_acquire);
        if (p)
            r += ml_sysmem_resident(p, sizeof(info_t) << INFO_CHUNK_LOG2);
    }
    spin_lock(&ids_lock);
    r += ml_sysmem_resident(free_ids, (size_t)free_cap * sizeof *free_ids);
    spin_unlock(&ids_lock);
    for (uint32_t s = 0; s < ML_SHARDS; s++) {
        if (!ml_counts[s])
            continue;
        r += ml_sysmem_resident(ml_counts[s], (size_t)nchunks * sizeof *ml_counts[s]);
        for (uint32_t c = 0; c < nchunks; c++) {
            const ml_counts_t *chunk = atomic_load_explicit(&ml_counts[s][c], memory_order_acquire);
            if (chunk)
                r += ml_sysmem_resident(chunk, CHUNK * sizeof(ml_counts_t));
        }
    }
    return r;
}
