/* hashidx.c — the index from hashes to dense ids (see hashidx.h).
 * Slots are probed linearly from the hash's low bits; the table doubles
 * before it is half full, so a probe ends soon at an empty slot. Growing
 * moves the stored hashes and ids and never asks the caller anything. */
#include "common/hashidx.h"

#include <stdlib.h>
#include <string.h>

#define ML_HASHIDX_FIRST 64

void ml_hashidx_free(ml_hashidx_t *x)
{
    free(x->slot);
    x->slot = NULL;
    x->cap = x->n = 0;
}

/* Places a slot's contents in a table known to have room and no equal. */
static void place(ml_hashidx_slot_t *slot, size_t cap, ml_hashidx_slot_t s)
{
    size_t j = (size_t)s.hash & (cap - 1);
    while (slot[j].id)
        j = (j + 1) & (cap - 1);
    slot[j] = s;
}

bool ml_hashidx_reserve(ml_hashidx_t *x, size_t n)
{
    if (n > UINT32_MAX || n > SIZE_MAX / 4)
        return false;
    size_t nc = x->cap ? x->cap : ML_HASHIDX_FIRST;
    while (n * 2 > nc)
        nc *= 2;
    if (nc == x->cap)
        return true;
    ml_hashidx_slot_t *ns = calloc(nc, sizeof *ns);
    if (!ns)
        return false;
    for (size_t i = 0; i < x->cap; i++)
        if (x->slot[i].id)
            place(ns, nc, x->slot[i]);
    free(x->slot);
    x->slot = ns;
    x->cap = nc;
    return true;
}

uint32_t ml_hashidx_find(const ml_hashidx_t *x, uint64_t hash, ml_hashidx_eq_fn eq, const void *ctx)
{
    if (!x->cap)
        return ML_HASHIDX_NONE;
    for (size_t j = (size_t)hash & (x->cap - 1); x->slot[j].id; j = (j + 1) & (x->cap - 1))
        if (x->slot[j].hash == hash && (!eq || eq(ctx, x->slot[j].id - 1)))
            return x->slot[j].id - 1;
    return ML_HASHIDX_NONE;
}

bool ml_hashidx_add(ml_hashidx_t *x, uint64_t hash, uint32_t id)
{
    if (id == ML_HASHIDX_NONE || !ml_hashidx_reserve(x, x->n + 1))
        return false;
    place(x->slot, x->cap, (ml_hashidx_slot_t){hash, id + 1});
    x->n++;
    return true;
}

uint32_t ml_hashidx_u64(ml_hashidx_t *x, uint64_t key)
{
    uint64_t h = ml_hash_u64(key);
    uint32_t id = ml_hashidx_find(x, h, NULL, NULL);
    if (id != ML_HASHIDX_NONE)
        return id;
    id = (uint32_t)x->n;
    return ml_hashidx_add(x, h, id) ? id : ML_HASHIDX_NONE;
}

uint64_t ml_hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

uint64_t ml_hash_u32s(const uint32_t *w, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ w[i]) * 0x9e3779b97f4a7c15ull + (h >> 29);
    return h;
}

uint64_t ml_hash_str(const char *s) { return ml_hash_u64(ml_hash_bytes(s, strlen(s), ML_HASH_SEED)); }
