/* hashidx.h — an index from 64-bit hashes to dense 32-bit ids: the hash
 * map under every table that numbers things in the order first seen
 * (interned strings, frames, stacks, grouping keys).
 * Owns: the slots (open addressing, linear probing, kept under half full,
 * doubling as it fills) and the hashes that feed them. Holds no entries:
 * the caller keeps them, numbered by id, and says which one a candidate
 * is with an equality callback; the index only stores each id's hash.
 * Allocates with malloc: for the CLI and the snapshot writer's dumper
 * thread only, never for code reachable from an allocation hook (the
 * library's hooks must not call the allocator they interpose). */
#ifndef ML_HASHIDX_H
#define ML_HASHIDX_H

#include "common/common.h"

#define ML_HASHIDX_NONE UINT32_MAX

typedef struct {
    uint64_t hash;
    uint32_t id; /* id + 1; 0 is an empty slot */
} ml_hashidx_slot_t;

/* Zero-initialised ({0}) is an empty index. */
typedef struct {
    ml_hashidx_slot_t *slot;
    size_t cap; /* slots: 0 or a power of two */
    size_t n;   /* ids recorded */
} ml_hashidx_t;

/* Whether the caller's entry `id` is the one being looked for (`ctx` is
 * whatever the caller passed to find: usually the key). */
typedef bool (*ml_hashidx_eq_fn)(const void *ctx, uint32_t id);

void ml_hashidx_free(ml_hashidx_t *x);

/* Room for `n` ids in all without growing; false when out of memory. */
bool ml_hashidx_reserve(ml_hashidx_t *x, size_t n);

/* The id recorded under `hash` that `eq` accepts, or ML_HASHIDX_NONE.
 * With eq NULL the hash alone decides (for hashes that are the key
 * itself, as ml_hashidx_u64's are). */
uint32_t ml_hashidx_find(const ml_hashidx_t *x, uint64_t hash, ml_hashidx_eq_fn eq, const void *ctx);

/* Records `id` (< UINT32_MAX) under `hash`. The caller has found no equal
 * entry first: the index does not check. False when out of memory, and
 * then nothing changed. */
bool ml_hashidx_add(ml_hashidx_t *x, uint64_t hash, uint32_t id);

/* Asks the CPU for the slot where a find or add of `hash` starts, without
 * waiting for it: a loop that knows its keys some steps ahead (a
 * snapshot's nodes, in order) has their cache misses overlap instead of
 * taking them one after the other. Changes nothing. */
static inline void ml_hashidx_prefetch(const ml_hashidx_t *x, uint64_t hash)
{
    if (x->cap)
        __builtin_prefetch(&x->slot[(size_t)hash & (x->cap - 1)]);
}

/* For a set of 64-bit keys numbered by the index itself: the id of `key`,
 * given the next id (0, 1, 2, ... in the order first seen) when new;
 * ML_HASHIDX_NONE when out of memory. Do not mix with ml_hashidx_add on
 * one index. */
uint32_t ml_hashidx_u64(ml_hashidx_t *x, uint64_t key);

/* ---- hashes ---- */

/* A 64-bit mix with every input bit reaching every output bit (MurmurHash3's
 * finaliser); a bijection, so distinct keys never share a hash. */
static inline uint64_t ml_hash_u64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

#define ML_HASH_SEED 0xcbf29ce484222325ull

/* FNV-1a over n bytes, continuing from `h` (ML_HASH_SEED to start), so
 * the parts of a key can be hashed one after the other. Mix the result
 * with ml_hash_u64 before it goes to the index. */
uint64_t ml_hash_bytes(const void *p, size_t n, uint64_t h);

/* n 32-bit words, continuing from `h`: a word at a time, for keys that are
 * arrays of ids (a stack's frames), four times fewer steps than bytes. Mix
 * the result with ml_hash_u64. */
uint64_t ml_hash_u32s(const uint32_t *w, size_t n, uint64_t h);

/* A NUL-terminated string, mixed: ready for the index. */
uint64_t ml_hash_str(const char *s);

#endif
