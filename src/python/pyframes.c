/* pyframes.c — reading the calling thread's Python frames (see pyframes.h).
 *
 * Where the frames are: PyGILState_GetThisThreadState() reads the thread
 * state from a thread-specific key (pthread_getspecific; no lock, no
 * syscall), and it answers whether or not the thread holds the GIL: a
 * thread inside a C call that released the GIL still finds its own state.
 * Threads Python never ran on (an OpenMP pool, memledger's own) have none
 * and keep native stacks. From the thread state:
 *   3.8-3.10  tstate->frame, a PyFrameObject chain through f_back; one
 *             _PyEval_EvalFrameDefault call per frame; f_lasti in bytes
 *             (3.10: in code units).
 *   3.11      tstate->cframe->current_frame, a _PyInterpreterFrame chain
 *             through `previous`; one eval call runs frames up to and
 *             including one flagged is_entry; prev_instr points at the
 *             instruction running.
 *   3.12      the same through tstate->cframe; an eval call begins with a
 *             frame owned by the C stack (owner 3), skipped here.
 *   3.13      tstate->current_frame, offsets from _Py_DebugOffsets;
 *             instr_ptr, f_executable.
 * The thread state is not cached per thread: PyGILState_Release can free
 * it and a later PyGILState_Ensure make a new one, and the lookup is itself
 * one thread-specific read, so a cache would save nothing worth a stale
 * pointer.
 *
 * Safety: only the calling thread's own chain is read, while that thread
 * is stopped in an allocation, so the interpreter is not changing it
 * underneath (frames are linked only once initialised, and unlinked before
 * they are cleared). Each pointer followed must be non-null and aligned,
 * each code object must carry PyCode_Type (checked when the thread first
 * meets it; its per-thread memo in ml_self then vouches for it until a code
 * object is freed), and a walk stops after WALK_MAX frames, so a chain
 * that is not what it should be ends the walk rather than being trusted.
 *
 * Deep stacks: a walk keeps the innermost KEEP_INNER frames (where the
 * memory was allocated) and the outermost KEEP_OUTER (`<module>`, the
 * caller that chose the path), and in place of the frames between them one
 * mark that says how many were left out (ML_MARK_PY_ELIDED). The outermost
 * ones are kept in a ring while walking, so a deep chain costs its walk but
 * no more room. Two calls of one deep recursion from different callers
 * stay two stacks; the same path at another depth is another stack, as it
 * would be with every frame kept. The mark also carries how many eval-loop
 * calls ended among the left-out frames: the merge drops the native frames
 * of those calls with them, so the frames kept on each side of the mark
 * stand among their own native frames.
 *
 * Cost: on 3.11+, a stack seen recently is recognised from its frames' raw
 * instruction pointers (raw_as: three loads a frame, no lookup), its id
 * from pystacks.h, without merging, hashing or probing the ledger. The
 * full walk (four or five loads a frame and no call while the memo
 * answers) runs on a miss, and always on 3.8-3.10. */
#include "python/pyframes.h"
#include "unwind/capture.h"
#include "common/config.h"
#include "core/thread.h"
#include "core/ledger.h"
#include "python/pycode.h"
#include "python/pymem.h"
#include "python/pystacks.h"
#include "core/sysmem.h"

#include <string.h>

#define KEEP_INNER 127
#define KEEP_OUTER 128 /* a power of two: the ring's index is a mask */
#define MAX_FRAMES (KEEP_INNER + 1 + KEEP_OUTER) /* keys a walk returns, its mark included */
#define WALK_MAX (1u << 16)                      /* frames a walk follows at most */

/* A code object's serial as this thread last looked it up, valid while no
 * interned code object has been freed since (epoch). The address is a key,
 * never dereferenced. In the thread's ML_AREA_PY, direct-mapped: a web
 * framework's stack holds ~60 code objects, which a small memo thrashes on. */
typedef struct {
    uintptr_t code;
    uint32_t serial, epoch;
} pymemo_t;
#define PYMEMO 1024
#define PYMEMO_SIZE (PYMEMO * sizeof(pymemo_t))

static void memo_release(void *area) { ml_sysmem_unmap(area, PYMEMO_SIZE); }

static inline pymemo_t *memo_slot(pymemo_t *memo, uintptr_t code)
{
    return &memo[((code >> 4) ^ (code >> 14)) & (PYMEMO - 1)];
}

static ml_pyframes_conf_t C;
static ml_pylayout_t L;

/* A Python frame while merging: its serial, whether it is the outermost
 * frame of an eval-loop call, and its instruction address, in one word
 * (also the frame's key in pystacks.h). */
#define KEY_ENDS_CALL (1ull << 63)
static inline uint64_t key_of(uint32_t serial, int32_t addr, bool ends)
{
    return (uint64_t)serial << 32 | (uint32_t)addr | (ends ? KEY_ENDS_CALL : 0);
}
static inline uint32_t key_serial(uint64_t k) { return (uint32_t)(k >> 32) & ~(1u << 31); }

/* The mark of a deep walk: `elided` frames left out, among which `calls`
 * eval-loop calls ended. Serials stay below 2^30, so bit 62 is free. */
#define KEY_MARK (1ull << 62)
static inline uint64_t mark_key(uint32_t elided, uint32_t calls)
{
    return KEY_MARK | (uint64_t)(calls & 0x3fffffffu) << 32 | elided;
}
static inline uint32_t mark_calls(uint64_t k) { return (uint32_t)(k >> 32) & 0x3fffffffu; }

/* Where the walk keeps key p: the first KEEP_INNER in place, the rest in a
 * ring of KEEP_OUTER after them. */
static inline uint64_t *key_at(uint64_t *out, unsigned p)
{
    return p < KEEP_INNER ? &out[p] : &out[KEEP_INNER + ((p - KEEP_INNER) & (KEEP_OUTER - 1))];
}

static void reverse(uint64_t *a, unsigned n)
{
    for (unsigned i = 0, j = n; i + 1 < j; i++, j--) {
        uint64_t t = a[i];
        a[i] = a[j - 1];
        a[j - 1] = t;
    }
}

void ml_pyframes_init(const ml_pyframes_conf_t *conf)
{
    C = *conf;
    L = *conf->layout;
    C.layout = &L;
    ml_thread_set_area_release(ML_AREA_PY, memo_release);
}

static inline uintptr_t rd(uintptr_t base, int off) { return *(const uintptr_t *)(base + (uintptr_t)(intptr_t)off); }

static inline bool is_eval(uintptr_t pc)
{
    uintptr_t a = pc - 1; /* a return address; the call is before it */
    return (a >= C.eval_lo && a < C.eval_hi) || (a >= C.cold_lo && a < C.cold_hi);
}

/* The walk, for one frame kind and memo mode: both are constants in each
 * copy (see walk()), so the per-frame loop carries no test of either (a
 * web framework's allocation walks 50 to 100 frames, and this loop is
 * most of its cost). The frames from f into out[MAX_FRAMES], innermost
 * first; returns how many keys. */
static inline __attribute__((always_inline)) unsigned walk_as(uintptr_t f, uint64_t *out, const int kind,
                                                              const bool fingerprints, const bool use_memo,
                                                              pymemo_t *memo, uint32_t epoch)
{
    const int lasti_bytes = L.lasti_bytes;
    const uintptr_t o_back = (uintptr_t)L.fr_back, o_code = (uintptr_t)L.fr_code, o_instr = (uintptr_t)L.fr_instr;
    const uintptr_t o_owner = (uintptr_t)(intptr_t)L.fr_owner, o_entry = (uintptr_t)(intptr_t)L.fr_is_entry;
    const uintptr_t o_adaptive = (uintptr_t)(intptr_t)L.co_code_adaptive, code_type = C.code_type;
    unsigned n = 0, elided = 0, calls = 0;
    for (unsigned seen = 0; f && !(f & 7) && seen < WALK_MAX; seen++) {
        uintptr_t back = *(const uintptr_t *)(f + o_back);
        if (kind == ML_PYF_CSTACK && *(const int8_t *)(f + o_owner) == ML_PY_OWNED_BY_CSTACK) {
            if (n)
                *key_at(out, n - 1) |= KEY_ENDS_CALL;
            f = back;
            continue;
        }
        bool ends = kind == ML_PYF_OBJECT || (kind == ML_PYF_ENTRY && *(const uint8_t *)(f + o_entry));
        uintptr_t code = *(const uintptr_t *)(f + o_code);
        pymemo_t *m = use_memo ? memo_slot(memo, code) : NULL;
        uint32_t s;
        if (use_memo && ML_LIKELY(m->code == code && m->epoch == epoch)) {
            s = m->serial; /* a code object then, and none freed since: still one */
        } else if (!code || (code & 7) || rd(code, ML_PY_OB_TYPE) != code_type) {
            /* 3.13 frames can run objects other than code; show nothing */
            if (ends && n)
                *key_at(out, n - 1) |= KEY_ENDS_CALL;
            f = back;
            continue;
        } else if ((s = ml_pycode_serial(code, fingerprints ? ml_pycode_fingerprint(code) : 0)) != 0 && use_memo) {
            m->code = code;
            m->serial = s;
            m->epoch = epoch;
        }
        int32_t addr;
        if (kind == ML_PYF_OBJECT) {
            int lasti = *(const int *)(f + o_instr);
            addr = lasti < 0 ? -1 : lasti * lasti_bytes;
        } else {
            intptr_t d = (intptr_t)(*(const uintptr_t *)(f + o_instr) - (code + o_adaptive));
            addr = d < 0 || d > INT32_MAX ? -1 : (int32_t)d;
        }
        if (ML_UNLIKELY(s & ML_PYCODE_HIDDEN)) {
            if (ends && n)
                *key_at(out, n - 1) |= KEY_ENDS_CALL;
        } else {
            uint64_t *slot = key_at(out, n);
            if (ML_UNLIKELY(n >= KEEP_INNER + KEEP_OUTER)) {
                /* the ring is full: its oldest key (final: only the newest
                 * one still takes a flag) joins the left-out middle */
                elided++;
                calls += (*slot & KEY_ENDS_CALL) != 0;
            }
            *slot = key_of(s, addr, ends);
            n++;
        }
        f = back;
    }
    if (ML_LIKELY(n <= KEEP_INNER + KEEP_OUTER))
        return n;
    /* the ring in order, oldest (innermost) first, one place up, and the
     * mark where the left-out frames were */
    uint64_t *ring = out + KEEP_INNER;
    unsigned start = (n - KEEP_INNER) & (KEEP_OUTER - 1);
    reverse(ring, start);
    reverse(ring + start, KEEP_OUTER - start);
    reverse(ring, KEEP_OUTER);
    memmove(ring + 1, ring, KEEP_OUTER * sizeof *ring);
    ring[0] = mark_key(elided, calls);
    return MAX_FRAMES;
}

/* The calling thread's Python frames from thread state ts into
 * out[MAX_FRAMES], innermost first; returns how many keys. */
static unsigned walk(uintptr_t ts, uint64_t *out)
{
    /* with our OBJ hook in place every code object's free is seen and the
     * epoch says it; without, a fingerprint must (pycode.c), and the memo,
     * which cannot tell, is not used */
    const bool fingerprints = !atomic_load_explicit(&ml_pymem_obj_seen, memory_order_acquire);
    const uint32_t epoch = atomic_load_explicit(&ml_pycode_epoch, memory_order_acquire);
    pymemo_t *memo = fingerprints ? NULL : ml_thread_area(ML_AREA_PY, PYMEMO_SIZE);
    uintptr_t f = rd(ts, L.ts_frame);
    if (L.cf_current >= 0)
        f = f && !(f & 7) ? rd(f, L.cf_current) : 0;
    if (ML_UNLIKELY(!memo)) {
        if (fingerprints)
            switch (L.frames) {
            case ML_PYF_OBJECT: return walk_as(f, out, ML_PYF_OBJECT, true, false, NULL, epoch);
            case ML_PYF_ENTRY: return walk_as(f, out, ML_PYF_ENTRY, true, false, NULL, epoch);
            default: return walk_as(f, out, ML_PYF_CSTACK, true, false, NULL, epoch);
            }
        switch (L.frames) { /* no area for the memo: every code object looked up */
        case ML_PYF_OBJECT: return walk_as(f, out, ML_PYF_OBJECT, false, false, NULL, epoch);
        case ML_PYF_ENTRY: return walk_as(f, out, ML_PYF_ENTRY, false, false, NULL, epoch);
        default: return walk_as(f, out, ML_PYF_CSTACK, false, false, NULL, epoch);
        }
    }
    switch (L.frames) {
    case ML_PYF_OBJECT: return walk_as(f, out, ML_PYF_OBJECT, false, true, memo, epoch);
    case ML_PYF_ENTRY: return walk_as(f, out, ML_PYF_ENTRY, false, true, memo, epoch);
    default: return walk_as(f, out, ML_PYF_CSTACK, false, true, memo, epoch);
    }
}

/* The calling thread's frames into out[MAX_FRAMES] (see walk). */
static unsigned current(uint64_t *out)
{
    uintptr_t ts = (uintptr_t)C.this_thread_state();
    if (!ts || (ts & 7))
        return 0;
    return walk(ts, out);
}

/* One Python frame as a raw stack word (core/ledger.h). */
static inline void put_py(uint64_t *words, unsigned *k, uint64_t key)
{
    words[(*k)++] = ML_WORD_PY | (uint64_t)key_serial(key) << 32 | (uint32_t)key;
}

/* The same for any key: a Python frame, or the mark of a deep walk. */
static inline void put(uint64_t *words, unsigned *k, uint64_t key)
{
    if (ML_UNLIKELY(key & KEY_MARK))
        words[(*k)++] = ML_MARK_PY_ELIDED((uint32_t)key);
    else
        put_py(words, k, key);
}

/* The hybrid stack of native[n] and the Python frames keys[nf] into
 * words[max] (see pyframes.h); returns its length. Each native eval frame
 * takes the keys of its call, through the one that ends it. */
static unsigned merge_plain(uint64_t *words, unsigned max, const uint64_t *native, unsigned n, const uint64_t *keys,
                            unsigned nf)
{
    unsigned k = 0, fi = 0;
    for (unsigned i = 0; i < n; i++) {
        if (fi < nf && is_eval(native[i])) {
            do {
                if (k + 1 > max)
                    return k;
                put_py(words, &k, keys[fi]);
            } while (!(keys[fi++] & KEY_ENDS_CALL) && fi < nf);
            continue;
        }
        if (k + 1 > max)
            return k;
        words[k++] = native[i];
    }
    while (fi < nf && k + 1 <= max)
        put_py(words, &k, keys[fi++]);
    return k;
}

/* The same with a deep walk's mark among the keys (off the common path: a
 * plain merge stays as short as it was). The mark stands in for frames
 * among which `calls` calls ended: the native frames up to and including
 * the eval frame of the call that the frames after the mark belong to are
 * left out with them, and that call goes on in its place. */
static ML_NOINLINE unsigned merge_deep(uint64_t *words, unsigned max, const uint64_t *native, unsigned n,
                                       const uint64_t *keys, unsigned nf)
{
    unsigned k = 0, fi = 0;
    for (unsigned i = 0; i < n; i++) {
        if (fi < nf && is_eval(native[i])) {
            do {
                uint64_t key = keys[fi++];
                if (k + 1 > max)
                    return k;
                put(words, &k, key);
                if (key & KEY_MARK) {
                    for (unsigned c = mark_calls(key); c && i + 1 < n;)
                        c -= is_eval(native[++i]);
                    continue;
                }
                if (key & KEY_ENDS_CALL)
                    break;
            } while (fi < nf);
            continue;
        }
        if (k + 1 > max)
            return k;
        words[k++] = native[i];
    }
    while (fi < nf && k + 1 <= max)
        put(words, &k, keys[fi++]);
    return k;
}

static inline unsigned merge_into(uint64_t *words, unsigned max, const uint64_t *native, unsigned n,
                                  const uint64_t *keys, unsigned nf)
{
    if (ML_UNLIKELY(nf == MAX_FRAMES && (keys[KEEP_INNER] & KEY_MARK)))
        return merge_deep(words, max, native, n, keys, nf);
    return merge_plain(words, max, native, n, keys, nf);
}

unsigned ml_pyframes_merge(uint64_t *words, unsigned n, unsigned max)
{
    uint64_t keys[MAX_FRAMES], native[ML_MAX_DEPTH + 32];
    unsigned nf = current(keys);
    if (!nf)
        return n;
    n = n < ML_ARRAY_LEN(native) ? n : (unsigned)ML_ARRAY_LEN(native);
    memcpy(native, words, n * sizeof *words);
    return merge_into(words, max, native, n, keys, nf);
}

/* The raw walk (3.11+): the frames from f as raw keys into out[RAW_MAX],
 * innermost first, each its instruction pointer with KEY_ENDS_CALL where
 * it ends an eval-loop call; returns how many, or RAW_NONE where the chain
 * must take the full walk (a deep one, or a frame whose instruction is
 * not inside its code object's bytecode). Per frame three loads from the
 * frame itself and no lookup: the key of a stack seen recently, found in
 * pystacks.h without a code serial, a memo or a line. In 3.11+ the
 * bytecode lies inside the code object, so while no interned code object
 * has been freed the pointer names one code object and one instruction:
 * the merged stack is a function of these keys (pystacks.h checks the
 * epoch). */
#define RAW_MAX ML_PYSTACKS_MAX
#define RAW_NONE UINT32_MAX
static inline __attribute__((always_inline)) unsigned raw_as(uintptr_t f, uint64_t *out, const int kind)
{
    const uintptr_t o_back = (uintptr_t)L.fr_back, o_code = (uintptr_t)L.fr_code, o_instr = (uintptr_t)L.fr_instr;
    const uintptr_t o_owner = (uintptr_t)(intptr_t)L.fr_owner, o_entry = (uintptr_t)(intptr_t)L.fr_is_entry;
    const uintptr_t o_adaptive = (uintptr_t)(intptr_t)L.co_code_adaptive;
    unsigned n = 0;
    for (; f && !(f & 7); f = *(const uintptr_t *)(f + o_back)) {
        if (kind == ML_PYF_CSTACK && *(const int8_t *)(f + o_owner) == ML_PY_OWNED_BY_CSTACK) {
            if (n)
                out[n - 1] |= KEY_ENDS_CALL;
            continue;
        }
        uintptr_t code = *(const uintptr_t *)(f + o_code), instr = *(const uintptr_t *)(f + o_instr);
        /* unsigned: an instruction before the bytecode wraps and fails too */
        if (ML_UNLIKELY(n == RAW_MAX || !code || (code & 7) || instr - (code + o_adaptive) > INT32_MAX ||
                        (instr >> 62)))
            return RAW_NONE;
        out[n++] = instr | (kind == ML_PYF_ENTRY && *(const uint8_t *)(f + o_entry) ? KEY_ENDS_CALL : 0);
    }
    return n;
}

uint32_t ml_pyframes_intern(unsigned domain, uint64_t *words, unsigned n, unsigned max)
{
    uint64_t keys[MAX_FRAMES], raw[RAW_MAX], native[ML_MAX_DEPTH + 32];
    unsigned nr = RAW_NONE;
    uintptr_t ts = (uintptr_t)C.this_thread_state();
    bool python = ts && !(ts & 7); /* else a thread Python never ran on: no frames */
    /* raw keys only while every code object's free is seen (the epoch
     * then says when a pointer may name another code object) */
    if (python && L.frames != ML_PYF_OBJECT && atomic_load_explicit(&ml_pymem_obj_seen, memory_order_acquire)) {
        uintptr_t f = rd(ts, L.ts_frame);
        if (L.cf_current >= 0)
            f = f && !(f & 7) ? rd(f, L.cf_current) : 0;
        nr = L.frames == ML_PYF_ENTRY ? raw_as(f, raw, ML_PYF_ENTRY) : raw_as(f, raw, ML_PYF_CSTACK);
        if (nr != RAW_NONE) {
            uint32_t id = ml_pystacks_find(domain, words, n, raw, nr, ML_PYKEYS_RAW);
            if (ML_LIKELY(id))
                return id;
        }
    }
    unsigned nf = python ? walk(ts, keys) : 0;
    uint32_t id = 0;
    if (nr == RAW_NONE && (id = ml_pystacks_find(domain, words, n, keys, nf, ML_PYKEYS_SERIAL)) != 0)
        return id;
    n = n < ML_ARRAY_LEN(native) ? n : (unsigned)ML_ARRAY_LEN(native);
    memcpy(native, words, n * sizeof *words);
    unsigned k = nf ? merge_into(words, max, native, n, keys, nf) : n;
    id = ml_ledger_intern(domain, words, k);
    if (id < ML_STACK_FIRST) /* an overflow id is not remembered: the ledger counts each one */
        return id;
    if (nr != RAW_NONE)
        ml_pystacks_put(domain, native, n, raw, nr, ML_PYKEYS_RAW, id);
    else
        ml_pystacks_put(domain, native, n, keys, nf, ML_PYKEYS_SERIAL, id);
    return id;
}

unsigned ml_pyframes_walk(uint64_t *words, unsigned max)
{
    uint64_t keys[MAX_FRAMES];
    unsigned nf = current(keys), k = 0;
    for (unsigned i = 0; i < nf && k + 1 <= max; i++)
        put(words, &k, keys[i]);
    return k;
}

uint64_t ml_pyframes_encode(uint64_t raw)
{
    if (ML_UNLIKELY(ML_WORD_KIND(raw) == ML_WORD_MARK))
        return raw; /* a deep walk's mark (ML_MARK_PY_ELIDED) */
    uint32_t serial = (uint32_t)(raw >> 32) & ML_PYFRAMES_SERIAL_MASK;
    int line = ml_pycode_line(serial, (int32_t)(uint32_t)raw);
    return ML_WORD_PY | (uint64_t)serial << 32 | (uint32_t)(line >= 0 ? line + 1 : 0);
}

bool ml_pyframes_name(uint64_t word, ml_pyframe_t *out)
{
    uint32_t serial = (uint32_t)(word >> 32) & ML_PYFRAMES_SERIAL_MASK;
    uint32_t line1 = (uint32_t)word;
    return ml_pycode_name(serial, line1 ? (int)line1 - 1 : -1, out);
}
