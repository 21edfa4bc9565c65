/* stackset.c — address-free stack identity across snapshots (see stackset.h).
 * Frames are interned by an identity string (a strmap: a frame's uid is
 * its string's id); call paths in the set's own tree, a node per (caller
 * node, frame uid), so a version 2 snapshot's tree maps onto it node by
 * node and a stack is found again by its domain and leaf node (through
 * common/hashidx.h) without looking at its frames.
 * Speed, for the million nodes of a large process: the previous
 * snapshot's map of nodes and stacks is tried first (a process's next
 * snapshot numbers most of them alike), the index's slots are prefetched
 * some nodes ahead, and a stack's list of frames is only written out of
 * the tree when someone asks for the stack (a diff shows a few dozen of
 * hundreds of thousands). */
#include "cli/stackset.h"
#include "cli/cython.h"
#include "cli/demangle.h"
#include "cli/strmap.h"
#include "common/grow.h"
#include "common/hashidx.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
    char *build_id, *path;
} smodule_t;

typedef struct {
    uint32_t parent, frame, depth;
} snode_t;

typedef struct {
    ml_sval_t *v;           /* by stack uid, grown as stacks appear */
    size_t cap;
} svalues_t;

struct ml_stackset {
    ml_strmap_t *fkeys;     /* identity string -> frame uid */
    ml_hashidx_t sidx;      /* stacks by domain and frames */
    smodule_t *modules;     /* module names, owned, shared by the frames */
    size_t nmodules, modules_cap;
    ml_sframe_t *frames;
    size_t nframes, frames_cap;
    ml_sstack_t *stacks;
    size_t nstacks, stacks_cap;
    snode_t *nodes;         /* the call tree; node 0 is the root */
    size_t nnodes, nodes_cap;
    ml_hashidx_t nidx;      /* nodes by caller and frame */
    svalues_t *values;      /* by snapshot */
    size_t nsnaps, values_cap;
    /* stacks' frames: each add reserves one block for the frames of the
     * stacks it makes; a stack's are written there on first ask */
    uint32_t **blocks;
    size_t nblocks, blocks_cap;
    uint64_t *filled;       /* a bit per stack uid: its frames are written */
    size_t filled_cap;      /* in words */
    /* the last snapshot added: the set's node for each of its nodes, and
     * the uid of each of its stacks (hints for the next one; 0 entries
     * when it had no tree) */
    uint32_t *node_hint, *stack_hint;
    size_t nnode_hint, nstack_hint;
};

/* How many nodes (or stacks) ahead the index slot of one is prefetched:
 * enough misses in flight to cover a trip to memory, few enough that the
 * slots are still in the cache when their turn comes. */
#define AHEAD 16

ml_stackset_t *ml_stackset_new(void)
{
    ml_stackset_t *set = calloc(1, sizeof *set);
    if (set && !(set->fkeys = ml_strmap_new())) {
        free(set);
        return NULL;
    }
    return set;
}

static void free_names(ml_sframe_t *f)
{
    free((char *)f->function);
    free((char *)f->file);
    free((char *)f->cython);
    for (uint32_t k = 0; k < f->ninlined; k++) {
        free((char *)f->inlined[k].function);
        free((char *)f->inlined[k].file);
    }
    free((ml_sinlined_t *)f->inlined);
}

const ml_sframe_t *ml_sframe_inlined(const ml_sframe_t *f, uint32_t k, ml_sframe_t *view)
{
    *view = *f;
    view->function = f->inlined[k].function;
    view->file = f->inlined[k].file;
    view->line = f->inlined[k].line;
    view->cython = NULL;
    view->ninlined = 0;
    view->inlined = NULL;
    view->is_inlined = true;
    return view;
}

void ml_stackset_free(ml_stackset_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->nframes; i++)
        free_names(&set->frames[i]);
    for (size_t i = 0; i < set->nmodules; i++) {
        free(set->modules[i].build_id);
        free(set->modules[i].path);
    }
    free(set->modules);
    for (size_t i = 0; i < set->nblocks; i++)
        free(set->blocks[i]);
    free(set->blocks);
    free(set->filled);
    free(set->node_hint);
    free(set->stack_hint);
    for (size_t i = 0; i < set->nsnaps; i++)
        free(set->values[i].v);
    free(set->values);
    free(set->frames);
    free(set->stacks);
    free(set->nodes);
    ml_strmap_free(set->fkeys);
    ml_hashidx_free(&set->sidx);
    ml_hashidx_free(&set->nidx);
    free(set);
}

/* A frame's identity string, built in one buffer that the frames of an
 * add share: a snapshot has a hundred thousand frames, and a formatted,
 * allocated string for each cost more than looking it up. */
typedef struct {
    char *s;
    size_t n, cap;
} keybuf_t;

static bool key_put(keybuf_t *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (b->n + n + 1 > nc)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns)
            return false;
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return true;
}

static bool key_str(keybuf_t *b, const char *s) { return key_put(b, s, strlen(s)); }

/* As printf's %" PRIx64 ": lower-case, no prefix. */
static bool key_hex(keybuf_t *b, uint64_t v)
{
    char t[16];
    size_t k = sizeof t;
    do
        t[--k] = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    return key_put(b, t + k, sizeof t - k);
}

/* As printf's %d. */
static bool key_int(keybuf_t *b, int v)
{
    char t[12];
    size_t k = sizeof t;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do
        t[--k] = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        t[--k] = '-';
    return key_put(b, t + k, sizeof t - k);
}

/* The identity of frame f: "p<TAB>file<TAB>function<TAB>line" (Python),
 * "m<TAB>text" (a mark), "n<TAB>build-id or path<TAB>hex offset" (native
 * in a module), "a<TAB>hex address" (native elsewhere). Into b->s; false
 * when out of memory. */
static bool frame_key(keybuf_t *b, const ml_snapshot_t *snap, const ml_rframe_t *f)
{
    b->n = 0;
    if (f->kind == ML_FRAME_PYTHON)
        return key_str(b, "p\t") && key_str(b, f->file ? f->file : "") && key_str(b, "\t") &&
               key_str(b, f->function ? f->function : "") && key_str(b, "\t") && key_int(b, f->line);
    if (f->mark) /* a note: its text is what it says ("[49 Python frames elided]") */
        return key_str(b, "m\t") && key_str(b, f->function ? f->function : "");
    if (f->module >= 0) {
        const ml_rmodule_t *m = &snap->modules[f->module];
        return key_str(b, "n\t") && key_str(b, m->build_id ? m->build_id : m->path ? m->path : "?") &&
               key_str(b, "\t") && key_hex(b, f->offset);
    }
    return key_str(b, "a\t") && key_hex(b, f->offset);
}

static bool same(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static char *dup_or_null(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *ok = false;
    return d;
}

/* Fills map[i] with the set's copy of the snapshot's module i, copying the
 * modules it has not seen (modules are few: a linear search). Frames keep
 * pointers to the strings, never into the array, which may move. */
static bool add_modules(ml_stackset_t *set, const ml_snapshot_t *snap, uint32_t *map)
{
    if (!ML_GROW(set->modules, set->modules_cap, set->nmodules + snap->nmodules))
        return false;
    for (size_t i = 0; i < snap->nmodules; i++) {
        const ml_rmodule_t *r = &snap->modules[i];
        size_t j = 0;
        while (j < set->nmodules && !(same(set->modules[j].build_id, r->build_id) && same(set->modules[j].path, r->path)))
            j++;
        map[i] = (uint32_t)j;
        if (j < set->nmodules)
            continue;
        bool ok = true;
        smodule_t *m = &set->modules[set->nmodules];
        m->build_id = dup_or_null(r->build_id, &ok);
        m->path = dup_or_null(r->path, &ok);
        set->nmodules++;
        if (!ok)
            return false;
    }
    return true;
}

/* Returns the frame's uid (+1), 0 on out of memory. */
static uint32_t intern_frame(ml_stackset_t *set, const ml_snapshot_t *snap, const uint32_t *modmap,
                             const ml_rframe_t *f, keybuf_t *kb)
{
    if (!frame_key(kb, snap, f))
        return 0;
    const char *key = kb->s;
    uint32_t u = ml_strmap_find(set->fkeys, key);
    if (u != UINT32_MAX)
        return u + 1;
    /* the frame is made before its key is added, so that a failure leaves
     * no key without a frame: uids and key ids stay one and the same */
    if (!ML_GROW(set->frames, set->frames_cap, set->nframes + 1))
        return 0;
    bool ok = true;
    ml_sframe_t sf = {.kind = f->kind, .line = f->line, .offset = f->offset};
    sf.function = f->function ? ml_demangle(f->function) : NULL;
    sf.file = dup_or_null(f->file, &ok);
    char py[512];
    if (f->kind == ML_FRAME_NATIVE && f->function && ml_cython_name(f->function, py, sizeof py))
        sf.cython = dup_or_null(py, &ok);
    ml_sinlined_t *inl = f->ninlined ? calloc(f->ninlined, sizeof *inl) : NULL;
    if (f->ninlined && !inl)
        ok = false;
    for (uint32_t k = 0; inl && k < f->ninlined; k++) {
        const ml_rinlined_t *r = &f->inlined[k];
        inl[k].function = r->function ? ml_demangle(r->function) : NULL;
        inl[k].file = dup_or_null(r->file, &ok);
        inl[k].line = r->line;
        ok = ok && (inl[k].function || !r->function);
    }
    sf.inlined = inl;
    sf.ninlined = inl ? f->ninlined : 0;
    uint32_t id = ok && (sf.function || !f->function) ? ml_strmap_id(set->fkeys, key) : UINT32_MAX;
    if (id != set->nframes) {
        free_names(&sf);
        return 0;
    }
    if (f->module >= 0) {
        const smodule_t *m = &set->modules[modmap[f->module]];
        sf.module = m->path;
        sf.build_id = m->build_id;
    }
    set->frames[set->nframes++] = sf;
    return (uint32_t)set->nframes;
}

/* The keys of the two indexes. ml_hash_u64 is a bijection: equal hashes
 * are equal keys, and a probe never looks at the node or stack itself (a
 * second cache miss). */
static inline uint64_t node_hash(uint32_t parent, uint32_t frame)
{
    return ml_hash_u64(((uint64_t)parent << 32 | frame) ^ ML_HASH_SEED);
}

static inline uint64_t stack_hash(uint32_t node, int domain)
{
    return ml_hash_u64(((uint64_t)node << 8 | (uint64_t)(domain & 0xff)) ^ ML_HASH_SEED);
}

/* The node for frame `frame` called from node `parent`: its uid, or
 * UINT32_MAX when out of memory. */
static uint32_t intern_node(ml_stackset_t *set, uint32_t parent, uint32_t frame)
{
    if (!set->nnodes) { /* the root */
        if (!ML_GROW(set->nodes, set->nodes_cap, 1))
            return UINT32_MAX;
        set->nodes[0] = (snode_t){0, 0, 0};
        set->nnodes = 1;
    }
    uint64_t h = node_hash(parent, frame);
    uint32_t u = ml_hashidx_find(&set->nidx, h, NULL, NULL);
    if (u != ML_HASHIDX_NONE)
        return u;
    u = (uint32_t)set->nnodes;
    if (u == UINT32_MAX || !ML_GROW(set->nodes, set->nodes_cap, set->nnodes + 1) || !ml_hashidx_add(&set->nidx, h, u))
        return UINT32_MAX;
    set->nodes[u] = (snode_t){parent, frame, set->nodes[parent].depth + 1};
    set->nnodes++;
    return u;
}

/* The stack of `domain` ending at `node`: its uid (+1), 0 on out of
 * memory. A new one gets its depth; its frames come later (give_frames). */
static uint32_t intern_stack(ml_stackset_t *set, int domain, uint32_t node)
{
    uint64_t h = stack_hash(node, domain);
    uint32_t u = ml_hashidx_find(&set->sidx, h, NULL, NULL);
    if (u != ML_HASHIDX_NONE)
        return u + 1;
    u = (uint32_t)set->nstacks;
    if (u == UINT32_MAX || !ML_GROW(set->stacks, set->stacks_cap, set->nstacks + 1) ||
        !ML_GROW(set->filled, set->filled_cap, set->nstacks / 64 + 1) || !ml_hashidx_add(&set->sidx, h, u))
        return 0;
    set->stacks[u] = (ml_sstack_t){domain, node ? set->nodes[node].depth : 0, NULL, node};
    set->nstacks++;
    return u + 1;
}

/* Room for the frames of stacks `from`.. (those one add made), in one
 * block: what a stack's frames will be is known (the path from its node),
 * so nothing is written now, and the pages of stacks nobody asks for are
 * never touched. False when out of memory: those stacks then have no
 * frames (the add fails, and the set is only fit to be freed). */
static bool give_frames(ml_stackset_t *set, size_t from)
{
    if (from == set->nstacks)
        return true;
    size_t total = 1;
    for (size_t u = from; u < set->nstacks; u++)
        total += set->stacks[u].nframes;
    uint32_t *block = NULL;
    if (total <= SIZE_MAX / sizeof *block && ML_GROW(set->blocks, set->blocks_cap, set->nblocks + 1))
        block = malloc(total * sizeof *block);
    static uint32_t none[1];
    for (size_t u = from, at = 0; u < set->nstacks; u++) {
        ml_sstack_t *st = &set->stacks[u];
        if (block) {
            st->frames = block + at;
            at += st->nframes;
        } else {
            st->frames = none;
            st->nframes = 0;
            set->filled[u / 64] |= 1ull << (u % 64);
        }
    }
    if (!block)
        return false;
    set->blocks[set->nblocks++] = block;
    return true;
}

/* Asks for huge pages under an index's slots, where transparent huge
 * pages are given on request (the usual "madvise" setting). The node
 * index of a large process is tens of megabytes probed at random: on 4 KiB
 * pages every probe is a TLB miss and every page a fault of its own, a
 * third of the time it takes to add a snapshot. Only whole 2 MiB pages
 * inside the slots are marked (the slots are calloc's, untouched when the
 * index has just grown); where the kernel has none, nothing changes. */
static void huge_pages(const ml_hashidx_t *x)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t from = ((uintptr_t)x->slot + huge - 1) & ~(huge - 1);
    uintptr_t to = ((uintptr_t)x->slot + x->cap * sizeof *x->slot) & ~(huge - 1);
    if (x->slot && to > from)
        madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
    (void)x;
#endif
}

/* Maps the snapshot's tree onto the set's, node by node (parents come
 * first) into map[0..nnodes]. A node is first tried where the last
 * snapshot's node of the same number went; the index is asked otherwise,
 * its slot prefetched AHEAD nodes early with the parent's node as known
 * by then, or guessed (the hint, or the next new node's number). */
static bool map_nodes(ml_stackset_t *set, const ml_snapshot_t *snap, const uint32_t *fuid, uint32_t *map)
{
    const uint32_t *hint = set->node_hint;
    size_t nhint = set->nnode_hint, n = snap->nnodes;
    map[0] = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i + AHEAD <= n) {
            size_t j = i + AHEAD;
            uint32_t p = snap->node_parent[j], f = fuid[snap->node_frame[j]];
            uint32_t c = j < nhint ? hint[j] : 0;
            /* a hint that names the right frame will most likely do: its
             * node is what to have at hand then, not the index's slot */
            if (c && c < set->nnodes && set->nodes[c].frame == f) {
                __builtin_prefetch(&set->nodes[c]);
            } else {
                uint32_t mp = p < i ? map[p] : p < nhint ? hint[p] : (uint32_t)(set->nnodes + (p - i));
                ml_hashidx_prefetch(&set->nidx, node_hash(mp, f));
            }
        }
        uint32_t parent = map[snap->node_parent[i]], frame = fuid[snap->node_frame[i]];
        if (i < nhint) {
            /* the set has one node per (parent, frame): one that matches is the one */
            uint32_t c = hint[i];
            if (c && c < set->nnodes && set->nodes[c].parent == parent && set->nodes[c].frame == frame) {
                map[i] = c;
                continue;
            }
        }
        map[i] = intern_node(set, parent, frame);
        if (map[i] == UINT32_MAX)
            return false;
    }
    return true;
}

/* Each of the snapshot's stacks' leaf in the set's tree: a version 2
 * snapshot's tree maps over node by node, a version 1 stack is walked
 * from its outermost frame. The node map becomes the next add's hint. */
static uint32_t *map_leaves(ml_stackset_t *set, const ml_snapshot_t *snap, const uint32_t *fuid)
{
    uint32_t *leaf = calloc(snap->nstacks + 1, sizeof *leaf); /* 0: no frames */
    if (!leaf)
        return NULL;
    /* room at once for as much as the larger of the set and the snapshot
     * (snapshots of one process share most of their nodes and stacks) */
    if (!ml_hashidx_reserve(&set->nidx, (set->nnodes > snap->nnodes ? set->nnodes : snap->nnodes) + 1) ||
        !ml_hashidx_reserve(&set->sidx, (set->nstacks > snap->nstacks ? set->nstacks : snap->nstacks) + 1)) {
        free(leaf);
        return NULL;
    }
    huge_pages(&set->nidx);
    huge_pages(&set->sidx);
    if (snap->node_parent) {
        uint32_t *map = malloc((snap->nnodes + 1) * sizeof *map);
        if (!map || !map_nodes(set, snap, fuid, map)) {
            free(map);
            free(leaf);
            return NULL;
        }
        for (size_t i = 0; i < snap->nstacks; i++)
            leaf[i] = map[snap->stacks[i].node];
        free(set->node_hint);
        set->node_hint = map;
        set->nnode_hint = snap->nnodes + 1;
    } else {
        free(set->node_hint);
        set->node_hint = NULL;
        set->nnode_hint = 0;
    }
    for (size_t i = 0; i < snap->nstacks; i++) {
        const ml_rstack_t *st = &snap->stacks[i];
        if (!st->frames)
            continue;
        uint32_t node = 0;
        for (uint32_t k = st->nframes; k-- > 0 && node != UINT32_MAX;)
            node = intern_node(set, node, fuid[st->frames[k]]);
        if (node == UINT32_MAX) {
            free(leaf);
            return NULL;
        }
        leaf[i] = node;
    }
    return leaf;
}

/* The uid of each of the snapshot's stacks into uid[] (+1, as
 * intern_stack), tried first where the last snapshot's stack of the same
 * number went, else through the index, prefetched AHEAD stacks early.
 * False when out of memory. */
static bool map_stacks(ml_stackset_t *set, const ml_snapshot_t *snap, const uint32_t *leaf, uint32_t *uid)
{
    const uint32_t *hint = set->stack_hint;
    size_t nhint = set->nstack_hint, n = snap->nstacks;
    for (size_t i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            size_t j = i + AHEAD;
            uint32_t c = j < nhint ? hint[j] : UINT32_MAX;
            if (c < set->nstacks && set->stacks[c].node == leaf[j])
                __builtin_prefetch(&set->stacks[c]);
            else
                ml_hashidx_prefetch(&set->sidx, stack_hash(leaf[j], snap->stacks[j].domain));
        }
        int domain = snap->stacks[i].domain;
        uint32_t c = i < nhint ? hint[i] : UINT32_MAX;
        /* a stack is its domain and node: one that matches is the one */
        if (c < set->nstacks && set->stacks[c].node == leaf[i] && set->stacks[c].domain == domain)
            uid[i] = c + 1;
        else if (!(uid[i] = intern_stack(set, domain, leaf[i])))
            return false;
    }
    return true;
}

/* Adds snap's stacks as snapshot si (an existing one, or the next);
 * uids, when given, gets each record's stack number. */
static int add(ml_stackset_t *set, const ml_snapshot_t *snap, size_t si, uint32_t *uids)
{
    if (si > set->nsnaps)
        return -1;
    if (si == set->nsnaps) {
        if (!ML_GROW(set->values, set->values_cap, set->nsnaps + 1))
            return -1;
        set->nsnaps++; /* its values start empty: ML_GROW zeroes */
    }

    if (!set->nnodes) {
        /* a first snapshot: room for what it holds and an eighth more (the
         * next of the same process adds a few), each array in one calloc,
         * whose untouched pages cost nothing; a failure here is left to
         * the growing below */
        (void)ML_RESERVE(set->nodes, set->nodes_cap, snap->nnodes + snap->nnodes / 8 + 2);
        (void)ML_RESERVE(set->stacks, set->stacks_cap, snap->nstacks + snap->nstacks / 8 + 1);
        (void)ML_RESERVE(set->frames, set->frames_cap, snap->nframes + snap->nframes / 8 + 1);
    }
    uint32_t *fuid = malloc((snap->nframes + 1) * sizeof *fuid);
    uint32_t *modmap = malloc((snap->nmodules + 1) * sizeof *modmap);
    if (!fuid || !modmap || !add_modules(set, snap, modmap)) {
        free(fuid);
        free(modmap);
        return -1;
    }
    keybuf_t kb = {NULL, 0, 0};
    for (size_t i = 0; i < snap->nframes; i++) {
        fuid[i] = intern_frame(set, snap, modmap, &snap->frames[i], &kb);
        if (!fuid[i]) {
            free(kb.s);
            free(fuid);
            free(modmap);
            return -1;
        }
        fuid[i]--;
    }
    free(kb.s);
    free(modmap);
    uint32_t *leaf = map_leaves(set, snap, fuid);
    free(fuid);
    /* the leaves become the stacks' uids (+1) in place */
    size_t before = set->nstacks;
    bool ok = leaf && map_stacks(set, snap, leaf, leaf);
    if (!give_frames(set, before) || !ok) {
        free(leaf);
        return -1;
    }
    svalues_t *sv = &set->values[si];
    if (!ML_GROW(sv->v, sv->cap, set->nstacks)) {
        free(leaf);
        return -1;
    }
    for (size_t i = 0; i < snap->nstacks; i++) {
        const ml_rstack_t *st = &snap->stacks[i];
        uint32_t uid = leaf[i];
        if (uids)
            uids[i] = uid - 1;
        ml_sval_t *v = &sv->v[uid - 1];
        v->present = true;
        v->live_bytes = ml_sat_add(v->live_bytes, st->live_bytes);
        v->live_count = ml_sat_add(v->live_count, st->live_count);
        v->total_bytes = ml_sat_add(v->total_bytes, st->total_bytes);
        v->total_count = ml_sat_add(v->total_count, st->total_count);
        leaf[i] = uid - 1;
    }
    /* the uids are the next add's hints */
    free(set->stack_hint);
    set->stack_hint = leaf;
    set->nstack_hint = snap->nstacks;
    return (int)si;
}

int ml_stackset_add(ml_stackset_t *set, const ml_snapshot_t *snap) { return add(set, snap, set->nsnaps, NULL); }

int ml_stackset_add_mapped(ml_stackset_t *set, const ml_snapshot_t *snap, uint32_t *uids)
{
    return add(set, snap, set->nsnaps, uids);
}

int ml_stackset_add_into(ml_stackset_t *set, const ml_snapshot_t *snap, size_t si) { return add(set, snap, si, NULL); }

size_t ml_stackset_nsnapshots(const ml_stackset_t *set) { return set->nsnaps; }
size_t ml_stackset_nstacks(const ml_stackset_t *set) { return set->nstacks; }
size_t ml_stackset_nframes(const ml_stackset_t *set) { return set->nframes; }

void ml_stackset_drop_values(ml_stackset_t *set, size_t snap)
{
    if (snap >= set->nsnaps)
        return;
    free(set->values[snap].v);
    set->values[snap] = (svalues_t){NULL, 0};
}

const ml_sstack_t *ml_stackset_stack(const ml_stackset_t *set, uint32_t uid)
{
    /* the set is const to its readers, but a stack's frames are written
     * on first ask (give_frames): the memory is the set's, reached through
     * its pointers */
    ml_sstack_t *st = &set->stacks[uid];
    uint64_t bit = 1ull << (uid % 64);
    if (!(set->filled[uid / 64] & bit)) {
        uint32_t k = 0;
        for (uint32_t x = st->node; x && k < st->nframes; x = set->nodes[x].parent)
            st->frames[k++] = set->nodes[x].frame;
        set->filled[uid / 64] |= bit;
    }
    return st;
}

int ml_stackset_domain(const ml_stackset_t *set, uint32_t uid) { return set->stacks[uid].domain; }

const ml_sframe_t *ml_stackset_frame(const ml_stackset_t *set, uint32_t uid) { return &set->frames[uid]; }

ml_sval_t ml_stackset_value(const ml_stackset_t *set, size_t snap, uint32_t uid)
{
    ml_sval_t zero = {0, 0, 0, 0, false};
    if (snap >= set->nsnaps || uid >= set->values[snap].cap)
        return zero;
    return set->values[snap].v[uid];
}
