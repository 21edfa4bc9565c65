/* pystacks.c — the merged-stack cache (see pystacks.h).
 *
 * Why: with Python frames merged in, the stack cache of capture.c still
 * recognises the native chain, but the merged stack then had to be built,
 * hashed word by word (a chain of dependent multiplies) and looked up in
 * the ledger's table, whose entries sit far apart in memory: more than
 * the rest of an allocation's cost. Here a sample of the key is hashed in
 * four independent lanes and the key compared against one entry, read
 * front to back.
 *
 * Entries use the sequence lock of stack_cache.c: a writer makes the
 * counter odd, writes, and makes it even again; a reader trusts what it
 * read only if the counter was the same even value before and after.
 * Every field is read and written with relaxed atomics, so a torn read is
 * a miss, never undefined behaviour. */
#include "python/pystacks.h"
#include "python/pycode.h"
#include "core/modules.h"
#include "core/quiesce.h"
#include "core/sysmem.h"

#include <stdatomic.h>

/* Two tables: stacks whose native and Python parts fit 64 words each go to
 * the small entries (4,096 of them, about 1 KiB each); longer ones, up to
 * ML_PYSTACKS_MAX (a web framework's stacks run 50 to 100 Python frames
 * deep), to 512 large ones (4 KiB each). Either is touched only as used. */
#define SMALL_MAX 64
#define SMALL_LOG2 12
#define LARGE_LOG2 9

typedef struct {
    _Atomic uint32_t seq;
    _Atomic uint32_t id;
    _Atomic uint64_t epoch; /* store and code epochs when put: the id, and raw addresses, valid then */
    _Atomic uint32_t pyepoch; /* ml_pycode_epoch when put: raw Python keys valid then */
    _Atomic uint16_t n, nf;
    _Atomic uint8_t domain; /* with KIND_RAW for raw Python keys */
    _Atomic uint64_t key[]; /* native words in key[0..max), Python keys in key[max..2 max) */
} entry_t;

typedef struct {
    unsigned char *base;
    size_t stride;
    unsigned max, log2;
} table_t;

static table_t small, large;

static inline uint64_t epoch_now(void)
{
    return ml_quiesce_epoch() << 32 | atomic_load_explicit(&ml_code_epoch, memory_order_acquire);
}

#define KIND_RAW 0x80u /* domains are below it */

static inline uint8_t tag(unsigned domain, int kind)
{
    return (uint8_t)(domain | (kind == ML_PYKEYS_RAW ? KIND_RAW : 0));
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define ST(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

static bool table_init(table_t *t, unsigned max, unsigned log2)
{
    if (t->base)
        return true;
    size_t stride = sizeof(entry_t) + 2 * (size_t)max * sizeof(uint64_t);
    void *b = ml_sysmem_map(stride << log2);
    if (!b)
        return false;
    t->stride = stride;
    t->max = max;
    t->log2 = log2;
    t->base = b;
    return true;
}

bool ml_pystacks_init(void) { return table_init(&small, SMALL_MAX, SMALL_LOG2) && table_init(&large, ML_PYSTACKS_MAX, LARGE_LOG2); }

static inline uint64_t lanes(const uint64_t *w, unsigned n, uint64_t seed)
{
    uint64_t a = seed, b = ~seed, c = seed * 3, d = seed * 5;
    unsigned i = 0;
    for (; i + 4 <= n; i += 4) {
        a = (a ^ w[i]) * 0x9e3779b97f4a7c15ull;
        b = (b ^ w[i + 1]) * 0xc2b2ae3d27d4eb4full;
        c = (c ^ w[i + 2]) * 0x165667b19e3779f9ull;
        d = (d ^ w[i + 3]) * 0xff51afd7ed558ccdull;
    }
    for (; i < n; i++)
        a = (a ^ w[i]) * 0x9e3779b97f4a7c15ull;
    return a ^ (b >> 17) ^ (c << 13) ^ (d >> 29) ^ n;
}

/* The table for a stack of these lengths; NULL when too long or unmapped. */
static inline const table_t *table_for(unsigned n, unsigned nf)
{
    const table_t *t = n <= SMALL_MAX && nf <= SMALL_MAX ? &small : &large;
    return ML_LIKELY(t->base != NULL) && n <= t->max && nf <= t->max ? t : NULL;
}

/* The slot is chosen from a sample of the key, the words that differ most
 * between stacks (the innermost frames, the depths, a middle and the last
 * Python frame); the entry is then compared whole. */
static inline entry_t *slot(const table_t *t, unsigned domain, const uint64_t *native, unsigned n, const uint64_t *py,
                            unsigned nf)
{
    uint64_t s[8] = {n ? native[0] : 0, n > 1 ? native[1] : 0, n ? native[n / 2] : 0, nf ? py[0] : 0,
                     nf > 1 ? py[1] : 0, nf ? py[nf / 2] : 0, nf ? py[nf - 1] : 0,
                     (uint64_t)domain << 32 | n << 16 | nf};
    uint64_t h = lanes(s, 8, 0x243f6a8885a308d3ull) * 0x9e3779b97f4a7c15ull;
    return (entry_t *)(t->base + (size_t)(h >> (64 - t->log2)) * t->stride);
}

uint32_t ml_pystacks_find(unsigned domain, const uint64_t *native, unsigned n, const uint64_t *py, unsigned nf,
                          int kind)
{
    const table_t *t = table_for(n, nf);
    if (!t)
        return 0;
    entry_t *x = slot(t, domain, native, n, py, nf);
    uint32_t s1 = atomic_load_explicit(&x->seq, memory_order_acquire);
    if ((s1 & 1) || LD(x->n) != n || LD(x->nf) != nf || LD(x->domain) != tag(domain, kind) ||
        LD(x->epoch) != epoch_now() ||
        LD(x->pyepoch) != atomic_load_explicit(&ml_pycode_epoch, memory_order_acquire))
        return 0;
    uint64_t diff = 0;
    for (unsigned i = 0; i < n; i++)
        diff |= LD(x->key[i]) ^ native[i];
    for (unsigned i = 0; i < nf; i++)
        diff |= LD(x->key[t->max + i]) ^ py[i];
    uint32_t id = LD(x->id);
    atomic_thread_fence(memory_order_acquire);
    if (diff || atomic_load_explicit(&x->seq, memory_order_relaxed) != s1)
        return 0;
    return id;
}

void ml_pystacks_put(unsigned domain, const uint64_t *native, unsigned n, const uint64_t *py, unsigned nf,
                     int kind, uint32_t id)
{
    const table_t *t = table_for(n, nf);
    if (!t)
        return;
    entry_t *x = slot(t, domain, native, n, py, nf);
    uint32_t s = atomic_load_explicit(&x->seq, memory_order_relaxed);
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(&x->seq, &s, s + 1, memory_order_acquire,
                                                            memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    ST(x->epoch, epoch_now());
    ST(x->pyepoch, atomic_load_explicit(&ml_pycode_epoch, memory_order_acquire));
    ST(x->domain, tag(domain, kind));
    ST(x->n, (uint16_t)n);
    ST(x->nf, (uint16_t)nf);
    ST(x->id, id);
    for (unsigned i = 0; i < n; i++)
        ST(x->key[i], native[i]);
    for (unsigned i = 0; i < nf; i++)
        ST(x->key[t->max + i], py[i]);
    atomic_store_explicit(&x->seq, s + 2, memory_order_release);
}
