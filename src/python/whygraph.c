/* whygraph.c — from a block to a root through Python's object graph (see
 * whygraph.h).
 *
 * With the GIL held, no Python object changes: every thread that could
 * change one waits for the GIL (threads in C code without it touch no
 * objects). So the search works on the live heap, in place:
 *
 *   1. list every object gc tracks, from its generation lists (and the
 *      permanent generation of gc.freeze()), into an index: address ->
 *      dense number;
 *   2. match the candidates: a block of the Python domain is an object
 *      when a tracked object starts 16 (gc header) or 32 (gc header and
 *      managed-dict pre-header) bytes into it; an untracked object (bytes,
 *      str, a numpy array) when its header looks like one (a plausible
 *      reference count and a type whose type is a type): the walk below
 *      confirms it when some object's tp_traverse visits it;
 *   3. a breadth-first walk of references, with each type's tp_traverse as
 *      gc uses it, from roots in order of preference, each phase only over
 *      what the phases before did not reach: the modules' dicts (module
 *      globals; __main__ first), then the local variables of every
 *      thread's frames, then (after gc's own count: an object whose
 *      reference count exceeds the references tracked objects hold to it
 *      is referenced from outside the object graph) those externally held
 *      objects, and last what is left, which is garbage gc has not
 *      collected: unreachable cycles. Each object remembers the one it was
 *      first reached from, so the path to a root is the chain of those;
 *      a breadth-first walk makes it a shortest one. The walk ends as soon
 *      as every sample is resolved;
 *   4. name each hop on the paths found (dict key, attribute, index,
 *      closure cell, ...), reading objects in place.
 * Then the GIL goes back. Nothing here calls Python code: dicts are
 * iterated with PyDict_Next (which compares nothing), keys are shown only
 * for types whose contents can be read directly, attributes are found
 * through the instance's dict or the class's shared keys, never through
 * getattr. The pause limit is checked every 256 objects walked.
 *
 * Memory: about 30 bytes per tracked object, mapped for the search and
 * unmapped after it (core/sysmem.h), never through the heap being
 * searched. */
#include "python/whygraph.h"
#include "common/format.h"
#include "common/io.h"
#include "core/sysmem.h"
#include "python/pycode.h"
#include "python/pyframes.h"
#include "python/pymem.h"
#include "python/python.h"
#include "python/pyversions.h"
#include "python/whylayout.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct pyobj pyobj_t; /* a PyObject, never looked into by type */
typedef int (*visitproc_t)(pyobj_t *, void *);
typedef int (*traverseproc_t)(pyobj_t *, visitproc_t, void *);

#define NONE UINT32_MAX
#define SEED 0x80000000u
#define ROOT_EXTERNAL 0x7fffffffu
#define ROOT_UNREACHABLE 0x7ffffffeu
#define MAX_ROOTS 65536
#define MAX_OBJECTS (64u << 20)
#define MAX_CANDIDATES 8192
#define MAX_FRAMES 1024

static struct {
    const ml_pylayout_t *L;
    const ml_pywhy_layout_t *W;
    int (*ensure)(void);
    void (*release)(int);
    int (*dict_next)(pyobj_t *, intptr_t *, pyobj_t **, pyobj_t **);
    pyobj_t *(*modules)(void);
    void *(*interp)(void);
    void *(*thread_head)(void *);
    void *(*thread_next)(void *);
    uintptr_t t_type, t_dict, t_list, t_tuple, t_str, t_bytes, t_int, t_bool, t_float, t_cell, t_function,
        t_module, t_code, t_frame, t_set, t_frozenset;
    uintptr_t none, true_, false_;
} A;

/* ---- reading objects (the GIL is held: they are alive) ---- */

static inline uintptr_t rd(uintptr_t a, long off) { return *(const uintptr_t *)(a + (uintptr_t)off); }
static inline int64_t rdi(uintptr_t a, long off) { return *(const int64_t *)(a + (uintptr_t)off); }
static inline uintptr_t type_of(uintptr_t o) { return rd(o, ML_PY_OB_TYPE); }
static inline unsigned long flags_of(uintptr_t t) { return (unsigned long)rd(t, ML_PYW_TP_FLAGS); }

static bool is_subtype(uintptr_t t, uintptr_t base)
{
    for (int depth = 0; t && depth < 64; depth++, t = rd(t, ML_PYW_TP_BASE))
        if (t == base)
            return true;
    return false;
}

static void type_name(uintptr_t t, char *out, size_t cap)
{
    const char *n = t ? (const char *)rd(t, ML_PYW_TP_NAME) : NULL;
    ml_fmt(out, cap, "%s", n ? n : "?");
}


/* A str's text as UTF-8 (at most cap - 1 bytes, "..." when cut), quoted
 * and with control characters escaped when `quote`. False for anything
 * that is not a compact str. */
static bool str_text(uintptr_t o, bool quote, char *out, size_t cap)
{
    if (!o || (o & 7) || !is_subtype(type_of(o), A.t_str) || cap < 8)
        return false;
    const ml_pylayout_t *L = A.L;
    int64_t len = rdi(o, ML_PY_UNI_LENGTH);
    uint32_t state = *(const uint32_t *)(o + (uintptr_t)L->uni_state);
    unsigned kind = (state >> ML_PY_UNI_KIND_SHIFT) & 7, compact = (state >> ML_PY_UNI_COMPACT_BIT) & 1,
             ascii = (state >> ML_PY_UNI_ASCII_BIT) & 1;
    if (!compact || len < 0 || (kind != 1 && kind != 2 && kind != 4))
        return false;
    const unsigned char *data = (const unsigned char *)(o + (uintptr_t)(ascii ? L->uni_ascii_size : L->uni_compact_size));
    size_t k = 0, room = cap - 8;
    if (quote)
        out[k++] = '\'';
    for (int64_t i = 0; i < len; i++) {
        uint32_t c = kind == 1 ? data[i] : kind == 2 ? ((const uint16_t *)data)[i] : ((const uint32_t *)data)[i];
        if (k + 6 > room) {
            memcpy(out + k, "...", 3);
            k += 3;
            break;
        }
        if (quote && (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')) {
            k += ml_fmt(out + k, cap - k, c == '\'' || c == '\\' ? "\\%c" : "\\x%02x", c);
            continue;
        }
        k += ml_utf8_put(out + k, c > 0x10ffff ? 0xfffd : c);
    }
    if (quote)
        out[k++] = '\'';
    out[k] = '\0';
    return true;
}

/* An int's value when it fits 60 bits; false otherwise. */
static bool int_value(uintptr_t o, int64_t *v)
{
    uint64_t nd;
    bool neg;
    if (A.W->long_tag >= 0) {
        uint64_t tag = (uint64_t)rdi(o, A.W->long_tag);
        nd = tag >> 3;
        neg = (tag & 3) == 2;
    } else {
        int64_t size = rdi(o, ML_PYW_OB_SIZE);
        neg = size < 0;
        nd = (uint64_t)(neg ? -size : size);
    }
    if (nd > 2)
        return false;
    const uint32_t *d = (const uint32_t *)(o + ML_PYW_LONG_DIGITS);
    uint64_t x = 0;
    for (uint64_t i = nd; i-- > 0;)
        x = x << 30 | (d[i] & 0x3fffffff);
    *v = neg ? -(int64_t)x : (int64_t)x;
    return true;
}

/* A short repr of a dict key or similar, without calling any of its code. */
static void short_repr(uintptr_t o, char *out, size_t cap, int depth)
{
    if (!o) {
        ml_fmt(out, cap, "NULL");
        return;
    }
    uintptr_t t = type_of(o);
    int64_t v;
    if (o == A.none) {
        ml_fmt(out, cap, "None");
    } else if (o == A.true_ || o == A.false_) {
        ml_fmt(out, cap, "%s", o == A.true_ ? "True" : "False");
    } else if (t == A.t_str && str_text(o, true, out, cap)) {
        return;
    } else if (t == A.t_int && int_value(o, &v)) {
        ml_fmt(out, cap, "%lld", (long long)v);
    } else if (t == A.t_float) {
        snprintf(out, cap, "%.17g", *(const double *)(o + ML_PYW_FLOAT_VAL));
    } else if (t == A.t_bytes) {
        int64_t n = rdi(o, A.L->bytes_size);
        const unsigned char *b = (const unsigned char *)(o + (uintptr_t)A.L->bytes_sval);
        size_t k = ml_fmt(out, cap, "b'");
        for (int64_t i = 0; i < n && k + 8 < cap; i++)
            k += ml_fmt(out + k, cap - k, b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\'' && b[i] != '\\' ? "%c" : "\\x%02x",
                        b[i]);
        ml_fmt(out + k, cap - k, "'");
    } else if (t == A.t_tuple && depth == 0) {
        int64_t n = rdi(o, ML_PYW_OB_SIZE);
        size_t k = ml_fmt(out, cap, "(");
        for (int64_t i = 0; i < n && i < 4 && k + 8 < cap; i++) {
            k += ml_fmt(out + k, cap - k, i ? ", " : "");
            short_repr(rd(o, ML_PYW_TUPLE_ITEMS + 8 * i), out + k, cap - k, 1);
            k += strlen(out + k);
        }
        ml_fmt(out + k, cap - k, n > 4 ? ", ...)" : n == 1 ? ",)" : ")");
    } else {
        char tn[64];
        type_name(t, tn, sizeof tn);
        ml_fmt(out, cap, "<%s object at 0x%llx>", tn, (unsigned long long)o);
    }
}

/* ---- the index of tracked objects ---- */

static struct {
    uint64_t *addr;
    uint32_t *parent;
    int32_t *refs;
    uint32_t *queue;
    uint8_t *target;
    uint32_t *slot;
    size_t slot_cap, cap;
    uint32_t n, qhead, qtail;
    uint32_t tracked;   /* the first `tracked` are gc's; the rest were found untracked on the way */
    bool full;          /* an untracked container found no room */
} G;

static inline size_t hash_of(uint64_t a, size_t mask)
{
    a ^= a >> 31;
    a *= 0x9e3779b97f4a7c15ull;
    a ^= a >> 29;
    return (size_t)a & mask;
}

static inline uint32_t find(uint64_t a)
{
    size_t mask = G.slot_cap - 1;
    for (size_t j = hash_of(a, mask); G.slot[j]; j = (j + 1) & mask)
        if (G.addr[G.slot[j] - 1] == a)
            return G.slot[j] - 1;
    return NONE;
}

/* ---- candidates: objects that are, or own, a sampled block ---- */

static struct {
    uint64_t obj[MAX_CANDIDATES];
    int32_t node[MAX_CANDIDATES];   /* whyheap node whose block holds the object */
    uint32_t gc[MAX_CANDIDATES];    /* tracked: its index; else NONE */
    uint32_t parent[MAX_CANDIDATES]; /* untracked: what reached it first */
    uint32_t next[MAX_CANDIDATES];  /* the next candidate (+1) in its hash chain, 0: none */
    uint32_t n;
    uint64_t lo, hi;
    uint32_t head[4096];            /* hash: object -> first candidate + 1 */
    /* per sample */
    uint32_t own[MAX_CANDIDATES];   /* the candidate that is the sample itself, or NONE */
    bool done[MAX_CANDIDATES];
    bool wants[MAX_CANDIDATES];     /* has at least one candidate */
    uint32_t unresolved;
} C;

static const ml_why_heap_t *H;

/* The first candidate (+1) that is object obj, 0 when none; the next
 * ones follow through C.next (also +1). */
static uint32_t cand_first(uint64_t obj)
{
    for (uint32_t c = C.head[hash_of(obj, 4095)]; c; c = C.next[c - 1])
        if (C.obj[c - 1] == obj)
            return c;
    return 0;
}

static void reached(uint64_t obj, uint32_t parent)
{
    for (uint32_t c1 = cand_first(obj); c1; c1 = C.next[c1 - 1]) {
        uint32_t c = c1 - 1;
        if (C.obj[c] != obj)
            continue;
        if (C.gc[c] == NONE && C.parent[c] == NONE)
            C.parent[c] = parent;
        uint32_t s = H->nodes[C.node[c]].sample;
        if (!C.done[s] && (C.own[s] == NONE || C.own[s] == c)) {
            C.done[s] = true;
            C.unresolved--;
        }
    }
}

static void add_candidate(uint64_t obj, int32_t node, uint32_t gc)
{
    if (C.n >= MAX_CANDIDATES)
        return;
    uint32_t c = C.n++;
    C.obj[c] = obj;
    C.node[c] = node;
    C.gc[c] = gc;
    C.parent[c] = NONE;
    size_t h = hash_of(obj, 4095);
    C.next[c] = C.head[h];
    C.head[h] = c + 1;
    if (gc == NONE) {
        C.lo = obj < C.lo ? obj : C.lo;
        C.hi = obj > C.hi ? obj : C.hi;
    } else {
        G.target[gc] = 1;
    }
    uint32_t s = H->nodes[node].sample;
    if (H->nodes[node].level == 0)
        C.own[s] = c;
    C.wants[s] = true;
}

/* Whether the block at b starts with an object header: a plausible
 * reference count and a type whose own type is `type` or a subclass of
 * it. Read safely: the block may have been freed since it was sampled. */
static bool looks_like_object(uint64_t b, uint64_t size)
{
    uint64_t hdr[2], tt[2];
    if (size < 16 || !ml_why_read(b, hdr, sizeof hdr))
        return false;
    if ((int64_t)hdr[0] <= 0 || hdr[0] > (1ull << 40) || !hdr[1] || (hdr[1] & 7))
        return false;
    if (!ml_why_read(hdr[1], tt, sizeof tt) || !tt[1] || (tt[1] & 7))
        return false;
    if (tt[1] == A.t_type)
        return true;
    uint64_t f;
    return ml_why_read(tt[1] + ML_PYW_TP_FLAGS, &f, sizeof f) && (f & ML_PYW_TPF_TYPE_SUBCLASS);
}

/* The candidates: each Python-domain block on a sample's chain that is
 * an object, nearest the sample first; the holders of a block that is an
 * object are not candidates (the nearest Python object owns the block:
 * a bytearray, not the instance whose attribute the bytearray is, which
 * the walk finds through the bytearray anyway). */
static void match_candidates(void)
{
    memset(&C, 0, sizeof C);
    C.lo = UINT64_MAX;
    for (uint32_t s = 0; s < H->nsamples; s++)
        C.own[s] = NONE;
    static bool below[ML_WHY_MAX_NODES]; /* node i, or one on its chain below it, is a candidate */
    for (uint32_t i = 0; i < H->n && i < ML_WHY_MAX_NODES; i++) {
        const ml_why_node_t *nd = &H->nodes[i];
        below[i] = nd->child >= 0 && below[nd->child];
        if (nd->domain != ML_DOM_PYTHON || below[i])
            continue;
        uint32_t before = C.n;
        uint32_t g = find(nd->addr + ML_PYW_GC_HEAD);
        if (g == NONE)
            g = find(nd->addr + 2 * ML_PYW_GC_HEAD);
        if (g != NONE)
            add_candidate(G.addr[g], (int32_t)i, g);
        else if (looks_like_object(nd->addr, nd->size))
            add_candidate(nd->addr, (int32_t)i, NONE);
        below[i] = C.n > before;
    }
    for (uint32_t s = 0; s < H->nsamples; s++)
        C.unresolved += C.wants[s];
}

/* ---- the walk ---- */

static uint64_t limit_ns;
static bool over;
static uint64_t visited;

static bool past_limit(void)
{
    if (!over && ml_why_now_ns() > limit_ns)
        over = true;
    return over;
}

/* Adds an object gc does not track to the index (dicts and tuples that
 * hold only atomic values are untracked, yet hold references all the
 * same); its number, or NONE when the index is full. */
static uint32_t add_untracked(uint64_t o)
{
    if (G.n + 1 >= G.cap) {
        G.full = true;
        return NONE;
    }
    size_t mask = G.slot_cap - 1, j = hash_of(o, mask);
    while (G.slot[j])
        j = (j + 1) & mask;
    G.addr[G.n] = o;
    G.parent[G.n] = NONE;
    G.slot[j] = ++G.n;
    return G.n - 1;
}

/* A dict or tuple gc does not track (CPython untracks those that hold
 * only atomic values, such as a dict of str keys and bytearray values),
 * yet holding references all the same: walked too. Only these two: other
 * untracked objects of gc types (static type objects, objects a C
 * extension untracked) may not be in a state their tp_traverse expects. */
static bool untracked_container(uint64_t o)
{
    unsigned long f = o ? flags_of(type_of(o)) : 0;
    return (f & ML_PYW_TPF_HAVE_GC) && (f & (ML_PYW_TPF_DICT_SUBCLASS | ML_PYW_TPF_TUPLE_SUBCLASS));
}

/* Object o, first reached from `from`: remembered and queued. */
static void reach(uint32_t j, uint64_t o, uint32_t from)
{
    G.parent[j] = from;
    G.queue[G.qtail++] = j;
    if (G.target[j])
        reached(o, from);
}

static int visit_reach(pyobj_t *op, void *arg)
{
    uint64_t o = (uint64_t)(uintptr_t)op;
    uint32_t cur = *(const uint32_t *)arg;
    uint32_t j = find(o);
    if (j != NONE) {
        if (G.parent[j] == NONE)
            reach(j, o, cur);
        return 0;
    }
    if (o >= C.lo && o <= C.hi)
        reached(o, cur);
    if (untracked_container(o) && (j = add_untracked(o)) != NONE)
        reach(j, o, cur);
    return 0;
}

static int visit_dec(pyobj_t *op, void *arg)
{
    (void)arg;
    uint32_t j = find((uint64_t)(uintptr_t)op);
    if (j != NONE)
        G.refs[j]--;
    return 0;
}

static void traverse(uint64_t o, visitproc_t fn, uint32_t cur)
{
    traverseproc_t tr = (traverseproc_t)rd(type_of(o), ML_PYW_TP_TRAVERSE);
    if (tr)
        tr((pyobj_t *)(uintptr_t)o, fn, &cur);
}

/* Walks from the queue until it is empty, every sample is resolved, or the
 * limit is past. False when the limit cut it short. */
static bool bfs(void)
{
    while (G.qhead < G.qtail) {
        if (!C.unresolved)
            return true;
        if (!(G.qhead & 255) && past_limit())
            return false;
        uint32_t i = G.queue[G.qhead++];
        traverse(G.addr[i], visit_reach, i);
        visited++;
    }
    return true;
}

/* A root: a seed's parent is SEED | its root's number. */
typedef struct {
    uint8_t kind;
    uintptr_t a, b;  /* GLOBAL: module name (str); LOCAL: code object, variable name (str) */
    int32_t addr;    /* LOCAL: the frame's instruction (byte offset, -1: not started) */
} root_t;

static root_t *roots;
static uint32_t nroots;

static uint32_t add_root(uint8_t kind, uintptr_t a, uintptr_t b, int32_t addr)
{
    if (nroots >= MAX_ROOTS)
        return NONE;
    roots[nroots] = (root_t){kind, a, b, addr};
    return SEED | nroots++;
}

static void seed(uint64_t o, uint32_t code)
{
    if (!o || code == NONE)
        return;
    uint32_t j = find(o);
    if (j == NONE) {
        if (o >= C.lo && o <= C.hi)
            reached(o, code);
        if (!untracked_container(o) || (j = add_untracked(o)) == NONE)
            return;
    }
    if (G.parent[j] == NONE)
        reach(j, o, code);
}

static bool is_module(uintptr_t o) { return o && is_subtype(type_of(o), A.t_module); }

/* Phase 1: every module's dict, __main__ first. */
static void seed_modules(void)
{
    pyobj_t *mods = A.modules ? A.modules() : NULL;
    if (!mods || !is_subtype(type_of((uintptr_t)mods), A.t_dict))
        return;
    char name[16];
    for (int pass = 0; pass < 2; pass++) {
        intptr_t pos = 0;
        pyobj_t *k, *v;
        while (A.dict_next(mods, &pos, &k, &v)) {
            bool main = str_text((uintptr_t)k, false, name, sizeof name) && strcmp(name, "__main__") == 0;
            if (main != (pass == 0) || !is_module((uintptr_t)v))
                continue;
            uintptr_t d = rd((uintptr_t)v, ML_PYW_MODULE_DICT);
            if (d)
                seed(d, add_root(ML_WHY_ROOT_GLOBAL, (uintptr_t)k, 0, 0));
        }
    }
}

static int64_t tuple_len(uintptr_t t)
{
    return t && is_subtype(type_of(t), A.t_tuple) ? rdi(t, ML_PYW_OB_SIZE) : 0;
}

static uintptr_t tuple_item(uintptr_t t, int64_t i)
{
    return i >= 0 && i < tuple_len(t) ? rd(t, ML_PYW_TUPLE_ITEMS + 8 * i) : 0;
}

/* The name of local slot i of a 3.8-3.10 frame's code. */
static uintptr_t old_local_name(uintptr_t code, int64_t i)
{
    const ml_pywhy_layout_t *W = A.W;
    int64_t nl = *(const int32_t *)(code + (uintptr_t)W->co_nlocals);
    if (i < nl)
        return tuple_item(rd(code, W->co_varnames), i);
    i -= nl;
    int64_t nc = tuple_len(rd(code, W->co_cellvars));
    if (i < nc)
        return tuple_item(rd(code, W->co_cellvars), i);
    return tuple_item(rd(code, W->co_freevars), i - nc);
}

/* Phase 2: the local variables of each thread's frames, innermost first. */
static void seed_locals(void)
{
    const ml_pylayout_t *L = A.L;
    const ml_pywhy_layout_t *W = A.W;
    void *interp = A.interp ? A.interp() : NULL;
    if (!interp || !A.thread_head)
        return;
    unsigned threads = 0;
    for (void *ts = A.thread_head(interp); ts && threads < 4096; ts = A.thread_next(ts), threads++) {
        uintptr_t f = rd((uintptr_t)ts, L->ts_frame);
        if (L->cf_current >= 0)
            f = f && !(f & 7) ? rd(f, L->cf_current) : 0;
        for (unsigned k = 0; f && !(f & 7) && k < MAX_FRAMES; k++, f = rd(f, L->fr_back)) {
            if (L->frames == ML_PYF_CSTACK && *(const int8_t *)(f + (uintptr_t)L->fr_owner) == ML_PY_OWNED_BY_CSTACK)
                continue;
            uintptr_t code = rd(f, L->fr_code);
            if (!code || (code & 7) || type_of(code) != A.t_code)
                continue;
            int32_t addr;
            int64_t n;
            uintptr_t slots;
            if (L->frames == ML_PYF_OBJECT) {
                int lasti = *(const int *)(f + (uintptr_t)L->fr_instr);
                addr = lasti < 0 ? -1 : lasti * L->lasti_bytes;
                n = *(const int32_t *)(code + (uintptr_t)W->co_nlocals) + tuple_len(rd(code, W->co_cellvars)) +
                    tuple_len(rd(code, W->co_freevars));
                slots = f + (uintptr_t)W->f_localsplus;
            } else {
                intptr_t d = (intptr_t)(rd(f, L->fr_instr) - (code + (uintptr_t)L->co_code_adaptive));
                addr = d < 0 || d > INT32_MAX ? -1 : (int32_t)d;
                n = *(const int32_t *)(code + (uintptr_t)W->co_nlocalsplus);
                slots = f + (uintptr_t)W->if_localsplus;
            }
            for (int64_t i = 0; i < n && i < 4096; i++) {
                uintptr_t v = rd(slots, 8 * i);
                if (!v)
                    continue;
                uintptr_t name = L->frames == ML_PYF_OBJECT ? old_local_name(code, i)
                                                            : tuple_item(rd(code, W->co_localsplusnames), i);
                seed(v, add_root(ML_WHY_ROOT_LOCAL, code, name, addr));
            }
        }
    }
}

/* gc's own count: refs = references from outside the tracked objects.
 * False when the limit cut it short. */
static bool count_external(void)
{
    for (uint32_t i = 0; i < G.n; i++) {
        int64_t r = rdi(G.addr[i], ML_PYW_OB_REFCNT);
        G.refs[i] = r > INT32_MAX || r < 0 ? INT32_MAX : (int32_t)r; /* immortal objects (3.12+): a root */
    }
    for (uint32_t i = 0; i < G.n; i++) {
        if (!(i & 255) && past_limit())
            return false;
        traverse(G.addr[i], visit_dec, i);
    }
    return true;
}

/* ---- naming a hop ---- */

static void hop_set(ml_why_hop_t *h, uintptr_t holder_type, const char *via, const char *name)
{
    memset(h, 0, sizeof *h);
    if (holder_type)
        type_name(holder_type, h->type, sizeof h->type);
    ml_fmt(h->via, sizeof h->via, "%s", via);
    ml_fmt(h->name, sizeof h->name, "%s", name ? name : "");
}

/* The dict at the instance dict slot of o, or 0. */
static uintptr_t dict_of(uintptr_t o)
{
    uintptr_t t = type_of(o);
    unsigned long fl = flags_of(t);
    if (A.W->values != ML_PYW_VALUES_NONE && (fl & ML_PYW_TPF_MANAGED_DICT)) {
        uintptr_t d = rd(o, -24);
        return A.W->values == ML_PYW_VALUES_312 && (d & 1) ? 0 : d;
    }
    int64_t off = rdi(t, ML_PYW_TP_DICTOFFSET);
    if (off < 0) {
        int64_t n = rdi(o, ML_PYW_OB_SIZE);
        int64_t size = rdi(t, ML_PYW_TP_BASICSIZE) + (n < 0 ? -n : n) * rdi(t, ML_PYW_TP_ITEMSIZE);
        off += (size + 7) & ~7;
    }
    return off > 0 && off < (1 << 20) ? rd(o, off) : 0;
}

/* A dict entry whose value is c: its key's repr (or the bare name, for an
 * attribute). False when c is no value of d. */
static bool dict_key_of(uintptr_t d, uintptr_t c, bool bare, char *out, size_t cap)
{
    intptr_t pos = 0;
    pyobj_t *k, *v;
    while (A.dict_next((pyobj_t *)d, &pos, &k, &v)) {
        if ((uintptr_t)v != c)
            continue;
        if (!bare || !str_text((uintptr_t)k, false, out, cap))
            short_repr((uintptr_t)k, out, cap, 0);
        return true;
    }
    return false;
}

/* An attribute of o kept in its class's shared-key values (3.11+): the
 * name of the one that is c. */
static bool managed_attr(uintptr_t o, uintptr_t c, char *out, size_t cap)
{
    const ml_pywhy_layout_t *W = A.W;
    uintptr_t t = type_of(o);
    unsigned long fl = flags_of(t);
    if (W->values == ML_PYW_VALUES_NONE || !(fl & ML_PYW_TPF_MANAGED_DICT) || !(fl & ML_PYW_TPF_HEAPTYPE))
        return false;
    uintptr_t vals = 0;
    int64_t cap_vals = 1 << 16;
    if (W->values == ML_PYW_VALUES_311) {
        uintptr_t v = rd(o, -32);
        vals = v ? v + (uintptr_t)W->dv_values : 0;
    } else if (W->values == ML_PYW_VALUES_312) {
        uintptr_t v = rd(o, -24);
        vals = (v & 1) ? v + 1 + (uintptr_t)W->dv_values : 0;
    } else if (fl & ML_PYW_TPF_INLINE_VALUES) {
        uintptr_t v = o + (uintptr_t)rdi(t, ML_PYW_TP_BASICSIZE);
        if (*(const uint8_t *)(v + (uintptr_t)W->dv_valid)) {
            vals = v + (uintptr_t)W->dv_values;
            cap_vals = *(const uint8_t *)v;
        }
    }
    uintptr_t keys = rd(t, W->ht_cached_keys);
    if (!vals || !keys)
        return false;
    int64_t n = rdi(keys, W->dk_nentries);
    unsigned log2ib = *(const uint8_t *)(keys + (uintptr_t)W->dk_log2_index_bytes);
    if (n <= 0 || n > 4096 || log2ib > 40)
        return false;
    uintptr_t entries = keys + (uintptr_t)W->dk_indices + ((uintptr_t)1 << log2ib);
    for (int64_t i = 0; i < n && i < cap_vals; i++)
        if (rd(vals, 8 * i) == c)
            return str_text(rd(entries, 16 * i), false, out, cap);
    return false;
}

/* A member (tp_members, through the bases) at offset off of o's type. */
static bool member_at(uintptr_t t, int64_t off, char *out, size_t cap)
{
    for (int depth = 0; t && depth < 64; depth++, t = rd(t, ML_PYW_TP_BASE)) {
        uintptr_t m = rd(t, ML_PYW_TP_MEMBERS);
        for (int i = 0; m && i < 256; i++, m += ML_PYW_MEMBER_SIZE) {
            const char *name = (const char *)rd(m, 0);
            if (!name)
                break;
            if (rdi(m, ML_PYW_MEMBER_OFFSET) == off) {
                ml_fmt(out, cap, "%s", name);
                return true;
            }
        }
    }
    return false;
}

/* How holder o refers to c, as one raw hop. */
static void name_edge(uintptr_t o, uintptr_t c, ml_why_hop_t *h)
{
    uintptr_t t = type_of(o);
    unsigned long fl = flags_of(t);
    char buf[ML_WHY_HOP_TEXT];
    if (fl & ML_PYW_TPF_DICT_SUBCLASS) {
        if (dict_key_of(o, c, false, buf, sizeof buf)) {
            hop_set(h, t, "key", buf);
            return;
        }
        hop_set(h, t, "dict key", "");
        return;
    }
    if (fl & (ML_PYW_TPF_LIST_SUBCLASS | ML_PYW_TPF_TUPLE_SUBCLASS)) {
        uintptr_t items = fl & ML_PYW_TPF_LIST_SUBCLASS ? rd(o, ML_PYW_LIST_ITEMS) : o + ML_PYW_TUPLE_ITEMS;
        int64_t n = rdi(o, ML_PYW_OB_SIZE);
        for (int64_t i = 0; items && i < n; i++)
            if (rd(items, 8 * i) == c) {
                ml_fmt(buf, sizeof buf, "%lld", (long long)i);
                hop_set(h, t, "index", buf);
                return;
            }
    }
    if (t == A.t_cell && rd(o, ML_PYW_CELL_REF) == c) {
        hop_set(h, t, "cell", "");
        return;
    }
    if (t == A.t_function) {
        const ml_pywhy_layout_t *W = A.W;
        if (rd(o, W->func_closure) == c) {
            hop_set(h, t, "closure", "");
            return;
        }
        if (rd(o, W->func_globals) == c) {
            hop_set(h, t, "globals", "");
            return;
        }
    }
    if ((fl & ML_PYW_TPF_TYPE_SUBCLASS) && rd(o, ML_PYW_TP_DICT) == c) {
        hop_set(h, t, "__dict__", "");
        return;
    }
    if (is_subtype(t, A.t_module) && rd(o, ML_PYW_MODULE_DICT) == c) {
        hop_set(h, t, "__dict__", "");
        return;
    }
    if (t == A.t_set || t == A.t_frozenset || is_subtype(t, A.t_set) || is_subtype(t, A.t_frozenset)) {
        hop_set(h, t, "element", "");
        return;
    }
    if (A.t_frame && t == A.t_frame && A.W->f_localsplus >= 0) {
        uintptr_t code = rd(o, A.L->fr_code);
        for (int64_t i = 0; i < 4096; i++) {
            uintptr_t nm = old_local_name(code, i);
            if (!nm)
                break;
            if (rd(o, A.W->f_localsplus + 8 * i) == c && str_text(nm, false, buf, sizeof buf)) {
                hop_set(h, t, "local", buf);
                return;
            }
        }
    }
    if (!(fl & ML_PYW_TPF_TYPE_SUBCLASS) && dict_of(o) == c) {
        hop_set(h, t, "__dict__", "");
        return;
    }
    if (managed_attr(o, c, buf, sizeof buf)) {
        hop_set(h, t, "attribute", buf);
        return;
    }
    /* a field of the object itself: named when the type declares it. Its
     * size is the type's word, read safely: a var-sized type's ob_size is
     * not always a count of items */
    static uint64_t words[4096 / 8];
    int64_t n = rdi(o, ML_PYW_OB_SIZE), item = rdi(t, ML_PYW_TP_ITEMSIZE);
    int64_t size = rdi(t, ML_PYW_TP_BASICSIZE) + (item ? (n < 0 ? -n : n) * item : 0);
    size = (size > (int64_t)sizeof words ? (int64_t)sizeof words : size) & ~(int64_t)7;
    while (size > 16 && !ml_why_read(o, words, (size_t)size))
        size /= 2; /* past a mapping's end: what is there is enough */
    for (int64_t off = 16; off + 8 <= size; off += 8) {
        if (words[off / 8] != c)
            continue;
        if (member_at(t, off, buf, sizeof buf)) {
            hop_set(h, t, "attribute", buf);
        } else {
            ml_fmt(buf, sizeof buf, "+0x%llx", (unsigned long long)off);
            hop_set(h, t, "field", buf);
        }
        return;
    }
    hop_set(h, t, "reference", "");
}

/* The name of free variable i of function f (3.8-3.10: co_freevars; 3.11+:
 * the last co_nfreevars of the frame's names). */
static uintptr_t freevar_name(uintptr_t f, int64_t i)
{
    const ml_pywhy_layout_t *W = A.W;
    uintptr_t code = rd(f, W->func_code);
    if (!code || type_of(code) != A.t_code)
        return 0;
    if (W->co_freevars >= 0)
        return tuple_item(rd(code, W->co_freevars), i);
    int64_t n = *(const int32_t *)(code + (uintptr_t)W->co_nlocalsplus);
    int64_t nfree = *(const int32_t *)(code + (uintptr_t)W->co_nfreevars);
    return i < nfree ? tuple_item(rd(code, W->co_localsplusnames), n - nfree + i) : 0;
}

/* Names objs[from .. to) (each holding the next) into hops, joining the
 * usual idioms into one hop: an object's __dict__ and its key are one
 * attribute, a function's closure tuple, its cell and the cell's contents
 * are one closure variable. */
static void name_range(const uint64_t *objs, uint32_t from, uint32_t to, bool global_seed, ml_why_path_t *p)
{
    char buf[ML_WHY_HOP_TEXT];
    for (uint32_t i = from; i + 1 < to && p->nhops < ML_WHY_MAX_HOPS; i++) {
        uintptr_t o = objs[i], c = objs[i + 1], t = type_of(o);
        ml_why_hop_t *h = &p->hops[p->nhops++];
        if (i == 0 && global_seed && dict_key_of(o, c, true, buf, sizeof buf)) {
            hop_set(h, A.t_module, "global", buf);
            continue;
        }
        name_edge(o, c, h);
        if (strcmp(h->via, "__dict__") == 0 && i + 2 < to && dict_key_of(c, objs[i + 2], true, buf, sizeof buf)) {
            bool cls = (flags_of(t) & ML_PYW_TPF_TYPE_SUBCLASS) != 0;
            if (cls) /* the class's own name, not its metaclass's */
                type_name(o, h->type, sizeof h->type);
            ml_fmt(h->via, sizeof h->via, "%s", cls ? "class attribute" : "attribute");
            ml_fmt(h->name, sizeof h->name, "%s", buf);
            i++;
        } else if (strcmp(h->via, "closure") == 0 && i + 3 < to && type_of(objs[i + 2]) == A.t_cell) {
            int64_t k = 0;
            while (k < tuple_len(c) && tuple_item(c, k) != objs[i + 2])
                k++;
            if (!str_text(freevar_name(o, k), false, h->name, sizeof h->name))
                ml_fmt(h->name, sizeof h->name, "%lld", (long long)k);
            if (!str_text(rd(o, A.W->func_qualname), false, h->func, sizeof h->func))
                h->func[0] = '\0';
            i += 2;
        }
    }
}

/* The path of candidate c into p (the GIL is held). `chain` has room for
 * every tracked object. */
static void make_path(uint32_t c, uint32_t *chain, ml_why_path_t *p)
{
    uint64_t obj = C.obj[c];
    uint32_t k = 0, up = C.gc[c] != NONE ? G.parent[C.gc[c]] : C.parent[c];
    uint32_t code;
    if (C.gc[c] != NONE)
        chain[k++] = C.gc[c];
    /* untracked: chain holds tracked objects; the candidate is added at the end */
    for (code = up; !(code & SEED) && k < G.n; code = G.parent[code])
        chain[k++] = code;
    /* reverse into root -> object order, as addresses */
    uint32_t m = k + (C.gc[c] == NONE);
    static uint64_t small[2 * ML_WHY_MAX_HOPS + 4];
    /* only the first and last ML_WHY_MAX_HOPS/2 hops are named: keep those objects */
    uint32_t half = ML_WHY_MAX_HOPS / 2;
    uint32_t total_hops = m ? m - 1 : 0;
    uint32_t ns = 0;
    #define OBJ_AT(pos) ((pos) < k ? G.addr[chain[k - 1 - (pos)]] : obj) /* pos 0 = root end */
    p->node = C.node[c];
    type_name(type_of(obj), p->object, sizeof p->object);
    uint32_t rid = code & ~SEED;
    uint64_t seed_obj = m ? OBJ_AT(0) : obj;
    if (rid == ROOT_EXTERNAL || rid == ROOT_UNREACHABLE) {
        p->kind = rid == ROOT_EXTERNAL ? ML_WHY_ROOT_EXTERNAL : ML_WHY_ROOT_UNREACHABLE;
        type_name(type_of(seed_obj), p->type, sizeof p->type);
    } else {
        const root_t *r = &roots[rid];
        p->kind = r->kind;
        if (r->kind == ML_WHY_ROOT_GLOBAL) {
            if (!str_text(r->a, false, p->a, sizeof p->a))
                ml_fmt(p->a, sizeof p->a, "?");
        } else {
            uint32_t serial = ml_pycode_serial(r->a, atomic_load(&ml_pymem_obj_seen) ? 0 : ml_pycode_fingerprint(r->a));
            serial &= ML_PYFRAMES_SERIAL_MASK;
            int line = serial ? ml_pycode_line(serial, r->addr) : -1;
            ml_pyframe_t pf = {0};
            if (serial && ml_pycode_name(serial, line, &pf)) {
                ml_fmt(p->a, sizeof p->a, "%s", pf.file ? pf.file : "?");
                ml_fmt(p->b, sizeof p->b, "%s", pf.function ? pf.function : "?");
            }
            p->line = line;
            if (!str_text(r->b, false, p->c, sizeof p->c))
                ml_fmt(p->c, sizeof p->c, "?");
        }
    }
    bool global = p->kind == ML_WHY_ROOT_GLOBAL;
    uint32_t skip = 0;
    /* a local that is a cell: the variable is what the cell holds */
    if (p->kind == ML_WHY_ROOT_LOCAL && m > 1 && type_of(seed_obj) == A.t_cell)
        skip = 1;
    if (total_hops - skip <= ML_WHY_MAX_HOPS) {
        for (uint32_t i = skip; i < m && ns < ML_ARRAY_LEN(small); i++)
            small[ns++] = OBJ_AT(i);
        name_range(small, 0, ns, global && !skip, p);
    } else {
        for (uint32_t i = 0; i <= half; i++)
            small[ns++] = OBJ_AT(skip + i);
        name_range(small, 0, ns, global && !skip, p);
        p->elided_at = p->nhops;
        p->elided = total_hops - skip - 2 * half;
        uint32_t from = m - half - 1;
        ns = 0;
        for (uint32_t i = from; i < m; i++)
            small[ns++] = OBJ_AT(i);
        name_range(small, 0, ns, false, p);
    }
    #undef OBJ_AT
}

/* ---- the search ---- */

static bool bind(void)
{
    ml_python_info_t pi;
    if (!ml_python_info(&pi) || !pi.layout)
        return false;
    void *h = pi.handle;
    A.L = pi.layout;
    A.W = ml_pywhy_layout(pi.hex);
    A.ensure = (int (*)(void))dlsym(h, "PyGILState_Ensure");
    A.release = (void (*)(int))dlsym(h, "PyGILState_Release");
    A.dict_next = (int (*)(pyobj_t *, intptr_t *, pyobj_t **, pyobj_t **))dlsym(h, "PyDict_Next");
    A.modules = (pyobj_t * (*)(void)) dlsym(h, "PyImport_GetModuleDict");
    A.interp = (void *(*)(void))dlsym(h, "PyInterpreterState_Main");
    if (!A.interp)
        A.interp = (void *(*)(void))dlsym(h, "PyInterpreterState_Head");
    A.thread_head = (void *(*)(void *))dlsym(h, "PyInterpreterState_ThreadHead");
    A.thread_next = (void *(*)(void *))dlsym(h, "PyThreadState_Next");
#define T(field, name) A.field = (uintptr_t)dlsym(h, name)
    T(t_type, "PyType_Type");
    T(t_dict, "PyDict_Type");
    T(t_list, "PyList_Type");
    T(t_tuple, "PyTuple_Type");
    T(t_str, "PyUnicode_Type");
    T(t_bytes, "PyBytes_Type");
    T(t_int, "PyLong_Type");
    T(t_bool, "PyBool_Type");
    T(t_float, "PyFloat_Type");
    T(t_cell, "PyCell_Type");
    T(t_function, "PyFunction_Type");
    T(t_module, "PyModule_Type");
    T(t_code, "PyCode_Type");
    T(t_frame, "PyFrame_Type");
    T(t_set, "PySet_Type");
    T(t_frozenset, "PyFrozenSet_Type");
    T(none, "_Py_NoneStruct");
    T(true_, "_Py_TrueStruct");
    T(false_, "_Py_FalseStruct");
#undef T
    return A.W && A.ensure && A.release && A.dict_next && A.t_type && A.t_dict && A.t_str && A.t_tuple &&
           A.t_code && A.t_module && A.t_cell && A.t_function;
}

static void *map_array(size_t n, size_t each) { return ml_sysmem_map(n * each + 64); }

static void unmap_all(void)
{
    size_t cap = G.cap;
    if (G.addr)
        ml_sysmem_unmap(G.addr, cap * sizeof *G.addr + 64);
    if (G.parent)
        ml_sysmem_unmap(G.parent, cap * sizeof *G.parent + 64);
    if (G.refs)
        ml_sysmem_unmap(G.refs, cap * sizeof *G.refs + 64);
    if (G.queue)
        ml_sysmem_unmap(G.queue, cap * sizeof *G.queue + 64);
    if (G.target)
        ml_sysmem_unmap(G.target, cap + 64);
    if (G.slot)
        ml_sysmem_unmap(G.slot, G.slot_cap * sizeof *G.slot + 64);
    if (roots)
        ml_sysmem_unmap(roots, MAX_ROOTS * sizeof *roots + 64);
    roots = NULL;
    memset(&G, 0, sizeof G);
}

/* The generation lists' heads: 0-2 and the permanent generation. */
static uintptr_t gen_head(uintptr_t gc, int g)
{
    return gc + (g < 3 ? ML_PYW_GC_GEN0 + (uintptr_t)g * ML_PYW_GC_GEN_STRIDE : ML_PYW_GC_PERMANENT);
}

/* How many objects gc tracks; false when the limit passed first. */
static bool count_tracked(uintptr_t gc, uint64_t *n)
{
    *n = 0;
    for (int g = 0; g < 4; g++) {
        uintptr_t head = gen_head(gc, g);
        for (uintptr_t p = rd(head, 0) & ~(uintptr_t)3; p && p != head && *n <= MAX_OBJECTS;
             p = rd(p, 0) & ~(uintptr_t)3)
            if (!(++*n & 65535) && past_limit())
                return false;
    }
    return true;
}

/* The index of the n tracked objects; false when out of memory or past
 * the limit (`over` says which). */
static bool build_index(uintptr_t gc, uint64_t n)
{
    G.cap = n + n / 2 + 4096; /* room for untracked containers met on the way */
    G.slot_cap = 1024;
    while (G.slot_cap < G.cap * 2)
        G.slot_cap *= 2;
    G.addr = map_array(G.cap, sizeof *G.addr);
    G.parent = map_array(G.cap, sizeof *G.parent);
    G.refs = map_array(G.cap, sizeof *G.refs);
    G.queue = map_array(G.cap, sizeof *G.queue);
    G.target = map_array(G.cap, 1);
    G.slot = map_array(G.slot_cap, sizeof *G.slot);
    roots = map_array(MAX_ROOTS, sizeof *roots);
    if (!G.addr || !G.parent || !G.refs || !G.queue || !G.target || !G.slot || !roots)
        return false;
    size_t mask = G.slot_cap - 1;
    for (int g = 0; g < 4; g++) {
        uintptr_t head = gen_head(gc, g);
        for (uintptr_t p = rd(head, 0) & ~(uintptr_t)3; p && p != head && G.n < n; p = rd(p, 0) & ~(uintptr_t)3) {
            uint64_t o = p + ML_PYW_GC_HEAD;
            size_t j = hash_of(o, mask);
            while (G.slot[j])
                j = (j + 1) & mask;
            G.addr[G.n] = o;
            G.parent[G.n] = NONE;
            G.slot[j] = ++G.n;
            if (!(G.n & 65535) && past_limit())
                return false;
        }
    }
    G.tracked = G.n;
    return true;
}

static void stop(ml_why_graph_stats_t *st, const char *what, uint64_t max_pause_ns)
{
    if (!st->stopped[0])
        ml_fmt(st->stopped, sizeof st->stopped, "%s (pause limit %llu ms) after walking %llu of %llu objects",
               what, (unsigned long long)(max_pause_ns / 1000000), (unsigned long long)visited,
               (unsigned long long)G.n);
}

/* The search proper, with the GIL held and the index built. */
static void search(ml_why_graph_stats_t *st, uint64_t max_pause_ns)
{
    match_candidates();
    if (!C.unresolved)
        return;
    seed_modules();
    if (!bfs()) {
        stop(st, "stopped among the modules' globals", max_pause_ns);
        return;
    }
    if (!C.unresolved)
        return;
    seed_locals();
    if (!bfs()) {
        stop(st, "stopped among the threads' locals", max_pause_ns);
        return;
    }
    if (!C.unresolved)
        return;
    if (!count_external()) {
        stop(st, "stopped counting references", max_pause_ns);
        return;
    }
    for (uint32_t i = 0; i < G.n; i++)
        if (G.parent[i] == NONE && G.refs[i] > 0)
            seed(G.addr[i], SEED | ROOT_EXTERNAL);
    if (!bfs()) {
        stop(st, "stopped among objects held from outside", max_pause_ns);
        return;
    }
    for (uint32_t i = 0; i < G.n && C.unresolved; i++)
        if (G.parent[i] == NONE)
            seed(G.addr[i], SEED | ROOT_UNREACHABLE);
    if (!bfs()) {
        stop(st, "stopped among unreachable objects", max_pause_ns);
        return;
    }
}

/* The paths of every sample, once the walk is over (the GIL still held). */
static void resolve(ml_why_path_t *paths)
{
    uint32_t *chain = G.queue; /* the walk is over: its queue has room for every object */
    for (uint32_t s = 0; s < H->nsamples; s++) {
        ml_why_path_t *p = &paths[s];
        uint32_t pick = NONE;
        if (C.own[s] != NONE) {
            uint32_t c = C.own[s];
            if ((C.gc[c] != NONE ? G.parent[C.gc[c]] : C.parent[c]) != NONE)
                pick = c;
        } else {
            /* the nearest Python object on the sample's chain of holders
             * (nodes come in the order they were found: level by level) */
            for (uint32_t c = 0; c < C.n; c++) {
                if (H->nodes[C.node[c]].sample != s)
                    continue;
                uint32_t up = C.gc[c] != NONE ? G.parent[C.gc[c]] : C.parent[c];
                if (up != NONE && (pick == NONE || H->nodes[C.node[c]].level < H->nodes[C.node[pick]].level))
                    pick = c;
            }
        }
        if (pick != NONE) {
            make_path(pick, chain, p);
        } else if (C.own[s] != NONE && C.gc[C.own[s]] == NONE && !over) {
            /* an untracked object no tracked object refers to; nothing
             * visited it, so it is read safely (it only looked like one) */
            uint64_t t = 0, name = 0;
            char tn[64] = "?";
            if (ml_why_read(C.obj[C.own[s]] + ML_PY_OB_TYPE, &t, 8) && ml_why_read(t + ML_PYW_TP_NAME, &name, 8) &&
                name && ml_why_read(name, tn, sizeof tn - 1))
                tn[strnlen(tn, sizeof tn - 1)] = '\0';
            p->kind = ML_WHY_ROOT_EXTERNAL;
            p->node = C.node[C.own[s]];
            ml_fmt(p->object, sizeof p->object, "%s", tn);
            ml_fmt(p->type, sizeof p->type, "%s", tn);
        }
    }
}

void ml_whygraph_run(const ml_why_heap_t *h, ml_why_path_t *paths, uint64_t max_pause_ns, uint64_t deadline_ns,
                     ml_why_graph_stats_t *st)
{
    memset(st, 0, sizeof *st);
    for (uint32_t s = 0; s < h->nsamples; s++) {
        memset(&paths[s], 0, sizeof paths[s]);
        paths[s].node = -1;
    }
    ml_python_info_t pi;
    if (!ml_python_info(&pi)) {
        ml_fmt(st->why_not, sizeof st->why_not, "no Python interpreter in the process");
        return;
    }
    ml_fmt(st->version, sizeof st->version, "%s", pi.version);
    if (!pi.layout) {
        ml_fmt(st->why_not, sizeof st->why_not, "CPython %s: %s", pi.version, pi.why_not ? pi.why_not : "not readable");
        return;
    }
    if (!bind()) {
        ml_fmt(st->why_not, sizeof st->why_not, "CPython %s: its object layout is not one memledger knows (3.8-3.13)",
               pi.version);
        return;
    }
    H = h;
    uint64_t t0 = ml_why_now_ns(), acquired = 0;
    uintptr_t gc = 0;
    int g = 0;
    for (;;) {
        if (!ml_python_gc_state()) {
            ml_fmt(st->why_not, sizeof st->why_not, "the interpreter is starting or shutting down");
            return;
        }
        g = A.ensure();
        acquired = ml_why_now_ns();
        gc = ml_python_gc_state();
        if (gc && !*(const volatile int *)(gc + ML_PYW_GC_COLLECTING))
            break;
        /* a collection is running a finalizer that let the GIL go: its
         * lists are in pieces until it ends */
        A.release(g);
        if (!gc || ml_why_now_ns() > deadline_ns) {
            ml_fmt(st->why_not, sizeof st->why_not, gc ? "the garbage collector kept running until the time limit"
                                                       : "the interpreter is shutting down");
            return;
        }
        struct timespec ms2 = {0, 2000000};
        nanosleep(&ms2, NULL);
    }
    st->gil_wait_ns = acquired - t0;
    limit_ns = acquired + max_pause_ns < deadline_ns ? acquired + max_pause_ns : deadline_ns;
    over = false;
    visited = 0;
    st->gc_enabled = *(const int *)(gc + (uintptr_t)A.L->gc_enabled);
    for (int k = 0; k < 3; k++)
        st->gc_count[k] = *(const int *)(gc + (uintptr_t)(A.L->gc_count0 + k * A.L->gc_stride));
    uint64_t n;
    bool counted = count_tracked(gc, &n);
    st->objects = n;
    if (!counted) {
        ml_fmt(st->stopped, sizeof st->stopped, "stopped listing the objects gc tracks (pause limit %llu ms) after %llu",
               (unsigned long long)(max_pause_ns / 1000000), (unsigned long long)n);
    } else if (n > MAX_OBJECTS) {
        ml_fmt(st->stopped, sizeof st->stopped, "more than %u objects tracked: not searched", MAX_OBJECTS);
    } else if (!build_index(gc, n)) {
        if (over)
            ml_fmt(st->stopped, sizeof st->stopped, "stopped indexing the objects gc tracks (pause limit %llu ms) "
                   "after %u of %llu", (unsigned long long)(max_pause_ns / 1000000), G.n, (unsigned long long)n);
        else
            ml_fmt(st->stopped, sizeof st->stopped, "cannot map memory to index %llu objects", (unsigned long long)n);
    } else {
        nroots = 0;
        search(st, max_pause_ns);
        st->searched = true;
        if (G.full && !st->stopped[0])
            ml_fmt(st->stopped, sizeof st->stopped, "more untracked containers than the index had room for: "
                                                    "some paths may be missing");
        resolve(paths);
    }
    st->visited = visited;
    A.release(g);
    st->pause_ns = ml_why_now_ns() - acquired;
    unmap_all();
}
