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
    /* the messages, each array allocated once at its final size */
    sample_t *samples;
    sample_t **sample_ptrs;
    uint64_t *loc_ids;
    int64_t *values;
    label_t *labels;
    label_t **label_ptrs;
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
    free(b->samples);
    free(b->sample_ptrs);
    free(b->loc_ids);
    free(b->values);
    free(b->labels);
    free(b->label_ptrs);
    free(b->locs);
    free(b->loc_ptrs);
    free(b->lines);
    free(b->line_ptrs);
    free(b->funcs_v);
    free(b->func_ptrs);
    free(b->maps_v);
    free(b->map_ptrs);
}

/* gzip of `data` into `out`, in one stream. */
static bool gzip_to(FILE *out, const uint8_t *data, size_t len, char *err, size_t errcap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 window bits, +16: a gzip header and trailer rather than zlib's */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(err, errcap, "zlib: cannot start compression");
        return false;
    }
    uint8_t buf[1 << 16];
    z.next_in = (Bytef *)data;
    int rc;
    size_t left = len;
    do {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        z.next_in = (Bytef *)data + (len - left);
        z.avail_in = chunk;
        left -= chunk;
        int flush = left ? Z_NO_FLUSH : Z_FINISH;
        do {
            z.next_out = buf;
            z.avail_out = sizeof buf;
            rc = deflate(&z, flush);
            size_t have = sizeof buf - z.avail_out;
            if (have && fwrite(buf, 1, have, out) != have) {
                deflateEnd(&z);
                snprintf(err, errcap, "write error: %s", strerror(errno));
                return false;
            }
        } while (z.avail_out == 0);
    } while (left);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        snprintf(err, errcap, "zlib: compression did not finish (%d)", rc);
        return false;
    }
    return true;
}

bool ml_export_pprof(FILE *out, const ml_export_t *e, char *err, size_t errcap)
{
    builder_t b;
    memset(&b, 0, sizeof b);
    size_t nframes = ml_stackset_nframes(e->set), nrefs = 0, nlines = 0;
    for (uint32_t uid = 0; uid < nframes; uid++)
        nlines += ml_stackset_frame(e->set, uid)->ninlined + 1;
    for (size_t i = 0; i < e->nrows; i++)
        nrefs += ml_stackset_stack(e->set, e->rows[i].stack)->nframes;
    b.strings = ml_strmap_new();
    b.funcs = ml_strmap_new();
    b.maps = ml_strmap_new();
    b.loc_of = calloc(nframes + 1, sizeof *b.loc_of);
    b.samples = calloc(e->nrows + 1, sizeof *b.samples);
    b.sample_ptrs = calloc(e->nrows + 1, sizeof *b.sample_ptrs);
    b.loc_ids = calloc(nrefs + 1, sizeof *b.loc_ids);
    b.values = calloc(e->nrows * NTYPES + 1, sizeof *b.values);
    b.labels = calloc(e->nrows + 1, sizeof *b.labels);
    b.label_ptrs = calloc(e->nrows + 1, sizeof *b.label_ptrs);
    b.locs = calloc(nframes + 1, sizeof *b.locs);
    b.loc_ptrs = calloc(nframes + 1, sizeof *b.loc_ptrs);
    b.lines = calloc(nlines + 1, sizeof *b.lines);
    b.line_ptrs = calloc(nlines + 1, sizeof *b.line_ptrs);
    bool ok = b.strings && b.funcs && b.maps && b.loc_of && b.samples && b.sample_ptrs && b.loc_ids &&
              b.values && b.labels && b.label_ptrs && b.locs && b.loc_ptrs && b.lines && b.line_ptrs;
    uint8_t *packed = NULL;
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

    uint64_t *ids = b.loc_ids;
    for (size_t i = 0; i < e->nrows; i++) {
        const ml_growth_row_t *r = &e->rows[i];
        const ml_sstack_t *st = ml_stackset_stack(e->set, r->stack);
        sample_t *s = &b.samples[i];
        perftools__profiles__sample__init(s);
        s->location_id = ids;
        for (uint32_t k = 0; k < st->nframes; k++)
            *ids++ = location_of(&b, e, st->frames[k]);
        s->n_location_id = st->nframes;
        s->value = &b.values[i * NTYPES];
        s->value[0] = ml_export_bytes(e, r);
        s->value[1] = ml_export_count(e, r);
        s->value[2] = ml_export_alloc_bytes(e, r);
        s->value[3] = ml_export_alloc_count(e, r);
        s->n_value = NTYPES;
        label_t *lb = &b.labels[i];
        perftools__profiles__label__init(lb);
        lb->key = domain_key;
        lb->str = str(&b, ml_domain_name(r->domain));
        b.label_ptrs[i] = lb;
        s->label = &b.label_ptrs[i];
        s->n_label = 1;
        b.sample_ptrs[i] = s;
    }
    b.func_ptrs = calloc(b.nfuncs + 1, sizeof *b.func_ptrs);
    b.map_ptrs = calloc(b.nmaps + 1, sizeof *b.map_ptrs);
    if (!b.func_ptrs || !b.map_ptrs)
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

    profile_t p;
    perftools__profiles__profile__init(&p);
    p.n_sample_type = NTYPES;
    p.sample_type = vtp;
    p.n_sample = e->nrows;
    p.sample = b.sample_ptrs;
    p.n_mapping = b.nmaps;
    p.mapping = b.map_ptrs;
    p.n_location = b.nlocs;
    p.location = b.loc_ptrs;
    p.n_function = b.nfuncs;
    p.function = b.func_ptrs;
    p.time_nanos = (int64_t)(e->head->time * 1e9);
    if (e->base && e->head->time > e->base->time)
        p.duration_nanos = (int64_t)((e->head->time - e->base->time) * 1e9);
    p.period_type = &period;
    p.period = (int64_t)e->head->sample_bytes;
    p.n_comment = ncomments;
    p.comment = comments;
    p.default_sample_type = vt[0].type;
    p.n_string_table = ml_strmap_count(b.strings);
    p.string_table = ml_strmap_strs(b.strings);
    if (b.oom) {
        snprintf(err, errcap, "out of memory");
        builder_free(&b);
        return false;
    }

    size_t len = perftools__profiles__profile__get_packed_size(&p);
    packed = malloc(len + 1);
    if (!packed) {
        snprintf(err, errcap, "out of memory (%zu bytes of profile)", len);
        builder_free(&b);
        return false;
    }
    perftools__profiles__profile__pack(&p, packed);
    ok = gzip_to(out, packed, len, err, errcap);
    free(packed);
    builder_free(&b);
    return ok;
}
