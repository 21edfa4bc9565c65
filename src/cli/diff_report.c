/* diff_report.c — the little that the diff renderers share (see
 * diff_report.h): names and phrases, so every format says the same. */
#include "cli/diff_report.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
