/* collapsed.c — `memledger export --format collapsed`: one line per call
 * path, `root;caller;...;leaf BYTES`, the input of flamegraph.pl, inferno,
 * and speedscope. Native frames are named by function (or module+offset),
 * Python frames as "function (file:line)", the form py-spy uses. Paths
 * that read the same (one function reached at two offsets) are added
 * together, so each line is a distinct path, in the order the rows come
 * (largest first). A ';' inside a name would split a frame, so it becomes
 * ':'; control characters become spaces.
 * Paths are merged in a tree of names, a node per (caller node, name), not
 * as strings: a large process has hundreds of thousands of paths a few
 * kilobytes long each, and each line is written out of the tree as it is
 * printed, so memory stays the size of the tree. */
#include "cli/cli_util.h"
#include "cli/export.h"
#include "cli/strmap.h"
#include "common/grow.h"
#include "common/hashidx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

typedef struct {
    ml_strmap_t *names;  /* a frame's text as it is printed -> name id */
    /* each frame uid's names, outermost first: the frame, then the
     * functions inlined into it (seq[first .. first + count)) */
    uint32_t *first, *count;
    uint32_t *seq;
    size_t nseq, seq_cap;
    /* the tree: node i is name[i] called from parent[i] (NONE: the root) */
    ml_hashidx_t idx;
    uint32_t *parent, *name;
    size_t parent_cap, name_cap;
    /* per node: its place in paths (+1), 0 when no row ended there */
    uint32_t *path_of;
    size_t path_of_cap;
    uint32_t *paths;     /* leaf node of each distinct path, in the order first seen */
    int64_t *bytes;      /* by path */
    size_t npaths, paths_cap, bytes_cap;
    bool oom;
} tree_t;

/* The name id of text `t`, written as it is printed (';' to ':', control
 * characters to spaces). */
static uint32_t name_id(tree_t *t, char *text)
{
    for (unsigned char *c = (unsigned char *)text; *c; c++)
        *c = *c == ';' ? ':' : *c < 0x20 || *c == 0x7f ? ' ' : *c;
    return ml_strmap_id(t->names, text);
}

static uint32_t frame_name(tree_t *t, const ml_sframe_t *f)
{
    char name[4096], text[4096 + 64];
    const char *n = cli_frame_name(f, name, sizeof name);
    if (f->kind == ML_FRAME_PYTHON) {
        if (f->line > 0)
            snprintf(text, sizeof text, "%s (%s:%d)", n, f->file ? f->file : "?", f->line);
        else
            snprintf(text, sizeof text, "%s (%s)", n, f->file ? f->file : "?");
    } else {
        snprintf(text, sizeof text, "%s", n);
    }
    return name_id(t, text);
}

/* Frame uid's names, made on first ask. False when out of memory. */
static bool frame_names(tree_t *t, const ml_export_t *e, uint32_t uid)
{
    if (t->count[uid])
        return true;
    const ml_sframe_t *f = ml_stackset_frame(e->set, uid);
    if (!ML_GROW(t->seq, t->seq_cap, t->nseq + f->ninlined + 1))
        return false;
    size_t at = t->nseq;
    uint32_t id = frame_name(t, f);
    if (id == NONE)
        return false;
    t->seq[at++] = id;
    ml_sframe_t view;
    for (uint32_t i = f->ninlined; i-- > 0;) {
        if ((id = frame_name(t, ml_sframe_inlined(f, i, &view))) == NONE)
            return false;
        t->seq[at++] = id;
    }
    t->first[uid] = (uint32_t)t->nseq;
    t->count[uid] = (uint32_t)(at - t->nseq);
    t->nseq = at;
    return true;
}

/* The node for `name` called from `parent`; NONE when out of memory. */
static uint32_t child(tree_t *t, uint32_t parent, uint32_t name)
{
    size_t before = t->idx.n;
    uint32_t id = ml_hashidx_u64(&t->idx, (uint64_t)parent << 32 | name);
    if (id == NONE || t->idx.n == before)
        return id;
    if (!ML_GROW(t->parent, t->parent_cap, t->idx.n) || !ML_GROW(t->name, t->name_cap, t->idx.n))
        return NONE;
    t->parent[id] = parent;
    t->name[id] = name;
    return id;
}

/* Adds `bytes` to the path of row `r`. */
static bool add_row(tree_t *t, const ml_export_t *e, const ml_growth_row_t *r)
{
    const ml_sstack_t *st = ml_stackset_stack(e->set, r->stack);
    uint32_t node = NONE;
    for (uint32_t k = st->nframes; k-- > 0;) {
        uint32_t uid = st->frames[k];
        if (!frame_names(t, e, uid))
            return false;
        for (uint32_t j = 0; j < t->count[uid]; j++)
            if ((node = child(t, node, t->seq[t->first[uid] + j])) == NONE)
                return false;
    }
    if (!st->nframes) {
        char full[] = "[stack store full]";
        uint32_t id = name_id(t, full);
        if (id == NONE || (node = child(t, NONE, id)) == NONE)
            return false;
    }
    if (!ML_GROW(t->path_of, t->path_of_cap, (size_t)node + 1))
        return false;
    if (!t->path_of[node]) {
        if (!ML_GROW(t->paths, t->paths_cap, t->npaths + 1) || !ML_GROW(t->bytes, t->bytes_cap, t->npaths + 1))
            return false;
        t->paths[t->npaths++] = node;
        t->path_of[node] = (uint32_t)t->npaths;
    }
    int64_t *b = &t->bytes[t->path_of[node] - 1];
    *b = ml_sat_add(*b, ml_export_bytes(e, r));
    return true;
}

/* Writes path p's line: its names from the root, then its bytes. */
static bool print_path(FILE *out, const tree_t *t, size_t p, uint32_t **chain, size_t *cap)
{
    size_t n = 0;
    for (uint32_t x = t->paths[p]; x != NONE; x = t->parent[x]) {
        if (!ML_GROW(*chain, *cap, n + 1))
            return false;
        (*chain)[n++] = x;
    }
    while (n-- > 0) {
        fputs(ml_strmap_str(t->names, t->name[(*chain)[n]]), out);
        if (n)
            fputc(';', out);
    }
    fprintf(out, " %" PRId64 "\n", t->bytes[p]);
    return true;
}

bool ml_export_collapsed(FILE *out, const ml_export_t *e, char *err, size_t errcap)
{
    size_t nframes = ml_stackset_nframes(e->set);
    tree_t t = {.names = ml_strmap_new()};
    t.first = calloc(nframes + 1, sizeof *t.first);
    t.count = calloc(nframes + 1, sizeof *t.count);
    bool ok = t.names && t.first && t.count;
    for (size_t i = 0; ok && i < e->nrows; i++)
        ok = add_row(&t, e, &e->rows[i]);
    uint32_t *chain = NULL;
    size_t chain_cap = 0;
    for (size_t p = 0; ok && p < t.npaths; p++)
        if (t.bytes[p] > 0)
            ok = print_path(out, &t, p, &chain, &chain_cap);
    if (!ok)
        snprintf(err, errcap, "out of memory");
    else if (ferror(out)) {
        snprintf(err, errcap, "write error: %s", strerror(errno));
        ok = false;
    }
    free(chain);
    free(t.first);
    free(t.count);
    free(t.seq);
    ml_hashidx_free(&t.idx);
    free(t.parent);
    free(t.name);
    free(t.path_of);
    free(t.paths);
    free(t.bytes);
    ml_strmap_free(t.names);
    return ok;
}
