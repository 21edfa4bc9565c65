/* strmap.c — string interning (see strmap.h): open addressing on a 64-bit
 * FNV-1a hash, kept under half full. */
#include "cli/strmap.h"

#include <stdlib.h>
#include <string.h>

struct ml_strmap {
    uint64_t *hash;
    uint32_t *slot; /* id + 1; 0 empty */
    size_t cap;
    char **strs;
    size_t n, strs_cap;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

ml_strmap_t *ml_strmap_new(void) { return calloc(1, sizeof(ml_strmap_t)); }

void ml_strmap_free(ml_strmap_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->strs[i]);
    free(m->strs);
    free(m->hash);
    free(m->slot);
    free(m);
}

static bool grow(ml_strmap_t *m)
{
    size_t nc = m->cap ? m->cap * 2 : 256;
    uint64_t *nh = calloc(nc, sizeof *nh);
    uint32_t *ns = calloc(nc, sizeof *ns);
    if (!nh || !ns) {
        free(nh);
        free(ns);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slot[i])
            continue;
        size_t j = m->hash[i] & (nc - 1);
        while (ns[j])
            j = (j + 1) & (nc - 1);
        nh[j] = m->hash[i];
        ns[j] = m->slot[i];
    }
    free(m->hash);
    free(m->slot);
    m->hash = nh;
    m->slot = ns;
    m->cap = nc;
    return true;
}

uint32_t ml_strmap_id(ml_strmap_t *m, const char *s)
{
    if ((m->n + 1) * 2 > m->cap && !grow(m))
        return UINT32_MAX;
    uint64_t h = fnv(s);
    size_t j = h & (m->cap - 1);
    for (; m->slot[j]; j = (j + 1) & (m->cap - 1))
        if (m->hash[j] == h && strcmp(m->strs[m->slot[j] - 1], s) == 0)
            return m->slot[j] - 1;
    if (m->n == m->strs_cap) {
        size_t nc = m->strs_cap ? m->strs_cap * 2 : 256;
        char **ns = realloc(m->strs, nc * sizeof *ns);
        if (!ns)
            return UINT32_MAX;
        m->strs = ns;
        m->strs_cap = nc;
    }
    char *copy = strdup(s);
    if (!copy)
        return UINT32_MAX;
    m->strs[m->n] = copy;
    m->hash[j] = h;
    m->slot[j] = (uint32_t)++m->n;
    return (uint32_t)(m->n - 1);
}

size_t ml_strmap_count(const ml_strmap_t *m) { return m->n; }
const char *ml_strmap_str(const ml_strmap_t *m, uint32_t id) { return m->strs[id]; }
char **ml_strmap_strs(const ml_strmap_t *m) { return m->strs; }
