/* capture.c — the stack capture contract and its unwinders (see capture.h).
 *
 * The default ("auto") unwinder is a table-driven walk: memledger's own
 * frames are left by their frame pointers (the library is always built with
 * them), then each caller frame is stepped with the rule its return address
 * has in unwind_rules.h — a lookup and two or three loads per frame. A return address without a rule yet sends
 * that one stack to libunwind (and the address to the rule service), so
 * stacks are always complete; they are also identical whichever path took
 * them, since both produce the same return addresses.
 *
 * Memory safety: every load is from the calling thread's own stack, checked
 * against its bounds (found once per thread), and a frame must sit above the
 * one before it. Never locks, never allocates through the hooked allocator. */
#include "unwind/capture.h"
#include "common/io.h"
#include "snapshot/snapshot_write.h"
#include "common/config.h"
#include "core/ledger.h"
#include "core/thread.h"
#include "unwind/stack_cache.h"
#include "unwind/unwind_fast.h"
#include "unwind/unwind_rules.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

static ml_unwinder_fn unwinder; /* tests only; NULL: the configured path */
static ml_merge_fn merge;
static ml_merge_intern_fn merge_intern;
static uintptr_t self_lo, self_hi;
static bool rules_ok;
static _Atomic uint64_t slow_count;

bool ml_capture_is_self(uintptr_t pc) { return pc >= self_lo && pc < self_hi; }

uint64_t ml_capture_slow_count(void) { return atomic_load_explicit(&slow_count, memory_order_relaxed); }

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t probe = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (probe >= lo && probe < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

/* The snapshot's `unwind` line (docs/format.md). */
static void header(ml_out_t *o)
{
    uint64_t known, unknown, dropped;
    ml_unwind_rules_stats(&known, &unknown, &dropped);
    static const char *const modes[] = {"auto", "fp", "libunwind"};
    ml_out_printf(o, "unwind\tmode\t%s\tslow\t%llu\trules\t%llu\tunknown_rules\t%llu\tdropped\t%llu\n",
                  modes[ml_config.unwind], (unsigned long long)ml_capture_slow_count(),
                  (unsigned long long)known, (unsigned long long)unknown, (unsigned long long)dropped);
}

static uint64_t resident(void) { return ml_unwind_rules_resident() + ml_stack_cache_resident(); }

void ml_capture_init(void)
{
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&ml_capture_init);
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    ml_unwind_fast_init();
    if (ml_config.unwind == ML_UNWIND_AUTO)
        rules_ok = ml_unwind_rules_init() && ml_stack_cache_init();
    ml_snapshot_add_header(header);
    ml_snapshot_add_memory("unwind", resident);
}

void ml_capture_set_unwinder(ml_unwinder_fn fn) { __atomic_store_n(&unwinder, fn, __ATOMIC_RELEASE); }

void ml_capture_set_merge(ml_merge_fn fn) { __atomic_store_n(&merge, fn, __ATOMIC_RELEASE); }

void ml_capture_set_merge_intern(ml_merge_intern_fn fn) { __atomic_store_n(&merge_intern, fn, __ATOMIC_RELEASE); }

unsigned ml_unwind_libunwind(uintptr_t *pcs, unsigned max)
{
    int n = unw_backtrace((void **)pcs, (int)max);
    return n > 0 ? (unsigned)n : 0;
}

__attribute__((no_sanitize_address)) unsigned ml_unwind_fp(uintptr_t *pcs, unsigned max)
{
    if (ML_UNLIKELY(!ml_self.stack_hi))
        ml_thread_stack_bounds();
    uintptr_t lo = ml_self.stack_lo, hi = ml_self.stack_hi;
    const uintptr_t *fp = __builtin_frame_address(0);
    unsigned n = 0;
    while (n < max) {
        uintptr_t f = (uintptr_t)fp;
        if (f < lo || f + 16 > hi || (f & 7))
            break;
        uintptr_t ret = fp[1];
        const uintptr_t *next = (const uintptr_t *)fp[0];
        if (ret < 4096)
            break;
        pcs[n++] = ret;
        if ((uintptr_t)next <= f)
            break; /* frames only go up the stack; anything else is not a frame chain */
        fp = next;
    }
    return n;
}

static unsigned walk_slow(ml_unwinder_fn fn, uint64_t *words, unsigned max)
{
    uintptr_t pcs[ML_MAX_DEPTH + 32];
    unsigned want = max + 32 < ML_ARRAY_LEN(pcs) ? max + 32 : (unsigned)ML_ARRAY_LEN(pcs);
    unsigned n = fn(pcs, want);
    unsigned skip = 0;
    while (skip < n && ml_capture_is_self(pcs[skip]))
        skip++;
    unsigned k = 0;
    for (unsigned i = skip; i < n && k < max; i++)
        words[k++] = pcs[i];
    return k;
}

/* The configured slow unwinder (or a test's). */
static unsigned slow(uint64_t *words, unsigned max)
{
    ml_unwinder_fn fn = __atomic_load_n(&unwinder, __ATOMIC_ACQUIRE);
    if (!fn)
        fn = ml_config.unwind == ML_UNWIND_FP ? ml_unwind_fp : ml_unwind_libunwind;
    unsigned n = walk_slow(fn, words, max);
    if (rules_ok && fn == ml_unwind_libunwind) {
        atomic_fetch_add_explicit(&slow_count, 1, memory_order_relaxed);
        /* the fast walk stopped at the first address without a rule; hand
         * the service every missing one now, so one round trip suffices */
        for (unsigned i = 0; i < n; i++) {
            uint64_t rule;
            if (!ml_rule_find(words[i], &rule))
                ml_unwind_rules_miss(words[i]);
        }
    }
    return n;
}

static unsigned native_max(unsigned cap) { return ml_config.depth < cap ? ml_config.depth : cap; }

/* How the native chain was had: from the chain cache (with the stack id
 * cached beside it, when the chain is the whole stack), or by a walk the
 * cache can learn from, or by the slow unwinder. */
typedef struct {
    uint32_t id;     /* the cached stack id; 0: none */
    bool learn;      /* a fast walk: put it in the cache */
    ml_entry_t e;
    ml_checks_t checks;
} native_t;

/* The calling thread's native chain into words[max]; returns its length.
 * `words_needed`: the caller merges Python frames into the chain, so a
 * cache hit must hand the words over too. */
static unsigned native_chain(unsigned domain, uint64_t *words, unsigned max, bool words_needed, native_t *nat)
{
    unsigned n;
    nat->id = 0;
    nat->learn = false;
    if (rules_ok && !__atomic_load_n(&unwinder, __ATOMIC_ACQUIRE) && ml_unwind_entry(&nat->e)) {
        /* a chain seen before: no unwinding */
        if (ml_stack_cache_find(&nat->e, domain, words_needed ? words : NULL, max, &n, &nat->id))
            return n;
        n = ml_unwind_walk(&nat->e, words, max, &nat->checks);
        if (n != ML_WALK_DEFER) {
            nat->learn = true;
            return n;
        }
    }
    return slow(words, max);
}

unsigned ml_capture(uint64_t *words, unsigned cap)
{
    native_t nat;
    unsigned n = native_chain(0, words, native_max(cap), true, &nat);
    ml_merge_fn m = __atomic_load_n(&merge, __ATOMIC_ACQUIRE);
    return m ? m(words, n, cap) : n;
}

uint32_t ml_capture_stack(unsigned domain)
{
    uint64_t words[ML_STACK_WORDS];
    native_t nat;
    ml_merge_intern_fn mi = __atomic_load_n(&merge_intern, __ATOMIC_ACQUIRE);
    unsigned n = native_chain(domain, words, native_max(ML_STACK_WORDS), mi != NULL, &nat);
    if (mi) {
        /* the merged stack varies with the Python frames: the cache keeps
         * the native chain only, and the merge finds the id */
        if (nat.learn)
            ml_stack_cache_put(&nat.e, domain, words, n, &nat.checks, 0);
        return mi(domain, words, n, ML_STACK_WORDS);
    }
    uint32_t id = nat.id;
    if (!id) {
        id = ml_ledger_intern(domain, words, n);
        if (nat.learn)
            ml_stack_cache_put(&nat.e, domain, words, n, &nat.checks, id);
    }
    return id;
}
