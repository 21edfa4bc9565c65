/* test_growth.c — growth.c and user_frame.c on snapshots built in memory:
 * the trend of a row over snapshots (only grows / grew then stopped /
 * appeared late), grouping on the innermost user-code frame, filters, and
 * the exact boundaries of the thresholds. */
#include "check.h"
#include "cli/growth.h"
#include "cli/stackset.h"
#include "cli/user_frame.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A snapshot of one process with fixed modules and frames; stacks vary. */
static ml_rmodule_t modules[] = {
    {0, "aa", 0x1000, 0x1000, false, "/srv/app/bin/service"},
    {1, "bb", 0x9000, 0x1000, false, "/lib/x86_64-linux-gnu/libc.so.6"},
    {2, "cc", 0x5000, 0x1000, false, "/usr/lib/libpython3.11.so.1.0"},
};
static ml_rframe_t frames[] = {
    {ML_FRAME_NATIVE, 1, 0x10, "__strdup", "strdup.c", 42, false, 0, NULL},        /* 0 runtime */
    {ML_FRAME_NATIVE, 0, 0x20, "cache_put", "/src/cache.c", 7, false, 0, NULL},    /* 1 */
    {ML_FRAME_NATIVE, 0, 0x30, "keep", "/src/leak.c", 12, false, 0, NULL},         /* 2 */
    {ML_FRAME_NATIVE, 0, 0x40, "serve_get", "/src/serve.c", 3, false, 0, NULL},    /* 3 */
    {ML_FRAME_NATIVE, 0, 0x50, "serve_post", "/src/serve.c", 4, false, 0, NULL},   /* 4 */
    {ML_FRAME_NATIVE, 2, 0x60, "PyMem_Malloc", NULL, 0, false, 0, NULL},           /* 5 runtime */
    {ML_FRAME_PYTHON, -1, 0, "load", "/srv/app/model.py", 42, false, 0, NULL},     /* 6 */
    {ML_FRAME_NATIVE, 0, 0x21, "cache_put", "/src/cache.c", 7, false, 0, NULL},    /* 7: same line, other offset */
};

typedef struct {
    int domain;
    int64_t live;
    uint32_t n;
    uint32_t f[4];
} st_t;

static ml_snapshot_t *snap(const st_t *st, size_t n)
{
    ml_snapshot_t *s = calloc(1, sizeof *s);
    s->modules = modules;
    s->nmodules = ML_ARRAY_LEN(modules);
    s->frames = frames;
    s->nframes = ML_ARRAY_LEN(frames);
    s->stacks = calloc(n + 1, sizeof *s->stacks);
    for (size_t i = 0; i < n; i++) {
        s->stacks[i].domain = st[i].domain;
        s->stacks[i].live_bytes = st[i].live;
        s->stacks[i].live_count = st[i].live / 100;
        s->stacks[i].nframes = st[i].n;
        s->stacks[i].frames = (uint32_t *)st[i].f;
    }
    s->nstacks = n;
    return s;
}

static void drop(ml_snapshot_t *s)
{
    free(s->stacks);
    free(s);
}

#define LEAK_GET {ML_DOM_MALLOC, 0, 2, {2, 3}}
#define LEAK_POST {ML_DOM_MALLOC, 0, 2, {2, 4}}
#define CACHE_GET {ML_DOM_MALLOC, 0, 3, {0, 1, 3}}
#define CACHE_POST {ML_DOM_MALLOC, 0, 3, {0, 7, 4}}
#define PY {ML_DOM_PYTHON, 0, 2, {5, 6}}

/* live bytes per snapshot, for the five stacks above */
static const int64_t series[4][5] = {
    {1000, 1000, 800, 800, 0},    /* after warm-up: no python yet */
    {2000, 2000, 1600, 800, 500}, /* the cache grows via get, python appears */
    {3000, 3000, 1600, 800, 500}, /* the cache stops, python stops */
    {4000, 4000, 1600, 900, 900}, /* cache_post grows late, python again */
};

static ml_stackset_t *set_of(size_t nsnaps, ml_snapshot_t **keep)
{
    ml_stackset_t *set = ml_stackset_new();
    for (size_t k = 0; k < nsnaps; k++) {
        st_t st[5] = {LEAK_GET, LEAK_POST, CACHE_GET, CACHE_POST, PY};
        for (int i = 0; i < 5; i++)
            st[i].live = series[k][i];
        keep[k] = snap(st, series[k][4] ? 5 : 4);
        CHECK_EQ(ml_stackset_add(set, keep[k]), k);
    }
    return set;
}

/* The row whose innermost user-code frame is function `fn`. */
static const ml_growth_row_t *find(const ml_growth_row_t *rows, size_t n, const ml_stackset_t *set, const char *fn)
{
    for (size_t i = 0; i < n; i++) {
        const ml_sstack_t *st = ml_stackset_stack(set, rows[i].stack);
        if (rows[i].user != UINT32_MAX && strcmp(ml_stackset_frame(set, st->frames[rows[i].user])->function, fn) == 0)
            return &rows[i];
    }
    return NULL;
}

static void test_trends_by_stack(void)
{
    ml_snapshot_t *s[4];
    ml_stackset_t *set = set_of(4, s);
    ml_growth_opts_t o = {.group_by = ML_GROUP_STACK};
    ml_growth_t *g = ml_growth_new(set, &o);
    for (size_t k = 0; k < 4; k++)
        CHECK(ml_growth_feed(g, k));
    size_t n;
    const ml_growth_row_t *r = ml_growth_rows(g, &n);
    CHECK_EQ(n, 5);
    /* sorted: the two leaks (3000), then python (900), cache_get (800), cache_post (100) */
    CHECK_EQ(r[0].growth_bytes, 3000);
    CHECK_EQ(r[1].growth_bytes, 3000);
    CHECK(ml_growth_only_grows(&r[0]) && ml_growth_only_grows(&r[1]));
    CHECK_EQ(r[0].intervals, 3);
    CHECK_EQ(r[0].grew, 3);
    CHECK_EQ(r[2].growth_bytes, 900); /* python: absent at first, counted from zero */
    CHECK_EQ(r[2].first.live_bytes, 0);
    CHECK_EQ(r[2].grew, 2);
    CHECK(!ml_growth_only_grows(&r[2]));
    CHECK_EQ(r[3].growth_bytes, 800); /* the cache: grew once, stopped */
    CHECK_EQ(r[3].grew, 1);
    CHECK_EQ(r[4].growth_bytes, 100);
    CHECK_EQ(r[4].grew, 1);
    /* user frames: the leak's own frame; strdup skipped for the cache; PyMem skipped for Python */
    const ml_growth_row_t *cache = find(r, n, set, "cache_put");
    CHECK(cache && cache->user == 1);
    const ml_growth_row_t *py = find(r, n, set, "load");
    CHECK(py && py->user == 1 && py->domain == ML_DOM_PYTHON);
    ml_sval_t first, last;
    ml_growth_totals(g, &first, &last);
    CHECK_EQ(first.live_bytes, 3600);
    CHECK_EQ(last.live_bytes, 11400);
    ml_growth_free(g);
    ml_stackset_free(set);
    for (int k = 0; k < 4; k++)
        drop(s[k]);
}

static void test_grouping(void)
{
    ml_snapshot_t *s[3];
    ml_stackset_t *set = set_of(3, s);
    for (int how = ML_GROUP_LINE; how <= ML_GROUP_FUNCTION; how++) {
        ml_growth_opts_t o = {.group_by = (enum ml_group_by)how};
        ml_growth_t *g = ml_growth_new(set, &o);
        for (size_t k = 0; k < 3; k++)
            CHECK(ml_growth_feed(g, k));
        size_t n;
        const ml_growth_row_t *r = ml_growth_rows(g, &n);
        CHECK_EQ(n, 3); /* leak, cache (two offsets of one line: one row), python */
        CHECK_EQ(r[0].growth_bytes, 4000);
        CHECK_EQ(r[0].nstacks, 2);
        CHECK(ml_growth_only_grows(&r[0]));
        const ml_growth_row_t *cache = find(r, n, set, "cache_put");
        CHECK(cache && cache->nstacks == 2 && cache->growth_bytes == 800 && cache->grew == 1);
        /* the row shows the member that grew most: cache_get */
        CHECK(cache && ml_stackset_stack(set, cache->stack)->frames[2] ==
                           ml_stackset_stack(set, r[0].stack)->frames[1]);
        ml_growth_free(g);
    }
    ml_stackset_free(set);
    for (int k = 0; k < 3; k++)
        drop(s[k]);
}

static void test_filters(void)
{
    ml_snapshot_t *s[2];
    ml_stackset_t *set = set_of(2, s);
    static const char *inc[] = {"serve_post"}, *exc[] = {"libc.so*"}, *file[] = {"cache.c"}, *dir[] = {"/srv/*"};
    struct {
        ml_growth_opts_t o;
        size_t rows;
        int64_t first;
    } cases[] = {
        {{.include = inc, .ninclude = 1}, 2, 1800},       /* leak and cache via post */
        {{.exclude = exc, .nexclude = 1}, 3, 2000},       /* no strdup stacks: leaks and python */
        {{.include = file, .ninclude = 1}, 2, 1600},      /* a file's base name */
        {{.include = dir, .ninclude = 1}, 5, 3600},       /* module paths and Python files under /srv */
        {{.domain = "python"}, 1, 0},
        {{.include = inc, .ninclude = 1, .exclude = file, .nexclude = 1}, 1, 1000},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++) {
        ml_growth_t *g = ml_growth_new(set, &cases[i].o);
        CHECK(ml_growth_feed(g, 0) && ml_growth_feed(g, 1));
        size_t n;
        ml_growth_rows(g, &n);
        ml_sval_t first, last;
        ml_growth_totals(g, &first, &last);
        if (n != cases[i].rows || first.live_bytes != cases[i].first)
            fprintf(stderr, "filter case %zu: %zu rows, %lld B\n", i, n, (long long)first.live_bytes);
        CHECK_EQ(n, cases[i].rows);
        CHECK_EQ(first.live_bytes, cases[i].first);
        ml_growth_free(g);
    }
    ml_stackset_free(set);
    for (int k = 0; k < 2; k++)
        drop(s[k]);
}

/* ml_growth_grown_rows is ml_growth_rows less the rows that did not grow
 * (or, with only_grows, did not grow in every interval), in the same
 * order with the same figures, whatever the grouping: random stacks over
 * the frames above, in four snapshots whose values go up, down or away. */
static void test_grown_rows(void)
{
    enum { NST = 300, NSNAP = 4 };
    static st_t st[NSNAP][NST];
    uint64_t r = 88172645463325252ull;
    for (size_t i = 0; i < NST; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        st_t one = {r % 5 ? ML_DOM_MALLOC : ML_DOM_PYTHON, 0, (uint32_t)(1 + r % 4), {0}};
        for (uint32_t k = 0; k < one.n; k++)
            one.f[k] = (uint32_t)((r >> (8 + 4 * k)) % ML_ARRAY_LEN(frames));
        for (size_t k = 0; k < NSNAP; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            st[k][i] = one;
            st[k][i].live = (int64_t)(r % 3 ? (i % 7) * 100 + k * (r % 5) * 50 : r % 1000);
        }
    }
    ml_snapshot_t *s[NSNAP];
    ml_stackset_t *set = ml_stackset_new();
    for (size_t k = 0; k < NSNAP; k++) {
        s[k] = snap(st[k], NST - (k == 1 ? 40 : 0)); /* some stacks away from one snapshot */
        CHECK_EQ(ml_stackset_add(set, s[k]), k);
    }
    for (int how = ML_GROUP_STACK; how <= ML_GROUP_FUNCTION; how++) {
        for (size_t nfed = 1; nfed <= NSNAP; nfed++) {
            ml_growth_opts_t o = {.group_by = (enum ml_group_by)how};
            ml_growth_t *g = ml_growth_new(set, &o);
            for (size_t k = 0; k < nfed; k++)
                CHECK(ml_growth_feed(g, k));
            size_t nall, want = 0, n;
            const ml_growth_row_t *all = ml_growth_rows(g, &nall);
            ml_growth_row_t *copy = calloc(nall + 1, sizeof *copy);
            for (int only = 0; only <= 1; only++) {
                want = 0;
                for (size_t i = 0; i < nall; i++)
                    if ((all[i].growth_bytes > 0 || all[i].growth_count > 0) &&
                        (!only || ml_growth_only_grows(&all[i])))
                        copy[want++] = all[i];
                const ml_growth_row_t *grown = ml_growth_grown_rows(g, only, &n);
                CHECK_EQ(n, want);
                for (size_t i = 0; i < n && i < want; i++)
                    CHECK(grown[i].stack == copy[i].stack && grown[i].user == copy[i].user &&
                          grown[i].domain == copy[i].domain && grown[i].nstacks == copy[i].nstacks &&
                          grown[i].growth_bytes == copy[i].growth_bytes &&
                          grown[i].growth_count == copy[i].growth_count &&
                          memcmp(&grown[i].first, &copy[i].first, offsetof(ml_sval_t, present)) == 0 &&
                          memcmp(&grown[i].last, &copy[i].last, offsetof(ml_sval_t, present)) == 0 &&
                          grown[i].first.present == copy[i].first.present &&
                          grown[i].last.present == copy[i].last.present && grown[i].intervals == copy[i].intervals &&
                          grown[i].grew == copy[i].grew && grown[i].group == copy[i].group);
                all = ml_growth_rows(g, &nall); /* the next call frees the last one's rows */
            }
            CHECK(nfed == 1 || want > 0); /* the case is not empty */
            free(copy);
            ml_growth_free(g);
        }
    }
    ml_stackset_free(set);
    for (size_t k = 0; k < NSNAP; k++)
        drop(s[k]);
}

static void test_limits(void)
{
    ml_limit_t l;
    CHECK(ml_limit_parse("50MiB", false, &l) && !l.percent && l.value == 50u << 20);
    CHECK(ml_limit_parse("4096", true, &l) && l.value == 4096);
    CHECK(!ml_limit_parse("75%", false, &l));
    CHECK(ml_limit_parse("75%", true, &l) && l.percent && l.value == 75000);
    CHECK(ml_limit_parse("12.5%", true, &l) && l.value == 12500);
    CHECK(ml_limit_parse("0.001%", true, &l) && l.value == 1);
    CHECK(!ml_limit_parse("0.0001%", true, &l));
    CHECK(!ml_limit_parse("%", true, &l) && !ml_limit_parse("1.%", true, &l) && !ml_limit_parse("-1%", true, &l));
    CHECK(!ml_limit_parse("x%", true, &l) && !ml_limit_parse("5 %", true, &l) && !ml_limit_parse("lots", true, &l));
    /* bytes: strictly more than */
    ml_limit_parse("1000", false, &l);
    CHECK(ml_limit_crossed(&l, 0, 1001) && !ml_limit_crossed(&l, 0, 1000) && !ml_limit_crossed(&l, 5000, 100));
    CHECK(ml_limit_crossed(&l, -500, 501) && !ml_limit_crossed(&l, -500, 500));
    /* percent of the base: 75% of 4000 is 3000 */
    ml_limit_parse("75%", true, &l);
    CHECK(!ml_limit_crossed(&l, 4000, 7000) && ml_limit_crossed(&l, 4000, 7001));
    ml_limit_parse("33.333%", true, &l); /* of 3: 0.99999 B */
    CHECK(ml_limit_crossed(&l, 3, 4) && !ml_limit_crossed(&l, 3, 3));
    CHECK(ml_limit_crossed(&l, 0, 1) && !ml_limit_crossed(&l, 0, 0)); /* from nothing, any growth */
    ml_limit_parse("100%", true, &l);
    CHECK(!ml_limit_crossed(&l, INT64_MAX / 2, INT64_MAX - 1) && ml_limit_crossed(&l, INT64_MAX / 4, INT64_MAX / 2 + 2));
    ml_limit_t none = {0};
    CHECK(!ml_limit_crossed(&none, 0, INT64_MAX));
    char buf[64];
    ml_limit_parse("12.5%", true, &l);
    CHECK(strcmp(ml_limit_text(&l, buf, sizeof buf), "12.500%") == 0);
    ml_limit_parse("1MiB", true, &l);
    CHECK(strcmp(ml_limit_text(&l, buf, sizeof buf), "1048576 B (1.0 MiB)") == 0);
}

static void test_runtime_modules(void)
{
    static const struct {
        const char *module;
        bool runtime;
    } cases[] = {
        {"/lib/x86_64-linux-gnu/libc.so.6", true}, {"/lib/libc-2.31.so", true},
        {"/usr/lib/x86_64-linux-gnu/libstdc++.so.6", true}, {"/lib/x86_64-linux-gnu/libgcc_s.so.1", true},
        {"/lib64/ld-linux-x86-64.so.2", true}, {"/usr/lib/libpython3.11.so.1.0", true},
        {"/usr/bin/python3.11", true}, {"/usr/bin/python3", true}, {"/opt/build/libmemledger.so", true},
        {"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", true},
        {"/usr/lib/python3/dist-packages/torch/lib/libtorch_cpu.so", false},
        {"/srv/app/bin/service", false}, {"/usr/lib/libcrypto.so.3", false}, {"/usr/bin/python-config", false},
        {"/usr/lib/libcurl.so.4", false},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++) {
        ml_sframe_t f = {.kind = ML_FRAME_NATIVE, .module = cases[i].module};
        if (ml_frame_is_runtime(&f) != cases[i].runtime)
            fprintf(stderr, "runtime(%s) should be %d\n", cases[i].module, cases[i].runtime);
        CHECK(ml_frame_is_runtime(&f) == cases[i].runtime);
    }
    ml_sframe_t py = {.kind = ML_FRAME_PYTHON, .file = "/usr/lib/python3.11/json/decoder.py"};
    ml_sframe_t jit = {.kind = ML_FRAME_NATIVE};
    CHECK(!ml_frame_is_runtime(&py) && !ml_frame_is_runtime(&jit));
}

int main(void)
{
    RUN(test_trends_by_stack);
    RUN(test_grouping);
    RUN(test_filters);
    RUN(test_grown_rows);
    RUN(test_limits);
    RUN(test_runtime_modules);
    return check_failures ? 1 : 0;
}
