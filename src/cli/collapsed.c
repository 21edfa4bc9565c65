/* collapsed.c — `memledger export --format collapsed`: one line per call
 * path, `root;caller;...;leaf BYTES`, the input of flamegraph.pl, inferno,
 * and speedscope. Native frames are named by function (or module+offset),
 * Python frames as "function (file:line)", the form py-spy uses. Paths
 * that read the same (one function reached at two offsets) are added
 * together, so each line is a distinct path; lines come largest first.
 * A ';' inside a name would split a frame, so it becomes ':'; control
 * characters become spaces. */
#include "cli/cli_util.h"
#include "cli/export.h"
#include "cli/strmap.h"
#include "common/grow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf_t;

/* Appends t; with `names`, ';' becomes ':' and control characters spaces. */
static void append(sbuf_t *s, const char *t, bool names)
{
    /* one character out for each in, and the NUL (even for an empty t:
     * the caller reads buf) */
    if (!s->oom && !ML_GROW(s->buf, s->cap, s->len + strlen(t) + 1))
        s->oom = true;
    for (; *t && !s->oom; t++) {
        unsigned char c = (unsigned char)*t;
        if (names)
            c = c == ';' ? ':' : c < 0x20 || c == 0x7f ? ' ' : c;
        s->buf[s->len++] = (char)c;
    }
    if (!s->oom)
        s->buf[s->len] = '\0';
}

static void put(sbuf_t *s, const char *t) { append(s, t, true); }

static void frame(sbuf_t *s, const ml_sframe_t *f)
{
    char name[4096], loc[64];
    put(s, cli_frame_name(f, name, sizeof name));
    if (f->kind == ML_FRAME_PYTHON) {
        put(s, " (");
        put(s, f->file ? f->file : "?");
        if (f->line > 0) {
            snprintf(loc, sizeof loc, ":%d", f->line);
            put(s, loc);
        }
        put(s, ")");
    }
}

bool ml_export_collapsed(FILE *out, const ml_export_t *e, char *err, size_t errcap)
{
    ml_strmap_t *paths = ml_strmap_new();
    int64_t *bytes = calloc(e->nrows + 1, sizeof *bytes);
    sbuf_t s = {NULL, 0, 0, false};
    bool ok = paths && bytes;
    for (size_t i = 0; ok && i < e->nrows; i++) {
        const ml_growth_row_t *r = &e->rows[i];
        const ml_sstack_t *st = ml_stackset_stack(e->set, r->stack);
        s.len = 0;
        for (uint32_t k = st->nframes; k-- > 0;) {
            const ml_sframe_t *f = ml_stackset_frame(e->set, st->frames[k]);
            frame(&s, f);
            /* then the functions inlined into it, each an entry of its own,
             * outermost first as the whole path is */
            ml_sframe_t view;
            for (uint32_t i = f->ninlined; i-- > 0;) {
                ml_sframe_inlined(f, i, &view);
                append(&s, ";", false);
                frame(&s, &view);
            }
            if (k)
                append(&s, ";", false);
        }
        if (!st->nframes)
            put(&s, "[stack store full]");
        uint32_t id = s.oom ? UINT32_MAX : ml_strmap_id(paths, s.buf);
        if (id == UINT32_MAX) {
            ok = false;
            break;
        }
        bytes[id] = ml_sat_add(bytes[id], ml_export_bytes(e, r));
    }
    if (!ok) {
        snprintf(err, errcap, "out of memory");
    } else {
        for (uint32_t id = 0; id < ml_strmap_count(paths); id++)
            if (bytes[id] > 0)
                fprintf(out, "%s %" PRId64 "\n", ml_strmap_str(paths, id), bytes[id]);
        if (ferror(out)) {
            snprintf(err, errcap, "write error: %s", strerror(errno));
            ok = false;
        }
    }
    free(s.buf);
    free(bytes);
    ml_strmap_free(paths);
    return ok;
}
