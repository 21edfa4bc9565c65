/* report_text.c — `memledger diff` for a terminal: aligned columns, human
 * sizes (exact bytes beside them), each row's stack with the innermost
 * frame of user code set apart, and colour only when asked for
 * (diff_report.h's `color`: a terminal without NO_COLOR). */
#include "cli/cli_util.h"
#include "cli/diff_report.h"
#include "cli/user_frame.h"

#include <inttypes.h>
#include <string.h>

typedef struct {
    FILE *out;
    bool color;
} pen_t;

static const char *C_BOLD = "\033[1m", *C_DIM = "\033[2m", *C_RED = "\033[31m", *C_YELLOW = "\033[33m",
                  *C_RESET = "\033[0m";

static const char *on(const pen_t *p, const char *code) { return p->color ? code : ""; }

static void domains(const pen_t *p, const ml_diff_report_t *r)
{
    const ml_snapshot_t *b = r->snaps[0], *h = r->snaps[r->nsnaps - 1];
    char b1[32], b2[32], b3[32];
    fprintf(p->out, "\n  %s%-16s %12s %12s %12s%s\n", on(p, C_BOLD), "domain", "base", "head", "change",
            on(p, C_RESET));
    for (int d = 0; d < ML_DOM_COUNT; d++) {
        if (!b->domain_live_bytes[d] && !h->domain_live_bytes[d])
            continue;
        if (!ml_domain_matches(d, r->opts.domain))
            continue;
        fprintf(p->out, "  %-16s %12s %12s %12s\n", ml_domain_name(d),
                cli_human(b->domain_live_bytes[d], false, b1, sizeof b1),
                cli_human(h->domain_live_bytes[d], false, b2, sizeof b2),
                cli_human(h->domain_live_bytes[d] - b->domain_live_bytes[d], true, b3, sizeof b3));
    }
    char pct[32];
    fprintf(p->out, "  %-16s %12s %12s %12s  %s\n",
            r->opts.ninclude || r->opts.nexclude ? "selected stacks" : "all stacks",
            cli_human(r->total_first.live_bytes, false, b1, sizeof b1),
            cli_human(r->total_last.live_bytes, false, b2, sizeof b2),
            cli_human(r->total_last.live_bytes - r->total_first.live_bytes, true, b3, sizeof b3),
            ml_total_percent(r, pct, sizeof pct));
}

static void filters(const pen_t *p, const ml_diff_report_t *r)
{
    char b[32];
    bool any = r->opts.domain || r->opts.ninclude || r->opts.nexclude || r->opts.group_by != ML_GROUP_STACK ||
               r->min_growth;
    if (!any)
        return;
    fprintf(p->out, "  selected:");
    if (r->opts.domain)
        fprintf(p->out, " domain %s;", r->opts.domain);
    for (size_t i = 0; i < r->opts.ninclude; i++)
        fprintf(p->out, " include '%s';", r->opts.include[i]);
    for (size_t i = 0; i < r->opts.nexclude; i++)
        fprintf(p->out, " exclude '%s';", r->opts.exclude[i]);
    if (r->min_growth)
        fprintf(p->out, " growth of at least %s;", cli_human((int64_t)r->min_growth, false, b, sizeof b));
    fprintf(p->out, " grouped by %s\n", ml_group_by_name(r->opts.group_by));
}

static void frames(const pen_t *p, const ml_diff_report_t *r, const ml_growth_row_t *row)
{
    const ml_sstack_t *st = ml_stackset_stack(r->set, row->stack);
    char fb[2048];
    if (!st->nframes) {
        fprintf(p->out, "      [no frames: the stack store was full, see docs/config.md MEMLEDGER_STACKS]\n");
        return;
    }
    uint32_t from = 0;
    if (r->opts.group_by != ML_GROUP_STACK) {
        const ml_sframe_t *f = ml_stackset_frame(r->set, st->frames[row->user]);
        fprintf(p->out, "      %s%s%s", on(p, C_BOLD), cli_frame_text(f, true, fb, sizeof fb), on(p, C_RESET));
        fprintf(p->out, "   <- %" PRIu32 " stack%s; callers in the one that grew most:\n", row->nstacks,
                row->nstacks == 1 ? "" : "s");
        from = row->user + 1;
    }
    /* Outward of the outermost Python frame there is only the interpreter
     * starting up (or a thread starting): the same dozen frames under every
     * Python stack, which a terminal need not repeat. */
    uint32_t to = st->nframes;
    for (uint32_t i = st->nframes; i-- > from;)
        if (ml_stackset_frame(r->set, st->frames[i])->kind == ML_FRAME_PYTHON) {
            to = i + 1;
            break;
        }
    for (uint32_t i = from; i < to; i++) {
        const ml_sframe_t *f = ml_stackset_frame(r->set, st->frames[i]);
        const char *style = i == row->user ? on(p, C_BOLD) : ml_frame_is_runtime(f) ? on(p, C_DIM) : "";
        ml_sframe_t view; /* the functions inlined there first, innermost first, styled as their frame */
        for (uint32_t k = 0; k <= f->ninlined; k++) {
            const ml_sframe_t *shown = f;
            if (k < f->ninlined)
                shown = ml_sframe_inlined(f, k, &view);
            fprintf(p->out, "      %s%s%s\n", style, cli_frame_text(shown, true, fb, sizeof fb),
                    *style ? on(p, C_RESET) : "");
        }
    }
    if (to < st->nframes)
        fprintf(p->out, "      %s... %" PRIu32 " native frame%s outside Python (--format json lists them)%s\n",
                on(p, C_DIM), st->nframes - to, st->nframes - to == 1 ? "" : "s", on(p, C_RESET));
}

static void thresholds(const pen_t *p, const ml_diff_report_t *r)
{
    char lim[48], b1[32];
    if (r->fail_above.set) {
        ml_limit_text(&r->fail_above, lim, sizeof lim);
        if (r->above_crossed)
            fprintf(p->out, "%sFAIL%s --fail-above %s: the largest growth, #1, is %s\n", on(p, C_RED), on(p, C_RESET),
                    lim, cli_human(r->largest->growth_bytes, true, b1, sizeof b1));
        else
            fprintf(p->out, "pass --fail-above %s: no %s grew by more\n", lim,
                    r->opts.group_by == ML_GROUP_STACK ? "stack" : "group");
    }
    if (r->fail_total.set) {
        char pct[32];
        ml_limit_text(&r->fail_total, lim, sizeof lim);
        fprintf(p->out, "%s%s%s --fail-total-above %s: live bytes changed by %s (%s)\n",
                r->total_crossed ? on(p, C_RED) : "", r->total_crossed ? "FAIL" : "pass",
                r->total_crossed ? on(p, C_RESET) : "", lim,
                cli_human(r->total_last.live_bytes - r->total_first.live_bytes, true, b1, sizeof b1),
                ml_total_percent(r, pct, sizeof pct));
    }
}

void ml_report_text(FILE *out, const ml_diff_report_t *r)
{
    pen_t p = {out, r->color};
    const ml_snapshot_t *b = r->snaps[0], *h = r->snaps[r->nsnaps - 1];
    char b1[32], b2[32], trend[64];
    if (b->pid < 0) /* processes taken together (diff --by-process): the path says which */
        fprintf(out, "%smemledger diff%s: %s -> %s\n", on(&p, C_BOLD), on(&p, C_RESET), b->path, h->path);
    else if (b->pid == h->pid)
        fprintf(out, "%smemledger diff%s: %zu snapshots of pid %ld over %.1f s (seq %ld -> %ld)\n", on(&p, C_BOLD),
                on(&p, C_RESET), r->nsnaps, b->pid, h->time - b->time, b->seq, h->seq);
    else
        fprintf(out, "%smemledger diff%s: %zu snapshots, base pid %ld, head pid %ld\n", on(&p, C_BOLD),
                on(&p, C_RESET), r->nsnaps, b->pid, h->pid);
    filters(&p, r);
    domains(&p, r);
    if (h->stacks_overflowed || h->stacks_degraded)
        fprintf(out, "\n  %snote:%s the stack store was full (%" PRIu64 " stacks): %" PRIu64
                     " new stacks were kept with their Python frames and innermost native frames only, and %" PRIu64
                     " were counted without frames; run again with MEMLEDGER_STACKS above %" PRIu64
                     " (docs/config.md)\n",
                on(&p, C_YELLOW), on(&p, C_RESET), h->stacks_capacity, h->stacks_degraded, h->stacks_overflowed,
                h->stacks_capacity);
    for (size_t i = 0; i < h->nheaders; i++) {
        /* a library whose malloc family leads to an allocator memledger does not hook */
        const char *v = h->headers[i].value, *path = v ? strrchr(v, '\t') : NULL;
        if (strcmp(h->headers[i].key, "malloc_bypass") == 0 && path && strncmp(v, "unseen\t", 7) == 0)
            fprintf(out, "\n  %snote:%s %s binds malloc past memledger (RTLD_DEEPBIND with an allocator of its "
                         "own, or another link namespace): its allocations are not seen\n",
                    on(&p, C_YELLOW), on(&p, C_RESET), path + 1);
    }

    const char *unit = r->opts.group_by == ML_GROUP_STACK ? "stack" : "group";
    if (!r->nrows) {
        fprintf(out, "\nNo %s grew%s.\n", unit, r->hidden ? " by the minimum asked for" : "");
    } else {
        fprintf(out, "\n%zu %s%s grew by %s (%+" PRId64 " B, %+" PRId64 " allocations)", r->nrows, unit,
                r->nrows == 1 ? "" : "s", cli_human(r->grown_bytes, true, b1, sizeof b1), r->grown_bytes,
                r->grown_count);
        if (r->nsnaps >= 3 && r->only_grows)
            fprintf(out, "; %s%zu only grow%s%s (grew in each of the %zu intervals)", on(&p, C_RED), r->only_grows,
                    r->only_grows == 1 ? "s" : "", on(&p, C_RESET), r->nsnaps - 1);
        else if (r->nsnaps >= 3)
            fprintf(out, "; none grew in every interval");
        fputs("\n", out);
    }
    if (r->hidden)
        fprintf(out, "%zu more grew by less than %s (--min-growth)\n", r->hidden,
                cli_human((int64_t)r->min_growth, false, b1, sizeof b1));
    if (r->show && r->nsnaps >= 3)
        fprintf(out, "\n%s  %4s %11s %13s %9s %11s  %-12s %s%s\n", on(&p, C_BOLD), "#", "growth", "bytes", "allocs",
                "live", "domain", "trend", on(&p, C_RESET));
    else if (r->show)
        fprintf(out, "\n%s  %4s %11s %13s %9s %11s  %s%s\n", on(&p, C_BOLD), "#", "growth", "bytes", "allocs", "live",
                "domain", on(&p, C_RESET));
    for (size_t i = 0; i < r->show; i++) {
        const ml_growth_row_t *row = &r->rows[i];
        bool leak = r->nsnaps >= 3 && ml_growth_only_grows(row);
        ml_trend_text(row, r->nsnaps, trend, sizeof trend);
        fprintf(out, "  %4zu %s%11s%s %+13" PRId64 " %+9" PRId64 " %11s  ", i + 1, leak ? on(&p, C_RED) : "",
                cli_human(row->growth_bytes, true, b1, sizeof b1), leak ? on(&p, C_RESET) : "", row->growth_bytes,
                row->growth_count, cli_human(row->last.live_bytes, false, b2, sizeof b2));
        if (trend[0])
            fprintf(out, "%-12s %s%s%s\n", ml_domain_name(row->domain), leak ? on(&p, C_RED) : on(&p, C_YELLOW), trend,
                    on(&p, C_RESET));
        else
            fprintf(out, "%s\n", ml_domain_name(row->domain));
        frames(&p, r, row);
    }
    if (r->show < r->nrows)
        fprintf(out, "\n... %zu more %ss grew (use -n 0 to see all)\n", r->nrows - r->show, unit);
    if (r->fail_above.set || r->fail_total.set)
        fputs("\n", out);
    thresholds(&p, r);
}
