/* unwind_fast.c — the table-driven unwinder (see unwind_fast.h).
 *
 * One step, for a frame whose return address is pc, stack pointer sp and
 * frame register bp: the rule of pc gives the caller's CFA (sp or bp plus an
 * offset); the caller's return address is at CFA - 8; its RBP is either
 * unchanged or was saved at CFA + k. Every load is checked against the
 * thread's stack bounds and a frame must sit above the one before it.
 *
 * Recording the loads: a walk is a function of the words it read. If the
 * same slots (relative to sp0) hold the same values, the same rules apply
 * and the walk ends the same way. Return addresses are compared as they
 * are; RBP values, which are stack addresses and differ between threads,
 * relative to sp0. Only RBP values the walk actually used are recorded: a
 * function that keeps data in RBP would otherwise make every check fail. */
#include "unwind/unwind_fast.h"
#include "unwind/capture.h"
#include "core/ledger.h"
#include "core/thread.h"
#include "unwind/unwind_rules.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_stack_end;

/* The thread's stack bounds, found once per thread; on the main thread
 * without allocating (from __libc_stack_end and the stack rlimit). */
void ml_thread_stack_bounds(void)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (syscall(SYS_gettid) == getpid()) {
        struct rlimit rl;
        uintptr_t top = (uintptr_t)__libc_stack_end;
        uint64_t size = 8u << 20;
        if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (1ull << 32))
            size = rl.rlim_cur;
        /* arguments, environment and auxv sit above __libc_stack_end */
        ml_self.stack_hi = (top + 65536 + 4095) & ~(uintptr_t)4095;
        ml_self.stack_lo = top - size;
    } else {
        pthread_attr_t a;
        void *lo;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstack(&a, &lo, &size) == 0) {
                ml_self.stack_lo = (uintptr_t)lo;
                ml_self.stack_hi = (uintptr_t)lo + size;
            }
            pthread_attr_destroy(&a);
        }
    }
    if (here < ml_self.stack_lo || here >= ml_self.stack_hi) {
        /* not the stack we were told about (a coroutine, an alternate
         * signal stack): no bounds, so the fast walk always defers */
        ml_self.stack_lo = 1;
        ml_self.stack_hi = 2;
    }
}

__attribute__((noinline, no_sanitize_address)) bool ml_unwind_entry(ml_entry_t *e)
{
    if (ML_UNLIKELY(!ml_self.stack_hi))
        ml_thread_stack_bounds();
    uintptr_t lo = ml_self.stack_lo, hi = ml_self.stack_hi;
    const uintptr_t *fp = __builtin_frame_address(0);
    for (int i = 0; i < 32; i++) {
        uintptr_t f = (uintptr_t)fp;
        if (f < lo || f + 16 > hi || (f & 7))
            return false;
        uintptr_t pc = fp[1];
        if (!ml_capture_is_self(pc)) {
            e->pc0 = pc;
            e->sp0 = f + 16;
            e->bp0 = fp[0];
            e->hi = hi;
            e->lo = lo;
            e->epoch = atomic_load_explicit(&ml_unwind_epoch, memory_order_acquire);
            return true;
        }
        fp = (const uintptr_t *)fp[0];
    }
    return false;
}

static inline void record(ml_checks_t *c, uintptr_t pos, uint64_t v, bool rel)
{
    if (c->n < ML_CHECK_MAX) {
        c->pos[c->n] = (int32_t)pos | (rel ? 1 : 0);
        c->expect[c->n] = v;
    }
    c->n++;
}

__attribute__((no_sanitize_address)) unsigned ml_unwind_walk(const ml_entry_t *e, uint64_t *words, unsigned max,
                                                              uint64_t *hash, ml_checks_t *checks)
{
    const uintptr_t hi = e->hi, s0 = e->sp0;
    uintptr_t pc = e->pc0, sp = e->sp0, bp = e->bp0;
    intptr_t bp_src = ML_CHECK_LIVE_BP; /* where bp came from, relative to sp0 */
    bool bp_recorded = false;
    uint64_t h = ml_hash_begin();
    unsigned n = 0;
    if (checks)
        checks->n = 0;
    if (hi - s0 > INT32_MAX)
        checks = NULL; /* offsets would not fit the record */
    while (n < max) {
        words[n++] = pc;
        h = ml_hash_word(h, pc);
        uint64_t rule;
        if (ML_UNLIKELY(!ml_rule_find(pc, &rule))) {
            ml_unwind_rules_miss(pc);
            return ML_WALK_DEFER;
        }
        unsigned kind = ml_rule_kind(rule);
        if (kind == ML_RULE_OUTERMOST)
            break;
        if (ML_UNLIKELY(kind == ML_RULE_UNKNOWN))
            return ML_WALK_DEFER;
        uintptr_t base = sp;
        if (kind == ML_RULE_RBP) {
            base = bp;
            if (checks && !bp_recorded) {
                if (bp_src == ML_CHECK_LIVE_BP)
                    record(checks, (uintptr_t)ML_CHECK_LIVE_BP & ~(uintptr_t)1, bp - s0, true);
                else
                    record(checks, (uintptr_t)bp_src, bp - s0, true);
                bp_recorded = true;
            }
        }
        uintptr_t cfa = base + (intptr_t)ml_rule_cfa_off(rule);
        if (cfa <= sp || cfa > hi || (cfa & 7))
            return ML_WALK_DEFER;
        int64_t rbp_off = ml_rule_rbp_off(rule);
        if (rbp_off) {
            uintptr_t slot = cfa + (intptr_t)rbp_off;
            if (slot < s0 || slot + 8 > hi)
                return ML_WALK_DEFER;
            bp = *(const uintptr_t *)slot;
            bp_src = (intptr_t)(slot - s0);
            bp_recorded = false;
        }
        pc = *(const uintptr_t *)(cfa - 8);
        if (checks)
            record(checks, cfa - 8 - s0, pc, false);
        sp = cfa;
        if (pc < 4096)
            break; /* a zeroed return address ends the chain (thread start) */
    }
    *hash = h;
    return n;
}
