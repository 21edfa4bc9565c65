/* report_json.c — `memledger diff --format json`, the command contract of
 * docs/cli.md: an object with a `stacks` list, each with growth_bytes,
 * growth_count, domain and frames (innermost first; kind, function, file,
 * line or null, module). Fields are only ever added, never renamed. */
#include "cli/cli_util.h"
#include "cli/diff_report.h"

#include <inttypes.h>

static void snapshot(FILE *out, const ml_snapshot_t *s)
{
    fputs("{\"path\":", out);
    cli_json_str(out, s->path);
    fprintf(out, ",\"pid\":%ld,\"seq\":%ld,\"time\":%.6f,\"rss\":%llu,\"sample_bytes\":%llu}", s->pid, s->seq,
            s->time, (unsigned long long)s->rss, (unsigned long long)s->sample_bytes);
}

static void limit(FILE *out, const char *name, const ml_limit_t *l, bool crossed)
{
    fprintf(out, "\"%s\":", name);
    if (!l->set) {
        fputs("null", out);
        return;
    }
    if (l->percent)
        fprintf(out, "{\"percent\":%.3f,\"crossed\":%s}", (double)l->value / 1000.0, crossed ? "true" : "false");
    else
        fprintf(out, "{\"bytes\":%" PRIu64 ",\"crossed\":%s}", l->value, crossed ? "true" : "false");
}

static void patterns(FILE *out, const char *name, const char *const *p, size_t n)
{
    fprintf(out, ",\"%s\":[", name);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        cli_json_str(out, p[i]);
    }
    fputc(']', out);
}

void ml_report_json(FILE *out, const ml_diff_report_t *r)
{
    fputs("{\"snapshots\":[", out);
    for (size_t i = 0; i < r->nsnaps; i++) {
        if (i)
            fputc(',', out);
        snapshot(out, r->snaps[i]);
    }
    fputs("],\"domain\":", out);
    cli_json_str(out, r->opts.domain);
    patterns(out, "include", r->opts.include, r->opts.ninclude);
    patterns(out, "exclude", r->opts.exclude, r->opts.nexclude);
    fprintf(out, ",\"group_by\":\"%s\",\"min_growth\":%" PRIu64, ml_group_by_name(r->opts.group_by),
            r->min_growth);
    fprintf(out, ",\"growth_bytes\":%" PRId64 ",\"growth_count\":%" PRId64, r->grown_bytes, r->grown_count);
    fprintf(out, ",\"grown\":%zu,\"only_grows\":%zu,\"hidden_below_min_growth\":%zu", r->nrows, r->only_grows,
            r->hidden);
    fprintf(out, ",\"total\":{\"base_live_bytes\":%" PRId64 ",\"head_live_bytes\":%" PRId64
                 ",\"base_live_count\":%" PRId64 ",\"head_live_count\":%" PRId64 "}",
            r->total_first.live_bytes, r->total_last.live_bytes, r->total_first.live_count,
            r->total_last.live_count);
    fputs(",\"thresholds\":{", out);
    limit(out, "fail_above", &r->fail_above, r->above_crossed);
    fputc(',', out);
    limit(out, "fail_total_above", &r->fail_total, r->total_crossed);
    fprintf(out, "},\"passed\":%s,\"stacks\":[", r->above_crossed || r->total_crossed ? "false" : "true");
    for (size_t i = 0; i < r->show; i++) {
        const ml_growth_row_t *row = &r->rows[i];
        const ml_sstack_t *st = ml_stackset_stack(r->set, row->stack);
        fprintf(out,
                "%s{\"growth_bytes\":%" PRId64 ",\"growth_count\":%" PRId64 ",\"live_bytes\":%" PRId64
                ",\"live_count\":%" PRId64 ",\"base_live_bytes\":%" PRId64 ",\"only_grows\":%s"
                ",\"intervals\":%" PRIu32 ",\"grew_intervals\":%" PRIu32 ",\"stacks\":%" PRIu32
                ",\"domain\":\"%s\",\"user_frame\":",
                i ? "," : "", row->growth_bytes, row->growth_count, row->last.live_bytes, row->last.live_count,
                row->first.live_bytes, ml_growth_only_grows(row) ? "true" : "false", row->intervals, row->grew,
                row->nstacks, ml_domain_name(row->domain));
        if (row->user == UINT32_MAX)
            fputs("null", out);
        else /* an index into the frames as listed, inlined functions included */
            fprintf(out, "%" PRIu32, cli_shown_index(r->set, st, row->user));
        fputs(",\"frames\":[", out);
        cli_json_frames(out, r->set, st);
        fputs("]}", out);
    }
    fputs("]}\n", out);
}
