/* export.h — what `memledger export` hands to each encoder: pprof.c,
 * collapsed.c and report_html.c. One snapshot (live memory), or a base
 * and a head (growth: head minus base, only the stacks that grew). The
 * rows are growth.c's, one per stack, largest first. Encoders only encode:
 * which stacks, and the value of each, are settled here. */
#ifndef ML_EXPORT_H
#define ML_EXPORT_H

#include "cli/growth.h"
#include "cli/snapshot_read.h"

#include <stdio.h>

typedef struct {
    const ml_stackset_t *set;
    const ml_snapshot_t *base; /* NULL: the export shows live memory */
    const ml_snapshot_t *head;
    const ml_growth_row_t *rows; /* one per stack with a positive value, largest first */
    size_t nrows;
    const char *domain;          /* --domain, NULL for all */
} ml_export_t;

/* A row's figures: growth since the base, or what is live without one. */
static inline int64_t ml_export_bytes(const ml_export_t *e, const ml_growth_row_t *r)
{
    return e->base ? r->growth_bytes : r->last.live_bytes;
}
static inline int64_t ml_export_count(const ml_export_t *e, const ml_growth_row_t *r)
{
    return e->base ? r->growth_count : r->last.live_count;
}
static inline int64_t ml_export_alloc_bytes(const ml_export_t *e, const ml_growth_row_t *r)
{
    return e->base ? r->last.total_bytes - r->first.total_bytes : r->last.total_bytes;
}
static inline int64_t ml_export_alloc_count(const ml_export_t *e, const ml_growth_row_t *r)
{
    return e->base ? r->last.total_count - r->first.total_count : r->last.total_count;
}

/* Each writes the whole export to `out`. They return false when out of
 * memory or on a write error (errno set), having written a message into
 * err. */
bool ml_export_pprof(FILE *out, const ml_export_t *e, char *err, size_t errcap);
bool ml_export_collapsed(FILE *out, const ml_export_t *e, char *err, size_t errcap);
bool ml_export_html(FILE *out, const ml_export_t *e, char *err, size_t errcap);

#endif
