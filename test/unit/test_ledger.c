/* test_ledger.c — the stack store: interning into the call tree (shared
 * prefixes cost no nodes, the per-thread path memo never confuses two
 * stacks), counters, the ceiling (stacks kept smaller, then overflow), and
 * exact totals with many threads interning and counting at once (run
 * under TSan in the thread-sanitizer configuration). */
#include "check.h"
#include "common/config.h"
#include "core/ledger.h"
#include "core/stacktree.h"

static uint32_t nodes(void) { return ml_tree_count((ml_tree_t *)ml_ledger_tree()); }

#include <pthread.h>
#include <stdlib.h>

static void test_intern_same_and_different(void)
{
    uint64_t a[] = {0x401000, 0x402000, 0x403000};
    uint64_t b[] = {0x401000, 0x402000, 0x403001};
    uint32_t ia = ml_ledger_intern(ML_DOM_MALLOC, a, 3);
    uint32_t ia2 = ml_ledger_intern(ML_DOM_MALLOC, a, 3);
    uint32_t ib = ml_ledger_intern(ML_DOM_MALLOC, b, 3);
    uint32_t ic = ml_ledger_intern(ML_DOM_PYTHON, a, 3);
    uint32_t ia3 = ml_ledger_intern(ML_DOM_MALLOC, a, 3);
    CHECK(ia >= ML_STACK_FIRST);
    CHECK_EQ(ia, ia2);
    CHECK_EQ(ia, ia3);
    CHECK(ia != ib);
    CHECK(ia != ic); /* same frames, other domain: another stack */
    ml_stack_view_t v;
    CHECK(ml_ledger_stack(ia, &v));
    CHECK_EQ(v.domain, ML_DOM_MALLOC);
    CHECK(ml_ledger_stack(ic, &v));
    CHECK_EQ(v.domain, ML_DOM_PYTHON);
    uint64_t w[8];
    CHECK_EQ(ml_ledger_stack_words(ia, w, 8), 3);
    /* no module holds these addresses in a unit test: kept as addresses */
    CHECK_EQ(w[0], ML_WORD_ABS | 0x401000);
    CHECK_EQ(w[2], ML_WORD_ABS | 0x403000);
    CHECK_EQ(ml_ledger_stack_words(ic, w, 8), 3);
    CHECK_EQ(w[1], ML_WORD_ABS | 0x402000);
}

/* Stacks that share their outer frames share those nodes: a new stack
 * costs only the frames no stack had before. */
static void test_prefix_shared(void)
{
    uint64_t base[40];
    for (int i = 0; i < 40; i++)
        base[i] = 0x7000000 + (uint64_t)i * 16; /* innermost first */
    uint32_t before = nodes();
    uint32_t first = ml_ledger_intern(ML_DOM_MALLOC, base, 40);
    CHECK_EQ(nodes() - before, 40);
    /* another call site under the same 39 callers: one node more */
    base[0] = 0x7100000;
    uint32_t second = ml_ledger_intern(ML_DOM_MALLOC, base, 40);
    CHECK(second != first);
    CHECK_EQ(nodes() - before, 41);
    /* one level deeper: one node more */
    uint64_t deeper[41];
    deeper[0] = 0x7200000;
    for (int i = 0; i < 40; i++)
        deeper[i + 1] = base[i];
    uint32_t third = ml_ledger_intern(ML_DOM_MALLOC, deeper, 41);
    CHECK_EQ(nodes() - before, 42);
    /* the memo remembers the last path only; going back finds the others */
    base[0] = 0x7000000;
    CHECK_EQ(ml_ledger_intern(ML_DOM_MALLOC, base, 40), first);
    CHECK_EQ(ml_ledger_intern(ML_DOM_MALLOC, deeper, 41), third);
    base[0] = 0x7100000;
    CHECK_EQ(ml_ledger_intern(ML_DOM_MALLOC, base, 40), second);
    CHECK_EQ(nodes() - before, 42);
    /* a stack that is a prefix of another is a stack of its own */
    uint32_t outer = ml_ledger_intern(ML_DOM_MALLOC, base + 1, 39);
    CHECK(outer != first && outer != second && outer != third);
    CHECK_EQ(nodes() - before, 42);
    uint64_t w[64];
    CHECK_EQ(ml_ledger_stack_words(third, w, 64), 41);
    CHECK_EQ(w[0], ML_WORD_ABS | 0x7200000);
    CHECK_EQ(w[40], ML_WORD_ABS | (0x7000000 + 39 * 16));
}

static void test_counts(void)
{
    uint64_t w[] = {0x1234};
    uint32_t id = ml_ledger_intern(ML_DOM_MALLOC, w, 1);
    ml_ledger_count_alloc(id, 100, 1);
    ml_ledger_count_alloc(id, 50, 1);
    ml_ledger_count_free(id, 100, 1);
    ml_totals_t t;
    ml_ledger_totals(id, &t);
    CHECK_EQ(t.live_bytes, 50);
    CHECK_EQ(t.live_count, 1);
    CHECK_EQ(t.total_bytes, 150);
    CHECK_EQ(t.total_count, 2);
}

static void test_empty_stack(void)
{
    uint32_t id = ml_ledger_intern(ML_DOM_MALLOC, NULL, 0);
    uint32_t id2 = ml_ledger_intern(ML_DOM_MALLOC, NULL, 0);
    uint32_t id3 = ml_ledger_intern(ML_DOM_CUDA, NULL, 0);
    CHECK_EQ(id, id2);
    CHECK(id >= ML_STACK_FIRST);
    CHECK(id3 != id && id3 >= ML_STACK_FIRST);
    uint64_t w[4];
    CHECK_EQ(ml_ledger_stack_words(id, w, 4), 0);
}

/* Fills the store past its ceiling: stacks first keep their Python frames
 * and innermost native frames below an "elided" mark (in the reserve),
 * then land in the overflow entry of their domain; each is counted, the
 * counts stay exact, and nothing crashes. */
static void test_ceiling(void)
{
    ml_ledger_stats_t s0, s1;
    ml_ledger_stats(&s0);
    uint32_t degraded = 0, overflow = 0, kept = 0;
    uint64_t overflow_bytes = 0;
    for (uint32_t i = 0; i < s0.capacity + 100; i++) {
        /* 12 native frames under a Python frame, all new */
        uint64_t w[14];
        for (int f = 0; f < 12; f++)
            w[f] = 0x9000000 + (uint64_t)i * 256 + (uint64_t)f;
        w[12] = ML_WORD_PY | (uint64_t)(i + 1) << 32 | 6;
        w[13] = 0x8800000;
        uint32_t id = ml_ledger_intern(ML_DOM_CUDA, w, 14);
        if (id == ML_STACK_OVERFLOW(ML_DOM_CUDA)) {
            overflow++;
            ml_ledger_count_alloc(id, 10, 1);
            overflow_bytes += 10;
            continue;
        }
        uint64_t got[32];
        unsigned n = ml_ledger_stack_words(id, got, 32);
        if (n && got[n - 1] == ML_MARK_ELIDED) {
            degraded++;
            /* the innermost 8 native frames and the Python frame, in order */
            CHECK_EQ(n, 10);
            CHECK_EQ(got[0], ML_WORD_ABS | w[0]);
            CHECK_EQ(got[7], ML_WORD_ABS | w[7]);
            CHECK_EQ(got[8], w[12]);
        } else {
            kept++;
            CHECK_EQ(n, 14);
        }
    }
    ml_ledger_stats(&s1);
    CHECK(kept > 0);
    CHECK(degraded > 0);
    CHECK(overflow >= 100);
    CHECK_EQ(s1.degraded - s0.degraded, degraded);
    CHECK_EQ(s1.overflowed - s0.overflowed, overflow);
    ml_totals_t t;
    ml_ledger_totals(ML_STACK_OVERFLOW(ML_DOM_CUDA), &t);
    CHECK_EQ(t.live_bytes, overflow_bytes);
}

/* Collecting: stacks that hold memory keep their ids and their frames in
 * the new tree; the others give their ids back (reused by the next new
 * stacks) and their totals to the domain's retired totals; the tree
 * shrinks to what is kept. */
static void test_collect(void)
{
    enum { N = 2000 };
    uint32_t ids[N];
    for (uint32_t i = 0; i < N; i++) {
        uint64_t w[] = {0x3000000 + (uint64_t)i * 64, 0x3900000 + (i % 7), 0x3a00000};
        ids[i] = ml_ledger_intern(ML_DOM_MALLOC, w, 3);
        ml_ledger_count_alloc(ids[i], 100 + i, 1);
        if (i % 10) /* nine in ten die */
            ml_ledger_count_free(ids[i], 100 + i, 1);
    }
    uint64_t rb0, rc0;
    ml_ledger_retired(ML_DOM_MALLOC, &rb0, &rc0);
    ml_ledger_stats_t s0, s1, s2;
    ml_ledger_stats(&s0);
    uint32_t before = nodes();
    ml_ledger_collect(true);   /* the dead were counted since the last time: kept once more */
    ml_ledger_collect(true);   /* now they go */
    ml_ledger_stats(&s1);
    CHECK(nodes() < before);
    CHECK(s1.collections - s0.collections == 2);
    CHECK(s1.collected >= N - N / 10);
    uint64_t rb1, rc1, expect_bytes = 0;
    for (uint32_t i = 0; i < N; i++)
        if (i % 10)
            expect_bytes += 100 + i;
    ml_ledger_retired(ML_DOM_MALLOC, &rb1, &rc1);
    CHECK_EQ(rb1 - rb0, expect_bytes);
    CHECK_EQ(rc1 - rc0, N - N / 10);
    for (uint32_t i = 0; i < N; i += 10) {
        ml_totals_t t;
        ml_ledger_totals(ids[i], &t);
        CHECK_EQ(t.live_bytes, 100 + i);
        uint64_t got[4];
        CHECK_EQ(ml_ledger_stack_words(ids[i], got, 4), 3);
        CHECK_EQ(got[0], ML_WORD_ABS | (0x3000000 + (uint64_t)i * 64));
        CHECK_EQ(got[2], ML_WORD_ABS | 0x3a00000);
        /* and the same stack found again is the same id */
        uint64_t w[] = {0x3000000 + (uint64_t)i * 64, 0x3900000 + (i % 7), 0x3a00000};
        CHECK_EQ(ml_ledger_intern(ML_DOM_MALLOC, w, 3), ids[i]);
    }
    /* a dead stack seen again is a new stack, on a given-back id */
    uint64_t w1[] = {0x3000000 + 64, 0x3900001, 0x3a00000};
    uint32_t again = ml_ledger_intern(ML_DOM_MALLOC, w1, 3);
    ml_totals_t t;
    ml_ledger_totals(again, &t);
    CHECK_EQ(t.total_count, 0);
    CHECK(again < s0.used + ML_STACK_FIRST + 1); /* no id past the old ones */
    ml_ledger_stats(&s2);
    CHECK(s2.used <= s1.used + 1);
}

#define THREADS 8
#define STACKS 64
#define ROUNDS 20000

static void *hammer(void *arg)
{
    uintptr_t seed = (uintptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t k = (seed * 7919 + (uint64_t)r) % STACKS;
        uint64_t w[] = {0x500000 + k, 0x600000 + k * 3, 0x700000};
        uint32_t id = ml_ledger_intern(ML_DOM_MALLOC, w, 3);
        ml_ledger_count_alloc(id, k + 1, 1);
        if (r % 2)
            ml_ledger_count_free(id, k + 1, 1);
    }
    return NULL;
}

static void test_threads_exact(void)
{
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* expected: per thread, even rounds keep k+1 bytes */
    long long expect_bytes = 0, got_bytes = 0, got_count = 0;
    for (uintptr_t seed = 1; seed <= THREADS; seed++)
        for (int r = 0; r < ROUNDS; r += 2)
            expect_bytes += (long long)((seed * 7919 + (uint64_t)r) % STACKS) + 1;
    uint32_t n = ml_ledger_ids();
    for (uint32_t id = ML_STACK_FIRST; id < n; id++) {
        uint64_t w[4];
        if (ml_ledger_stack_words(id, w, 4) != 3 || w[2] != (ML_WORD_ABS | 0x700000))
            continue;
        ml_totals_t tt;
        ml_ledger_totals(id, &tt);
        got_bytes += (long long)tt.live_bytes;
        got_count += (long long)tt.live_count;
    }
    CHECK_EQ(got_bytes, expect_bytes);
    CHECK_EQ(got_count, THREADS * ROUNDS / 2);
}

int main(void)
{
    if (!ml_ledger_init(ML_MIN_STACKS * 4)) {
        fprintf(stderr, "ml_ledger_init failed\n");
        return 1;
    }
    RUN(test_intern_same_and_different);
    RUN(test_prefix_shared);
    RUN(test_counts);
    RUN(test_empty_stack);
    RUN(test_threads_exact);
    RUN(test_collect);
    RUN(test_ceiling);
    return check_failures != 0;
}
