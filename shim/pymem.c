/* shim/pymem.c — the CPython PyMem allocator domains' entry points (RAW,
 * MEM, OBJ), installed by src/python/python.c through PyMem_SetAllocator.
 * Each hook is a few boring lines: guard, call the allocator it wraps, tell
 * the ledger (domain `python`). The guard is held *across* the wrapped
 * call: pymalloc hands big requests to malloc (through the RAW domain),
 * and that inner allocation must pass straight through, or one Python
 * object would be counted twice. The OBJ free hook also tells pycode.c
 * about code objects being freed, before they are. Must never do anything
 * else: decisions live in src/core/track.c. */
#include "common/common.h"
#include "common/format.h"
#include "python/pycode.h"
#include "python/pymem.h"
#include "core/thread.h"
#include "core/track.h"

static inline void seen(int d)
{
    if (d == ML_PYMEM_OBJ && ML_UNLIKELY(!atomic_load_explicit(&ml_pymem_obj_seen, memory_order_relaxed)))
        atomic_store_explicit(&ml_pymem_obj_seen, true, memory_order_release);
}

static inline void *hook_malloc(int d, size_t n)
{
    ml_pymem_alloc_t *a = &ml_pymem_next[d];
    seen(d);
    if (!ml_tracking() || !ml_enter())
        return a->malloc(a->ctx, n);
    void *p = a->malloc(a->ctx, n);
    if (p && !ml_sample_skip(n))
        ml_track_alloc(&ml_heap_addrs, ML_DOM_PYTHON, p, n);
    ml_leave();
    return p;
}

static inline void *hook_calloc(int d, size_t k, size_t n)
{
    ml_pymem_alloc_t *a = &ml_pymem_next[d];
    size_t total;
    seen(d);
    if (__builtin_mul_overflow(k, n, &total) || !ml_tracking() || !ml_enter())
        return a->calloc(a->ctx, k, n);
    void *p = a->calloc(a->ctx, k, n);
    if (p && !ml_sample_skip(total))
        ml_track_alloc(&ml_heap_addrs, ML_DOM_PYTHON, p, total);
    ml_leave();
    return p;
}

static inline void *hook_realloc(int d, void *p, size_t n)
{
    ml_pymem_alloc_t *a = &ml_pymem_next[d];
    if (!ml_tracking() || !ml_enter())
        return a->realloc(a->ctx, p, n);
    ml_forgot_t f = ml_track_realloc_forget(&ml_heap_addrs, p);
    void *q = a->realloc(a->ctx, p, n);
    ml_track_realloc_done(&ml_heap_addrs, ML_DOM_PYTHON, p, q, n, true, &f);
    ml_leave();
    return q;
}

static inline void hook_free(int d, void *p)
{
    ml_pymem_alloc_t *a = &ml_pymem_next[d];
    if (d == ML_PYMEM_OBJ)
        ml_pycode_on_free(p);
    if (!p || ml_free_gate_passes(p) || !ml_tracking() || !ml_enter()) {
        a->free(a->ctx, p);
        return;
    }
    if (!ml_free_skip(p)) {
        uint32_t id;
        uint64_t size;
        ml_track_free(&ml_heap_addrs, p, &id, &size);
    }
    a->free(a->ctx, p);
    ml_leave();
}

/* One set per domain, so that a hook never needs its ctx (see pymem.h). */
static void *raw_malloc(void *c, size_t n) { (void)c; return hook_malloc(ML_PYMEM_RAW, n); }
static void *raw_calloc(void *c, size_t k, size_t n) { (void)c; return hook_calloc(ML_PYMEM_RAW, k, n); }
static void *raw_realloc(void *c, void *p, size_t n) { (void)c; return hook_realloc(ML_PYMEM_RAW, p, n); }
static void raw_free(void *c, void *p) { (void)c; hook_free(ML_PYMEM_RAW, p); }

static void *mem_malloc(void *c, size_t n) { (void)c; return hook_malloc(ML_PYMEM_MEM, n); }
static void *mem_calloc(void *c, size_t k, size_t n) { (void)c; return hook_calloc(ML_PYMEM_MEM, k, n); }
static void *mem_realloc(void *c, void *p, size_t n) { (void)c; return hook_realloc(ML_PYMEM_MEM, p, n); }
static void mem_free(void *c, void *p) { (void)c; hook_free(ML_PYMEM_MEM, p); }

static void *obj_malloc(void *c, size_t n) { (void)c; return hook_malloc(ML_PYMEM_OBJ, n); }
static void *obj_calloc(void *c, size_t k, size_t n) { (void)c; return hook_calloc(ML_PYMEM_OBJ, k, n); }
static void *obj_realloc(void *c, void *p, size_t n) { (void)c; return hook_realloc(ML_PYMEM_OBJ, p, n); }
static void obj_free(void *c, void *p) { (void)c; hook_free(ML_PYMEM_OBJ, p); }

static const ml_pymem_alloc_t hooks[ML_PYMEM_DOMAINS] = {
    {NULL, raw_malloc, raw_calloc, raw_realloc, raw_free},
    {NULL, mem_malloc, mem_calloc, mem_realloc, mem_free},
    {NULL, obj_malloc, obj_calloc, obj_realloc, obj_free},
};

/* Handed to python.c, which installs them, before memledger's constructor
 * (priority 102) runs: the library below never names the shim. */
__attribute__((constructor(101))) static void offer(void) { ml_pymem_offer(hooks); }
