/* test_addrtab.c — the address table: records, removal, growth, tombstone
 * reuse, stale records, and many threads at once (TSan configuration). */
#include "core/addrtab.h"
#include "check.h"

#include <pthread.h>
#include <stdlib.h>

static ml_addrtab_t tab;

static void test_basic(void)
{
    uint32_t id, oid;
    uint64_t size, osz;
    CHECK_EQ(ml_addrtab_insert(&tab, 0x1000, 7, 123, &oid, &osz), ML_ADDR_NEW);
    CHECK(ml_addrtab_find(&tab, 0x1000, &id, &size));
    CHECK_EQ(id, 7);
    CHECK_EQ(size, 123);
    CHECK(ml_addrtab_remove(&tab, 0x1000, &id, &size));
    CHECK(!ml_addrtab_remove(&tab, 0x1000, &id, &size));
    CHECK(!ml_addrtab_find(&tab, 0x2000, &id, &size));
}

static void test_replaced(void)
{
    uint32_t oid = 0;
    uint64_t osz = 0;
    CHECK_EQ(ml_addrtab_insert(&tab, 0x3000, 1, 10, &oid, &osz), ML_ADDR_NEW);
    CHECK_EQ(ml_addrtab_insert(&tab, 0x3000, 2, 20, &oid, &osz), ML_ADDR_REPLACED);
    CHECK_EQ(oid, 1);
    CHECK_EQ(osz, 10);
    uint32_t id;
    uint64_t size;
    CHECK(ml_addrtab_remove(&tab, 0x3000, &id, &size));
    CHECK_EQ(id, 2);
}

static void test_big_sizes(void)
{
    uint32_t id, oid;
    uint64_t size, osz;
    ml_addrtab_insert(&tab, 0x5000, (1u << 24) - 1, (1ull << 40) - 1, &oid, &osz);
    CHECK(ml_addrtab_remove(&tab, 0x5000, &id, &size));
    CHECK_EQ(id, (1u << 24) - 1);
    CHECK_EQ(size, (1ull << 40) - 1);
}

/* A million inserts, then removal of every other one, then churn: the
 * table grows, purges tombstones, and finds every survivor. */
static void test_growth_and_churn(void)
{
    const uint64_t n = 1000000;
    uint32_t oid, id;
    uint64_t osz, size;
    for (uint64_t i = 0; i < n; i++)
        ml_addrtab_insert(&tab, 0x10000000 + i * 16, (uint32_t)(i % 1000), i, &oid, &osz);
    ml_addrtab_stats_t peak;
    ml_addrtab_stats(&peak);
    CHECK_EQ(peak.entries, n);
    /* memory per live record within the design's bound: <= 48 bytes */
    CHECK(peak.bytes <= peak.entries * 48 + sizeof tab);
    for (uint64_t i = 0; i < n; i += 2)
        CHECK(ml_addrtab_remove(&tab, 0x10000000 + i * 16, &id, &size));
    for (int round = 0; round < 3; round++)
        for (uint64_t i = 0; i < n; i += 2) {
            ml_addrtab_insert(&tab, 0x90000000 + i * 16, 1, 1, &oid, &osz);
            ml_addrtab_remove(&tab, 0x90000000 + i * 16, &id, &size);
        }
    long long found = 0;
    for (uint64_t i = 1; i < n; i += 2)
        if (ml_addrtab_find(&tab, 0x10000000 + i * 16, &id, &size) && size == i && id == i % 1000)
            found++;
    CHECK_EQ(found, (long long)(n / 2));
    ml_addrtab_stats_t st;
    ml_addrtab_stats(&st);
    CHECK_EQ(st.entries, n / 2);
    /* churn at a steady live set does not grow the table */
    CHECK(st.bytes <= peak.bytes);
    for (uint64_t i = 1; i < n; i += 2)
        ml_addrtab_remove(&tab, 0x10000000 + i * 16, &id, &size);
}

#define THREADS 8
#define OPS 100000

static void *worker(void *arg)
{
    uint64_t base = 0x700000000000ull + (uint64_t)(uintptr_t)arg * 0x10000000ull;
    uint32_t id, oid;
    uint64_t size, osz;
    long long bad = 0;
    for (uint64_t i = 0; i < OPS; i++) {
        ml_addrtab_insert(&tab, base + i * 32, (uint32_t)(uintptr_t)arg, i, &oid, &osz);
        if (i >= 8) {
            if (!ml_addrtab_remove(&tab, base + (i - 8) * 32, &id, &size) || size != i - 8)
                bad++;
        }
    }
    for (uint64_t i = OPS - 8; i < OPS; i++)
        ml_addrtab_remove(&tab, base + i * 32, &id, &size);
    return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    for (int i = 0; i < THREADS; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        CHECK_EQ((intptr_t)bad, 0);
    }
    ml_addrtab_stats_t st;
    ml_addrtab_stats(&st);
    CHECK_EQ(st.entries, 0);
}

int main(void)
{
    ml_addrtab_register(&tab, "test");
    RUN(test_basic);
    RUN(test_replaced);
    RUN(test_big_sizes);
    RUN(test_growth_and_churn);
    RUN(test_threads);
    return check_failures != 0;
}
