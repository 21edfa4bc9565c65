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
#include "common/config.h"
#include "unwind/capture.h"
#include "unwind/stack_cache.h"
#include "core/ledger.h"
#include "core/modules.h"
#include "core/quiesce.h"
#include "core/thread.h"
#include "unwind/unwind_rules.h"

#include "core/sysmem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

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
            /* what the walk and its cache entry are valid under: these
             * rules, and no code unloaded since */
            e->epoch = ml_quiesce_epoch() << 32 |
                       (uint32_t)(atomic_load_explicit(&ml_unwind_epoch, memory_order_acquire) ^
                                  atomic_load_explicit(&ml_code_epoch, memory_order_acquire) << 16);
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

/* ---- the walk memo: stop where the chain is unchanged ----
 *
 * While a function runs, its callers are suspended: their frames, return
 * addresses and saved registers do not change. So each thread keeps its
 * last walk, frame by frame (where each frame was, what it loaded, what it
 * depended on), and a walk that reaches a frame of the memo — same stack
 * position, same return address — checks the memo's loads from there on
 * (independent loads, no rule lookups) instead of stepping: equal loads
 * mean an equal walk, as in stack_cache.c. A thread that has returned and
 * called again to the same place finds its old frames equal or not, and
 * the loads tell which.
 *
 * The memo is kept outermost first, so the frames a walk takes from it
 * stay where they are: only the new inner frames are written, below the
 * memo's end while walking, then moved next to the frames they join. */

#define WM_MAX (ML_MAX_DEPTH + 32)
enum {
    WF_USES_BP = 1,     /* the step took the CFA from RBP */
    WF_BP_USED = 2,     /* the RBP this step reloaded was used before the next reload */
    WF_BP_NEEDED = 4,   /* walking on from here uses the RBP coming in, before any reload */
    WF_UNSURE = 8,      /* stepped without a rule: nothing to check, no suffix through it */
};

/* A frame of a walk in the making. */
typedef struct {
    uintptr_t pc, sp, bp;   /* the frame: its return address, stack pointer, RBP coming in */
    uintptr_t ra_slot;      /* where its step read its caller's return address (0: it did not) */
    uintptr_t bp_slot;      /* where its step reloaded RBP (0: it did not) */
    uint32_t flags;
} wframe_t;

/* The last walk, outermost frame first, in arrays (the check is a tight
 * loop over the loads), and its loads: frame i's step read its caller's
 * return address and perhaps its RBP, checks q[qstart[i]..qstart[i+1]),
 * each an address (bit 0 set: an RBP) and the value read there. */
typedef struct {
    uint64_t epoch;     /* rules and code (not the store): ml_entry_t's low half */
    uintptr_t hi;
    uint32_t n;
    bool by_max;        /* the walk stopped at max frames, not at the stack's end */
    uintptr_t end_slot; /* where the walk read the return address below 4096 that ended it (0: none) */
    uint32_t unsure_lo; /* the outermost frame stepped without a rule (n: none) */
    uintptr_t pc[WM_MAX], sp[WM_MAX], bp[WM_MAX];
    uint8_t flags[WM_MAX];
    uint32_t qstart[WM_MAX + 1];
    uintptr_t qaddr[2 * WM_MAX];
    uint64_t qval[2 * WM_MAX];
    wframe_t fresh[WM_MAX]; /* the walk in the making, innermost first */
} wmemo_t;

/* The rules this thread used last, by return address: the rule map is
 * large and shared, and a walk looks up the same few dozen addresses
 * again and again. Valid under one rules-and-code epoch. */
#define RC_LOG2 9
typedef struct {
    uint64_t pc, rule;
} rcache_t;

typedef struct {
    wmemo_t m;
    uint64_t rc_epoch;
    rcache_t rc[1u << RC_LOG2];
} wpair_t;

/* ml_rule_find through the thread's rule cache (rc may be NULL). */
static inline bool rule_of(rcache_t *rc, uint64_t pc, uint64_t *rule)
{
    if (!rc)
        return ml_rule_find(pc, rule);
    rcache_t *e = &rc[(pc * 0x9e3779b97f4a7c15ull) >> (64 - RC_LOG2)];
    if (ML_LIKELY(e->pc == pc)) {
        *rule = e->rule;
        return true;
    }
    if (!ml_rule_find(pc, rule))
        return false;
    e->pc = pc;
    e->rule = *rule;
    return true;
}

static void wmemo_release(void *p) { ml_sysmem_unmap(p, sizeof(wpair_t)); }

static inline wpair_t *wmemos(void) { return ml_thread_area(ML_AREA_WALK, sizeof(wpair_t)); }

void ml_unwind_fast_init(void) { ml_thread_set_area_release(ML_AREA_WALK, wmemo_release); }

/* True when the memo's walk from frame c outward is the walk from here:
 * its loads read the same values now, and RBP is the same where it
 * matters. */
__attribute__((no_sanitize_address)) static bool suffix_holds(const wmemo_t *m, unsigned c, uintptr_t bp)
{
    if (m->unsure_lo <= c || ((m->flags[c] & WF_BP_NEEDED) && m->bp[c] != bp))
        return false;
    /* the walk ended on a zero return address: it must still be there */
    if (m->end_slot && *(const uintptr_t *)m->end_slot >= 4096)
        return false;
    uint64_t diff = 0;
    for (uint32_t q = m->qstart[1], e = m->qstart[c + 1]; q < e; q++)
        diff |= *(const uintptr_t *)(m->qaddr[q] & ~(uintptr_t)1) ^ m->qval[q];
    return !diff;
}

/* Takes the walk in the making (its frames fresh[0..k), innermost first)
 * in as frames from..from+k of the memo, and their loads. */
static void wmemo_take(wmemo_t *m, unsigned from, unsigned k)
{
    for (unsigned t = 0; t < k; t++) {
        const wframe_t *f = &m->fresh[k - 1 - t];
        unsigned i = from + t;
        m->pc[i] = f->pc;
        m->sp[i] = f->sp;
        m->bp[i] = f->bp;
        m->flags[i] = (uint8_t)f->flags;
        if ((f->flags & WF_UNSURE) && m->unsure_lo > i)
            m->unsure_lo = i;
    }
    m->n = from + k;
    /* which frames need the RBP they came in with (walking on goes outward) */
    bool need = from > 0 && (m->flags[from - 1] & WF_BP_NEEDED);
    for (unsigned i = from; i < m->n; i++) {
        const wframe_t *f = &m->fresh[m->n - 1 - i];
        if (f->flags & WF_USES_BP)
            need = true;
        else if (f->bp_slot)
            need = false;
        m->flags[i] = need ? m->flags[i] | WF_BP_NEEDED : m->flags[i] & ~(uint8_t)WF_BP_NEEDED;
    }
    /* the loads of frames from.. (frame 0's caller is not in the walk) */
    uint32_t q = from ? m->qstart[from] : 0;
    for (unsigned i = from; i < m->n; i++) {
        const wframe_t *f = &m->fresh[m->n - 1 - i];
        m->qstart[i] = q;
        if (i == 0)
            continue;
        if (f->ra_slot) {
            m->qaddr[q] = f->ra_slot;
            m->qval[q++] = m->pc[i - 1];
        }
        if (f->flags & WF_BP_USED) {
            m->qaddr[q] = f->bp_slot | 1;
            m->qval[q++] = m->bp[i - 1];
        }
    }
    m->qstart[m->n] = q;
}

/* One step of a frame whose return address has no rule yet, by libunwind
 * from the frame's registers: the call's own row is at pc - 1. Only RSP
 * and RBP are known; a frame whose CFA needs another register gives a
 * result the bounds checks below refuse. Returns 1 when stepped, 0 when
 * the frame is the outermost (the stack ends there), -1 when libunwind
 * cannot step it. */
static int step_slow(uintptr_t pc, uintptr_t sp, uintptr_t bp, uintptr_t *npc, uintptr_t *nsp, uintptr_t *nbp)
{
    /* a signal handler's return address is the signal trampoline's first
     * instruction (mov $15, %rax; syscall: rt_sigreturn): its caller is in
     * the signal frame's saved context, which only a whole libunwind walk
     * reads; and pc - 1 would be another function's last byte */
    static const uint8_t sigreturn[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    const uint8_t *code = (const uint8_t *)pc;
    unsigned same = 0;
    while (same < sizeof sigreturn && code[same] == sigreturn[same]) /* byte by byte: never past a mismatch */
        same++;
    if (same == sizeof sigreturn)
        return -1;
    unw_context_t uc;
    memset(&uc, 0, sizeof uc);
    uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(pc - 1);
    uc.uc_mcontext.gregs[REG_RSP] = (greg_t)sp;
    uc.uc_mcontext.gregs[REG_RBP] = (greg_t)bp;
    unw_cursor_t cur;
    unw_word_t ip, csp, cbp;
    if (unw_init_local(&cur, &uc) < 0)
        return -1;
    int r = unw_step(&cur);
    if (r == 0)
        return 0;
    if (r < 0 || unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || unw_get_reg(&cur, UNW_REG_SP, &csp) < 0 ||
        unw_get_reg(&cur, UNW_X86_64_RBP, &cbp) < 0)
        return -1;
    *npc = ip;
    *nsp = csp;
    *nbp = cbp;
    return 1;
}

__attribute__((no_sanitize_address)) unsigned ml_unwind_walk(const ml_entry_t *e, uint64_t *words, unsigned max,
                                                              ml_checks_t *checks)
{
    const uintptr_t hi = e->hi, s0 = e->sp0;
    uintptr_t pc = e->pc0, sp = e->sp0, bp = e->bp0;
    intptr_t bp_src = ML_CHECK_LIVE_BP; /* where bp came from, relative to sp0 */
    int bp_src_frame = -1;              /* and which new frame reloaded it */
    bool bp_recorded = false;
    unsigned n = 0;
    if (checks)
        checks->n = 0;
    if (hi - s0 > INT32_MAX)
        checks = NULL; /* offsets would not fit the record */
    if (max > WM_MAX)
        max = WM_MAX;
    wpair_t *wp = wmemos();
    const uint64_t epoch = (uint32_t)e->epoch;
    wmemo_t *m = wp ? &wp->m : NULL;
    rcache_t *rc = wp ? wp->rc : NULL;
    if (wp && wp->rc_epoch != epoch) {
        memset(wp->rc, 0, sizeof wp->rc);
        wp->rc_epoch = epoch;
    }
    bool use_old = m && m->epoch == epoch && m->hi == hi && m->n && m->sp[m->n - 1] >= e->lo;
    unsigned c = use_old ? m->n - 1 : 0, tries = 0;
    uintptr_t end_slot = 0;
    while (n < max) {
        if (use_old && tries < 2) {
            while (c > 0 && m->sp[c] < sp)
                c--;
            if (m->sp[c] == sp && m->pc[c] == pc && (!m->by_max || n + c + 1 >= max)) {
                tries++;
                if (suffix_holds(m, c, bp)) {
                    /* the rest is the memo's: its loads go into checks as the
                     * walk would have made them, when the chain can be
                     * cached at all */
                    unsigned fresh = n, total = n + c + 1 < max ? n + c + 1 : max;
                    bool need = m->flags[c] & WF_BP_NEEDED;
                    if (bp_src_frame >= 0 && need)
                        m->fresh[bp_src_frame].flags |= WF_BP_USED;
                    if (checks && total > ML_STACK_CACHE_WORDS) {
                        checks->n = ML_CHECK_MAX + 1;
                    } else if (checks) {
                        if (need && !bp_recorded)
                            record(checks,
                                   bp_src == ML_CHECK_LIVE_BP ? (uintptr_t)ML_CHECK_LIVE_BP & ~(uintptr_t)1
                                                              : (uintptr_t)bp_src,
                                   bp - s0, true);
                        for (unsigned i = c; i > 0; i--) /* in walk order: inward frames first */
                            for (uint32_t q = m->qstart[i]; q < m->qstart[i + 1]; q++) {
                                bool is_bp = m->qaddr[q] & 1;
                                record(checks, (m->qaddr[q] & ~(uintptr_t)1) - s0,
                                       is_bp ? m->qval[q] - s0 : m->qval[q], is_bp);
                            }
                        if (total == n + c + 1 && m->end_slot)
                            record(checks, m->end_slot - s0, *(const uintptr_t *)m->end_slot, false);
                    }
                    for (unsigned i = c + 1; i-- > 0 && n < max;)
                        words[n++] = m->pc[i];
                    /* the memo: its frames c and outward as they are, then the new ones */
                    if (c + 1 + fresh <= WM_MAX)
                        wmemo_take(m, c + 1, fresh);
                    return n;
                }
            }
        }
        wframe_t *nf = m ? &m->fresh[n] : NULL;
        if (nf)
            *nf = (wframe_t){pc, sp, bp, 0, 0, 0};
        words[n++] = pc;
        uint64_t rule;
        bool known = rule_of(rc, pc, &rule);
        if (ML_UNLIKELY(!known)) {
            /* first sight of this return address: its rule now, else later */
            known = ml_unwind_rules_now(pc, &rule);
            if (!known)
                ml_unwind_rules_miss(pc);
        }
        unsigned kind = known ? ml_rule_kind(rule) : ML_RULE_UNKNOWN;
        if (kind == ML_RULE_OUTERMOST)
            break;
        if (ML_UNLIKELY(kind == ML_RULE_UNKNOWN)) {
            /* no rule (yet): this one frame by libunwind, the rest as usual;
             * a walk with such a step is neither cached nor checked */
            uintptr_t npc, nsp, nbp;
            int stepped = step_slow(pc, sp, bp, &npc, &nsp, &nbp);
            if (checks)
                checks->n = ML_CHECK_MAX + 1;
            checks = NULL;
            if (nf)
                nf->flags = WF_UNSURE;
            if (stepped == 0)
                break; /* the outermost frame */
            if (stepped < 0 || nsp <= sp || nsp > hi || (nsp & 7))
                return ML_WALK_DEFER;
            if (nf)
                nf->ra_slot = nsp - 8;
            if (nbp != bp) {
                bp_src = ML_CHECK_LIVE_BP; /* unknown source: not checked again */
                bp_src_frame = -1;
            }
            pc = npc;
            sp = nsp;
            bp = nbp;
            if (pc < 4096) {
                end_slot = sp - 8;
                break;
            }
            continue;
        }
        uintptr_t base = sp;
        if (kind == ML_RULE_RBP) {
            base = bp;
            if (nf)
                nf->flags |= WF_USES_BP;
            if (!bp_recorded) {
                if (checks)
                    record(checks,
                           bp_src == ML_CHECK_LIVE_BP ? (uintptr_t)ML_CHECK_LIVE_BP & ~(uintptr_t)1 : (uintptr_t)bp_src,
                           bp - s0, true);
                if (bp_src_frame >= 0 && m)
                    m->fresh[bp_src_frame].flags |= WF_BP_USED;
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
            bp_src_frame = nf ? (int)(n - 1) : -1;
            if (nf)
                nf->bp_slot = slot;
            bp_recorded = false;
        }
        pc = *(const uintptr_t *)(cfa - 8);
        if (nf)
            nf->ra_slot = cfa - 8;
        if (checks)
            record(checks, cfa - 8 - s0, pc, false);
        sp = cfa;
        if (pc < 4096) {
            end_slot = cfa - 8;
            break; /* a zeroed return address ends the chain (thread start) */
        }
    }
    if (m) {
        /* a walk of its own: the memo is this walk */
        m->unsure_lo = n;
        wmemo_take(m, 0, n);
        m->by_max = n == max;
        m->end_slot = m->by_max ? 0 : end_slot;
        m->epoch = epoch;
        m->hi = hi;
    }
    return n;
}
