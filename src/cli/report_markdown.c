/* report_markdown.c — `memledger diff --format markdown`: a heading that
 * says pass or fail, one summary line, and a table of the rows that grew,
 * for a CI job summary ($GITHUB_STEP_SUMMARY) or a pull-request comment.
 * Every string from a snapshot is escaped: the characters that mean
 * something inside a table cell (\ ` * _ [ ] | ~ $) with a backslash, and
 * <, >, & as entities, so a function named <script> is text wherever the
 * markdown is rendered. */
#include "cli/cli_util.h"
#include "cli/diff_report.h"

#include <inttypes.h>
#include <string.h>

static void md(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '\n': case '\r': case '\t': fputc(' ', out); break;
        default:
            if (strchr("\\`*_[]|~$", *p))
                fputc('\\', out);
            fputc(*p, out);
        }
    }
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

/* "function (file:line)" of a frame, escaped. */
static void frame(FILE *out, const ml_sframe_t *f, bool bold)
{
    char name[1024];
    fputs(bold ? "**" : "", out);
    md(out, cli_frame_name(f, name, sizeof name));
    fputs(bold ? "**" : "", out);
    if (f->file) {
        fputs(" (", out);
        md(out, base_name(f->file));
        if (f->line > 0)
            fprintf(out, ":%d", f->line);
        fputc(')', out);
    }
}

/* The innermost user-code frame, then up to two callers. */
static void where(FILE *out, const ml_diff_report_t *r, const ml_growth_row_t *row)
{
    const ml_sstack_t *st = ml_stackset_stack(r->set, row->stack);
    if (row->user == UINT32_MAX) {
        fputs("(no frames: the stack store was full)", out);
        return;
    }
    uint32_t end = row->user + 3 < st->nframes ? row->user + 3 : st->nframes;
    for (uint32_t i = row->user; i < end; i++) {
        if (i > row->user)
            fputs(" ← ", out);
        frame(out, ml_stackset_frame(r->set, st->frames[i]), i == row->user);
    }
    if (end < st->nframes)
        fputs(" ← …", out);
    if (row->nstacks > 1)
        fprintf(out, " (%" PRIu32 " stacks)", row->nstacks);
}

void ml_report_markdown(FILE *out, const ml_diff_report_t *r)
{
    char b1[32], b2[32], lim[48], pct[32], trend[64];
    bool failed = r->above_crossed || r->total_crossed;
    const char *unit = r->opts.group_by == ML_GROUP_STACK ? "stack" : "group";
    fputs("### memledger: ", out);
    if (r->above_crossed)
        fprintf(out, "❌ a %s grew by %s, more than the %s limit", unit,
                cli_human(r->largest->growth_bytes, false, b1, sizeof b1),
                ml_limit_text(&r->fail_above, lim, sizeof lim));
    if (r->above_crossed && r->total_crossed)
        fputs("; ", out);
    if (r->total_crossed)
        fprintf(out, "%slive memory grew by %s (%s), more than the %s limit", r->above_crossed ? "" : "❌ ",
                cli_human(r->total_last.live_bytes - r->total_first.live_bytes, false, b1, sizeof b1),
                ml_total_percent(r, pct, sizeof pct), ml_limit_text(&r->fail_total, lim, sizeof lim));
    if (!failed)
        fputs(r->fail_above.set || r->fail_total.set ? "✅ within limits" : "memory growth", out);
    fputs("\n\n", out);

    /* the summary line */
    if (r->nrows)
        fprintf(out, "**%zu %s%s grew by %s** (%+" PRId64 " allocations)", r->nrows, unit, r->nrows == 1 ? "" : "s",
                cli_human(r->grown_bytes, true, b1, sizeof b1), r->grown_count);
    else
        fprintf(out, "**No %s grew**", unit);
    if (r->nsnaps >= 3)
        fprintf(out, "; **%zu only grow%s** (grew in each of %zu intervals)", r->only_grows,
                r->only_grows == 1 ? "s" : "", r->nsnaps - 1);
    const ml_snapshot_t *b = r->snaps[0], *h = r->snaps[r->nsnaps - 1];
    if (b->pid < 0)
        fprintf(out, ". %s -> %s", b->path, h->path);
    else if (b->pid == h->pid)
        fprintf(out, ". %zu snapshots of pid %ld over %.1f s", r->nsnaps, b->pid, h->time - b->time);
    else
        fprintf(out, ". %zu snapshots, base pid %ld, head pid %ld", r->nsnaps, b->pid, h->pid);
    fprintf(out, "; live memory %s → %s (%s)", cli_human(r->total_first.live_bytes, false, b1, sizeof b1),
            cli_human(r->total_last.live_bytes, false, b2, sizeof b2), ml_total_percent(r, pct, sizeof pct));
    if (r->opts.domain) {
        fputs(" in domain ", out);
        md(out, r->opts.domain);
    }
    fputs(".\n", out);

    if (r->show) {
        fprintf(out, "\n| # | growth | allocations | live | domain |%s where |\n", r->nsnaps >= 3 ? " trend |" : "");
        fprintf(out, "| ---: | ---: | ---: | ---: | --- |%s --- |\n", r->nsnaps >= 3 ? " --- |" : "");
    }
    for (size_t i = 0; i < r->show; i++) {
        const ml_growth_row_t *row = &r->rows[i];
        fprintf(out, "| %zu | %s | %+" PRId64 " | %s | %s |", i + 1, cli_human(row->growth_bytes, true, b1, sizeof b1),
                row->growth_count, cli_human(row->last.live_bytes, false, b2, sizeof b2), ml_domain_name(row->domain));
        if (r->nsnaps >= 3)
            fprintf(out, " %s%s%s |", ml_growth_only_grows(row) ? "**" : "", ml_trend_text(row, r->nsnaps, trend, sizeof trend),
                    ml_growth_only_grows(row) ? "**" : "");
        fputc(' ', out);
        where(out, r, row);
        fputs(" |\n", out);
    }
    if (r->show < r->nrows)
        fprintf(out, "\n… and %zu more.\n", r->nrows - r->show);
    if (r->hidden)
        fprintf(out, "\n%zu more grew by less than %s.\n", r->hidden,
                cli_human((int64_t)r->min_growth, false, b1, sizeof b1));
}
