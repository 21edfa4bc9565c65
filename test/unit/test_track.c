/* test_track.c — the allocation hot path's accounting, through its public
 * contract (core/track.h) with a fixed stack taker (ml_track_set_stack_fn).
 * Proves, in exact mode:
 *   - ml_track_alloc / ml_track_free move the ledger's live and total bytes
 *     and counts (ml_ledger_totals) by exactly the sizes given, and free
 *     hands back the record (stack id, size) it charged;
 *   - a realloc-style forget-then-restore (ml_track_free, ml_track_restore)
 *     leaves every figure as it was, and the restored record frees again;
 *   - an address handed out twice with no free seen in between is counted
 *     as replaced (ml_addrtab_stats): the old stack is credited, the new one
 *     charged, and the table still holds one record;
 *   - a free of an address never tracked changes nothing;
 *   - with no stack taker set, allocations land in the domain's overflow
 *     entry; ml_track_alloc_by charges the stack its own taker gives.
 * And in sampling mode (ml_sample_rate, ml_track_init):
 *   - ml_sample_weight is size/p and 1/p with p = 1 - exp(-size/rate)
 *     (exact mode: size and 1);
 *   - each block taken is counted with exactly its weight, and the byte
 *     estimates are unbiased: many allocations of one size, tracked through
 *     ml_track_alloc, sum to their true bytes within 5 standard deviations
 *     (the thread's generator is seeded, so every run draws the same);
 *   - the free filter never skips an address that is tracked: not when
 *     another address of its bucket is freed, not when a bucket saturates,
 *     not after a forget-then-restore. */
#include "check.h"
#include "common/config.h"
#include "core/addrtab.h"
#include "core/ledger.h"
#include "core/thread.h"
#include "core/track.h"

#include <math.h>
#include <stdlib.h>

static ml_addrtab_t tab;

/* The fixed stack taker: charges whatever stack `current` names. */
static uint32_t current;
static uint32_t taker(unsigned domain)
{
    (void)domain;
    return current;
}

static uint32_t stack_of(uint64_t a, uint64_t b)
{
    uint64_t w[] = {a, b, 0x7000};
    return ml_ledger_intern(ML_DOM_MALLOC, w, 3);
}

static ml_totals_t totals(uint32_t id)
{
    ml_totals_t t;
    ml_ledger_totals(id, &t);
    return t;
}

static uint64_t table_entries(void)
{
    ml_addrtab_stats_t s;
    ml_addrtab_stats(&s);
    return s.entries;
}

static uint64_t table_replaced(void)
{
    ml_addrtab_stats_t s;
    ml_addrtab_stats(&s);
    return s.replaced;
}

#define CHECK_TOTALS(id, lb, lc, tb, tc)        \
    do {                                        \
        ml_totals_t t_ = totals(id);            \
        CHECK_EQ(t_.live_bytes, (lb));          \
        CHECK_EQ(t_.live_count, (lc));          \
        CHECK_EQ(t_.total_bytes, (tb));         \
        CHECK_EQ(t_.total_count, (tc));         \
    } while (0)

static void test_no_taker_counts_overflow(void)
{
    ml_totals_t before = totals(ML_STACK_OVERFLOW(ML_DOM_MALLOC));
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x5000, 77);
    ml_totals_t after = totals(ML_STACK_OVERFLOW(ML_DOM_MALLOC));
    CHECK_EQ(after.live_bytes - before.live_bytes, 77);
    CHECK_EQ(after.total_count - before.total_count, 1);
    uint32_t id;
    uint64_t size;
    CHECK(ml_track_free(&tab, (void *)0x5000, &id, &size));
    CHECK_EQ(id, ML_STACK_OVERFLOW(ML_DOM_MALLOC));
    CHECK_EQ(size, 77);
    after = totals(ML_STACK_OVERFLOW(ML_DOM_MALLOC));
    CHECK_EQ(after.live_bytes, before.live_bytes);
    CHECK_EQ(after.live_count, before.live_count);
}

static void test_alloc_free_exact(void)
{
    uint32_t a = stack_of(0x1001, 0x2001), b = stack_of(0x1002, 0x2002);
    CHECK(a != b);
    uint64_t entries0 = table_entries();
    current = a;
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x10010, 100);
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x10020, 50);
    current = b;
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x10030, 7);
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x10040, 0); /* malloc(0) is an allocation too */
    CHECK_TOTALS(a, 150, 2, 150, 2);
    CHECK_TOTALS(b, 7, 2, 7, 2);
    CHECK_EQ(table_entries() - entries0, 4);

    uint32_t id = 0;
    uint64_t size = 0;
    current = 0; /* free never takes a stack: the record says whose it was */
    CHECK(ml_track_free(&tab, (void *)0x10010, &id, &size));
    CHECK_EQ(id, a);
    CHECK_EQ(size, 100);
    CHECK_TOTALS(a, 50, 1, 150, 2);
    CHECK_TOTALS(b, 7, 2, 7, 2);
    CHECK(ml_track_free(&tab, (void *)0x10040, &id, &size));
    CHECK_EQ(id, b);
    CHECK_EQ(size, 0);
    CHECK_TOTALS(b, 7, 1, 7, 2);
    CHECK(ml_track_free(&tab, (void *)0x10020, &id, &size));
    CHECK(ml_track_free(&tab, (void *)0x10030, &id, &size));
    CHECK_TOTALS(a, 0, 0, 150, 2);
    CHECK_TOTALS(b, 0, 0, 7, 2);
    CHECK_EQ(table_entries(), entries0);
    /* a second free of the same address finds nothing */
    CHECK(!ml_track_free(&tab, (void *)0x10020, &id, &size));
    CHECK_TOTALS(a, 0, 0, 150, 2);
}

/* realloc that fails: the hook forgets the block before calling the real
 * realloc (another thread may be handed the address once it is freed), then
 * puts the record back when the block turns out to be still there. */
static void test_forget_then_restore(void)
{
    uint32_t a = stack_of(0x1003, 0x2003);
    current = a;
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x20010, 4096);
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x20020, 1);
    uint64_t entries = table_entries();
    uint32_t id;
    uint64_t size;
    CHECK(ml_track_free(&tab, (void *)0x20010, &id, &size));
    CHECK_TOTALS(a, 1, 1, 4097, 2);
    ml_track_restore(&tab, (void *)0x20010, id, size);
    CHECK_TOTALS(a, 4097, 2, 4097, 2); /* as if nothing happened: total not counted twice */
    CHECK_EQ(table_entries(), entries);
    uint32_t fid;
    uint64_t fsize;
    CHECK(ml_addrtab_find(&tab, 0x20010, &fid, &fsize));
    CHECK_EQ(fid, a);
    CHECK_EQ(fsize, 4096);
    /* the restored record frees like any other */
    CHECK(ml_track_free(&tab, (void *)0x20010, &id, &size));
    CHECK_EQ(id, a);
    CHECK_EQ(size, 4096);
    CHECK(ml_track_free(&tab, (void *)0x20020, &id, &size));
    CHECK_TOTALS(a, 0, 0, 4097, 2);
}

/* An address handed out again while the table still holds it: the free in
 * between was never seen (an allocator path memledger does not hook). */
static void test_address_handed_out_twice(void)
{
    uint32_t a = stack_of(0x1004, 0x2004), b = stack_of(0x1005, 0x2005);
    uint64_t replaced0 = table_replaced(), entries0 = table_entries();
    current = a;
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x30010, 300);
    current = b;
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x30010, 20);
    CHECK_EQ(table_replaced() - replaced0, 1);
    CHECK_EQ(table_entries() - entries0, 1);
    CHECK_TOTALS(a, 0, 0, 300, 1); /* the stale block's stack is credited */
    CHECK_TOTALS(b, 20, 1, 20, 1);
    uint32_t id;
    uint64_t size;
    CHECK(ml_track_free(&tab, (void *)0x30010, &id, &size));
    CHECK_EQ(id, b);
    CHECK_EQ(size, 20);
    CHECK_TOTALS(a, 0, 0, 300, 1);
    CHECK_TOTALS(b, 0, 0, 20, 1);
    CHECK_EQ(table_entries(), entries0);
}

static void test_unknown_free_changes_nothing(void)
{
    uint32_t a = stack_of(0x1006, 0x2006);
    current = a;
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)0x40010, 64);
    ml_totals_t ta = totals(a), tov = totals(ML_STACK_OVERFLOW(ML_DOM_MALLOC));
    uint64_t entries = table_entries(), replaced = table_replaced();
    uint32_t id = 12345;
    uint64_t size = 6789;
    CHECK(!ml_track_free(&tab, (void *)0x40020, &id, &size));
    CHECK(!ml_track_free(&tab, (void *)0x40018, &id, &size)); /* inside a tracked block is not the block */
    CHECK(!ml_track_free(&tab, NULL, &id, &size));
    ml_totals_t ta2 = totals(a), tov2 = totals(ML_STACK_OVERFLOW(ML_DOM_MALLOC));
    CHECK_EQ(ta2.live_bytes, ta.live_bytes);
    CHECK_EQ(ta2.live_count, ta.live_count);
    CHECK_EQ(ta2.total_bytes, ta.total_bytes);
    CHECK_EQ(tov2.live_bytes, tov.live_bytes);
    CHECK_EQ(tov2.total_count, tov.total_count);
    CHECK_EQ(table_entries(), entries);
    CHECK_EQ(table_replaced(), replaced);
    CHECK(ml_track_free(&tab, (void *)0x40010, &id, &size));
    CHECK_TOTALS(a, 0, 0, 64, 1);
}

static uint32_t other_taker(unsigned domain)
{
    (void)domain;
    return stack_of(0x1007, 0x2007);
}

static void test_alloc_by(void)
{
    uint32_t a = stack_of(0x1008, 0x2008), o = stack_of(0x1007, 0x2007);
    current = a;
    ml_track_alloc_by(&tab, ML_DOM_MALLOC, (void *)0x50010, 11, other_taker);
    ml_track_alloc_by(&tab, ML_DOM_MALLOC, (void *)0x50020, 13, NULL); /* NULL: the usual taker */
    CHECK_TOTALS(o, 11, 1, 11, 1);
    CHECK_TOTALS(a, 13, 1, 13, 1);
    uint32_t id;
    uint64_t size;
    CHECK(ml_track_free(&tab, (void *)0x50010, &id, &size));
    CHECK_EQ(id, o);
    CHECK(ml_track_free(&tab, (void *)0x50020, &id, &size));
    CHECK_EQ(id, a);
}

static void test_exact_weights(void)
{
    uint64_t b, c;
    ml_sample_weight(12345, &b, &c);
    CHECK_EQ(b, 12345);
    CHECK_EQ(c, 1);
    ml_sample_weight(0, &b, &c);
    CHECK_EQ(b, 0);
    CHECK_EQ(c, 1);
}

/* ---- sampling mode ---- */

#define RATE 4096

/* The weights written out from their definition, with 1 - exp() (not the
 * library's expm1): equal up to rounding. */
static void test_sampling_weights(void)
{
    static const uint64_t sizes[] = {1, 8, 100, 1000, 4095, 4096, 10000, 65536, 1u << 20};
    for (size_t i = 0; i < ML_ARRAY_LEN(sizes); i++) {
        uint64_t s = sizes[i], b, c;
        ml_sample_weight(s, &b, &c);
        double p = 1.0 - exp(-(double)s / RATE);
        double want_b = (double)s / p, want_c = 1.0 / p;
        CHECK(fabs((double)b - want_b) <= 0.5 + want_b * 1e-9);
        CHECK(fabs((double)c - want_c) <= 0.5 + want_c * 1e-9);
        CHECK(b >= s); /* never below the size: p <= 1 */
        CHECK(c >= 1);
    }
    /* far above the rate every allocation is taken: the weight is exact */
    uint64_t b, c;
    ml_sample_weight(64 * RATE, &b, &c);
    CHECK_EQ(b, 64 * RATE);
    CHECK_EQ(c, 1);
    /* malloc(0) is sampled as one byte: it stands for about `rate` of its kind */
    ml_sample_weight(0, &b, &c);
    CHECK_EQ(b, 0);
    CHECK(llabs((long long)c - RATE) <= 1);
}

static void test_sampling_unbiased(void)
{
    /* The thread's generator, seeded: the same draws every run. */
    ml_self.rng = 0x243f6a8885a308d3ull;
    ml_self.sample_left = 0;
    static const struct {
        uint64_t size, n;
    } cls[] = {{16, 400000}, {256, 200000}, {3000, 40000}, {40000, 4000}};
    for (size_t k = 0; k < ML_ARRAY_LEN(cls); k++) {
        uint32_t id = stack_of(0x3000 + k, 0x4000);
        uint64_t base = 0x100000000ull * (k + 1), entries0 = table_entries();
        current = id;
        for (uint64_t i = 0; i < cls[k].n; i++)
            ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)(base + i * 16), cls[k].size);
        uint64_t taken = table_entries() - entries0, wb, wc;
        ml_sample_weight(cls[k].size, &wb, &wc);
        ml_totals_t t = totals(id);
        /* each block taken is counted with its weight, no more, no less */
        CHECK_EQ(t.live_bytes, taken * wb);
        CHECK_EQ(t.live_count, taken * wc);
        CHECK_EQ(t.total_bytes, taken * wb);
        /* taken ~ Binomial(n, p): the byte estimate taken * size/p has
         * standard deviation size * sqrt(n (1-p) / p) */
        double s = (double)cls[k].size, n = (double)cls[k].n;
        double p = 1.0 - exp(-s / RATE);
        double sd = s * sqrt(n * (1.0 - p) / p), truth = n * s, est = (double)t.live_bytes;
        if (fabs(est - truth) > 5 * sd + s) {
            fprintf(stderr, "size %llu: %.0f bytes estimated as %.0f (sd %.0f, %llu of %llu taken)\n",
                    (unsigned long long)cls[k].size, truth, est, sd, (unsigned long long)taken,
                    (unsigned long long)cls[k].n);
            CHECK(!"byte estimate within 5 standard deviations");
        }
        /* every sampled block frees to exactly zero live */
        for (uint64_t i = 0; i < cls[k].n; i++) {
            uint32_t fid;
            uint64_t fsz;
            ml_track_free(&tab, (void *)(base + i * 16), &fid, &fsz);
        }
        t = totals(id);
        CHECK_EQ(t.live_bytes, 0);
        CHECK_EQ(t.live_count, 0);
        CHECK_EQ(table_entries(), entries0);
    }
}

/* Sizes this far above the rate are always taken (the gap to the next
 * sample is exponential with mean RATE: it exceeds 2^20 / 4096 = 256 means
 * with probability e^-256). */
#define BIG (1u << 20)

static bool tracked(uint64_t addr)
{
    uint32_t id;
    uint64_t size;
    return ml_addrtab_find(&tab, addr, &id, &size);
}

static void test_free_filter(void)
{
    uint32_t a = stack_of(0x1009, 0x2009);
    current = a;
    /* Addresses 2^20 apart share a filter bucket. */
    const uint64_t base = 0x7f0000000010ull, step = 1ull << (ML_FILTER_LOG2 + 4);
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)base, BIG);
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)(base + step), BIG);
    CHECK(tracked(base) && tracked(base + step));
    CHECK(!ml_free_skip((void *)base));
    CHECK(!ml_free_skip((void *)(base + step)));
    uint32_t id;
    uint64_t size;
    CHECK(ml_track_free(&tab, (void *)base, &id, &size));
    CHECK(!ml_free_skip((void *)(base + step))); /* its neighbour's free left it visible */
    /* taken again at the same address with no free between: counted once */
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)(base + step), BIG);
    CHECK(ml_track_free(&tab, (void *)(base + step), &id, &size));
    CHECK(!tracked(base + step));
    CHECK(ml_free_skip((void *)(base + step))); /* bucket empty again: frees there cost nothing */

    /* forget, then restore (a failed realloc): visible again */
    ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)base, BIG);
    CHECK(ml_track_free(&tab, (void *)base, &id, &size));
    ml_track_restore(&tab, (void *)base, id, size);
    CHECK(!ml_free_skip((void *)base));
    CHECK(ml_track_free(&tab, (void *)base, &id, &size));

    /* a bucket with more blocks than its counter holds stays "maybe" for good */
    const uint64_t sat = 0x7e0000000020ull;
    for (uint64_t i = 0; i < 300; i++)
        ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)(sat + i * step), BIG);
    for (uint64_t i = 0; i < 299; i++)
        CHECK(ml_track_free(&tab, (void *)(sat + i * step), &id, &size));
    CHECK(tracked(sat + 299 * step));
    CHECK(!ml_free_skip((void *)(sat + 299 * step)));
    CHECK(ml_track_free(&tab, (void *)(sat + 299 * step), &id, &size));
    CHECK_TOTALS(a, 0, 0, (long long)(BIG * 304ull), 304); /* 4 above, 300 here */

    /* many sampled allocations of every size, then frees in another order:
     * whatever the table holds, the filter never says "skip" for it */
    ml_self.rng = 0x13198a2e03707344ull;
    ml_self.sample_left = 0;
    const uint64_t spread = 0x7d0000000000ull;
    unsigned misses = 0;
    for (uint64_t i = 0; i < 100000; i++)
        ml_track_alloc(&tab, ML_DOM_MALLOC, (void *)(spread + i * 48), 1 + i % 9000);
    for (uint64_t i = 0; i < 100000; i += 2)
        ml_track_free(&tab, (void *)(spread + i * 48), &id, &size);
    for (uint64_t i = 0; i < 100000; i++)
        misses += tracked(spread + i * 48) && ml_free_skip((void *)(spread + i * 48));
    CHECK_EQ(misses, 0);
    for (uint64_t i = 1; i < 100000; i += 2)
        ml_track_free(&tab, (void *)(spread + i * 48), &id, &size);
    ml_totals_t t = totals(a);
    CHECK_EQ(t.live_bytes, 0);
    CHECK_EQ(t.live_count, 0);
}

int main(void)
{
    if (!ml_ledger_init(ML_MIN_STACKS)) {
        fprintf(stderr, "ml_ledger_init failed\n");
        return 1;
    }
    ml_addrtab_register(&tab, "test");
    CHECK(ml_track_init()); /* exact mode: nothing to set up */
    RUN(test_no_taker_counts_overflow);
    ml_track_set_stack_fn(taker);
    RUN(test_alloc_free_exact);
    RUN(test_forget_then_restore);
    RUN(test_address_handed_out_twice);
    RUN(test_unknown_free_changes_nothing);
    RUN(test_alloc_by);
    RUN(test_exact_weights);

    /* Sampling mode, as init.c sets it up: the rate, then ml_track_init. */
    ml_sample_rate = RATE;
    if (!ml_track_init()) {
        fprintf(stderr, "ml_track_init failed in sampling mode\n");
        return 1;
    }
    RUN(test_sampling_weights);
    RUN(test_sampling_unbiased);
    RUN(test_free_filter);
    return check_failures != 0;
}
