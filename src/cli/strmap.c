/* strmap.c — string interning (see strmap.h): the strings in an array by
 * id, found again through common/hashidx.h on their hash. */
#include "cli/strmap.h"
#include "common/grow.h"
#include "common/hashidx.h"

#include <stdlib.h>
#include <string.h>

struct ml_strmap {
    ml_hashidx_t idx;
    char **strs;
    size_t n, strs_cap;
};

ml_strmap_t *ml_strmap_new(void) { return calloc(1, sizeof(ml_strmap_t)); }

void ml_strmap_free(ml_strmap_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->strs[i]);
    free(m->strs);
    ml_hashidx_free(&m->idx);
    free(m);
}

typedef struct {
    const ml_strmap_t *m;
    const char *s;
} probe_t;

static bool same(const void *ctx, uint32_t id)
{
    const probe_t *p = ctx;
    return strcmp(p->m->strs[id], p->s) == 0;
}

static uint32_t lookup(const ml_strmap_t *m, const char *s, uint64_t h)
{
    probe_t p = {m, s};
    return ml_hashidx_find(&m->idx, h, same, &p);
}

uint32_t ml_strmap_find(const ml_strmap_t *m, const char *s) { return lookup(m, s, ml_hash_str(s)); }

uint32_t ml_strmap_id(ml_strmap_t *m, const char *s)
{
    uint64_t h = ml_hash_str(s);
    uint32_t id = lookup(m, s, h);
    if (id != ML_HASHIDX_NONE)
        return id;
    if (m->n >= UINT32_MAX - 1 || !ML_GROW(m->strs, m->strs_cap, m->n + 1))
        return UINT32_MAX;
    char *copy = strdup(s);
    if (!copy)
        return UINT32_MAX;
    id = (uint32_t)m->n;
    if (!ml_hashidx_add(&m->idx, h, id)) {
        free(copy);
        return UINT32_MAX;
    }
    m->strs[m->n++] = copy;
    return id;
}

size_t ml_strmap_count(const ml_strmap_t *m) { return m->n; }
const char *ml_strmap_str(const ml_strmap_t *m, uint32_t id) { return m->strs[id]; }
char **ml_strmap_strs(const ml_strmap_t *m) { return m->strs; }
