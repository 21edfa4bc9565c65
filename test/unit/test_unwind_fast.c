/* test_unwind_fast.c — the table-driven unwinder (unwind/unwind_fast.h) on
 * the test's own stack, through a chain of functions built without frame
 * pointers (chain.c), so every step needs its rule from CFI.
 * Proves:
 *   - ml_unwind_entry leaves memledger's own frames (here: the whole test
 *     executable, as ml_capture_is_self says) and stops at the first return
 *     address outside them: pc0 is the return address into chain_leaf,
 *     found in the slot just below sp0, the first word libunwind gives
 *     outside memledger; bp0 and the stack bounds are sane;
 *   - a walk that meets a return address without a rule computes it on the
 *     spot (ml_unwind_rules_now) and goes on with it, checks recorded;
 *   - when it cannot (another thread computing; here the test's seam says
 *     so), it steps that frame by libunwind (the same words as libunwind's),
 *     records no checks, and reports the address, and the rule service
 *     then derives its rule from CFI: chain_leaf's frame is stepped with an RSP-based rule,
 *     chain_alloca's (a variable-sized frame) with an RBP-based one; a walk
 *     through frames with rules steps the first caller without one (never
 *     walked before) by libunwind, and the service then gets it a rule;
 *   - with every rule known, the walk gives the same words as libunwind;
 *     walks one after another from chains of other depths under the same
 *     callers (which the walk memo answers from its last walk) too; a
 *     shorter max gives a prefix;
 *   - the recorded checks are exactly the loads the walk made: each return
 *     address check holds the next word and matches the stack, each RBP
 *     check matches relative to sp0, and at least one RBP was used (the
 *     RBP-based frame);
 *   - a walk whose frame would leave the stack bounds defers instead of
 *     reading outside them. */
#include "check.h"
#include "unwind_env.h"

#define MAXW 64

typedef struct {
    bool entry_ok;
    ml_entry_t e;
    uintptr_t callback_frame;
    uint64_t slot_below_sp0;
    uint64_t ref[MAXW];
    unsigned nref;
    uint64_t words[MAXW];
    unsigned n, defers;
    ml_checks_t checks;
    unsigned checks_ra, checks_bp, checks_bad; /* the checks, repeated on the live stack */
} probe_t;

/* Repeats the recorded loads on the stack as it is now (the walk's frames
 * still live): each must give back the value recorded, and the return
 * addresses among them are the walk's words after the first. */
__attribute__((no_sanitize_address)) static void repeat_checks(probe_t *p)
{
    const ml_entry_t *e = &p->e;
    p->checks_ra = p->checks_bp = p->checks_bad = 0;
    for (unsigned i = 0; i < p->checks.n && i < ML_CHECK_MAX; i++) {
        int32_t pos = p->checks.pos[i];
        uint64_t expect = p->checks.expect[i];
        if (pos == ML_CHECK_LIVE_BP) {
            p->checks_bp++;
            p->checks_bad += e->bp0 - e->sp0 != expect;
            continue;
        }
        uintptr_t at = e->sp0 + ((uint32_t)pos & ~1u);
        if (pos < 0 || at + 8 > e->hi) {
            p->checks_bad++;
            continue;
        }
        uint64_t v = *(const uint64_t *)at;
        if (pos & 1) {
            p->checks_bp++;
            p->checks_bad += v - e->sp0 != expect;
        } else {
            p->checks_bad += v != expect;
            /* in walk order: the next word, or a zero that ended the chain */
            p->checks_bad += p->checks_ra + 1 < p->n ? expect != p->words[p->checks_ra + 1] : expect >= 4096;
            p->checks_ra++;
        }
    }
}

/* Runs below chain_leaf: everything about the walk is taken here, while
 * the chain's frames are on the stack. */
__attribute__((no_sanitize_address)) static ML_NOINLINE unsigned probe_cb(void *arg)
{
    probe_t *p = arg;
    p->callback_frame = (uintptr_t)__builtin_frame_address(0);
    p->n = walk_with_rules(&p->e, p->words, MAXW, &p->checks, &p->defers);
    p->entry_ok = ml_unwind_entry(&p->e);
    p->nref = reference_stack(p->ref, MAXW);
    if (p->entry_ok) {
        p->slot_below_sp0 = *(const uint64_t *)(p->e.sp0 - 8);
        if (p->n != ML_WALK_DEFER)
            repeat_checks(p);
    }
    return 0;
}

static unsigned entry_only_cb(void *arg)
{
    probe_t *p = arg;
    p->entry_ok = ml_unwind_entry(&p->e);
    return 0;
}

/* No rules exist yet: the first walk steps by libunwind, gives libunwind's
 * words, records no checks, and reports pc0. */
typedef struct {
    uint64_t words[MAXW], ref[MAXW];
    unsigned n, nref;
    ml_checks_t checks;
} first_t;

static ML_NOINLINE unsigned first_cb(void *arg)
{
    first_t *f = arg;
    ml_entry_t e;
    if (ml_unwind_entry(&e))
        f->n = ml_unwind_walk(&e, f->words, MAXW, &f->checks);
    f->nref = reference_stack(f->ref, MAXW);
    return 0;
}

static void test_slow_step_without_rule(void)
{
    ml_unwind_rules_set_inline(false);
    probe_t p;
    memset(&p, 0, sizeof p);
    chain_run(entry_only_cb, &p, 1, 64);
    CHECK(p.entry_ok);
    uint64_t rule;
    CHECK(!ml_rule_find(p.e.pc0, &rule)); /* nothing has asked for it yet */

    first_t f;
    memset(&f, 0, sizeof f);
    chain_run(first_cb, &f, 1, 64);
    CHECK(f.n != ML_WALK_DEFER && f.n == f.nref);
    if (f.n != f.nref)
        for (unsigned i = 0; i < MAXW && (i < f.n || i < f.nref); i++)
            fprintf(stderr, "  %2u fast %#18llx %-24s libunwind %#18llx %s\n", i,
                    (unsigned long long)(i < f.n ? f.words[i] : 0), i < f.n ? function_of(f.words[i]) : "",
                    (unsigned long long)(i < f.nref ? f.ref[i] : 0), i < f.nref ? function_of(f.ref[i]) : "");
    for (unsigned i = 0; f.n != ML_WALK_DEFER && i < f.n && i < f.nref; i++)
        CHECK_EQ(f.words[i], f.ref[i]);
    CHECK_EQ(f.checks.n, ML_CHECK_MAX + 1); /* stepped without a rule: nothing to check */

    memset(&p, 0, sizeof p);
    chain_run(probe_cb, &p, 1, 64);
    CHECK(p.defers >= 1); /* the service ran after the walks that stepped slowly */
    CHECK(p.n != ML_WALK_DEFER);
    CHECK(ml_rule_find(p.e.pc0, &rule));
    CHECK_EQ(ml_rule_kind(rule), ML_RULE_RSP); /* chain_leaf: no frame pointer */
    CHECK(ml_rule_cfa_off(rule) >= 72 + 8);    /* its 72-byte buffer and the return address */
    CHECK(p.n >= 2 && strcmp(function_of(p.words[1]), "chain_alloca") == 0);
    if (p.n >= 2) {
        CHECK(ml_rule_find(p.words[1], &rule));
        CHECK_EQ(ml_rule_kind(rule), ML_RULE_RBP); /* alloca: CFA from the frame pointer */
    }
    ml_unwind_rules_set_inline(true);
}

/* A new caller, with rules computed on the spot: the first walk already
 * has them all, records its checks, and leaves nothing for the service. */
static ML_NOINLINE unsigned inline_cb(void *arg)
{
    first_t *f = arg;
    ml_entry_t e;
    if (ml_unwind_entry(&e))
        f->n = ml_unwind_walk(&e, f->words, MAXW, &f->checks);
    f->nref = reference_stack(f->ref, MAXW);
    return 0;
}

static ML_NOINLINE unsigned another_caller(first_t *f)
{
    unsigned r = chain_run(inline_cb, f, 5, 40);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a jump */
    return r;
}

static void test_rules_on_the_spot(void)
{
    first_t f;
    memset(&f, 0, sizeof f);
    another_caller(&f);
    CHECK(f.n != ML_WALK_DEFER && f.n == f.nref);
    for (unsigned i = 0; f.n != ML_WALK_DEFER && i < f.n && i < f.nref; i++)
        CHECK_EQ(f.words[i], f.ref[i]);
    CHECK(f.checks.n > 0 && f.checks.n <= ML_CHECK_MAX); /* every frame had its rule */
    uint64_t rule;
    unsigned ruled = 0;
    for (unsigned i = 0; i < f.n; i++)
        ruled += ml_rule_find(f.words[i], &rule);
    CHECK_EQ(ruled, f.n);
    CHECK(!ml_unwind_rules_service()); /* nothing was left for it */
}

static void test_entry(void)
{
    probe_t p;
    memset(&p, 0, sizeof p);
    chain_run(probe_cb, &p, 2, 100);
    CHECK(p.entry_ok);
    CHECK(!ml_capture_is_self(p.e.pc0));
    CHECK(strcmp(function_of(p.e.pc0), "chain_leaf") == 0);
    CHECK(p.nref > 0 && p.ref[0] == p.e.pc0); /* libunwind's first word outside memledger */
    CHECK(p.e.pc0 == p.slot_below_sp0); /* the slot just below sp0 */
    CHECK(p.e.sp0 > p.callback_frame);          /* above the frame of the function that called in */
    CHECK(p.e.lo < p.e.sp0 && p.e.sp0 < p.e.hi);
    CHECK((uint32_t)p.e.epoch == (uint32_t)(atomic_load(&ml_unwind_epoch) ^ atomic_load(&ml_code_epoch) << 16));
    /* entry is the same wherever in memledger it is asked from */
    CHECK(p.n != ML_WALK_DEFER && p.words[0] == p.e.pc0);
}

static void test_walk_matches_libunwind(void)
{
    for (unsigned depth = 0; depth < 4; depth++) {
        probe_t p;
        memset(&p, 0, sizeof p);
        chain_run(probe_cb, &p, depth, 16 + 40 * depth);
        CHECK(p.n != ML_WALK_DEFER);
        if (p.n == ML_WALK_DEFER)
            continue;
        CHECK_EQ(p.n, p.nref);
        unsigned same = 0;
        for (unsigned i = 0; i < p.n && i < p.nref; i++)
            same += p.words[i] == p.ref[i];
        CHECK_EQ(same, p.n);
        if (same != p.n || p.n != p.nref)
            for (unsigned i = 0; i < p.n || i < p.nref; i++)
                fprintf(stderr, "  %2u fast %#18llx %-24s libunwind %#18llx %s\n", i,
                        (unsigned long long)(i < p.n ? p.words[i] : 0), i < p.n ? function_of(p.words[i]) : "",
                        (unsigned long long)(i < p.nref ? p.ref[i] : 0), i < p.nref ? function_of(p.ref[i]) : "");
        /* the chain, innermost first: leaf, alloca, depth + 1 rec, run */
        CHECK(p.n >= depth + 4);
        if (p.n >= depth + 4) {
            CHECK(strcmp(function_of(p.words[0]), "chain_leaf") == 0);
            CHECK(strcmp(function_of(p.words[1]), "chain_alloca") == 0);
            for (unsigned i = 2; i < depth + 3; i++)
                CHECK(strcmp(function_of(p.words[i]), "chain_rec") == 0);
            CHECK(strcmp(function_of(p.words[depth + 3]), "chain_run") == 0);
        }
    }
}

/* The checks are the walk's loads (probe_cb repeats them on the live
 * stack). */
static void test_checks_are_the_loads(void)
{
    probe_t p;
    memset(&p, 0, sizeof p);
    chain_run(probe_cb, &p, 3, 200);
    CHECK(p.n != ML_WALK_DEFER && p.n > 4);
    CHECK(p.checks.n > 0 && p.checks.n <= ML_CHECK_MAX);
    if (p.n == ML_WALK_DEFER)
        return;
    CHECK_EQ(p.checks_bad, 0);
    CHECK(p.checks_ra == p.n - 1 || p.checks_ra == p.n); /* one load per step (the last may end the chain) */
    CHECK(p.checks_bp >= 1);                              /* chain_alloca's CFA came from RBP */
}

static unsigned bounds_cb(void *arg)
{
    int *results = arg;
    ml_entry_t e;
    uint64_t words[MAXW];
    unsigned defers;
    unsigned full = walk_with_rules(&e, words, MAXW, NULL, &defers);
    /* the stack "ends" 16 bytes above sp0: chain_leaf's frame is larger */
    ml_entry_t cut = e;
    cut.hi = e.sp0 + 16;
    results[0] = full != ML_WALK_DEFER && full > 2;
    results[1] = ml_unwind_walk(&cut, words, MAXW, NULL) == ML_WALK_DEFER;
    /* max 2: the first two words only */
    uint64_t two[MAXW];
    results[2] = ml_unwind_walk(&e, two, 2, NULL) == 2 && full != ML_WALK_DEFER && full > 2;
    ml_unwind_walk(&e, words, MAXW, NULL);
    results[3] = two[0] == words[0] && two[1] == words[1];
    return 0;
}

static void test_bounds_and_max(void)
{
    int r[4] = {0};
    chain_run(bounds_cb, r, 1, 32);
    CHECK_EQ(r[0], 1);
    CHECK_EQ(r[1], 1);
    CHECK_EQ(r[2], 1);
    CHECK_EQ(r[3], 1);
}

/* A new caller of the chain: its return address was never walked, while
 * the chain's own were (test_walk_matches_libunwind, depth 0). */
typedef struct {
    unsigned raw;                   /* a walk before any service */
    bool raw_same, raw_checked;     /* it gave libunwind's words; it recorded checks */
    int chain_known, caller_known;  /* rules before the service */
    int caller_known_after;
    uint64_t words[MAXW], ref[MAXW];
    unsigned n, nref, defers;
} midway_t;

static ML_NOINLINE unsigned midway_cb(void *arg)
{
    midway_t *m = arg;
    ml_entry_t e;
    uint64_t rule;
    m->nref = reference_stack(m->ref, MAXW);
    if (!ml_unwind_entry(&e) || m->nref < 5)
        return 0;
    ml_checks_t checks;
    m->raw = ml_unwind_walk(&e, m->words, MAXW, &checks);
    m->raw_same = m->raw == m->nref && memcmp(m->words, m->ref, m->nref * sizeof *m->words) == 0;
    m->raw_checked = checks.n <= ML_CHECK_MAX;
    for (unsigned i = 0; i < 4; i++) /* leaf, alloca, rec, run */
        m->chain_known += ml_rule_find(m->ref[i], &rule);
    m->caller_known = ml_rule_find(m->ref[4], &rule);
    ml_unwind_rules_service();
    m->caller_known_after = ml_rule_find(m->ref[4], &rule);
    m->n = walk_with_rules(&e, m->words, MAXW, NULL, &m->defers);
    return 0;
}

static ML_NOINLINE unsigned new_caller(midway_t *m)
{
    unsigned r = chain_run(midway_cb, m, 0, 8);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a jump */
    return r;
}

static void test_slow_step_midway(void)
{
    ml_unwind_rules_set_inline(false);
    midway_t m;
    memset(&m, 0, sizeof m);
    new_caller(&m);
    CHECK(m.nref >= 5 && ml_capture_is_self(m.ref[4])); /* the fifth frame is new_caller */
    CHECK_EQ(m.chain_known, 4);
    CHECK(!m.caller_known);
    CHECK(m.raw_same);              /* through the chain, then a libunwind step: libunwind's words */
    CHECK(!m.raw_checked);          /* and no checks */
    CHECK(m.caller_known_after);    /* reported, and the service made its rule */
    CHECK(m.n != ML_WALK_DEFER);
    CHECK_EQ(m.n, m.nref);
    for (unsigned i = 0; i < m.n && i < m.nref; i++)
        CHECK_EQ(m.words[i], m.ref[i]);
    ml_unwind_rules_set_inline(true);
}

int main(void)
{
    unwind_env_init();
    RUN(test_slow_step_without_rule);
    RUN(test_entry);
    RUN(test_walk_matches_libunwind);
    RUN(test_checks_are_the_loads);
    RUN(test_bounds_and_max);
    RUN(test_slow_step_midway);
    RUN(test_rules_on_the_spot);
    return check_failures != 0;
}
