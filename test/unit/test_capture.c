/* test_capture.c — the stack capture contract (unwind/capture.h).
 * Proves, with a test unwinder giving fixed return addresses
 * (ml_capture_set_unwinder):
 *   - memledger's own frames at the top are trimmed (here: the test
 *     executable's, as ml_capture_is_self says), and the words are the
 *     return addresses that follow, in order;
 *   - ml_config.depth bounds the native frames;
 *   - ml_capture_stack gives the same id for the same stack and another id
 *     for another stack or another domain; the id's words in the ledger are
 *     the trimmed stack.
 * And with the real unwinders, through a chain of functions built without
 * frame pointers (chain.c):
 *   - with rules never computed in the hook (the test's seam), the first
 *     capture of a new stack steps the frames without rules by libunwind,
 *     one each (no whole-stack libunwind capture: not counted in
 *     ml_capture_slow_count), and reports them; once the rule service has
 *     run, the fast path (rules derived from CFI) captures it, and both give
 *     exactly the words libunwind gives;
 *   - ml_capture_stack gives one id for one stack whichever path took it:
 *     libunwind (MEMLEDGER_UNWIND=libunwind), the fast path, the chain cache
 *     (a stack the fast path walked with rules only is in ml_stack_cache
 *     under its id; one that needed libunwind steps is not); that id's
 *     words are libunwind's; another chain depth is another id. */
#include "check.h"
#include "unwind/stack_cache.h"
#include "unwind_env.h"

#define MAXW 64

/* ---- a test unwinder ---- */

static uintptr_t fixed[16];
static unsigned nfixed;

static unsigned fixed_unwinder(uintptr_t *pcs, unsigned max)
{
    unsigned n = nfixed < max ? nfixed : max;
    memcpy(pcs, fixed, n * sizeof *pcs);
    return n;
}

static void use_stack(const uintptr_t *pcs, unsigned n)
{
    memcpy(fixed, pcs, n * sizeof *pcs);
    nfixed = n;
}

/* return addresses inside this executable: memledger's own code here */
#define SELF(f) ((uintptr_t)(f) + 1)

static void test_trims_own_frames(void)
{
    CHECK(ml_capture_is_self(SELF(test_trims_own_frames)));
    CHECK(ml_capture_is_self(SELF(ml_capture)));
    CHECK(!ml_capture_is_self(SELF(chain_run)));
    const uintptr_t pcs[] = {SELF(ml_capture), SELF(fixed_unwinder), SELF(test_trims_own_frames),
                             0x7f0000001005, 0x7f0000002005, 0x7f0000003005};
    use_stack(pcs, 6);
    uint64_t words[MAXW];
    unsigned n = ml_capture(words, MAXW);
    CHECK_EQ(n, 3);
    CHECK_EQ(words[0], 0x7f0000001005);
    CHECK_EQ(words[1], 0x7f0000002005);
    CHECK_EQ(words[2], 0x7f0000003005);

    /* only memledger's frames: nothing is left */
    const uintptr_t own[] = {SELF(ml_capture), SELF(fixed_unwinder)};
    use_stack(own, 2);
    CHECK_EQ(ml_capture(words, MAXW), 0);
}

static void test_depth_bound(void)
{
    const uintptr_t pcs[] = {SELF(ml_capture), 0x1005, 0x2005, 0x3005, 0x4005, 0x5005};
    use_stack(pcs, 6);
    uint64_t words[MAXW];
    unsigned keep = ml_config.depth;
    ml_config.depth = 3;
    CHECK_EQ(ml_capture(words, MAXW), 3);
    CHECK_EQ(words[2], 0x3005);
    ml_config.depth = keep;
    CHECK_EQ(ml_capture(words, 4), 4); /* and the caller's room */
}

static void test_ids(void)
{
    const uintptr_t a[] = {SELF(ml_capture_stack), 0x10005, 0x20005, 0x30005};
    const uintptr_t a_deeper_own[] = {SELF(ml_capture_stack), SELF(fixed_unwinder), 0x10005, 0x20005, 0x30005};
    const uintptr_t b[] = {SELF(ml_capture_stack), 0x10005, 0x20005, 0x30006};
    const uintptr_t c[] = {SELF(ml_capture_stack), 0x10005, 0x20005};
    use_stack(a, 4);
    uint32_t ida = ml_capture_stack(ML_DOM_MALLOC);
    uint32_t ida2 = ml_capture_stack(ML_DOM_MALLOC);
    uint32_t ida_py = ml_capture_stack(ML_DOM_PYTHON);
    use_stack(a_deeper_own, 5);
    uint32_t ida3 = ml_capture_stack(ML_DOM_MALLOC);
    use_stack(b, 4);
    uint32_t idb = ml_capture_stack(ML_DOM_MALLOC);
    use_stack(c, 3);
    uint32_t idc = ml_capture_stack(ML_DOM_MALLOC);
    CHECK(ida >= ML_STACK_FIRST);
    CHECK_EQ(ida, ida2);
    CHECK_EQ(ida, ida3); /* memledger's own frames are not part of the stack */
    CHECK(ida != idb);
    CHECK(ida != idc);   /* a prefix is another stack */
    CHECK(ida != ida_py);
    ml_stack_view_t v;
    CHECK(ml_ledger_stack(ida, &v));
    CHECK_EQ(v.domain, ML_DOM_MALLOC);
    uint64_t w[8];
    unsigned n = stack_pcs(ida, w, 8);
    CHECK(n == 3 && w[0] == 0x10005 && w[1] == 0x20005 && w[2] == 0x30005);
}

/* ---- the real unwinders on the chain ---- */

typedef struct {
    uint64_t ref[MAXW];
    unsigned nref;
    uint64_t words[MAXW];
    unsigned n;
    uint64_t slow_before, slow_after;
    uint32_t id, id_again, id_libunwind;
    bool cached;
    uint32_t cached_id;
    unsigned cached_n;
} cap_t;

/* ml_capture with the configured path, counting slow captures. */
static ML_NOINLINE unsigned capture_cb(void *arg)
{
    cap_t *c = arg;
    c->nref = reference_stack(c->ref, MAXW);
    c->slow_before = ml_capture_slow_count();
    c->n = ml_capture(c->words, MAXW);
    c->slow_after = ml_capture_slow_count();
    return 0;
}

static ML_NOINLINE unsigned stack_id_cb(void *arg)
{
    cap_t *c = arg;
    c->nref = reference_stack(c->ref, MAXW);
    c->slow_before = ml_capture_slow_count();
    c->id = ml_capture_stack(ML_DOM_MALLOC);
    c->id_again = ml_capture_stack(ML_DOM_MALLOC);
    c->slow_after = ml_capture_slow_count();
    ml_entry_t e;
    c->cached = ml_unwind_entry(&e) && ml_stack_cache_find(&e, ML_DOM_MALLOC, NULL, 0, &c->cached_n, &c->cached_id);
    ml_capture_set_unwinder(ml_unwind_libunwind);
    c->id_libunwind = ml_capture_stack(ML_DOM_MALLOC);
    ml_capture_set_unwinder(NULL);
    return 0;
}

static bool same_words(const uint64_t *a, unsigned na, const uint64_t *b, unsigned nb)
{
    return na == nb && memcmp(a, b, na * sizeof *a) == 0;
}

/* Each capture below runs twice from one call site: every return address
 * on the way is then the same, the first time without rules, the second
 * with what the service made of the first's misses. (A loop bound the
 * compiler cannot see, so that it cannot unroll the loop into two sites.) */
static volatile int rounds = 2;

static void test_fast_path_equals_libunwind(void)
{
    ml_capture_set_unwinder(NULL);
    cap_t c[2];
    memset(c, 0, sizeof c);
    for (int round = 0; round < rounds; round++) {
        chain_run(capture_cb, &c[round], 2, 48);
        /* the service, as the dumper thread would run it: every address
         * the slow capture reported gets its rule in one round */
        ml_unwind_rules_service();
    }
    /* a stack never seen: its frames without rules step by libunwind, one
     * each, to libunwind's words; each was reported and has a rule now */
    CHECK(c[0].nref >= 6);
    CHECK_EQ(c[0].slow_after - c[0].slow_before, 0);
    CHECK(same_words(c[0].words, c[0].n, c[0].ref, c[0].nref));
    unsigned ruled = 0;
    uint64_t rule;
    for (unsigned i = 0; i < c[0].n; i++)
        ruled += ml_rule_find(c[0].words[i], &rule);
    CHECK_EQ(ruled, c[0].n);
    /* the fast path, all the way, to the same words */
    CHECK_EQ(c[1].slow_after - c[1].slow_before, 0);
    CHECK(same_words(c[1].words, c[1].n, c[1].ref, c[1].nref));
    CHECK(same_words(c[1].words, c[1].n, c[0].words, c[0].n));
    if (!same_words(c[1].words, c[1].n, c[1].ref, c[1].nref))
        for (unsigned i = 0; i < c[1].n || i < c[1].nref; i++)
            fprintf(stderr, "  %2u fast %#18llx %-24s libunwind %#18llx %s\n", i,
                    (unsigned long long)(i < c[1].n ? c[1].words[i] : 0), i < c[1].n ? function_of(c[1].words[i]) : "",
                    (unsigned long long)(i < c[1].nref ? c[1].ref[i] : 0),
                    i < c[1].nref ? function_of(c[1].ref[i]) : "");
    CHECK(c[1].n >= 6 && strcmp(function_of(c[1].words[0]), "chain_leaf") == 0 &&
          strcmp(function_of(c[1].words[5]), "chain_run") == 0);
}

static void test_stack_ids_real(void)
{
    cap_t c[2], d[2];
    memset(c, 0, sizeof c);
    memset(d, 0, sizeof d);
    for (int round = 0; round < rounds; round++) {
        chain_run(stack_id_cb, &c[round], 2, 48);
        chain_run(stack_id_cb, &d[round], 3, 48); /* one more frame */
        ml_unwind_rules_service();
    }
    for (int round = 0; round < 2; round++) {
        CHECK(c[round].id >= ML_STACK_FIRST);
        CHECK_EQ(c[round].id_again, c[round].id);
        CHECK_EQ(c[round].id_libunwind, c[round].id); /* libunwind's capture is the same stack */
        CHECK_EQ(c[round].id, c[0].id);               /* slow or fast, one stack */
        CHECK(d[round].id != c[round].id);
        CHECK_EQ(d[round].id_libunwind, d[round].id);
        CHECK_EQ(d[round].id, d[0].id);
    }
    CHECK_EQ(c[0].slow_after - c[0].slow_before, 0); /* the first round: libunwind steps, not captures... */
    CHECK(!c[0].cached);                            /* ...and nothing cached */
    CHECK_EQ(c[1].slow_after - c[1].slow_before, 0); /* the second: fast path and cache only */
    CHECK_EQ(d[1].slow_after - d[1].slow_before, 0);
    CHECK(c[1].cached);                    /* the walk was remembered... */
    CHECK_EQ(c[1].cached_id, c[1].id);     /* ...under its id */
    CHECK_EQ(c[1].cached_n, c[1].nref);
    uint64_t w[MAXW];
    unsigned n = stack_pcs(c[1].id, w, MAXW);
    CHECK(same_words(w, n, c[1].ref, c[1].nref));
    n = stack_pcs(d[1].id, w, MAXW);
    CHECK(same_words(w, n, d[1].ref, d[1].nref));
}

int main(void)
{
    ml_unwind_rules_set_inline(false); /* the paths for rules not there yet */
    unwind_env_init();
    ml_capture_set_unwinder(fixed_unwinder);
    RUN(test_trims_own_frames);
    RUN(test_depth_bound);
    RUN(test_ids);
    RUN(test_fast_path_equals_libunwind);
    RUN(test_stack_ids_real);
    return check_failures != 0;
}
