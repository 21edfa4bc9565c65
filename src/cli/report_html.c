/* report_html.c — `memledger export --format html`: one self-contained
 * page (no network: a Content-Security-Policy forbids fetching anything)
 * with a flame graph of growth (of live bytes without --base) that zooms
 * and explains on hover, the table of the top stacks, and the totals per
 * domain in the snapshots.
 *
 * Escaping, because every string in a snapshot comes from the program
 * (symbol names, file names, the command line) and a report is opened in a
 * browser: text written into the page goes through html() (& < > " '
 * become entities); the flame graph's data goes into a JSON block through
 * json() (which also writes <, >, &, U+2028 and U+2029 as \u escapes, so
 * nothing in it can close the script element), and report.js puts it on
 * the page with textContent only. */
#include "cli/cli_util.h"
#include "cli/export.h"
#include "memledger.h"
#include "cli/strmap.h"
#include "cli/user_frame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const char ml_report_css[], ml_report_js[];

#define TABLE_ROWS 100     /* stacks in the table */
#define FLAME_STACKS 20000 /* stacks drawn; the rest are one box */

static void html(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*s, out);
        }
    }
}

static void json(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == '&')
            fprintf(out, "\\u%04x", *p);
        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            fprintf(out, "\\u%04x", p[2] == 0xa8 ? 0x2028 : 0x2029);
            p += 2;
        } else
            fputc(*p, out);
    }
    fputc('"', out);
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static void human_cell(FILE *out, int64_t bytes, bool sign)
{
    char b[32];
    fprintf(out, "<td class=\"num%s\" title=\"%" PRId64 " B\">%s</td>",
            sign && bytes > 0 ? " grow" : sign && bytes < 0 ? " shrink" : "", bytes, cli_human(bytes, sign, b, sizeof b));
}

static void frame_text(FILE *out, const ml_sframe_t *f)
{
    char name[4096];
    html(out, cli_frame_name(f, name, sizeof name));
    if (f->file) {
        fputs(" <span class=\"muted\">", out);
        html(out, f->file);
        if (f->line > 0)
            fprintf(out, ":%d", f->line);
        fputs("</span>", out);
    }
    if (f->kind == ML_FRAME_NATIVE && f->module) {
        fputs(" <span class=\"muted\">[", out);
        html(out, base_name(f->module));
        fputs("]</span>", out);
    }
}

static void snapshot_line(FILE *out, const char *what, const ml_snapshot_t *s)
{
    char when[64] = "";
    time_t t = (time_t)s->time;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(out, "<div class=\"muted\">%s: <span class=\"mono\">", what);
    html(out, s->path);
    fprintf(out, "</span> — pid %ld, snapshot %ld, %s", s->pid, s->seq, when);
    if (s->cmdline) {
        fputs(", <span class=\"mono\">", out);
        html(out, s->cmdline);
        fputs("</span>", out);
    }
    fputs("</div>\n", out);
}

static void domains_table(FILE *out, const ml_export_t *e)
{
    const ml_snapshot_t *b = e->base, *h = e->head;
    fputs("<h2>Totals per domain</h2>\n<table id=\"domains\"><thead><tr><th>domain</th>", out);
    if (b)
        fputs("<th class=\"num\">live in base</th><th class=\"num\">live in head</th><th class=\"num\">change</th>"
              "<th class=\"num\">allocations in base</th><th class=\"num\">allocations in head</th>",
              out);
    else
        fputs("<th class=\"num\">live</th><th class=\"num\">allocations live</th>"
              "<th class=\"num\">allocated in all</th>",
              out);
    fputs("</tr></thead><tbody>\n", out);
    for (int d = 0; d < ML_DOM_COUNT; d++) {
        if (!h->domain_live_bytes[d] && !h->domain_total_bytes[d] && !(b && b->domain_live_bytes[d]))
            continue;
        fprintf(out, "<tr><td>%s</td>", ml_domain_name(d));
        if (b) {
            human_cell(out, b->domain_live_bytes[d], false);
            human_cell(out, h->domain_live_bytes[d], false);
            human_cell(out, h->domain_live_bytes[d] - b->domain_live_bytes[d], true);
            fprintf(out, "<td class=\"num\">%" PRId64 "</td><td class=\"num\">%" PRId64 "</td>",
                    b->domain_live_count[d], h->domain_live_count[d]);
        } else {
            human_cell(out, h->domain_live_bytes[d], false);
            fprintf(out, "<td class=\"num\">%" PRId64 "</td>", h->domain_live_count[d]);
            human_cell(out, h->domain_total_bytes[d], false);
        }
        fputs("</tr>\n", out);
    }
    fputs("</tbody></table>\n", out);
}

static void stacks_table(FILE *out, const ml_export_t *e, uint8_t *ucache)
{
    size_t n = e->nrows < TABLE_ROWS ? e->nrows : TABLE_ROWS;
    fprintf(out, "<h2>Top stacks</h2>\n<p class=\"muted\">The %zu stack%s that %s most", n, n == 1 ? "" : "s",
            e->base ? "grew" : "hold the most live memory");
    if (n < e->nrows)
        fprintf(out, " (of %zu)", e->nrows);
    fputs(". <b>where</b> is the innermost frame of user code (not the C library, C++ runtime, loader, "
          "Python interpreter or memledger).</p>\n",
          out);
    fprintf(out, "<table id=\"stacks\"><thead><tr><th class=\"num\">#</th><th class=\"num\">%s</th>"
                 "<th class=\"num\">allocations</th><th>domain</th><th>where</th></tr></thead><tbody>\n",
            e->base ? "growth" : "live");
    for (size_t i = 0; i < n; i++) {
        const ml_growth_row_t *r = &e->rows[i];
        const ml_sstack_t *st = ml_stackset_stack(e->set, r->stack);
        fprintf(out, "<tr><td class=\"num\">%zu</td>", i + 1);
        human_cell(out, ml_export_bytes(e, r), e->base != NULL);
        fprintf(out, e->base ? "<td class=\"num\">%+" PRId64 "</td>" : "<td class=\"num\">%" PRId64 "</td>",
                ml_export_count(e, r));
        fprintf(out, "<td>%s</td><td class=\"where\">", ml_domain_name(r->domain));
        uint32_t u = ml_stack_user_frame(e->set, st, ucache);
        if (u == UINT32_MAX) {
            fputs("(no frames: the stack store was full)</td></tr>\n", out);
            continue;
        }
        fputs("<span class=\"fn\">", out);
        frame_text(out, ml_stackset_frame(e->set, st->frames[u]));
        fprintf(out, "</span><details><summary>%" PRIu32 " frames</summary><ol class=\"frames\" start=\"0\">",
                st->nframes);
        for (uint32_t k = 0; k < st->nframes; k++) {
            const ml_sframe_t *f = ml_stackset_frame(e->set, st->frames[k]);
            fprintf(out, "<li class=\"%s\">", k == u ? "user" : ml_frame_is_runtime(f) ? "runtime" : "");
            frame_text(out, f);
            fputs("</li>", out);
        }
        fputs("</ol></details></td></tr>\n", out);
    }
    fputs("</tbody></table>\n", out);
}

/* The flame graph's data: frames (deduplicated by name, file and module)
 * and stacks as [bytes, count, domain, frame ids outermost first...]. */
static bool flame_data(FILE *out, const ml_export_t *e)
{
    size_t nf = ml_stackset_nframes(e->set);
    uint32_t *fid = malloc((nf + 1) * sizeof *fid);
    ml_strmap_t *keys = ml_strmap_new();
    bool ok = fid && keys;
    for (size_t i = 0; ok && i < nf; i++)
        fid[i] = UINT32_MAX;
    size_t nstacks = e->nrows < FLAME_STACKS ? e->nrows : FLAME_STACKS;
    /* first pass: number the frames in use */
    for (size_t i = 0; ok && i < nstacks; i++) {
        const ml_sstack_t *st = ml_stackset_stack(e->set, e->rows[i].stack);
        for (uint32_t k = 0; ok && k < st->nframes; k++) {
            uint32_t uid = st->frames[k];
            if (fid[uid] != UINT32_MAX)
                continue;
            const ml_sframe_t *f = ml_stackset_frame(e->set, uid);
            char name[4096], key[12288];
            snprintf(key, sizeof key, "%d\t%s\t%s\t%s", (int)f->kind, cli_frame_name(f, name, sizeof name),
                     f->file ? f->file : "", f->module ? f->module : "");
            fid[uid] = ml_strmap_id(keys, key);
            ok = fid[uid] != UINT32_MAX;
        }
    }
    if (ok) {
        /* frames in id order: the first frame that got each id describes it */
        size_t nk = ml_strmap_count(keys);
        uint32_t *first = malloc((nk + 1) * sizeof *first);
        ok = first != NULL;
        /* the lowest uid wins: walk backwards so it is written last */
        for (size_t i = nf; ok && i-- > 0;)
            if (fid[i] != UINT32_MAX)
                first[fid[i]] = (uint32_t)i;
        fputs("<script id=\"ml-data\" type=\"application/json\">{\"what\":", out);
        json(out, e->base ? "growth since the base" : "live memory");
        fputs(",\"domains\":[", out);
        for (int d = 0; d < ML_DOM_COUNT; d++)
            fprintf(out, "%s\"%s\"", d ? "," : "", ml_domain_name(d));
        fputs("],\"frames\":[", out);
        for (size_t id = 0; ok && id < nk; id++) {
            const ml_sframe_t *f = ml_stackset_frame(e->set, first[id]);
            char name[4096];
            fputs(id ? ",[" : "[", out);
            json(out, cli_frame_name(f, name, sizeof name));
            fputc(',', out);
            json(out, f->file);
            fprintf(out, ",%d,", f->line);
            json(out, f->kind == ML_FRAME_NATIVE ? base_name(f->module) : NULL);
            fprintf(out, ",\"%c\",%d]", f->kind == ML_FRAME_PYTHON ? 'p' : 'n', !ml_frame_is_runtime(f));
        }
        free(first);
        fputs("],\"stacks\":[", out);
        for (size_t i = 0; ok && i < nstacks; i++) {
            const ml_growth_row_t *r = &e->rows[i];
            const ml_sstack_t *st = ml_stackset_stack(e->set, r->stack);
            fprintf(out, "%s[%" PRId64 ",%" PRId64 ",%d", i ? "," : "", ml_export_bytes(e, r),
                    ml_export_count(e, r), r->domain);
            for (uint32_t k = st->nframes; k-- > 0;)
                fprintf(out, ",%" PRIu32, fid[st->frames[k]]);
            fputc(']', out);
        }
        int64_t ob = 0, oc = 0;
        for (size_t i = nstacks; i < e->nrows; i++) {
            ob = ml_sat_add(ob, ml_export_bytes(e, &e->rows[i]));
            oc = ml_sat_add(oc, ml_export_count(e, &e->rows[i]));
        }
        fprintf(out, "],\"other\":[%" PRId64 ",%" PRId64 ",%zu]}</script>\n", ob, oc, e->nrows - nstacks);
    }
    free(fid);
    ml_strmap_free(keys);
    return ok;
}

bool ml_export_html(FILE *out, const ml_export_t *e, char *err, size_t errcap)
{
    uint8_t *ucache = calloc(ml_stackset_nframes(e->set) + 1, 1);
    if (!ucache) {
        snprintf(err, errcap, "out of memory");
        return false;
    }
    int64_t total = 0, count = 0;
    for (size_t i = 0; i < e->nrows; i++) {
        total = ml_sat_add(total, ml_export_bytes(e, &e->rows[i]));
        count = ml_sat_add(count, ml_export_count(e, &e->rows[i]));
    }
    char b1[32];
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>memledger: ",
          out);
    fputs(e->base ? "growth of " : "live memory of ", out);
    html(out, base_name(e->head->exe ? e->head->exe : e->head->path));
    fprintf(out, " (pid %ld)</title>\n<style>\n%s</style>\n</head><body>\n<header><h1>", e->head->pid, ml_report_css);
    fputs(e->base ? "Memory growth of " : "Live memory of ", out);
    html(out, base_name(e->head->exe ? e->head->exe : e->head->path));
    fputs("</h1>\n", out);
    if (e->base)
        snapshot_line(out, "base", e->base);
    snapshot_line(out, e->base ? "head" : "snapshot", e->head);
    fprintf(out, "<p class=\"summary\"><b>%s</b> in %zu stack%s%s (%+" PRId64 " allocations)",
            cli_human(total, e->base != NULL, b1, sizeof b1), e->nrows, e->nrows == 1 ? "" : "s",
            e->base ? " that grew" : " holding live memory", count);
    if (e->domain) {
        fputs(", domain ", out);
        html(out, e->domain);
    }
    fputs(".</p></header>\n", out);

    fprintf(out, "<section><h2>Flame graph of %s</h2>\n"
                 "<div id=\"flame-tools\"><button id=\"flame-reset\" type=\"button\" disabled>Reset zoom</button>"
                 "<span class=\"muted\">Width is bytes; callers above callees. Hover for figures, click to "
                 "zoom.</span></div>\n<div id=\"flame-hover\" class=\"mono\"></div>\n"
                 "<div id=\"flame-graph\" role=\"img\" aria-label=\"flame graph\"></div></section>\n",
            e->base ? "growth" : "live memory");
    stacks_table(out, e, ucache);
    domains_table(out, e);
    fprintf(out, "<footer>memledger %s — stacks are matched by module build-id and offset, and by Python "
                 "file, function and line.</footer>\n",
            MEMLEDGER_VERSION);
    bool ok = flame_data(out, e);
    fprintf(out, "<script>\n%s</script>\n</body></html>\n", ml_report_js);
    free(ucache);
    if (!ok)
        snprintf(err, errcap, "out of memory");
    else if (ferror(out)) {
        snprintf(err, errcap, "write error: %s", strerror(errno));
        ok = false;
    }
    return ok;
}
