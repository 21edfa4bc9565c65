/* diff_report.h — what `memledger diff` shows, decided once and rendered in
 * each format by its own file: report_text.c (a terminal), report_json.c
 * (the command contract), report_markdown.c (a CI job summary or a pull
 * request comment). Owns the selection of rows (ml_diff_report_select:
 * which grew, which --min-growth hides, how many --limit shows, the sums,
 * and whether a threshold was crossed), which `memledger watch` shares.
 * Renderers only format: all of that is settled before they are called.
 * Never reads files, never decides an exit status. */
#ifndef ML_DIFF_REPORT_H
#define ML_DIFF_REPORT_H

#include "cli/growth.h"
#include "cli/snapshot_read.h"

#include <stdio.h>

typedef struct {
    /* set by the caller: what was read and what was asked for */
    const ml_snapshot_t *const *snaps; /* in time order, at least two */
    size_t nsnaps;
    const ml_stackset_t *set;
    ml_growth_opts_t opts;       /* the selection: domain (NULL: all), patterns, grouping */
    uint64_t min_growth;
    ml_limit_t fail_above, fail_total;
    bool color;                  /* text only: ANSI colours */
    /* set by ml_diff_report_select */
    ml_growth_row_t *rows;       /* the rows that grew, largest first; the report's own */
    size_t nrows;                /* rows that grew (after --min-growth) */
    size_t show;                 /* how many of them to print (--limit) */
    size_t hidden;               /* rows that grew by less than --min-growth */
    size_t only_grows;           /* rows of nrows that grew in every interval */
    int64_t grown_bytes, grown_count; /* summed over the nrows rows */
    ml_sval_t total_first, total_last; /* live in the selected stacks */
    const ml_growth_row_t *largest; /* the row that grew most, NULL if none did: it
                                       points into `g`'s rows, whatever --min-growth hid */
    bool above_crossed, total_crossed;
} ml_diff_report_t;

/* Settles the rows and figures of `r` from `g`, fed every snapshot: the
 * rows whose live bytes or allocations grew, less those that grew by less
 * than r->min_growth (counted in `hidden`), largest first; with
 * `only_grows`, only the rows that grew in every interval are candidates.
 * `limit` rows are shown (0: all). Thresholds see every row, whatever the
 * limit and --min-growth hide. `largest` stays valid until `g` is freed or
 * asked for its rows again. Returns false when out of memory. */
bool ml_diff_report_select(ml_diff_report_t *r, ml_growth_t *g, uint64_t limit, bool only_grows);
/* Frees what ml_diff_report_select kept (the rows). */
void ml_diff_report_free(ml_diff_report_t *r);

void ml_report_text(FILE *out, const ml_diff_report_t *r);
void ml_report_json(FILE *out, const ml_diff_report_t *r);
void ml_report_markdown(FILE *out, const ml_diff_report_t *r);

/* Shared by the renderers. */
const char *ml_group_by_name(enum ml_group_by g);
/* --group-by's word (stack, line, function) to its value; false for any other. */
bool ml_group_by_parse(const char *name, enum ml_group_by *out);
/* "only grows", "grew in 1 of 2 intervals", or "" with fewer than three snapshots. */
const char *ml_trend_text(const ml_growth_row_t *row, size_t nsnaps, char *buf, size_t cap);
/* Total growth as a percentage of the base, to one decimal ("+183.3%"), or
 * "new" when the base was empty. */
const char *ml_total_percent(const ml_diff_report_t *r, char *buf, size_t cap);

#endif
