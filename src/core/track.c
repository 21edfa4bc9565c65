/* track.c — the allocation hot path (see track.h).
 * Everything here runs inside a hook with the thread's guard set: it may
 * not lock (except the address table's shard), allocate through the hooked
 * allocator, or make a syscall in the common case. */
#include "core/track.h"
#include "common/config.h"
#include "core/ledger.h"
#include "core/quiesce.h"
#include "core/sysmem.h"
#include "core/thread.h"

#include <math.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

_Atomic int ml_state;
ml_addrtab_t ml_heap_addrs;

/* Sampling mode: most frees are of allocations that were never sampled,
 * and a lookup in the address table (a lock and a probe) for each of them
 * would cost more than the allocation itself. This filter answers "surely
 * not tracked" from one byte: a counter per hash bucket of addresses,
 * raised for each sampled allocation and lowered when it is freed (a
 * counter that reaches 255 stays there). 64 KiB, so it lives in cache.
 * It is static, not mapped, so that the free hook reaches it with one
 * load and no pointer; zero (as loaded) sends every free to the slow path,
 * which is exact mode's answer, and sampling mode sets every bucket to 1,
 * "empty", before the first allocation is sampled. */
_Atomic uint8_t ml_sample_filter[(size_t)1 << ML_FILTER_LOG2];

static void filter_clear(void)
{
    for (size_t i = 0; i < ML_ARRAY_LEN(ml_sample_filter); i++)
        atomic_store_explicit(&ml_sample_filter[i], ML_FILTER_EMPTY, memory_order_release);
}

bool ml_track_init(void)
{
    if (ml_sample_rate)
        filter_clear();
    return true;
}

void ml_track_pass_all(void) { filter_clear(); }

static void filter_add(const void *p, int delta)
{
    _Atomic uint8_t *f = ml_filter_of(p);
    uint8_t v = atomic_load_explicit(f, memory_order_relaxed);
    /* 0: not set up; EMPTY never drops further, a counter at 255 sticks */
    while (v && v != 255 && (delta > 0 || v > ML_FILTER_EMPTY) &&
           !atomic_compare_exchange_weak_explicit(f, &v, (uint8_t)(v + delta), memory_order_release,
                                                              memory_order_relaxed))
        ;
}

static uint64_t rng_next(void)
{
    uint64_t x = ml_self.rng;
    if (ML_UNLIKELY(!x)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&ml_self ^
            ((uint64_t)getpid() << 32);
        x = x ? x : 88172645463325252ull;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ml_self.rng = x;
    return x;
}

/* Bytes until the next sample: exponential with mean `rate`, so sampling is
 * a Poisson process over allocated bytes and each allocation is taken with
 * probability 1 - exp(-size/rate) whatever the sizes around it. */
static int64_t next_gap(uint64_t rate)
{
    double u = ((double)(rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double gap = -log(u) * (double)rate;
    return gap > 9e18 ? INT64_MAX : (int64_t)gap + 1;
}

uint64_t ml_sample_rate; /* ml_config.sample_bytes, where the hot path reads it */

void ml_track_after_fork_child(void)
{
    /* The forking thread's generator and countdown are the parent's: two
     * workers forked from one master would take the very same samples. */
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ ((uint64_t)getpid() << 32);
    ml_self.rng = seed ? seed : 88172645463325252ull;
    ml_self.sample_left = 0; /* the next allocation draws a fresh gap */
}

void ml_sample_weight_slow(uint64_t size, uint64_t *bytes, uint64_t *count)
{
    uint64_t rate = ml_sample_rate;
    double p = -expm1(-(double)(size ? size : 1) / (double)rate);
    *bytes = (uint64_t)llround((double)size / p);
    *count = (uint64_t)llround(1.0 / p);
}

/* Sampling: true when this allocation is taken (the next gap is drawn),
 * false when the countdown only moves. Always true in exact mode. */
static inline bool take_sample(uint64_t size)
{
    uint64_t rate = ml_sample_rate;
    if (!rate)
        return true;
    if (ML_UNLIKELY(!ml_self.sample_left))
        ml_self.sample_left = next_gap(rate);
    ml_self.sample_left -= (int64_t)(size ? size : 1);
    if (ML_LIKELY(ml_self.sample_left > 0))
        return false;
    ml_self.sample_left = next_gap(rate);
    return true;
}

/* Records p under stack `id` and counts it. */
static inline void record(ml_addrtab_t *t, const void *p, uint64_t size, uint32_t id)
{
    uint32_t old_id;
    uint64_t old_size, b, c;
    switch (ml_addrtab_insert(t, (uintptr_t)p, id, size, &old_id, &old_size)) {
    case ML_ADDR_DROPPED:
        return; /* not recorded, so not counted: live bytes stay exact */
    case ML_ADDR_REPLACED:
        ml_sample_weight(old_size, &b, &c);
        ml_ledger_count_free(old_id, b, c);
        break;
    case ML_ADDR_NEW:
        if (ml_sample_rate)
            filter_add(p, 1);
        break;
    }
    ml_sample_weight(size, &b, &c);
    ml_ledger_count_alloc(id, b, c);
}

static ml_stack_fn stack_taker;

void ml_track_set_stack_fn(ml_stack_fn fn) { __atomic_store_n(&stack_taker, fn, __ATOMIC_RELEASE); }

static inline uint32_t take_stack(unsigned domain)
{
    ml_stack_fn fn = __atomic_load_n(&stack_taker, __ATOMIC_ACQUIRE);
    return ML_LIKELY(fn != NULL) ? fn(domain) : ML_STACK_OVERFLOW(domain);
}

void ml_track_alloc(ml_addrtab_t *t, unsigned domain, const void *p, uint64_t size)
{
    if (!take_sample(size))
        return;
    ml_addrtab_prefetch(t, (uintptr_t)p);
    /* from taking the stack id to recording it, the store must not give
     * the id back (quiesce.h) */
    ml_quiesce_enter();
    record(t, p, size, take_stack(domain));
    ml_quiesce_leave();
}

bool ml_track_free_held(ml_addrtab_t *t, const void *p, uint32_t *id, uint64_t *size)
{
    /* held before the free is counted: a collector that sees the count
     * sees the hold (ml_ledger_hold) */
    ml_ledger_hold();
    if (ml_track_free(t, p, id, size))
        return true;
    ml_ledger_unhold();
    return false;
}

bool ml_track_free(ml_addrtab_t *t, const void *p, uint32_t *id, uint64_t *size)
{
    if (ml_free_skip(p))
        return false;
    if (!ml_addrtab_remove(t, (uintptr_t)p, id, size))
        return false;
    if (ml_sample_rate)
        filter_add(p, -1);
    uint64_t b, c;
    ml_sample_weight(*size, &b, &c);
    ml_ledger_count_free(*id, b, c);
    return true;
}

void ml_track_restore(ml_addrtab_t *t, const void *p, uint32_t id, uint64_t size)
{
    uint32_t oid;
    uint64_t osz, b, c;
    if (ml_addrtab_insert(t, (uintptr_t)p, id, size, &oid, &osz) == ML_ADDR_DROPPED)
        return;
    if (ml_sample_rate)
        filter_add(p, 1);
    /* Undo the free ml_track_free counted, in the same shard it went to. */
    ml_sample_weight(size, &b, &c);
    ml_ledger_uncount_free(id, b, c);
}

ml_forgot_t ml_track_realloc_forget(ml_addrtab_t *t, const void *p)
{
    ml_forgot_t f = {false, 0, 0};
    /* p's id must stay p's stack until p is put back or let go: the store
     * never collects a stack while a forgotten record may return */
    if (p)
        f.had = ml_track_free_held(t, p, &f.id, &f.size);
    return f;
}

void ml_track_realloc_done(ml_addrtab_t *t, unsigned domain, const void *p, const void *q, uint64_t size,
                           bool p_kept_on_failure, const ml_forgot_t *f)
{
    if (q)
        ml_track_alloc(t, domain, q, size);
    else if (f->had && p_kept_on_failure)
        ml_track_restore(t, p, f->id, f->size);
    if (f->had)
        ml_ledger_unhold();
}

void ml_track_alloc_by(ml_addrtab_t *t, unsigned domain, const void *p, uint64_t size, ml_stack_fn stack)
{
    if (!stack) {
        ml_track_alloc(t, domain, p, size);
        return;
    }
    if (take_sample(size)) {
        ml_quiesce_enter();
        record(t, p, size, stack(domain));
        ml_quiesce_leave();
    }
}
