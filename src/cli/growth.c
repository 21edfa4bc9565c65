/* growth.c — rows of growth over snapshots (see growth.h).
 *
 * Each stack of the set is placed once in a row (or in none, when the
 * filters drop it); the row's key depends on --group-by:
 *   stack     the stack itself;
 *   line      the domain and the source line of the innermost user-code
 *             frame (file:line; Python frames also by function; a native
 *             frame without line information falls back to its function,
 *             then to the frame itself);
 *   function  the domain and that frame's function (Python: file and
 *             function; native: module path and function, so a rebuilt
 *             library still matches; without a name, the frame itself).
 * A snapshot fed adds up the values of each row's stacks, then compares
 * the sum with the previous snapshot's: "grew" counts the intervals in
 * which it rose. One pass over the stacks per snapshot, whatever the
 * grouping. Answers that cost string work (patterns, module names, keys)
 * are cached per frame uid. */
#include "cli/growth.h"
#include "cli/strmap.h"
#include "cli/user_frame.h"
#include "common/grow.h"
#include "common/hashidx.h"
#include "common/units.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

typedef struct {
    /* in the first and the latest snapshot fed; a feed sums into `last`
     * (groups are as many as stacks: no third copy for the sum) */
    ml_sval_t first, last;
    int64_t prev_live, prev_count; /* the snapshot fed before the latest */
    uint32_t grew, nstacks;
    int domain;
    uint32_t first_stack;
} group_t;

struct ml_growth {
    const ml_stackset_t *set;
    ml_growth_opts_t opts;
    uint32_t *group_of; /* per stack uid: row index, or NONE when filtered out */
    size_t placed, group_of_cap; /* stacks placed so far; group_of's room */
    uint8_t *fmatch;    /* per frame uid: 1 computed, 2 include matches, 4 exclude matches */
    uint8_t *fuser;     /* per frame uid: user_frame.h's cache */
    uint32_t *fkey;     /* per frame uid: grouping key id, NONE until computed */
    size_t fcap;
    ml_strmap_t *keys;  /* grouping key strings -> ids */
    ml_hashidx_t groups; /* (key id, domain) -> row index; unused for group-by stack */
    group_t *g;
    size_t ng, gcap;
    size_t nfed, first_snap, last_snap;
    ml_growth_row_t *rows;
};

ml_growth_t *ml_growth_new(const ml_stackset_t *set, const ml_growth_opts_t *opts)
{
    ml_growth_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->set = set;
    g->opts = *opts;
    if (!(g->keys = ml_strmap_new())) {
        free(g);
        return NULL;
    }
    return g;
}

void ml_growth_free(ml_growth_t *g)
{
    if (!g)
        return;
    free(g->group_of);
    free(g->fmatch);
    free(g->fuser);
    free(g->fkey);
    ml_strmap_free(g->keys);
    ml_hashidx_free(&g->groups);
    free(g->g);
    free(g->rows);
    free(g);
}

size_t ml_growth_nfed(const ml_growth_t *g) { return g->nfed; }

static bool any_match(const char *const *pats, size_t n, const char *s)
{
    if (!s)
        return false;
    const char *slash = strrchr(s, '/');
    for (size_t i = 0; i < n; i++)
        if (fnmatch(pats[i], s, 0) == 0 || (slash && fnmatch(pats[i], slash + 1, 0) == 0))
            return true;
    return false;
}

static bool frame_matches(const char *const *pats, size_t n, const ml_sframe_t *f)
{
    return any_match(pats, n, f->function) || any_match(pats, n, f->file) || any_match(pats, n, f->module);
}

static uint8_t frame_filter(ml_growth_t *g, uint32_t uid)
{
    if (!g->fmatch[uid]) {
        const ml_sframe_t *f = ml_stackset_frame(g->set, uid);
        g->fmatch[uid] = (uint8_t)(1 | (frame_matches(g->opts.include, g->opts.ninclude, f) ? 2 : 0) |
                                   (frame_matches(g->opts.exclude, g->opts.nexclude, f) ? 4 : 0));
    }
    return g->fmatch[uid];
}

/* Whether stack `u` counts. Its frames are only asked for (and so
 * written out, see stackset.h) when patterns need them. */
static bool selected(ml_growth_t *g, uint32_t u)
{
    if (!ml_domain_matches(ml_stackset_domain(g->set, u), g->opts.domain))
        return false;
    if (!g->opts.ninclude && !g->opts.nexclude)
        return true;
    const ml_sstack_t *st = ml_stackset_stack(g->set, u);
    bool inc = !g->opts.ninclude;
    for (uint32_t i = 0; i < st->nframes; i++) {
        uint8_t m = frame_filter(g, st->frames[i]);
        if (m & 4)
            return false;
        inc = inc || (m & 2);
    }
    return inc;
}

/* The grouping key id of a frame (line or function grouping). */
static uint32_t frame_key(ml_growth_t *g, uint32_t uid)
{
    if (g->fkey[uid] != NONE)
        return g->fkey[uid];
    const ml_sframe_t *f = ml_stackset_frame(g->set, uid);
    char *key = NULL;
    int r;
    bool line = g->opts.group_by == ML_GROUP_LINE;
    if (f->kind == ML_FRAME_PYTHON)
        r = line ? asprintf(&key, "p\t%s\t%d\t%s", f->file ? f->file : "", f->line, f->function ? f->function : "")
                 : asprintf(&key, "p\t%s\t%s", f->file ? f->file : "", f->function ? f->function : "");
    else if (line && f->file && f->line > 0)
        r = asprintf(&key, "l\t%s\t%d", f->file, f->line);
    else if (f->function)
        r = asprintf(&key, "f\t%s\t%s", f->module ? f->module : "", f->function);
    else
        r = asprintf(&key, "u\t%" PRIu32, uid); /* nothing to merge on: the frame itself */
    if (r < 0)
        return NONE;
    uint32_t id = ml_strmap_id(g->keys, key);
    free(key);
    return g->fkey[uid] = id;
}

static bool fit_frames(ml_growth_t *g)
{
    size_t n = ml_stackset_nframes(g->set);
    if (n <= g->fcap)
        return true;
    /* three arrays, one capacity: each grows from it to the same size (a
     * retry after a failure grows them from it again) */
    size_t cm = g->fcap, cu = g->fcap, ck = g->fcap;
    if (!ML_GROW(g->fmatch, cm, n) || !ML_GROW(g->fuser, cu, n) || !ML_GROW(g->fkey, ck, n))
        return false;
    for (size_t i = g->fcap; i < ck; i++)
        g->fkey[i] = NONE;
    g->fcap = ck;
    return true;
}

static uint32_t new_group(ml_growth_t *g, int domain, uint32_t stack)
{
    if (!ML_GROW(g->g, g->gcap, g->ng + 1))
        return NONE;
    group_t *gr = &g->g[g->ng]; /* zero: ML_GROW's */
    gr->domain = domain;
    gr->first_stack = stack;
    return (uint32_t)g->ng++;
}

/* Places the stacks the set gained since the last call. */
static bool place(ml_growth_t *g)
{
    size_t n = ml_stackset_nstacks(g->set);
    if (n == g->placed)
        return true;
    if (!ML_GROW(g->group_of, g->group_of_cap, n) || !fit_frames(g))
        return false;
    /* grouped by stack, each stack is a row: room for the first snapshot's
     * at once and an eighth more, as the stack set makes (the next snapshot
     * of a process adds a few; past that new_group doubles as usual) */
    if (g->opts.group_by == ML_GROUP_STACK && !g->gcap && !ML_RESERVE(g->g, g->gcap, n + n / 8 + 1))
        return false;
    for (size_t u = g->placed; u < n; u++) {
        uint32_t gi = NONE;
        if (selected(g, (uint32_t)u)) {
            if (g->opts.group_by == ML_GROUP_STACK) {
                /* each stack is a row of its own, new, numbered in order:
                 * no key to look up (a large snapshot has hundreds of
                 * thousands) */
                if ((gi = new_group(g, ml_stackset_domain(g->set, (uint32_t)u), (uint32_t)u)) == NONE)
                    return false;
            } else {
                const ml_sstack_t *st = ml_stackset_stack(g->set, (uint32_t)u);
                uint32_t at = ml_stack_user_frame(g->set, st, g->fuser);
                /* the overflow stacks have no frames: each is its own row */
                uint32_t k = at == NONE ? NONE - 1 - (uint32_t)st->domain : frame_key(g, st->frames[at]);
                if (k == NONE)
                    return false;
                uint64_t key = (uint64_t)k << 8 | (uint64_t)st->domain;
                size_t before = g->groups.n;
                gi = ml_hashidx_u64(&g->groups, key);
                if (gi == NONE)
                    return false;
                if (g->groups.n != before && new_group(g, st->domain, (uint32_t)u) != gi)
                    return false;
            }
            g->g[gi].nstacks++;
        }
        g->group_of[u] = gi;
    }
    g->placed = n;
    return true;
}

/* Saturating, as stackset.c sums: a hostile file cannot wrap a total. */
static void add_val(ml_sval_t *to, const ml_sval_t *v)
{
    to->live_bytes = ml_sat_add(to->live_bytes, v->live_bytes);
    to->live_count = ml_sat_add(to->live_count, v->live_count);
    to->total_bytes = ml_sat_add(to->total_bytes, v->total_bytes);
    to->total_count = ml_sat_add(to->total_count, v->total_count);
    to->present = to->present || v->present;
}

bool ml_growth_feed(ml_growth_t *g, size_t snap)
{
    if (!place(g))
        return false;
    for (size_t i = 0; i < g->ng; i++)
        memset(&g->g[i].last, 0, sizeof g->g[i].last);
    for (size_t u = 0; u < g->placed; u++) {
        if (g->group_of[u] == NONE)
            continue;
        ml_sval_t v = ml_stackset_value(g->set, snap, (uint32_t)u);
        if (v.present)
            add_val(&g->g[g->group_of[u]].last, &v);
    }
    for (size_t i = 0; i < g->ng; i++) {
        group_t *gr = &g->g[i];
        if (g->nfed == 0)
            gr->first = gr->last; /* rows that appear later start from zero */
        else if (gr->last.live_bytes > gr->prev_live ||
                 (gr->last.live_bytes == gr->prev_live && gr->last.live_count > gr->prev_count))
            gr->grew++; /* more bytes, or as many bytes in more blocks (zero-byte ones) */
        gr->prev_live = gr->last.live_bytes;
        gr->prev_count = gr->last.live_count;
    }
    if (g->nfed == 0)
        g->first_snap = snap;
    g->last_snap = snap;
    g->nfed++;
    return true;
}

static int by_growth(const void *a, const void *b)
{
    const ml_growth_row_t *x = a, *y = b;
    if (x->growth_bytes != y->growth_bytes)
        return x->growth_bytes < y->growth_bytes ? 1 : -1;
    if (x->growth_count != y->growth_count)
        return x->growth_count < y->growth_count ? 1 : -1;
    if (x->last.live_bytes != y->last.live_bytes)
        return x->last.live_bytes < y->last.live_bytes ? 1 : -1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

uint32_t ml_growth_group_of(const ml_growth_t *g, uint32_t stack)
{
    return stack < g->placed ? g->group_of[stack] : NONE;
}

/* Row i as it stands (its stack is the group's first; `user` unset). */
static void make_row(const ml_growth_t *g, size_t i, ml_growth_row_t *r)
{
    const group_t *gr = &g->g[i];
    memset(r, 0, sizeof *r);
    r->stack = gr->first_stack;
    r->domain = gr->domain;
    r->nstacks = gr->nstacks;
    r->first = gr->first;
    r->last = gr->last;
    r->growth_bytes = gr->last.live_bytes - gr->first.live_bytes;
    r->growth_count = gr->last.live_count - gr->first.live_count;
    r->intervals = g->nfed ? (uint32_t)g->nfed - 1 : 0;
    r->grew = gr->grew;
    r->group = (uint32_t)i;
}

enum { ALL_ROWS, GROWN_ROWS, ONLY_GROWS_ROWS };

/* The rows `which` asks for, sorted (ml_growth_rows, ml_growth_grown_rows).
 * A diff wants the few rows that grew among hundreds of thousands: only
 * the rows kept cost a user-frame walk and a place in the sort, and
 * by_growth is a total order (the stack breaks every tie), so sorting the
 * rows kept gives the order they have among all of them. */
static const ml_growth_row_t *rows_of(ml_growth_t *g, int which, size_t *n)
{
    free(g->rows);
    g->rows = NULL;
    /* row index by group, NONE for the groups left out */
    uint32_t *row_of = malloc((g->ng + 1) * sizeof *row_of);
    if (!row_of)
        return NULL;
    size_t nr = 0;
    for (size_t i = 0; i < g->ng; i++) {
        ml_growth_row_t r;
        make_row(g, i, &r);
        bool keep = which == ALL_ROWS || ((r.growth_bytes > 0 || r.growth_count > 0) &&
                                          (which == GROWN_ROWS || ml_growth_only_grows(&r)));
        row_of[i] = keep ? (uint32_t)nr++ : NONE;
    }
    g->rows = calloc(nr + 1, sizeof *g->rows);
    if (!g->rows) {
        free(row_of);
        return NULL;
    }
    for (size_t i = 0; i < g->ng; i++)
        if (row_of[i] != NONE)
            make_row(g, i, &g->rows[row_of[i]]);
    if (g->opts.group_by != ML_GROUP_STACK && g->nfed) {
        /* show each group through the member that grew most */
        int64_t *best = malloc((nr + 1) * sizeof *best);
        if (!best) {
            free(row_of);
            return NULL;
        }
        for (size_t i = 0; i < nr; i++)
            best[i] = INT64_MIN;
        for (size_t u = 0; u < g->placed; u++) {
            uint32_t gi = g->group_of[u];
            if (gi == NONE || row_of[gi] == NONE)
                continue;
            int64_t d = ml_stackset_value(g->set, g->last_snap, (uint32_t)u).live_bytes -
                        ml_stackset_value(g->set, g->first_snap, (uint32_t)u).live_bytes;
            if (d > best[row_of[gi]]) {
                best[row_of[gi]] = d;
                g->rows[row_of[gi]].stack = (uint32_t)u;
            }
        }
        free(best);
    }
    free(row_of);
    for (size_t i = 0; i < nr; i++)
        g->rows[i].user = ml_stack_user_frame(g->set, ml_stackset_stack(g->set, g->rows[i].stack), g->fuser);
    qsort(g->rows, nr, sizeof *g->rows, by_growth);
    *n = nr;
    return g->rows;
}

const ml_growth_row_t *ml_growth_rows(ml_growth_t *g, size_t *n) { return rows_of(g, ALL_ROWS, n); }

const ml_growth_row_t *ml_growth_grown_rows(ml_growth_t *g, bool only_grows, size_t *n)
{
    return rows_of(g, only_grows ? ONLY_GROWS_ROWS : GROWN_ROWS, n);
}

void ml_growth_totals(const ml_growth_t *g, ml_sval_t *first, ml_sval_t *last)
{
    memset(first, 0, sizeof *first);
    memset(last, 0, sizeof *last);
    for (size_t i = 0; i < g->ng; i++) {
        add_val(first, &g->g[i].first);
        add_val(last, &g->g[i].last);
    }
}

/* ---- thresholds ---- */

bool ml_limit_parse(const char *s, bool allow_percent, ml_limit_t *out)
{
    memset(out, 0, sizeof *out);
    size_t n = s ? strlen(s) : 0;
    if (n && s[n - 1] == '%') {
        if (!allow_percent || n == 1)
            return false;
        uint64_t whole = 0, frac = 0;
        int fdigits = 0;
        const char *p = s;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (whole > UINT64_MAX / 100000)
                return false;
            whole = whole * 10 + (uint64_t)(*p - '0');
        }
        if (*p == '.') {
            for (p++; *p >= '0' && *p <= '9'; p++, fdigits++)
                if (fdigits < 3)
                    frac = frac * 10 + (uint64_t)(*p - '0');
                else
                    return false; /* more precision than we keep: refuse rather than round */
            if (fdigits == 0)
                return false;
        }
        if (p != s + n - 1)
            return false;
        for (int i = fdigits; i < 3; i++)
            frac *= 10;
        out->percent = true;
        out->value = whole * 1000 + frac;
    } else if (!ml_parse_size(s, &out->value)) {
        return false;
    }
    out->set = true;
    return true;
}

bool ml_limit_crossed(const ml_limit_t *l, int64_t base, int64_t head)
{
    if (!l->set || head <= base)
        return false;
    unsigned __int128 growth = (unsigned __int128)((__int128)head - base);
    if (!l->percent)
        return growth > l->value;
    if (base <= 0)
        return true;
    /* growth / base * 100 > value / 1000, without rounding */
    return growth * 100000 > (unsigned __int128)l->value * (unsigned __int128)base;
}

const char *ml_limit_text(const ml_limit_t *l, char *buf, size_t cap)
{
    if (!l->set)
        snprintf(buf, cap, "none");
    else if (l->percent && l->value % 1000)
        snprintf(buf, cap, "%" PRIu64 ".%03" PRIu64 "%%", l->value / 1000, l->value % 1000);
    else if (l->percent)
        snprintf(buf, cap, "%" PRIu64 "%%", l->value / 1000);
    else if (l->value < 1024)
        snprintf(buf, cap, "%" PRIu64 " B", l->value);
    else {
        char h[32];
        ml_human_size(h, sizeof h, l->value > INT64_MAX ? INT64_MAX : (int64_t)l->value);
        snprintf(buf, cap, "%" PRIu64 " B (%s)", l->value, h);
    }
    return buf;
}
