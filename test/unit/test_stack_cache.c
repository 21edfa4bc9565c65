/* test_stack_cache.c — the validated chain cache (unwind/stack_cache.h),
 * on stacks the test lays out itself: an ml_entry_t pointing into a buffer,
 * and the checks a walk would have recorded there (unwind_fast.h: return
 * addresses compared as they are, RBP values relative to sp0, the RBP
 * register at entry).
 * Proves:
 *   - a put then a find on the same stack hits, with the same words, count
 *     and id (and with words NULL, the count and id alone);
 *   - a change in any checked slot, return address or RBP, or in the RBP
 *     register at entry, misses; a change in a slot no check names does not;
 *   - an entry made under another epoch (rules thrown away since) misses, as
 *     do another domain, another first return address, and another distance
 *     from the stack top; a walk longer than the cache keeps is not cached;
 *     a caller's buffer too small for the words misses;
 *   - the same stack shifted as a whole (another thread, another depth of
 *     the same chain at the same distance from its top) hits: RBP checks are
 *     relative to sp0;
 *   - an entry being rewritten by another thread is never trusted: while a
 *     writer keeps replacing one entry with either of two versions (all
 *     words A with id A, or all words B with id B, valid for the same
 *     stack), every hit a reader gets is wholly one version (the sequence
 *     lock), and hits still happen. */
#include "check.h"
#include "common/format.h"
#include "unwind/stack_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define STACK_WORDS 512
#define EPOCH 3 /* ml_unwind_epoch as the walks saw it */

/* A stack the test owns: sp0 at its bottom, the top (hi) at its end. */
typedef struct {
    _Alignas(16) uint64_t w[STACK_WORDS];
} fake_stack_t;

static ml_entry_t entry_of(fake_stack_t *s, uintptr_t pc0, uintptr_t bp0)
{
    ml_entry_t e;
    memset(&e, 0, sizeof e);
    e.pc0 = pc0;
    e.sp0 = (uintptr_t)&s->w[0];
    e.hi = (uintptr_t)&s->w[STACK_WORDS];
    e.lo = e.sp0 - 4096;
    e.bp0 = bp0;
    e.epoch = EPOCH;
    return e;
}

/* Lays out a stack of `frames` frames: return address at slot 8k+1, a
 * saved RBP (pointing 8 slots up) at slot 8k; the checks a walk of it
 * records: every return address, every other saved RBP, and the RBP
 * register at entry. The words are pc0 and the return addresses. */
static void lay_out(fake_stack_t *s, ml_entry_t *e, unsigned frames, uint64_t salt, uint64_t *words,
                    ml_checks_t *c)
{
    for (unsigned i = 0; i < STACK_WORDS; i++)
        s->w[i] = 0x5a5a0000 + i; /* locals: never checked */
    c->n = 0;
    words[0] = e->pc0;
    c->pos[c->n] = ML_CHECK_LIVE_BP;
    c->expect[c->n++] = e->bp0 - e->sp0;
    for (unsigned k = 0; k < frames; k++) {
        uint64_t ra = 0x400000 + salt * 0x10000 + k * 0x40 + 5;
        uintptr_t rbp = e->sp0 + (8 * (k + 1)) * 8;
        s->w[8 * k + 1] = ra;
        s->w[8 * k] = rbp;
        words[k + 1] = ra;
        c->pos[c->n] = (int32_t)((8 * k + 1) * 8);
        c->expect[c->n++] = ra;
        if (k % 2 == 0) {
            c->pos[c->n] = (int32_t)((8 * k) * 8) | 1;
            c->expect[c->n++] = rbp - e->sp0;
        }
    }
}

static void test_put_then_find(void)
{
    static fake_stack_t s;
    ml_entry_t e = entry_of(&s, 0x401234, 0);
    e.bp0 = e.sp0 + 0x80;
    uint64_t words[64], got[64];
    ml_checks_t c;
    lay_out(&s, &e, 10, 1, words, &c);
    unsigned n = 0;
    uint32_t id = 0;
    CHECK(!ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id)); /* not yet */
    ml_stack_cache_put(&e, ML_DOM_MALLOC, words, 11, &c, 4242);
    memset(got, 0, sizeof got);
    CHECK(ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id));
    CHECK_EQ(n, 11);
    CHECK_EQ(id, 4242);
    CHECK(memcmp(got, words, 11 * sizeof *words) == 0);
    n = 0;
    id = 0;
    CHECK(ml_stack_cache_find(&e, ML_DOM_MALLOC, NULL, 0, &n, &id));
    CHECK_EQ(n, 11);
    CHECK_EQ(id, 4242);
    /* a caller's buffer too small for the words */
    CHECK(!ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 10, &n, &id));
}

static void test_any_checked_slot_misses(void)
{
    static fake_stack_t s;
    ml_entry_t e = entry_of(&s, 0x402345, 0);
    e.bp0 = e.sp0 + 0x40;
    uint64_t words[64], got[64];
    ml_checks_t c;
    lay_out(&s, &e, 12, 2, words, &c);
    ml_stack_cache_put(&e, ML_DOM_MALLOC, words, 13, &c, 77);
    unsigned n, misses = 0, slots = 0;
    uint32_t id;
    CHECK(ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id));
    for (unsigned i = 0; i < c.n; i++) {
        if (c.pos[i] == ML_CHECK_LIVE_BP)
            continue;
        slots++;
        uint64_t *slot = &s.w[((uint32_t)c.pos[i] & ~1u) / 8];
        uint64_t keep = *slot;
        *slot ^= 0x10; /* another return address, or RBP pointing elsewhere */
        misses += !ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id);
        *slot = keep;
        CHECK(ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id)); /* back: hits again */
    }
    CHECK_EQ(misses, slots);
    /* the RBP register at entry */
    ml_entry_t e2 = e;
    e2.bp0 += 16;
    CHECK(!ml_stack_cache_find(&e2, ML_DOM_MALLOC, got, 64, &n, &id));
    /* a slot no check names: a local variable */
    s.w[3] ^= 0xffff;
    CHECK(ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id));
    CHECK_EQ(id, 77);
}

static void test_key_and_epoch(void)
{
    static fake_stack_t s;
    ml_entry_t e = entry_of(&s, 0x403456, 0);
    e.bp0 = e.sp0 + 0x100;
    uint64_t words[64], got[64];
    ml_checks_t c;
    lay_out(&s, &e, 6, 3, words, &c);
    ml_stack_cache_put(&e, ML_DOM_PYTHON, words, 7, &c, 91);
    unsigned n;
    uint32_t id;
    CHECK(ml_stack_cache_find(&e, ML_DOM_PYTHON, got, 64, &n, &id));
    CHECK(!ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 64, &n, &id)); /* another domain */
    ml_entry_t x = e;
    x.epoch++; /* the rules were thrown away since */
    CHECK(!ml_stack_cache_find(&x, ML_DOM_PYTHON, got, 64, &n, &id));
    x = e;
    x.pc0 += 1;
    CHECK(!ml_stack_cache_find(&x, ML_DOM_PYTHON, got, 64, &n, &id));
    x = e;
    x.hi -= 16; /* another distance from the stack top */
    CHECK(!ml_stack_cache_find(&x, ML_DOM_PYTHON, got, 64, &n, &id));
    /* made under an older epoch, looked up under the current one */
    ml_entry_t old = e;
    old.pc0 = 0x403999;
    old.epoch = e.epoch + 5;
    ml_stack_cache_put(&old, ML_DOM_PYTHON, words, 7, &c, 92);
    ml_entry_t now = old;
    now.epoch = e.epoch;
    CHECK(!ml_stack_cache_find(&now, ML_DOM_PYTHON, got, 64, &n, &id));
    CHECK(ml_stack_cache_find(&old, ML_DOM_PYTHON, got, 64, &n, &id));
}

static void test_too_long_not_cached(void)
{
    static fake_stack_t s;
    ml_entry_t e = entry_of(&s, 0x404567, 0);
    e.bp0 = e.sp0 + 8;
    uint64_t words[128], got[128];
    ml_checks_t c;
    lay_out(&s, &e, 40, 4, words, &c);
    for (unsigned i = 41; i < 100; i++)
        words[i] = 0x900000 + i;
    ml_stack_cache_put(&e, ML_DOM_MALLOC, words, 100, &c, 5);
    unsigned n;
    uint32_t id;
    CHECK(!ml_stack_cache_find(&e, ML_DOM_MALLOC, got, 128, &n, &id));
    CHECK(!ml_stack_cache_find(&e, ML_DOM_MALLOC, NULL, 0, &n, &id));
}

/* The same chain at another place on the stack (same distance from the
 * top): saved RBPs differ absolutely but not relative to sp0. */
static void test_shifted_stack_hits(void)
{
    static fake_stack_t a, b;
    ml_entry_t ea = entry_of(&a, 0x405678, 0);
    ea.bp0 = ea.sp0 + 0x30;
    ml_entry_t eb = entry_of(&b, 0x405678, 0);
    eb.bp0 = eb.sp0 + 0x30;
    uint64_t words[64], wb[64], got[64];
    ml_checks_t c, cb;
    lay_out(&a, &ea, 9, 5, words, &c);
    lay_out(&b, &eb, 9, 5, wb, &cb);
    ml_stack_cache_put(&ea, ML_DOM_MALLOC, words, 10, &c, 123);
    unsigned n;
    uint32_t id;
    CHECK(ml_stack_cache_find(&eb, ML_DOM_MALLOC, got, 64, &n, &id));
    CHECK_EQ(id, 123);
    CHECK(memcmp(got, wb, 10 * sizeof *wb) == 0);
}

/* ---- a reader and a writer on one entry ---- */

#define SEQ_WORDS 60
#define READS 200000

static fake_stack_t seq_stack;
static ml_entry_t seq_entry;
static ml_checks_t seq_checks;
static uint64_t version_a[SEQ_WORDS], version_b[SEQ_WORDS];
static _Atomic int seq_stop;

static void *rewriter(void *arg)
{
    (void)arg;
    unsigned long puts = 0;
    uint64_t x = 88172645463325252ull;
    while (!atomic_load_explicit(&seq_stop, memory_order_relaxed)) {
        bool a = puts++ & 1;
        ml_stack_cache_put(&seq_entry, ML_DOM_MALLOC, a ? version_a : version_b, SEQ_WORDS, &seq_checks,
                           a ? 1111 : 2222);
        /* bursts of writes with short random pauses, then a rest: reads
         * fall inside writes, between them, and while nothing is written */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        for (unsigned spin = (unsigned)(x % 64); spin; spin--)
            __asm__ volatile("pause");
        if (puts % 63 == 0) { /* odd: the version left to rest alternates */
            struct timespec rest = {0, 20000};
            nanosleep(&rest, NULL);
        }
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_concurrent_rewrite_never_trusted(void)
{
    uint64_t words[64];
    seq_entry = entry_of(&seq_stack, 0x406789, 0);
    seq_entry.bp0 = seq_entry.sp0 + 0x20;
    lay_out(&seq_stack, &seq_entry, 50, 6, words, &seq_checks);
    for (unsigned i = 0; i < SEQ_WORDS; i++) {
        version_a[i] = 0xaaaa000000ull + i;
        version_b[i] = 0xbbbb000000ull + i;
    }
    ml_stack_cache_put(&seq_entry, ML_DOM_MALLOC, version_a, SEQ_WORDS, &seq_checks, 1111);
    pthread_t w;
    pthread_create(&w, NULL, rewriter, NULL);
    unsigned long reads = 0, hits = 0, misses = 0, torn = 0, hits_a = 0, hits_b = 0;
    /* at least READS reads and some hits of each version (a loaded machine
     * may hold either thread back for a while), within a minute */
    double give_up = now_s() + 60;
    while ((reads < READS || hits_a < 100 || hits_b < 100) && now_s() < give_up) {
        for (int r = 0; r < 1000; r++, reads++) {
            uint64_t got[64];
            unsigned n = 0;
            uint32_t id = 0;
            if (!ml_stack_cache_find(&seq_entry, ML_DOM_MALLOC, got, 64, &n, &id)) {
                misses++;
                continue;
            }
            hits++;
            const uint64_t *want = id == 1111 ? version_a : id == 2222 ? version_b : NULL;
            if (!want || n != SEQ_WORDS || memcmp(got, want, sizeof version_a) != 0)
                torn++;
            hits_a += id == 1111;
            hits_b += id == 2222;
        }
    }
    atomic_store(&seq_stop, 1);
    pthread_join(w, NULL);
    fprintf(stderr, "  %lu reads: %lu hits (%lu A, %lu B), %lu misses while rewritten\n", reads, hits, hits_a,
            hits_b, misses);
    CHECK_EQ(torn, 0);
    CHECK(hits_a > 0 && hits_b > 0);
    /* settled: the last version written is found whole */
    uint64_t got[64];
    unsigned n;
    uint32_t id;
    CHECK(ml_stack_cache_find(&seq_entry, ML_DOM_MALLOC, got, 64, &n, &id));
    CHECK(id == 1111 || id == 2222);
    CHECK(memcmp(got, id == 1111 ? version_a : version_b, sizeof version_a) == 0);
}

int main(void)
{
    if (!ml_stack_cache_init()) {
        fprintf(stderr, "ml_stack_cache_init failed\n");
        return 1;
    }
    RUN(test_put_then_find);
    RUN(test_any_checked_slot_misses);
    RUN(test_key_and_epoch);
    RUN(test_too_long_not_cached);
    RUN(test_shifted_stack_hits);
    RUN(test_concurrent_rewrite_never_trusted);
    return check_failures != 0;
}
