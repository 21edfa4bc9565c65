/* diff_report.h — what `memledger diff` shows, decided once and rendered in
 * each format by its own file: report_text.c (a terminal), report_json.c
 * (the command contract), report_markdown.c (a CI job summary or a pull
 * request comment). Renderers only format: which rows, in which order,
 * and whether a threshold was crossed are settled before they are called. */
#ifndef ML_DIFF_REPORT_H
#define ML_DIFF_REPORT_H

#include "cli/growth.h"
#include "cli/snapshot_read.h"

#include <stdio.h>

typedef struct {
    const ml_snapshot_t *const *snaps; /* in time order, at least two */
    size_t nsnaps;
    const ml_stackset_t *set;
    const ml_growth_row_t *rows; /* the rows that grew, largest first */
    size_t nrows;                /* rows that grew (after --min-growth) */
    size_t show;                 /* how many of them to print (--limit) */
    size_t hidden;               /* rows that grew by less than --min-growth */
    size_t only_grows;           /* rows of nrows that grew in every interval */
    int64_t grown_bytes, grown_count; /* summed over the nrows rows */
    ml_sval_t total_first, total_last; /* live in the selected stacks */
    enum ml_group_by group_by;
    const char *domain;          /* NULL: all */
    const char *const *include, *const *exclude;
    size_t ninclude, nexclude;
    uint64_t min_growth;
    ml_limit_t fail_above, fail_total;
    const ml_growth_row_t *largest; /* the row that grew most, NULL if none did */
    bool above_crossed, total_crossed;
    bool color;                  /* text only: ANSI colours */
} ml_diff_report_t;

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
