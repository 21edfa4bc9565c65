/* strmap.h — strings interned to dense ids 0, 1, 2, ... in the order first
 * seen: a pprof string table, the names of a flame graph, grouping keys.
 * Owns copies of its strings. CLI-side only (allocates). */
#ifndef ML_STRMAP_H
#define ML_STRMAP_H

#include "common/common.h"

typedef struct ml_strmap ml_strmap_t;

ml_strmap_t *ml_strmap_new(void);
void ml_strmap_free(ml_strmap_t *m);

/* The id of `s`, added when new. UINT32_MAX when out of memory. */
uint32_t ml_strmap_id(ml_strmap_t *m, const char *s);
/* The id of `s`, or UINT32_MAX when it has none: nothing is added. */
uint32_t ml_strmap_find(const ml_strmap_t *m, const char *s);

size_t ml_strmap_count(const ml_strmap_t *m);
/* The string with id `id` (< count). */
const char *ml_strmap_str(const ml_strmap_t *m, uint32_t id);
/* All strings, by id: an array of count entries owned by the map. */
char **ml_strmap_strs(const ml_strmap_t *m);

#endif
