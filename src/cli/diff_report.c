/* diff_report.c — what the diff renderers share (see diff_report.h): the
 * selection of rows, so every format (and `watch`) shows the same rows and
 * the same figures, and the names and phrases, so every format says the
 * same. */
#include "cli/diff_report.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ml_diff_report_select(ml_diff_report_t *r, ml_growth_t *g, uint64_t limit, bool only_grows)
{
    /* only the rows that grew (and, with only_grows, grew in every
     * interval), in the order they have among all rows: a diff of a large
     * process has hundreds of thousands of stacks, a few dozen of them grown */
    size_t nall;
    const ml_growth_row_t *rows = ml_growth_grown_rows(g, only_grows, &nall);
    free(r->rows);
    r->rows = rows ? calloc(nall + 1, sizeof *r->rows) : NULL;
    r->nrows = r->show = r->hidden = r->only_grows = 0;
    r->grown_bytes = r->grown_count = 0;
    r->largest = NULL;
    if (!r->rows)
        return false;
    for (size_t i = 0; i < nall; i++) {
        if (!r->largest && rows[i].growth_bytes > 0)
            r->largest = &rows[i];
        if (rows[i].growth_bytes < 0 || (uint64_t)rows[i].growth_bytes < r->min_growth) {
            r->hidden++;
            continue;
        }
        r->rows[r->nrows++] = rows[i];
        r->grown_bytes = ml_sat_add(r->grown_bytes, rows[i].growth_bytes);
        r->grown_count = ml_sat_add(r->grown_count, rows[i].growth_count);
        r->only_grows += ml_growth_only_grows(&rows[i]);
    }
    r->show = limit && limit < r->nrows ? limit : r->nrows;
    ml_growth_totals(g, &r->total_first, &r->total_last);
    r->above_crossed = r->largest && ml_limit_crossed(&r->fail_above, 0, r->largest->growth_bytes);
    r->total_crossed = ml_limit_crossed(&r->fail_total, r->total_first.live_bytes, r->total_last.live_bytes);
    return true;
}

void ml_diff_report_free(ml_diff_report_t *r)
{
    free(r->rows);
    r->rows = NULL;
}

const char *ml_group_by_name(enum ml_group_by g)
{
    return g == ML_GROUP_LINE ? "line" : g == ML_GROUP_FUNCTION ? "function" : "stack";
}

bool ml_group_by_parse(const char *name, enum ml_group_by *out)
{
    static const enum ml_group_by all[] = {ML_GROUP_STACK, ML_GROUP_LINE, ML_GROUP_FUNCTION};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(name, ml_group_by_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}

const char *ml_trend_text(const ml_growth_row_t *row, size_t nsnaps, char *buf, size_t cap)
{
    if (nsnaps < 3)
        snprintf(buf, cap, "%s", "");
    else if (ml_growth_only_grows(row))
        snprintf(buf, cap, "only grows");
    else
        snprintf(buf, cap, "grew in %" PRIu32 " of %" PRIu32 " intervals", row->grew, row->intervals);
    return buf;
}

const char *ml_total_percent(const ml_diff_report_t *r, char *buf, size_t cap)
{
    int64_t base = r->total_first.live_bytes, d = r->total_last.live_bytes - base;
    if (base <= 0)
        snprintf(buf, cap, "%s", d > 0 ? "new" : "+0.0%");
    else
        snprintf(buf, cap, "%+.1f%%", (double)d * 100.0 / (double)base);
    return buf;
}
