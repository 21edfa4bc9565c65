/* test_ledger.c — the stack table: interning, counters, overflow, and
 * exact totals with many threads interning and counting at once (run
 * under TSan in the thread-sanitizer configuration). */
#include "check.h"
#include "common/config.h"
#include "core/ledger.h"

#include <pthread.h>
#include <stdlib.h>

static void test_intern_same_and_different(void)
{
    uint64_t a[] = {0x401000, 0x402000, 0x403000};
    uint64_t b[] = {0x401000, 0x402000, 0x403001};
    uint32_t ia = ml_ledger_intern(ML_DOM_MALLOC, a, 3, ml_stack_hash(ML_DOM_MALLOC, a, 3));
    uint32_t ia2 = ml_ledger_intern(ML_DOM_MALLOC, a, 3, ml_stack_hash(ML_DOM_MALLOC, a, 3));
    uint32_t ib = ml_ledger_intern(ML_DOM_MALLOC, b, 3, ml_stack_hash(ML_DOM_MALLOC, b, 3));
    uint32_t ic = ml_ledger_intern(ML_DOM_PYTHON, a, 3, ml_stack_hash(ML_DOM_PYTHON, a, 3));
    CHECK(ia >= ML_STACK_FIRST);
    CHECK_EQ(ia, ia2);
    CHECK(ia != ib);
    CHECK(ia != ic); /* same frames, other domain: another stack */
    ml_stack_view_t v;
    CHECK(ml_ledger_stack(ia, &v));
    CHECK_EQ(v.n, 3);
    CHECK_EQ(v.words[2], 0x403000);
    CHECK_EQ(v.domain, ML_DOM_MALLOC);
}

static void test_counts(void)
{
    uint64_t w[] = {0x1234};
    uint32_t id = ml_ledger_intern(ML_DOM_MALLOC, w, 1, ml_stack_hash(ML_DOM_MALLOC, w, 1));
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
    uint32_t id = ml_ledger_intern(ML_DOM_MALLOC, NULL, 0, ml_stack_hash(ML_DOM_MALLOC, NULL, 0));
    uint32_t id2 = ml_ledger_intern(ML_DOM_MALLOC, NULL, 0, ml_stack_hash(ML_DOM_MALLOC, NULL, 0));
    CHECK_EQ(id, id2);
    CHECK(id >= ML_STACK_FIRST);
}

/* Fills the table past capacity: the extra stacks land in the overflow
 * entry of their domain, counted, and nothing crashes. */
static void test_overflow(void)
{
    ml_ledger_stats_t s0, s1;
    ml_ledger_stats(&s0);
    uint32_t room = s0.capacity - (s0.used - ML_STACK_FIRST);
    uint32_t overflow_hits = 0;
    for (uint32_t i = 0; i < room + 100; i++) {
        uint64_t w[] = {0x900000 + i, i};
        uint32_t id = ml_ledger_intern(ML_DOM_CUDA, w, 2, ml_stack_hash(ML_DOM_CUDA, w, 2));
        if (id == ML_STACK_OVERFLOW(ML_DOM_CUDA)) {
            overflow_hits++;
            ml_ledger_count_alloc(id, 10, 1);
        }
    }
    ml_ledger_stats(&s1);
    CHECK(overflow_hits >= 100);
    CHECK(s1.overflowed >= 100);
    ml_totals_t t;
    ml_ledger_totals(ML_STACK_OVERFLOW(ML_DOM_CUDA), &t);
    CHECK_EQ(t.live_bytes, 10 * (long long)overflow_hits);
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
        uint32_t id = ml_ledger_intern(ML_DOM_MALLOC, w, 3, ml_stack_hash(ML_DOM_MALLOC, w, 3));
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
        ml_stack_view_t v;
        if (!ml_ledger_stack(id, &v) || v.n != 3 || v.words[2] != 0x700000)
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
    RUN(test_counts);
    RUN(test_empty_stack);
    RUN(test_threads_exact);
    RUN(test_overflow);
    return check_failures != 0;
}
