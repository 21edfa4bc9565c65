/* test_concurrency.c — the ledger and the address table while a snapshot
 * reads them, as the library uses them: writer threads that come and go
 * (each claims a counter shard and gives it back when it exits), intern
 * stacks and count allocations and frees, while a reader thread does what
 * the snapshot writer does (ids, stacks, totals, stats) and a third thread
 * takes every address-table lock as fork() does. Run under TSan in the
 * thread-sanitizer configuration, which checks every access is ordered.
 * Asserts: totals seen by the reader never go down, live never exceeds
 * total, and the final figures are exact (summed over every id a stack
 * got: see stack_totals). */
#include "core/addrtab.h"
#include "check.h"
#include "common/config.h"
#include "core/ledger.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WAVES 6
#define PER_WAVE 12 /* more threads at once than counter shards */
#define ROUNDS 20000
#define STACKS 16

static ml_addrtab_t table;
static _Atomic int stop;
static _Atomic int reader_errors;

static uint32_t stack_id(uint64_t k)
{
    uint64_t w[] = {0xa00000 + k, 0xb00000, 0xc00000 + k * 7};
    return ml_ledger_intern(ML_DOM_MALLOC, w, 3);
}

/* The totals of stack k over every id that holds it. One stack may have
 * two ids (a collection that moved a stack while another thread made it
 * again leaves one of them an orphan: ledger.c; the snapshot reader sums
 * entries with equal frames), so the test counts every id, as the reader
 * does. */
static ml_totals_t stack_totals(uint64_t k)
{
    uint64_t w[] = {0xa00000 + k, 0xb00000, 0xc00000 + k * 7};
    ml_totals_t sum = {0, 0, 0, 0};
    uint32_t n = ml_ledger_ids();
    for (uint32_t id = ML_STACK_FIRST; id < n; id++) {
        ml_stack_view_t v;
        uint64_t got[4];
        if (!ml_ledger_stack(id, &v) || v.domain != ML_DOM_MALLOC || ml_ledger_stack_words(id, got, 4) != 3 ||
            got[0] != (ML_WORD_ABS | w[0]) || got[1] != (ML_WORD_ABS | w[1]) || got[2] != (ML_WORD_ABS | w[2]))
            continue;
        ml_totals_t t;
        ml_ledger_totals(id, &t);
        sum.live_bytes += t.live_bytes;
        sum.live_count += t.live_count;
        sum.total_bytes += t.total_bytes;
        sum.total_count += t.total_count;
    }
    return sum;
}

/* Each writer keeps every third allocation, frees the rest through the
 * address table as the hooks do (remove, then count the free). */
static void *writer(void *arg)
{
    uint64_t me = (uint64_t)(uintptr_t)arg;
    for (uint64_t r = 0; r < ROUNDS; r++) {
        uint64_t k = (me + r) % STACKS;
        uint32_t id = stack_id(k);
        uint64_t addr = (me << 32) | (r << 5) | 0x10;
        uint32_t oid;
        uint64_t osz;
        if (ml_addrtab_insert(&table, addr, id, k + 1, &oid, &osz) != ML_ADDR_NEW)
            atomic_fetch_add(&reader_errors, 1);
        ml_ledger_count_alloc(id, k + 1, 1);
        if (r % 3) {
            uint32_t fid;
            uint64_t fsz;
            if (!ml_addrtab_remove(&table, addr, &fid, &fsz) || fid != id || fsz != k + 1)
                atomic_fetch_add(&reader_errors, 1);
            ml_ledger_count_free(fid, fsz, 1);
        }
    }
    return NULL; /* the shard goes back at thread exit */
}

static void *reader(void *arg)
{
    (void)arg;
    static uint64_t last_total[1 << 12];
    while (!atomic_load(&stop)) {
        uint32_t n = ml_ledger_ids();
        for (uint32_t id = 0; id < n && id < (1u << 12); id++) {
            ml_stack_view_t v;
            if (!ml_ledger_stack(id, &v))
                continue;
            ml_totals_t t;
            ml_ledger_totals(id, &t);
            if (t.total_count < last_total[id] || t.live_count > t.total_count || t.live_bytes > t.total_bytes)
                atomic_fetch_add(&reader_errors, 1);
            last_total[id] = t.total_count;
        }
        ml_ledger_stats_t ls;
        ml_ledger_stats(&ls);
        ml_addrtab_stats_t as;
        ml_addrtab_stats(&as);
    }
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        ml_addrtab_lock_all(); /* what fork_prepare does */
        ml_addrtab_unlock_all();
        sched_yield();
    }
    return NULL;
}

static void test_snapshot_while_threads_come_and_go(void)
{
    pthread_t rd, fk;
    pthread_create(&rd, NULL, reader, NULL);
    pthread_create(&fk, NULL, forker, NULL);
    uintptr_t next = 1;
    for (int w = 0; w < WAVES; w++) {
        pthread_t t[PER_WAVE];
        for (int i = 0; i < PER_WAVE; i++)
            pthread_create(&t[i], NULL, writer, (void *)next++);
        for (int i = 0; i < PER_WAVE; i++)
            pthread_join(t[i], NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(rd, NULL);
    pthread_join(fk, NULL);
    CHECK_EQ(atomic_load(&reader_errors), 0);

    long long want_bytes = 0, want_count = 0, got_bytes = 0, got_count = 0, got_total = 0;
    for (uintptr_t me = 1; me < next; me++)
        for (uint64_t r = 0; r < ROUNDS; r++)
            if (r % 3 == 0) {
                want_bytes += (long long)((me + r) % STACKS) + 1;
                want_count++;
            }
    for (uint64_t k = 0; k < STACKS; k++) {
        ml_totals_t t = stack_totals(k);
        got_bytes += (long long)t.live_bytes;
        got_count += (long long)t.live_count;
        got_total += (long long)t.total_count;
    }
    CHECK_EQ(got_bytes, want_bytes);
    CHECK_EQ(got_count, want_count);
    CHECK_EQ(got_total, (long long)(next - 1) * ROUNDS);
    ml_addrtab_stats_t as;
    ml_addrtab_stats(&as);
    CHECK_EQ(as.entries, want_count);
}

int main(void)
{
    if (!ml_ledger_init(ML_MIN_STACKS)) {
        fprintf(stderr, "ml_ledger_init failed\n");
        return 1;
    }
    ml_addrtab_register(&table, "test");
    RUN(test_snapshot_while_threads_come_and_go);
    return check_failures != 0;
}
