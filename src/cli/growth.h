/* growth.h — what grew between snapshots: the one computation behind
 * `memledger diff`, `memledger export --base` and `memledger watch`.
 * Owns: which stacks count (--domain, --include/--exclude patterns), how
 * they are grouped (--group-by stack|line|function, keyed on the innermost
 * frame of user code, see user_frame.h), each row's live bytes over the
 * snapshots fed in time order, "only grows", the totals, and the CI
 * thresholds (--fail-above, --fail-total-above). Never prints, never reads
 * files. */
#ifndef ML_GROWTH_H
#define ML_GROWTH_H

#include "cli/stackset.h"

enum ml_group_by { ML_GROUP_STACK, ML_GROUP_LINE, ML_GROUP_FUNCTION };

typedef struct {
    const char *domain;         /* NULL: every domain; "cuda" selects cuda.* too */
    const char *const *include; /* glob patterns: keep a stack when one of its frames matches one */
    size_t ninclude;
    const char *const *exclude; /* glob patterns: drop a stack when one of its frames matches one */
    size_t nexclude;
    enum ml_group_by group_by;
} ml_growth_opts_t;

typedef struct {
    uint32_t stack;          /* the stack (group-by stack), else the member that grew most */
    uint32_t user;           /* index in that stack's frames of its innermost user-code frame,
                                UINT32_MAX when it has no frames */
    int domain;
    uint32_t nstacks;        /* stacks merged into the row (1 for group-by stack) */
    ml_sval_t first, last;   /* summed over the row's stacks, in the first and latest snapshot */
    int64_t growth_bytes;    /* live bytes, latest minus first */
    int64_t growth_count;    /* live allocations, latest minus first */
    uint32_t intervals;      /* snapshots fed, minus one */
    uint32_t grew;           /* intervals in which the row's live bytes grew, or held
                                while its live allocations grew (zero-byte blocks) */
    uint32_t group;          /* the row's own number (ml_growth_group_of), whatever the order */
} ml_growth_row_t;

/* Grew in every interval: the signature of a leak, where a cache or a pool
 * grows during some intervals and then stops. Needs two or more snapshots;
 * `diff` shows it from three (with two, every growing row grew "always"). */
static inline bool ml_growth_only_grows(const ml_growth_row_t *r)
{
    return r->intervals > 0 && r->grew == r->intervals;
}

typedef struct ml_growth ml_growth_t;

/* A computation over `set`, which must outlive it. Patterns are matched with
 * fnmatch(3) against each frame's function, file and module path (and the
 * file's and module's base names), so '*' also crosses '/'.
 * Returns NULL when out of memory. */
ml_growth_t *ml_growth_new(const ml_stackset_t *set, const ml_growth_opts_t *opts);
void ml_growth_free(ml_growth_t *g);

/* Takes in snapshot `snap` of the set; snapshots must come in time order.
 * Stacks the set gained since the last call are placed in their rows.
 * The set must keep the values of the first snapshot fed and of the latest
 * (others may be dropped once fed). Returns false when out of memory. */
bool ml_growth_feed(ml_growth_t *g, size_t snap);
size_t ml_growth_nfed(const ml_growth_t *g);

/* Every row, grown or not, largest growth first (ties: more allocations,
 * more live bytes, then the first stack seen). The array belongs to `g` and
 * lasts until the next call. Returns NULL when out of memory. */
const ml_growth_row_t *ml_growth_rows(ml_growth_t *g, size_t *n);

/* Only the rows whose live bytes or allocations grew and, with only_grows,
 * that grew in every interval (ml_growth_only_grows), in the same order:
 * what a diff shows, without ordering the rows that did not grow. The
 * array belongs to `g` and lasts until the next call (of either). */
const ml_growth_row_t *ml_growth_grown_rows(ml_growth_t *g, bool only_grows, size_t *n);

/* The row number (ml_growth_row_t.group) stack `stack` is counted in;
 * UINT32_MAX when no row takes it (filtered out, or not yet fed). */
uint32_t ml_growth_group_of(const ml_growth_t *g, uint32_t stack);

/* Live bytes and counts of the selected stacks in the first and latest
 * snapshot fed. */
void ml_growth_totals(const ml_growth_t *g, ml_sval_t *first, ml_sval_t *last);

/* ---- thresholds ---- */

typedef struct {
    bool set;
    bool percent;   /* value is in thousandths of a percent of the base */
    uint64_t value; /* bytes, or thousandths of a percent */
} ml_limit_t;

/* "50MiB" (units.h sizes), or with allow_percent also "75%" and "12.5%"
 * (up to three decimals). Returns false on anything else. */
bool ml_limit_parse(const char *s, bool allow_percent, ml_limit_t *out);

/* True when going from `base` to `head` grows by more than the limit. For a
 * percentage, a base of zero or less makes any growth cross it. */
bool ml_limit_crossed(const ml_limit_t *l, int64_t base, int64_t head);

/* Formats the limit as given ("50.0 MiB", "75%"); returns buf. */
const char *ml_limit_text(const ml_limit_t *l, char *buf, size_t cap);

#endif
