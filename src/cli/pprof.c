/* pprof.c — `memledger export --format pprof`: a gzipped profile.proto
 * (proto/profile.proto; encoded by protobuf-c, gzipped by zlib) that
 * `go tool pprof`, Grafana Pyroscope and Parca read.
 *
 * What goes where:
 *   sample types  inuse_space/bytes, inuse_objects/count, alloc_space/bytes,
 *                 alloc_objects/count; inuse_space is the default. With a
 *                 base they hold head minus base, else the head's figures.
 *   samples       one per stack, leaf (innermost frame) first, labelled
 *                 with its domain ("domain" = malloc, python, cuda, ...).
 *   locations     one per distinct frame, each with one line, or, where
 *                 functions were inlined at its address, a line for each
 *                 of them, innermost first, then the frame's own line
 *                 last (profile.proto: the last line is the caller the
 *                 others were inlined into).
 *   functions     one per (name, file): native frames by symbol (or
 *                 "module+0xoffset" when it had none), Python frames by
 *                 function with their .py file and line.
 *   mappings      one per module, with its path and build-id. Addresses
 *                 are synthetic but faithful to the module: mapping k spans
 *                 [k<<40, (k+1)<<40) and a frame's address is memory_start
 *                 plus its offset in the module (the ELF virtual address),
 *                 so address - memory_start is what memledger recorded.
 *                 Every mapping says has_functions, so pprof never tries
 *                 to symbolize what is already named.
 *   Python frames and frames outside any module have mapping 0 (none). */
#include "cli/cli_util.h"
#include "cli/export.h"
#include "profile.pb-c.h"
#include "cli/strmap.h"
#include "common/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef Perftools__Profiles__Profile profile_t;
typedef Perftools__Profiles__Sample sample_t;
typedef Perftools__Profiles__Location location_t;
typedef Perftools__Profiles__Line line_t;
typedef Perftools__Profiles__Function function_t;
typedef Perftools__Profiles__Mapping mapping_t;
typedef Perftools__Profiles__ValueType vtype_t;
typedef Perftools__Profiles__Label label_t;

#define NTYPES 4

typedef struct {
    ml_strmap_t *strings;
    ml_strmap_t *funcs;    /* "name\tfile" -> function index */
    ml_strmap_t *maps;     /* "build-id\tpath" -> mapping index */
    uint32_t *loc_of;      /* frame uid -> location id (1-based), 0 none yet */
    bool oom;
    /* the tables, each array allocated once at its final size (samples
     * are packed one at a time, see ml_export_pprof) */
    location_t *locs;
    location_t **loc_ptrs;
    line_t *lines;         /* every location's lines, one after another */
    line_t **line_ptrs;
    size_t nlocs, nlines;
    function_t *funcs_v;
    function_t **func_ptrs;
    size_t nfuncs, funcs_cap;
    mapping_t *maps_v;
    mapping_t **map_ptrs;
    size_t nmaps, maps_cap;
} builder_t;

static int64_t str(builder_t *b, const char *s)
{
    uint32_t id = ml_strmap_id(b->strings, s ? s : "");
    if (id == UINT32_MAX)
        b->oom = true;
    return id == UINT32_MAX ? 0 : (int64_t)id;
}

static uint64_t mapping_of(builder_t *b, const ml_sframe_t *f)
{
    char key[8192];
    snprintf(key, sizeof key, "%s\t%s", f->build_id ? f->build_id : "", f->module);
    uint32_t id = ml_strmap_id(b->maps, key);
    if (id == UINT32_MAX) {
        b->oom = true;
        return 0;
    }
    if (id == b->nmaps) {
        if (!ML_GROW(b->maps_v, b->maps_cap, b->nmaps + 1)) {
            b->oom = true;
            return 0;
        }
        mapping_t *m = &b->maps_v[b->nmaps++];
        perftools__profiles__mapping__init(m);
        m->id = id + 1;
        m->memory_start = (uint64_t)(id + 1) << 40;
        m->memory_limit = (uint64_t)(id + 2) << 40;
        m->filename = str(b, f->module);
        m->build_id = str(b, f->build_id);
        m->has_functions = true;
        m->has_filenames = true;
        m->has_line_numbers = true;
    }
    return id + 1;
}

static uint64_t function_of(builder_t *b, const ml_sframe_t *f)
{
    char name[4096], key[8192];
    cli_frame_name(f, name, sizeof name);
    snprintf(key, sizeof key, "%s\t%s", name, f->file ? f->file : "");
    uint32_t id = ml_strmap_id(b->funcs, key);
    if (id == UINT32_MAX) {
        b->oom = true;
        return 0;
    }
    if (id == b->nfuncs) {
        if (!ML_GROW(b->funcs_v, b->funcs_cap, b->nfuncs + 1)) {
            b->oom = true;
            return 0;
        }
        function_t *fn = &b->funcs_v[b->nfuncs++];
        perftools__profiles__function__init(fn);
        fn->id = id + 1;
        fn->name = str(b, name);
        fn->system_name = fn->name;
        fn->filename = str(b, f->file);
    }
    return id + 1;
}

static uint64_t location_of(builder_t *b, const ml_export_t *e, uint32_t uid)
{
    if (b->loc_of[uid])
        return b->loc_of[uid];
    const ml_sframe_t *f = ml_stackset_frame(e->set, uid);
    location_t *l = &b->locs[b->nlocs];
    perftools__profiles__location__init(l);
    l->id = b->nlocs + 1;
    if (f->kind == ML_FRAME_NATIVE && f->module) {
        l->mapping_id = mapping_of(b, f);
        l->address = ((uint64_t)l->mapping_id << 40) + f->offset;
    } else if (f->kind == ML_FRAME_NATIVE) {
        l->address = f->offset; /* outside any module: the address itself */
    }
    l->line = &b->line_ptrs[b->nlines];
    ml_sframe_t view;
    for (uint32_t k = 0; k <= f->ninlined; k++) {
        const ml_sframe_t *named = f;
        if (k < f->ninlined)
            named = ml_sframe_inlined(f, k, &view);
        line_t *ln = &b->lines[b->nlines];
        perftools__profiles__line__init(ln);
        ln->function_id = function_of(b, named);
        ln->line = named->line;
        b->line_ptrs[b->nlines++] = ln;
    }
    l->n_line = f->ninlined + 1;
    b->loc_ptrs[b->nlocs] = l;
    b->nlocs++;
    return b->loc_of[uid] = (uint32_t)l->id;
}

static void builder_free(builder_t *b)
{
    ml_strmap_free(b->strings);
    ml_strmap_free(b->funcs);
    ml_strmap_free(b->maps);
    free(b->loc_of);
    free(b->locs);
    free(b->loc_ptrs);
    free(b->lines);
    free(b->line_ptrs);
    free(b->funcs_v);
    free(b->func_ptrs);
    free(b->maps_v);
    free(b->map_ptrs);
}

/* A gzip stream into a FILE, fed piece by piece. */
typedef struct {
    z_stream z;
    FILE *out;
    bool failed;
    char *err;
    size_t errcap;
} gz_out_t;

static bool gz_start(gz_out_t *g, FILE *out, char *err, size_t errcap)
{
    memset(g, 0, sizeof *g);
    g->out = out;
    g->err = err;
    g->errcap = errcap;
    /* 15 window bits, +16: a gzip header and trailer rather than zlib's */
    if (deflateInit2(&g->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(err, errcap, "zlib: cannot start compression");
        return false;
    }
    return true;
}

/* Compresses `len` bytes (Z_FINISH: the last, and ends the stream). */
static bool gz_put(gz_out_t *g, const void *data, size_t len, int flush)
{
    uint8_t buf[1 << 16];
    const uint8_t *p = data;
    int rc = Z_OK;
    do {
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        g->z.next_in = (Bytef *)p;
        g->z.avail_in = chunk;
        p += chunk;
        len -= chunk;
        int f = len ? Z_NO_FLUSH : flush;
        do {
            g->z.next_out = buf;
            g->z.avail_out = sizeof buf;
            rc = deflate(&g->z, f);
            size_t have = sizeof buf - g->z.avail_out;
            if (have && fwrite(buf, 1, have, g->out) != have) {
                snprintf(g->err, g->errcap, "write error: %s", strerror(errno));
                return !(g->failed = true);
            }
        } while (g->z.avail_out == 0);
    } while (len);
    if (flush == Z_FINISH && rc != Z_STREAM_END) {
        snprintf(g->err, g->errcap, "zlib: compression did not finish (%d)", rc);
        return !(g->failed = true);
    }
    return true;
}

/* Packs `p` into *buf (grown as needed) and compresses it. */
static bool gz_message(gz_out_t *g, const profile_t *p, uint8_t **buf, size_t *cap, int flush)
{
    size_t len = perftools__profiles__profile__get_packed_size(p);
    if (!ML_GROW(*buf, *cap, len + 1)) {
        snprintf(g->err, g->errcap, "out of memory (%zu bytes of profile)", len);
        return false;
    }
    perftools__profiles__profile__pack(p, *buf);
    return gz_put(g, *buf, len, flush);
}

/* Sample `s` as the Profile's field 2 (a length-delimited submessage):
 * tag, length, bytes, exactly as packing it inside the profile writes it. */
static bool gz_sample(gz_out_t *g, const sample_t *s, uint8_t **buf, size_t *cap)
{
    size_t len = perftools__profiles__sample__get_packed_size(s);
    if (!ML_GROW(*buf, *cap, len + 11)) {
        snprintf(g->err, g->errcap, "out of memory");
        return false;
    }
    uint8_t *q = *buf;
    *q++ = 2 << 3 | 2;
    for (size_t v = len; ; v >>= 7) {
        *q++ = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
        if (v < 0x80)
            break;
    }
    q += perftools__profiles__sample__pack(s, q);
    return gz_put(g, *buf, (size_t)(q - *buf), Z_NO_FLUSH);
}

/* The profile is written in three parts that together are the bytes
 * protobuf-c would pack for the whole message (fields go out in number
 * order, and a repeated message field is its elements one after another):
 * field 1 (the sample types), the samples (field 2) one at a time, then
 * every other field. The locations, functions and strings the samples
 * name are made first, in a pass of their own, so no sample's list of
 * locations is kept: a large process has tens of millions. */
bool ml_export_pprof(FILE *out, const ml_export_t *e, char *err, size_t errcap)
{
    builder_t b;
    memset(&b, 0, sizeof b);
    size_t nframes = ml_stackset_nframes(e->set), nlines = 0, maxdepth = 0;
    for (uint32_t uid = 0; uid < nframes; uid++)
        nlines += ml_stackset_frame(e->set, uid)->ninlined + 1;
    b.strings = ml_strmap_new();
    b.funcs = ml_strmap_new();
    b.maps = ml_strmap_new();
    b.loc_of = calloc(nframes + 1, sizeof *b.loc_of);
    b.locs = calloc(nframes + 1, sizeof *b.locs);
    b.loc_ptrs = calloc(nframes + 1, sizeof *b.loc_ptrs);
    b.lines = calloc(nlines + 1, sizeof *b.lines);
    b.line_ptrs = calloc(nlines + 1, sizeof *b.line_ptrs);
    bool ok = b.strings && b.funcs && b.maps && b.loc_of && b.locs && b.loc_ptrs && b.lines && b.line_ptrs;
    if (!ok) {
        snprintf(err, errcap, "out of memory");
        builder_free(&b);
        return false;
    }
    str(&b, ""); /* the format wants "" at index 0 */

    static const char *const types[NTYPES][2] = {
        {"inuse_space", "bytes"}, {"inuse_objects", "count"}, {"alloc_space", "bytes"}, {"alloc_objects", "count"}};
    vtype_t vt[NTYPES], *vtp[NTYPES], period;
    for (int i = 0; i < NTYPES; i++) {
        perftools__profiles__value_type__init(&vt[i]);
        vt[i].type = str(&b, types[i][0]);
        vt[i].unit = str(&b, types[i][1]);
        vtp[i] = &vt[i];
    }
    perftools__profiles__value_type__init(&period);
    period.type = str(&b, "space");
    period.unit = str(&b, "bytes");
    int64_t domain_key = str(&b, "domain");

    /* the tables, in the order the samples name them */
    for (size_t i = 0; i < e->nrows; i++) {
        const ml_sstack_t *st = ml_stackset_stack(e->set, e->rows[i].stack);
        for (uint32_t k = 0; k < st->nframes; k++)
            location_of(&b, e, st->frames[k]);
        str(&b, ml_domain_name(e->rows[i].domain));
        if (st->nframes > maxdepth)
            maxdepth = st->nframes;
    }
    b.func_ptrs = calloc(b.nfuncs + 1, sizeof *b.func_ptrs);
    b.map_ptrs = calloc(b.nmaps + 1, sizeof *b.map_ptrs);
    uint64_t *ids = calloc(maxdepth + 1, sizeof *ids);
    if (!b.func_ptrs || !b.map_ptrs || !ids)
        b.oom = true;
    for (size_t i = 0; !b.oom && i < b.nfuncs; i++)
        b.func_ptrs[i] = &b.funcs_v[i];
    for (size_t i = 0; !b.oom && i < b.nmaps; i++)
        b.map_ptrs[i] = &b.maps_v[i];

    char comment[8192];
    int64_t comments[2];
    size_t ncomments = 0;
    snprintf(comment, sizeof comment, "memledger export of %s (pid %ld, seq %ld)", e->head->path, e->head->pid,
             e->head->seq);
    comments[ncomments++] = str(&b, comment);
    if (e->base) {
        snprintf(comment, sizeof comment, "values are growth since %s (pid %ld, seq %ld)", e->base->path,
                 e->base->pid, e->base->seq);
        comments[ncomments++] = str(&b, comment);
    }
    if (b.oom) {
        snprintf(err, errcap, "out of memory");
        free(ids);
        builder_free(&b);
        return false;
    }

    profile_t types_only, rest;
    perftools__profiles__profile__init(&types_only);
    types_only.n_sample_type = NTYPES;
    types_only.sample_type = vtp;
    perftools__profiles__profile__init(&rest);
    rest.n_mapping = b.nmaps;
    rest.mapping = b.map_ptrs;
    rest.n_location = b.nlocs;
    rest.location = b.loc_ptrs;
    rest.n_function = b.nfuncs;
    rest.function = b.func_ptrs;
    rest.time_nanos = (int64_t)(e->head->time * 1e9);
    if (e->base && e->head->time > e->base->time)
        rest.duration_nanos = (int64_t)((e->head->time - e->base->time) * 1e9);
    rest.period_type = &period;
    rest.period = (int64_t)e->head->sample_bytes;
    rest.n_comment = ncomments;
    rest.comment = comments;
    rest.default_sample_type = vt[0].type;
    rest.n_string_table = ml_strmap_count(b.strings);
    rest.string_table = ml_strmap_strs(b.strings);

    uint8_t *buf = NULL;
    size_t cap = 0;
    gz_out_t g;
    ok = gz_start(&g, out, err, errcap) && gz_message(&g, &types_only, &buf, &cap, Z_NO_FLUSH);
    for (size_t i = 0; ok && i < e->nrows; i++) {
        const ml_growth_row_t *r = &e->rows[i];
        const ml_sstack_t *st = ml_stackset_stack(e->set, r->stack);
        for (uint32_t k = 0; k < st->nframes; k++)
            ids[k] = location_of(&b, e, st->frames[k]); /* made above: a lookup */
        int64_t values[NTYPES] = {ml_export_bytes(e, r), ml_export_count(e, r), ml_export_alloc_bytes(e, r),
                                  ml_export_alloc_count(e, r)};
        label_t lb, *lbp = &lb;
        perftools__profiles__label__init(&lb);
        lb.key = domain_key;
        lb.str = str(&b, ml_domain_name(r->domain));
        sample_t s;
        perftools__profiles__sample__init(&s);
        s.n_location_id = st->nframes;
        s.location_id = ids;
        s.n_value = NTYPES;
        s.value = values;
        s.n_label = 1;
        s.label = &lbp;
        ok = gz_sample(&g, &s, &buf, &cap);
    }
    ok = ok && gz_message(&g, &rest, &buf, &cap, Z_FINISH);
    deflateEnd(&g.z);
    free(buf);
    free(ids);
    builder_free(&b);
    return ok;
}
