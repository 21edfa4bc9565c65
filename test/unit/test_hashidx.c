/* test_hashidx.c — common/hashidx.h and common/grow.h, the index and the
 * array growth every CLI table is built on: ids in the order first seen,
 * the equality callback deciding between entries that share a hash, the
 * index surviving its own growth, the u64 convenience, and grow's
 * doubling, zeroing and overflow refusal. */
#include "check.h"
#include "common/grow.h"
#include "common/hashidx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* a caller's table: strings by id, as strmap.c keeps them */
typedef struct {
    ml_hashidx_t idx;
    const char **s;
    size_t n, cap;
    uint64_t (*hash)(const char *);
    int eq_calls;
} table_t;

typedef struct {
    table_t *t;
    const char *s;
} probe_t;

static bool eq(const void *ctx, uint32_t id)
{
    const probe_t *p = ctx;
    p->t->eq_calls++;
    return strcmp(p->t->s[id], p->s) == 0;
}

static uint32_t intern(table_t *t, const char *s)
{
    uint64_t h = t->hash(s);
    probe_t p = {t, s};
    uint32_t id = ml_hashidx_find(&t->idx, h, eq, &p);
    if (id != ML_HASHIDX_NONE)
        return id;
    if (!ML_GROW(t->s, t->cap, t->n + 1) || !ml_hashidx_add(&t->idx, h, (uint32_t)t->n))
        return ML_HASHIDX_NONE;
    t->s[t->n] = s;
    return (uint32_t)t->n++;
}

static uint64_t one_hash(const char *s)
{
    (void)s;
    return 42; /* every key collides: only eq tells them apart */
}

static void test_ids_in_order(void)
{
    static const char *words[] = {"alpha", "beta", "gamma", "beta", "alpha", "delta"};
    static const uint32_t want[] = {0, 1, 2, 1, 0, 3};
    table_t t = {.hash = ml_hash_str};
    for (size_t i = 0; i < ML_ARRAY_LEN(words); i++)
        CHECK_EQ(intern(&t, words[i]), want[i]);
    CHECK_EQ(t.idx.n, 4);
    CHECK_EQ(ml_hashidx_find(&t.idx, ml_hash_str("omega"), eq, &(probe_t){&t, "omega"}), ML_HASHIDX_NONE);
    ml_hashidx_free(&t.idx);
    CHECK(t.idx.slot == NULL && t.idx.cap == 0 && t.idx.n == 0);
    free(t.s);
}

static void test_collisions(void)
{
    table_t t = {.hash = one_hash};
    CHECK_EQ(intern(&t, "a"), 0);
    CHECK_EQ(intern(&t, "b"), 1);
    CHECK_EQ(intern(&t, "c"), 2);
    t.eq_calls = 0;
    CHECK_EQ(intern(&t, "c"), 2);
    CHECK_EQ(t.eq_calls, 3); /* a and b were asked and refused, c accepted */
    t.eq_calls = 0;
    CHECK_EQ(intern(&t, "a"), 0);
    CHECK_EQ(t.eq_calls, 1);
    /* a different hash never reaches eq */
    t.eq_calls = 0;
    CHECK_EQ(ml_hashidx_find(&t.idx, 43, eq, &(probe_t){&t, "a"}), ML_HASHIDX_NONE);
    CHECK_EQ(t.eq_calls, 0);
    ml_hashidx_free(&t.idx);
    free(t.s);
}

/* Many entries: the index grows many times and finds every one after. */
static void test_growth(void)
{
    enum { N = 100000 };
    static char keys[N][16];
    table_t t = {.hash = ml_hash_str};
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        CHECK_EQ(intern(&t, keys[i]), i);
    }
    CHECK(t.idx.cap >= 2 * (size_t)N); /* kept under half full */
    CHECK_EQ(t.idx.cap & (t.idx.cap - 1), 0);
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += intern(&t, keys[i]) != (uint32_t)i;
    CHECK_EQ(wrong, 0);
    CHECK_EQ(t.n, N);
    ml_hashidx_free(&t.idx);
    free(t.s);
}

static void test_reserve(void)
{
    ml_hashidx_t x = {0};
    CHECK_EQ(ml_hashidx_find(&x, 7, NULL, NULL), ML_HASHIDX_NONE); /* empty, never allocated */
    CHECK(ml_hashidx_reserve(&x, 1000));
    size_t cap = x.cap;
    CHECK(cap >= 2000);
    for (uint32_t i = 0; i < 1000; i++)
        CHECK(ml_hashidx_add(&x, ml_hash_u64(i), i));
    CHECK_EQ(x.cap, cap); /* no growth within what was reserved */
    CHECK_EQ(ml_hashidx_find(&x, ml_hash_u64(999), NULL, NULL), 999);
    CHECK(!ml_hashidx_add(&x, 1, ML_HASHIDX_NONE)); /* not an id */
    CHECK(!ml_hashidx_reserve(&x, (size_t)UINT32_MAX + 1));
    ml_hashidx_free(&x);
}

static void test_u64(void)
{
    ml_hashidx_t x = {0};
    static const uint64_t keys[] = {0, 1, UINT64_MAX, 1ull << 40, 1, 0, 256, UINT64_MAX};
    static const uint32_t want[] = {0, 1, 2, 3, 1, 0, 4, 2};
    for (size_t i = 0; i < ML_ARRAY_LEN(keys); i++)
        CHECK_EQ(ml_hashidx_u64(&x, keys[i]), want[i]);
    /* keys that differ in one high bit, or share their low bits: all distinct */
    int wrong = 0;
    for (uint64_t k = 0; k < 5000; k++)
        wrong += ml_hashidx_u64(&x, k << 32) != ml_hashidx_u64(&x, k << 32);
    CHECK_EQ(wrong, 0);
    CHECK_EQ(x.n, 5 + 4998); /* 0 << 32 and 256 << 32 (1 << 40) were there already */
    ml_hashidx_free(&x);
}

static void test_hashes(void)
{
    CHECK(ml_hash_u64(1) != ml_hash_u64(2));
    CHECK(ml_hash_str("ab") != ml_hash_str("ba"));
    CHECK(ml_hash_str("") == ml_hash_u64(ML_HASH_SEED));
    /* hashing in parts is hashing the whole */
    uint64_t whole = ml_hash_bytes("frame\tkey", 9, ML_HASH_SEED);
    CHECK(ml_hash_bytes("\tkey", 4, ml_hash_bytes("frame", 5, ML_HASH_SEED)) == whole);
    CHECK(ml_hash_str("frame\tkey") == ml_hash_u64(whole));
}

static void test_grow(void)
{
    int *a = NULL;
    size_t cap = 0;
    CHECK(ML_GROW(a, cap, 0)); /* nothing asked: nothing done */
    CHECK(a == NULL && cap == 0);
    CHECK(ML_GROW(a, cap, 1));
    CHECK(a != NULL && cap >= 1);
    size_t first = cap;
    for (size_t i = 0; i < first; i++)
        CHECK_EQ(a[i], 0);
    a[0] = 7;
    CHECK(ML_GROW(a, cap, first)); /* fits: unchanged */
    CHECK_EQ(cap, first);
    CHECK(ML_GROW(a, cap, first + 1)); /* doubles */
    CHECK_EQ(cap, 2 * first);
    CHECK_EQ(a[0], 7);
    int zero = 1;
    for (size_t i = 1; i < cap; i++)
        zero = zero && a[i] == 0;
    CHECK(zero);
    CHECK(ML_GROW(a, cap, 1000)); /* a power-of-two multiple of the old capacity */
    CHECK(cap >= 1000 && cap < 2000 && cap % first == 0);
    CHECK_EQ(a[0], 7);

    /* sizes that overflow are refused, and nothing changes */
    int *before = a;
    size_t cap_before = cap;
    errno = 0;
    CHECK(!ML_GROW(a, cap, SIZE_MAX / sizeof *a + 1));
    CHECK_EQ(errno, ENOMEM);
    CHECK(a == before && cap == cap_before);
    errno = 0;
    CHECK(!ML_GROW(a, cap, SIZE_MAX));
    CHECK_EQ(errno, ENOMEM);
    CHECK(a == before && cap == cap_before);
    free(a);

    /* a struct array, as the CLI's tables are */
    typedef struct {
        char name[24];
        uint64_t v;
    } big_t;
    big_t *b = NULL;
    size_t bc = 0;
    for (size_t i = 0; i < 300; i++) {
        CHECK(ML_GROW(b, bc, i + 1));
        b[i].v = i;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < 300; i++)
        sum += b[i].v;
    CHECK_EQ(sum, 299 * 300 / 2);
    free(b);
}

/* ML_RESERVE: exactly what is asked when it must grow, zeroed, through
 * the same path whether the array is new (calloc) or grows (realloc); with
 * huge pages preferred, as the CLI runs, for an array past 4 MiB. */
static void test_reserve_exact(void)
{
    uint32_t *a = NULL;
    size_t cap = 0;
    CHECK(ML_RESERVE(a, cap, 5));
    CHECK_EQ(cap, 5);
    for (size_t i = 0; i < cap; i++)
        CHECK_EQ(a[i], 0);
    a[4] = 9;
    CHECK(ML_RESERVE(a, cap, 3)); /* fits: unchanged */
    CHECK_EQ(cap, 5);
    CHECK(ML_RESERVE(a, cap, 7)); /* grows to 7, not 10 */
    CHECK_EQ(cap, 7);
    CHECK(a[4] == 9 && a[5] == 0 && a[6] == 0);
    CHECK(ML_GROW(a, cap, 8)); /* then doubles as before */
    CHECK_EQ(cap, 14);
    free(a);

    ml_grow_prefer_huge_pages(true);
    const size_t n = (size_t)3 << 20; /* 12 MiB of uint32_t */
    uint32_t *big = NULL;
    size_t bcap = 0;
    CHECK(ML_RESERVE(big, bcap, n));
    CHECK_EQ(bcap, n);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 997)
        sum += big[i];
    CHECK_EQ(sum, 0);
    big[n - 1] = 3;
    CHECK(ML_GROW(big, bcap, n + 1));
    CHECK(bcap == 2 * n && big[n - 1] == 3 && big[n] == 0 && big[2 * n - 1] == 0);
    ml_grow_prefer_huge_pages(false);
    free(big);

    a = NULL;
    cap = 0;
    errno = 0;
    CHECK(!ML_RESERVE(a, cap, SIZE_MAX)); /* overflows: refused, nothing changes */
    CHECK(errno == ENOMEM && a == NULL && cap == 0);
}

int main(void)
{
    RUN(test_ids_in_order);
    RUN(test_collisions);
    RUN(test_growth);
    RUN(test_reserve);
    RUN(test_reserve_exact);
    RUN(test_u64);
    RUN(test_hashes);
    RUN(test_grow);
    return check_failures != 0;
}
