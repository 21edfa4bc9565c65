/* snapshot_read.c — the snapshot parser (see snapshot_read.h).
 * Line-oriented and strict: every number is checked, every reference is
 * bounds-checked, lines are capped in length, and the closing `end` record
 * must agree with what was read, so truncation is always noticed. A
 * gzip-compressed file (version 2 writes one) is inflated into a buffer
 * whose lines are parsed in place; plain text is read with getline: the
 * parser sees lines either way. */
#include "cli/snapshot_read.h"
#include "common/grow.h"

#include <errno.h>
#include <zlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE (64u << 20)
/* Functions inlined at one address: real chains are a few deep. */
#define MAX_INLINED 1024u
/* The widest record the writer makes is the command line: 8 KiB of
 * /proc/self/cmdline, so up to 8,192 (empty) arguments plus the key. */
#define MAX_FIELDS 16384

static const char *const domain_names[] = ML_DOMAIN_NAMES;

int ml_domain_index(const char *name)
{
    for (int i = 0; i < ML_DOM_COUNT; i++)
        if (strcmp(domain_names[i], name) == 0)
            return i;
    return -1;
}

const char *ml_domain_name(int i) { return i >= 0 && i < ML_DOM_COUNT ? domain_names[i] : "?"; }

bool ml_domain_matches(int domain, const char *filter)
{
    if (!filter)
        return true;
    const char *name = ml_domain_name(domain);
    size_t n = strlen(filter);
    return strncmp(name, filter, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

bool ml_domain_filter_valid(const char *filter)
{
    for (int i = 0; i < ML_DOM_COUNT; i++)
        if (ml_domain_matches(i, filter))
            return true;
    return false;
}

typedef struct {
    const char *path;
    unsigned long line;
    char *err;
    size_t errcap;
} ctx_t;

static bool fail(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(ctx_t *c, const char *fmt, ...)
{
    int n = snprintf(c->err, c->errcap, "%s:%lu: ", c->path, c->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < c->errcap)
        vsnprintf(c->err + n, c->errcap - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

/* Splits a line of len bytes at tabs in place; returns the number of
 * fields, max + 1 when there are more. *nul tells whether the line holds
 * a NUL byte, which the caller refuses whatever the fields: one pass over
 * the line looks for both (most lines of a large snapshot are short, and
 * a library call per line cost more than the line). */
static size_t split(char *line, size_t len, char **f, size_t max, bool *nul)
{
    size_t n = 0;
    bool more = false, zero = false;
    f[n++] = line;
    for (char *p = line, *end = line + len; p < end; p++) {
        if (*p == '\t') {
            *p = '\0';
            if (n < max)
                f[n++] = p + 1;
            else
                more = true;
        } else if (*p == '\0') {
            zero = true;
        }
    }
    *nul = zero;
    return more ? max + 1 : n;
}

/* The records the parser knows, by their first field. */
enum record { REC_OTHER, REC_MODULE, REC_FRAME, REC_INLINE, REC_NODE, REC_S, REC_STACK, REC_END };

/* What a record's first field names: the whole field must match. Looked
 * at a character first, since nodes and stacks are most of the lines. */
static enum record record_kind(const char *k)
{
    switch (k[0]) {
    case 'N':
    case 'n':
        return k[1] == '\0' ? REC_NODE : REC_OTHER;
    case 's':
        return k[1] == '\0' ? REC_S : strcmp(k, "stack") == 0 ? REC_STACK : REC_OTHER;
    case 'm':
        return strcmp(k, "module") == 0 ? REC_MODULE : REC_OTHER;
    case 'f':
        return strcmp(k, "frame") == 0 ? REC_FRAME : REC_OTHER;
    case 'i':
        return strcmp(k, "inline") == 0 ? REC_INLINE : REC_OTHER;
    case 'e':
        return strcmp(k, "end") == 0 ? REC_END : REC_OTHER;
    default:
        return REC_OTHER;
    }
}

/* Undoes ml_out_field's escaping. "-" alone is NULL. Returns false on a bad
 * escape. The result is a fresh string. */
bool ml_field_unescape(const char *s, char **out)
{
    if (strcmp(s, "-") == 0) {
        *out = NULL;
        return true;
    }
    size_t n = strlen(s);
    char *d = malloc(n + 1), *q = d;
    if (!d)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p != '\\') {
            *q++ = *p;
            continue;
        }
        switch (*++p) {
        case 't': *q++ = '\t'; break;
        case 'n': *q++ = '\n'; break;
        case 'r': *q++ = '\r'; break;
        case '\\': *q++ = '\\'; break;
        case '-': *q++ = '-'; break;
        default:
            free(d);
            return false;
        }
    }
    *q = '\0';
    *out = d;
    return true;
}

bool ml_field_u64(const char *s, uint64_t *v, int base)
{
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return false;
    if (base == 10) {
        /* by hand: most of a large snapshot's fields are short decimals */
        uint64_t x = 0;
        for (; *s; s++) {
            unsigned d = (unsigned)(*s - '0');
            if (d > 9 || __builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, d, &x))
                return false;
        }
        *v = x;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, base);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

static bool num_i64(const char *s, int64_t *v)
{
    uint64_t u;
    if (!ml_field_u64(s, &u, 10) || u > INT64_MAX)
        return false;
    *v = (int64_t)u;
    return true;
}

static bool field_str(ctx_t *c, const char *s, char **out, const char *what)
{
    if (!ml_field_unescape(s, out))
        return fail(c, "bad escape in %s", what);
    return true;
}

typedef struct {
    size_t headers, modules, frames, stacks, nodes;
    uint32_t seen_keys, seen_domains; /* header lines that may appear once */
    /* version 2's nodes: parent and frame of node i (node 0 is the root) */
    uint32_t *parent, *frame, *depth;
    size_t nnodes;
} caps_t;

/* Header keys with one value per snapshot: a second line of one is an
 * error, not a silent overwrite (which also leaked the first value). */
static const char *const single_keys[] = {"pid", "ppid", "exe", "cmdline", "time", "seq", "trigger",
                                          "rss", "peak_rss", "sample_bytes", "depth", "stacks", "addresses", "store"};

static bool first_time(ctx_t *c, caps_t *cap, const char *k)
{
    for (size_t i = 0; i < sizeof single_keys / sizeof *single_keys; i++)
        if (strcmp(k, single_keys[i]) == 0) {
            if (cap->seen_keys & (1u << i))
                return fail(c, "second '%s' header line", k);
            cap->seen_keys |= 1u << i;
        }
    return true;
}

/* A time as the writer prints it: seconds.nanoseconds, digits only. */
static bool parse_time(const char *s, double *out)
{
    size_t digits = strspn(s, "0123456789");
    if (!digits || (s[digits] && (s[digits] != '.' || !s[digits + 1] ||
                                  s[digits + 1 + strspn(s + digits + 1, "0123456789")])))
        return false;
    *out = strtod(s, NULL);
    return true;
}

static bool parse_module(ctx_t *c, ml_snapshot_t *s, caps_t *cap, char **f, size_t n)
{
    if (n != 7)
        return fail(c, "module record has %zu fields, expected 7", n);
    uint64_t idx;
    if (!ml_field_u64(f[1], &idx, 10) || idx != s->nmodules)
        return fail(c, "module number '%s' out of sequence", f[1]);
    if (!ML_GROW(s->modules, cap->modules, s->nmodules + 1))
        return fail(c, "out of memory");
    /* counted at once: whatever is filled in is freed with the snapshot,
     * even when a later field of the record is refused */
    ml_rmodule_t *m = &s->modules[s->nmodules++];
    m->index = (uint32_t)idx;
    if (!ml_field_u64(f[3], &m->bias, 16) || !ml_field_u64(f[4], &m->size, 16))
        return fail(c, "bad module address or size");
    if (strcmp(f[5], "loaded") && strcmp(f[5], "unloaded"))
        return fail(c, "module state must be loaded or unloaded, not '%s'", f[5]);
    m->unloaded = f[5][0] == 'u';
    for (const char *p = f[2]; strcmp(f[2], "-") && *p; p++)
        if (!strchr("0123456789abcdef", *p))
            return fail(c, "build-id '%s' is not lower-case hex", f[2]);
    return field_str(c, f[2], &m->build_id, "build-id") && field_str(c, f[6], &m->path, "module path");
}

static bool parse_frame(ctx_t *c, ml_snapshot_t *s, caps_t *cap, char **f, size_t n)
{
    if (n != 8)
        return fail(c, "frame record has %zu fields, expected 8", n);
    uint64_t idx;
    if (!ml_field_u64(f[1], &idx, 10) || idx != s->nframes)
        return fail(c, "frame number '%s' out of sequence", f[1]);
    if (!ML_GROW(s->frames, cap->frames, s->nframes + 1))
        return fail(c, "out of memory");
    ml_rframe_t *fr = &s->frames[s->nframes++]; /* counted at once, as modules */
    fr->module = -1;
    fr->mark = false;
    if (strcmp(f[2], "native") == 0) {
        fr->kind = ML_FRAME_NATIVE;
        if (strcmp(f[3], "-") != 0) {
            uint64_t mi;
            if (!ml_field_u64(f[3], &mi, 10) || mi >= s->nmodules)
                return fail(c, "frame refers to module '%s', which is not defined before it", f[3]);
            fr->module = (int32_t)mi;
        }
        if (!ml_field_u64(f[4], &fr->offset, 16))
            return fail(c, "bad frame offset '%s'", f[4]);
    } else if (strcmp(f[2], "python") == 0) {
        fr->kind = ML_FRAME_PYTHON;
    } else if (strcmp(f[2], "mark") == 0 && s->version >= 2) {
        /* not a frame: the writer's note in a stack ("frames left out"),
         * shown as a native frame of no module named by the note */
        fr->kind = ML_FRAME_NATIVE;
        fr->mark = true;
    } else {
        return fail(c, "frame kind must be native or python, not '%s'", f[2]);
    }
    if (!field_str(c, f[5], &fr->function, "function") || !field_str(c, f[6], &fr->file, "file"))
        return false;
    if (strcmp(f[7], "-") != 0) {
        uint64_t line;
        if (!ml_field_u64(f[7], &line, 10) || line > INT32_MAX)
            return fail(c, "bad line number '%s'", f[7]);
        fr->line = (int)line;
    }
    return true;
}

/* "inline<TAB>frame<TAB>function<TAB>file<TAB>line": a function inlined at
 * the address of the frame just read, innermost first. Anywhere else it
 * is an error: a reader that lost track of which frame it belongs to would
 * name the wrong code. */
static bool parse_inline(ctx_t *c, ml_snapshot_t *s, char **f, size_t n)
{
    if (n != 5)
        return fail(c, "inline record has %zu fields, expected 5", n);
    uint64_t idx;
    if (!ml_field_u64(f[1], &idx, 10) || !s->nframes || idx != s->nframes - 1)
        return fail(c, "inline record for frame '%s' does not follow that frame", f[1]);
    ml_rframe_t *fr = &s->frames[idx];
    if (fr->kind != ML_FRAME_NATIVE || fr->mark)
        return fail(c, "inline record for frame %s, which is not a native frame", f[1]);
    if (fr->ninlined >= MAX_INLINED)
        return fail(c, "too many inline records for frame %s", f[1]);
    ml_rinlined_t *v = realloc(fr->inlined, (fr->ninlined + 1) * sizeof *v);
    if (!v)
        return fail(c, "out of memory");
    fr->inlined = v;
    ml_rinlined_t *in = &v[fr->ninlined++];
    *in = (ml_rinlined_t){NULL, NULL, 0};
    if (!field_str(c, f[2], &in->function, "function") || !field_str(c, f[3], &in->file, "file"))
        return false;
    if (strcmp(f[4], "-") != 0) {
        uint64_t line;
        if (!ml_field_u64(f[4], &line, 10) || line > INT32_MAX)
            return fail(c, "bad line number '%s'", f[4]);
        in->line = (int)line;
    }
    return true;
}

/* Version 2's nodes, numbered 1, 2, ... in order: "N<TAB>frame" (its
 * parent is the node before it) or "n<TAB>frame<TAB>back" (its parent is
 * `back` nodes before it; as far back as its own number: the root). */
static bool parse_node(ctx_t *c, ml_snapshot_t *s, caps_t *cap, char **f, size_t n)
{
    bool chain = f[0][0] == 'N';
    if (n != (chain ? 2u : 3u))
        return fail(c, "node record has %zu fields, expected %d", n, chain ? 2 : 3);
    uint64_t id = cap->nnodes + 1, frame, back = 1;
    if (id > UINT32_MAX - 1)
        return fail(c, "too many nodes");
    if (!ml_field_u64(f[1], &frame, 10) || frame >= s->nframes)
        return fail(c, "node %llu refers to frame '%s', which is not defined before it", (unsigned long long)id, f[1]);
    if (!chain && (!ml_field_u64(f[2], &back, 10) || back < 1 || back > id))
        return fail(c, "node %llu's parent is '%s' nodes back, which is not a node before it", (unsigned long long)id,
                    f[2]);
    uint64_t parent = id - back;
    size_t need = cap->nnodes + 2, old = cap->nodes;
    if (need > cap->nodes) {
        size_t nc = cap->nodes ? cap->nodes * 2 : 1024;
        while (nc < need)
            nc *= 2;
        uint32_t *p = realloc(cap->parent, nc * sizeof *p), *fr = p ? realloc(cap->frame, nc * sizeof *fr) : NULL,
                 *d = fr ? realloc(cap->depth, nc * sizeof *d) : NULL;
        if (p)
            cap->parent = p;
        if (fr)
            cap->frame = fr;
        if (d)
            cap->depth = d;
        if (!p || !fr || !d)
            return fail(c, "out of memory");
        cap->nodes = nc;
        if (!old)
            cap->parent[0] = cap->frame[0] = cap->depth[0] = 0; /* the root */
    }
    cap->nnodes++;
    cap->parent[id] = (uint32_t)parent;
    cap->frame[id] = (uint32_t)frame;
    cap->depth[id] = cap->depth[parent] + 1;
    return true;
}

/* A version 2 stack: its leaf node (its frames are read from the tree). */
static bool stack_from_node(ctx_t *c, caps_t *cap, ml_rstack_t *st, const char *field)
{
    uint64_t leaf;
    if (!ml_field_u64(field, &leaf, 10) || leaf > cap->nnodes)
        return fail(c, "stack %u refers to node '%s', which is not defined before it", st->id, field);
    st->node = (uint32_t)leaf;
    st->nframes = leaf ? cap->depth[leaf] : 0;
    return true;
}

void ml_snapshot_stack_frames(const ml_snapshot_t *s, const ml_rstack_t *st, uint32_t *out)
{
    if (st->frames) {
        memcpy(out, st->frames, st->nframes * sizeof *out);
        return;
    }
    uint32_t k = 0;
    for (uint32_t node = st->node; node && k < st->nframes; node = s->node_parent[node])
        out[k++] = s->node_frame[node];
}

static bool parse_stack(ctx_t *c, ml_snapshot_t *s, caps_t *cap, char **f, size_t n)
{
    char *v1[8];
    if (s->version >= 2) {
        /* "s" records carry no id: the id is the stack's place in the file;
         * the fields line up with version 1's from the domain on */
        if (n != 7)
            return fail(c, "stack record has %zu fields, expected 7", n);
        v1[0] = f[0];
        v1[1] = NULL;
        for (int i = 1; i < 7; i++)
            v1[i + 1] = f[i];
        f = v1;
        n = 8;
    } else if (n != 8) {
        return fail(c, "stack record has %zu fields, expected 8", n);
    }
    if (!ML_GROW(s->stacks, cap->stacks, s->nstacks + 1))
        return fail(c, "out of memory");
    ml_rstack_t *st = &s->stacks[s->nstacks++]; /* counted at once, as modules */
    uint64_t id = s->nstacks - 1;
    if (s->version < 2 && (!ml_field_u64(f[1], &id, 10) || id > UINT32_MAX))
        return fail(c, "bad stack id '%s'", f[1]);
    st->id = (uint32_t)id;
    st->domain = ml_domain_index(f[2]);
    if (st->domain < 0)
        return fail(c, "unknown domain '%s'", f[2]);
    if (!num_i64(f[3], &st->live_bytes) || !num_i64(f[4], &st->live_count) ||
        !num_i64(f[5], &st->total_bytes) || !num_i64(f[6], &st->total_count))
        return fail(c, "bad byte or count field in stack %u", st->id);
    if (s->version >= 2 && strcmp(f[7], "-") != 0)
        return stack_from_node(c, cap, st, f[7]);
    if (strcmp(f[7], "-") != 0) {
        size_t k = 1;
        for (const char *p = f[7]; *p; p++)
            k += *p == ' ';
        st->frames = malloc(k * sizeof *st->frames);
        if (!st->frames)
            return fail(c, "out of memory");
        /* the hottest loop of a large snapshot: decimal by hand, one pass */
        const char *p = f[7];
        for (size_t i = 0; i < k; i++) {
            const char *start = p;
            uint64_t fi = 0;
            while (*p >= '0' && *p <= '9' && fi < (1ull << 40))
                fi = fi * 10 + (uint64_t)(*p++ - '0');
            if (p == start || (*p && *p != ' ') || fi >= s->nframes) {
                const char *end = strchr(start, ' ');
                return fail(c, "stack %s refers to frame '%.*s', which is not defined before it", f[1],
                            (int)(end ? end - start : (ptrdiff_t)strlen(start)), start);
            }
            st->frames[i] = (uint32_t)fi;
            p += *p == ' ';
        }
        st->nframes = (uint32_t)k;
    }
    return true;
}

/* How many records the "written" line may make room for ahead: a hint
 * from the file, so it is bounded (a hostile one costs address space, no
 * more) and a larger snapshot still grows past it. */
#define RESERVE_MAX (1u << 22)

/* The "written" line says how many stacks, nodes and frames follow: room
 * for them at once saves the copies and the zeroing of half-used room of
 * growing by doubling (a third of reading a large snapshot). Only a hint:
 * a line that cannot be read, or room that cannot be had, changes nothing. */
static void reserve_written(ml_snapshot_t *s, caps_t *cap, char **f, size_t n)
{
    for (size_t i = 1; i + 1 < n; i += 2) {
        uint64_t v;
        if (!ml_field_u64(f[i + 1], &v, 10) || v == 0)
            continue;
        if (v > RESERVE_MAX)
            v = RESERVE_MAX;
        if (strcmp(f[i], "stacks") == 0 && !s->nstacks)
            (void)ML_RESERVE(s->stacks, cap->stacks, v);
        else if (strcmp(f[i], "frames") == 0 && !s->nframes)
            (void)ML_RESERVE(s->frames, cap->frames, v);
        else if (strcmp(f[i], "nodes") == 0 && !cap->nodes) {
            size_t nc = (size_t)v + 2; /* the root, and the count is of nodes past it */
            uint32_t *p = malloc(nc * sizeof *p), *fr = malloc(nc * sizeof *fr), *d = malloc(nc * sizeof *d);
            if (p && fr && d) {
                ml_advise_huge(p, nc * sizeof *p);
                ml_advise_huge(fr, nc * sizeof *fr);
                ml_advise_huge(d, nc * sizeof *d);
                cap->parent = p;
                cap->frame = fr;
                cap->depth = d;
                cap->nodes = nc;
                cap->parent[0] = cap->frame[0] = cap->depth[0] = 0; /* the root */
            } else {
                free(p);
                free(fr);
                free(d);
            }
        }
    }
}

static bool parse_header(ctx_t *c, ml_snapshot_t *s, caps_t *cap, char **f, size_t n, const char *raw_rest)
{
    if (!ML_GROW(s->headers, cap->headers, s->nheaders + 1))
        return fail(c, "out of memory");
    ml_rheader_t *h = &s->headers[s->nheaders++];
    h->key = strdup(f[0]);
    h->value = strdup(raw_rest);
    if (!h->key || !h->value)
        return fail(c, "out of memory");
    const char *k = f[0];
    if (!first_time(c, cap, k))
        return false;
    uint64_t u;
    int64_t i64;
    if (strcmp(k, "pid") == 0 || strcmp(k, "ppid") == 0 || strcmp(k, "seq") == 0) {
        if (n != 2 || !ml_field_u64(f[1], &u, 10) || u > INT32_MAX)
            return fail(c, "bad %s", k);
        if (k[0] == 'p' && k[1] == 'i')
            s->pid = (long)u;
        else if (k[0] == 'p')
            s->ppid = (long)u;
        else
            s->seq = (long)u;
    } else if (strcmp(k, "rss") == 0 || strcmp(k, "peak_rss") == 0 || strcmp(k, "sample_bytes") == 0) {
        if (n != 2 || !ml_field_u64(f[1], &u, 10))
            return fail(c, "bad %s", k);
        *(k[0] == 'r' ? &s->rss : k[0] == 'p' ? &s->peak_rss : &s->sample_bytes) = u;
    } else if (strcmp(k, "exe") == 0) {
        if (n != 2 || !field_str(c, f[1], &s->exe, "exe"))
            return n == 2 ? false : fail(c, "bad exe");
    } else if (strcmp(k, "trigger") == 0) {
        if (n != 2 || !field_str(c, f[1], &s->trigger, "trigger"))
            return n == 2 ? false : fail(c, "bad trigger");
    } else if (strcmp(k, "time") == 0) {
        if (n != 2 || !parse_time(f[1], &s->time))
            return fail(c, "bad time '%.40s' (seconds.nanoseconds)", n == 2 ? f[1] : "");
    } else if (strcmp(k, "cmdline") == 0) {
        size_t len = 1;
        for (size_t i = 1; i < n; i++)
            len += strlen(f[i]) + 1;
        s->cmdline = calloc(1, len);
        if (!s->cmdline)
            return fail(c, "out of memory");
        for (size_t i = 1; i < n; i++) {
            char *arg;
            if (!field_str(c, f[i], &arg, "cmdline"))
                return false;
            if (i > 1)
                strcat(s->cmdline, " ");
            strcat(s->cmdline, arg ? arg : "-");
            free(arg);
        }
    } else if (strcmp(k, "stacks") == 0) {
        if (n != 4 || !ml_field_u64(f[1], &s->stacks_used, 10) || !ml_field_u64(f[2], &s->stacks_capacity, 10) ||
            !ml_field_u64(f[3], &s->stacks_overflowed, 10))
            return fail(c, "bad stacks line");
    } else if (strcmp(k, "store") == 0) {
        /* key value pairs; a writer may add some */
        for (size_t i = 1; i + 1 < n; i += 2)
            if (strcmp(f[i], "degraded") == 0 && !ml_field_u64(f[i + 1], &s->stacks_degraded, 10))
                return fail(c, "bad store line");
    } else if (strcmp(k, "written") == 0) {
        reserve_written(s, cap, f, n);
    } else if (strcmp(k, "domain") == 0) {
        int d;
        if (n != 6 || (d = ml_domain_index(f[1])) < 0)
            return fail(c, "bad domain line");
        if (cap->seen_domains & (1u << d))
            return fail(c, "second 'domain' line for %s", f[1]);
        cap->seen_domains |= 1u << d;
        if (!num_i64(f[2], &i64))
            return fail(c, "bad domain bytes");
        s->domain_live_bytes[d] = i64;
        if (!num_i64(f[3], &s->domain_live_count[d]) || !num_i64(f[4], &s->domain_total_bytes[d]) ||
            !num_i64(f[5], &s->domain_total_count[d]))
            return fail(c, "bad domain counts");
    }
    /* other keys are kept verbatim in headers[]: newer writers may add some */
    return true;
}

ml_snapshot_t *ml_snapshot_load(const char *path, char *err, size_t errcap)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ml_snapshot_t *s = ml_snapshot_read(fp, path, err, errcap);
    fclose(fp);
    return s;
}

/* ---- a gzip-compressed file, read as its text ---- */

typedef struct {
    FILE *src;
    z_stream z;
    bool done, corrupt, cut, trailing;
    unsigned char in[1 << 16];
} gz_t;

/* Up to `size` bytes of the text into buf: fewer only at its end (or
 * where the file is cut), 0 after it, -1 with errno set on an error. */
static ssize_t gz_read(gz_t *g, char *buf, size_t size)
{
    if (g->done || !size)
        return 0;
    g->z.next_out = (unsigned char *)buf;
    g->z.avail_out = (uInt)(size < (1u << 30) ? size : (1u << 30));
    while (g->z.avail_out) {
        if (!g->z.avail_in) {
            size_t n = fread(g->in, 1, sizeof g->in, g->src);
            if (!n) {
                if (ferror(g->src)) {
                    errno = EIO;
                    return -1;
                }
                g->cut = true; /* the file ends before the stream does */
                break;
            }
            g->z.next_in = g->in;
            g->z.avail_in = (uInt)n;
        }
        int r = inflate(&g->z, Z_NO_FLUSH);
        if (r == Z_STREAM_END) {
            g->done = true;
            /* one stream, and nothing after it */
            g->trailing = g->z.avail_in || fgetc(g->src) != EOF;
            break;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            g->corrupt = true;
            errno = EIO;
            return -1;
        }
    }
    return (ssize_t)((char *)g->z.next_out - buf);
}

/* ---- lines ---- */

/* The text is inflated GZ_PIECE bytes at a time, each piece whole or not
 * at all: what the stdio stream this reader once read through did with
 * its buffer, so a damaged file is refused at the same line with the same
 * words as ever (the fuzz corpus and test_bad_files hold them to it). */
#define GZ_PIECE 8192

/* Where the parser's lines come from: a text stream, through getline, or
 * a gzip stream inflated into a buffer of its own, where lines are found
 * and parsed in place (no copy of each line, no stdio underneath: a large
 * snapshot is millions of short lines). */
typedef struct {
    FILE *fp;             /* text, or NULL */
    gz_t *gz;             /* gzip, or NULL */
    char *buf;            /* fp: getline's line; gz: the inflated text */
    size_t cap;
    size_t start, end;    /* gz: the text not yet handed out */
    bool over;            /* gz: gz_read said 0 or -1; nothing more comes */
} lines_t;

/* The next line as getline(3) gives it: into *line, NUL-terminated, its
 * length with the '\n' (none on a last line without one); -1 at the end
 * or on an error (errno set). A line past MAX_LINE bytes is given as soon
 * as that is known, cut there: the caller refuses it for its length. */
static ssize_t next_line(lines_t *l, char **line)
{
    if (l->fp) {
        ssize_t n = getline(&l->buf, &l->cap, l->fp);
        *line = l->buf;
        return n;
    }
    char *nl;
    size_t scanned = 0; /* bytes after start known to hold no '\n' */
    while (!(nl = memchr(l->buf + l->start + scanned, '\n', l->end - l->start - scanned))) {
        scanned = l->end - l->start;
        if (scanned > MAX_LINE || l->over) {
            if (!scanned)
                return -1;
            /* the last line, without its '\n', or one too long to keep */
            *line = l->buf + l->start;
            l->start = l->end;
            (*line)[scanned] = '\0';
            return (ssize_t)scanned;
        }
        if (l->cap - l->end < GZ_PIECE + 1) {
            /* the line so far to the front, then more room if that was not enough */
            memmove(l->buf, l->buf + l->start, scanned);
            l->start = 0;
            l->end = scanned;
            if (l->cap - l->end < GZ_PIECE + 1) {
                size_t nc = l->cap * 2;
                char *nb = realloc(l->buf, nc);
                if (!nb) {
                    errno = ENOMEM;
                    return -1;
                }
                l->buf = nb;
                l->cap = nc;
            }
        }
        ssize_t got = gz_read(l->gz, l->buf + l->end, GZ_PIECE);
        if (got <= 0)
            l->over = true; /* errno is gz_read's on an error */
        else
            l->end += (size_t)got;
    }
    size_t len = (size_t)(nl - (l->buf + l->start)) + 1;
    *line = l->buf + l->start;
    l->start += len;
    return (ssize_t)len;
}

static ml_snapshot_t *read_text(lines_t *src, const char *path, char *err, size_t errcap);

ml_snapshot_t *ml_snapshot_read(FILE *fp, const char *path, char *err, size_t errcap)
{
    lines_t src = {0};
    int c0 = fgetc(fp);
    if (c0 != 0x1f) {
        if (c0 != EOF)
            ungetc(c0, fp);
        src.fp = fp;
        ml_snapshot_t *s = read_text(&src, path, err, errcap);
        free(src.buf);
        return s;
    }
    if (fgetc(fp) != 0x8b) {
        snprintf(err, errcap, "%s:1: not a memledger snapshot (neither its text nor gzip-compressed)", path);
        return NULL;
    }
    gz_t *g = calloc(1, sizeof *g);
    if (!g || inflateInit2(&g->z, 15 + 16) != Z_OK) {
        free(g);
        snprintf(err, errcap, "%s: out of memory", path);
        return NULL;
    }
    /* the gzip magic, read already */
    g->src = fp;
    g->in[0] = 0x1f;
    g->in[1] = 0x8b;
    g->z.next_in = g->in;
    g->z.avail_in = 2;
    src.gz = g;
    src.cap = 1 << 18; /* lines are short: this grows only for a long one */
    if (!(src.buf = malloc(src.cap))) {
        inflateEnd(&g->z);
        free(g);
        snprintf(err, errcap, "%s: out of memory", path);
        return NULL;
    }
    ml_snapshot_t *s = read_text(&src, path, err, errcap);
    inflateEnd(&g->z);
    free(g);
    free(src.buf);
    return s;
}

static ml_snapshot_t *read_text(lines_t *src, const char *path, char *err, size_t errcap)
{
    const gz_t *gz = src->gz;
    ctx_t c = {path, 0, err, errcap};
    ml_snapshot_t *s = calloc(1, sizeof *s);
    char *line = NULL;
    char **f = malloc((MAX_FIELDS + 1) * sizeof *f);
    caps_t cap;
    memset(&cap, 0, sizeof cap);
    bool ok = s && f, ended = false;
    if (!ok)
        fail(&c, "out of memory");
    if (ok)
        s->path = strdup(path);
    int phase = 0; /* 0 header, 1 modules, 2 frames, 3 stacks: records come in this order */
    while (ok) {
        errno = 0;
        ssize_t len = next_line(src, &line);
        if (len < 0) {
            if (gz && gz->corrupt)
                ok = fail(&c, "corrupt compressed data after this line");
            else if (errno)
                ok = fail(&c, "read error: %s", strerror(errno));
            break;
        }
        c.line++;
        if (ended) {
            ok = fail(&c, "data after the end record");
            break;
        }
        if ((size_t)len > MAX_LINE) {
            ok = fail(&c, "line longer than %u bytes", MAX_LINE);
            break;
        }
        if (len == 0 || line[len - 1] != '\n') {
            ok = fail(&c, "truncated line (the file ends in the middle of a record)");
            break;
        }
        line[--len] = '\0';
        char raw_rest[1];
        raw_rest[0] = '\0';
        /* headers keep their raw text; records need no copy (most lines) */
        bool record = phase > 0 || strncmp(line, "module\t", 7) == 0 || strncmp(line, "frame\t", 6) == 0 ||
                      strncmp(line, "N\t", 2) == 0 || strncmp(line, "n\t", 2) == 0 ||
                      strncmp(line, "s\t", 2) == 0 || strncmp(line, "stack\t", 6) == 0 ||
                      strncmp(line, "end\t", 4) == 0;
        char *rest = record ? NULL : strchr(line, '\t');
        char *rest_copy = rest ? strdup(rest + 1) : NULL;
        bool nul;
        size_t n = split(line, (size_t)len, f, MAX_FIELDS, &nul);
        if (nul) {
            free(rest_copy);
            ok = fail(&c, "NUL byte in a record");
            break;
        }
        if (n > MAX_FIELDS) {
            free(rest_copy);
            ok = fail(&c, "more than %d fields", MAX_FIELDS);
            break;
        }
        if (c.line == 1) {
            uint64_t v;
            if (n != 2 || strcmp(f[0], ML_FORMAT_MAGIC) != 0) {
                ok = fail(&c, "not a memledger snapshot (first line must be '%s<TAB>%d')",
                          ML_FORMAT_MAGIC, ML_FORMAT_VERSION);
            } else if (!ml_field_u64(f[1], &v, 10) || v < 1 || v > ML_FORMAT_VERSION) {
                ok = fail(&c, "snapshot format version '%s' is not supported (this memledger reads 1 to %d)",
                          f[1], ML_FORMAT_VERSION);
            } else {
                s->version = (int)v;
            }
            free(rest_copy);
            continue;
        }
        enum record kind = record_kind(f[0]);
        if (kind == REC_NODE && s->version >= 2) { /* the most common first */
            ok = phase <= 3 ? parse_node(&c, s, &cap, f, n) : fail(&c, "node record after stacks");
            phase = 3;
        } else if (kind == (s->version >= 2 ? REC_S : REC_STACK)) {
            ok = parse_stack(&c, s, &cap, f, n);
            phase = 4;
        } else if (kind == REC_MODULE) {
            ok = phase <= 1 ? parse_module(&c, s, &cap, f, n) : fail(&c, "module record after frames");
            phase = 1;
        } else if (kind == REC_FRAME) {
            ok = phase <= 2 ? parse_frame(&c, s, &cap, f, n) : fail(&c, "frame record after nodes or stacks");
            phase = 2;
        } else if (kind == REC_INLINE && s->version >= 2) {
            ok = phase == 2 ? parse_inline(&c, s, f, n) : fail(&c, "inline record outside the frames");
        } else if (kind == REC_END) {
            uint64_t ns, nf, nn = 0;
            bool v2 = s->version >= 2;
            if (n != (v2 ? 4u : 3u) || !ml_field_u64(f[1], &ns, 10) || !ml_field_u64(f[2], &nf, 10) ||
                (v2 && !ml_field_u64(f[3], &nn, 10)))
                ok = fail(&c, "bad end record");
            else if (ns != s->nstacks || nf != s->nframes || nn != cap.nnodes)
                ok = fail(&c, "end record says %llu stacks, %llu frames and %llu nodes, but %zu, %zu and %zu "
                              "were read",
                          (unsigned long long)ns, (unsigned long long)nf, (unsigned long long)nn, s->nstacks,
                          s->nframes, cap.nnodes);
            ended = true;
        } else if (phase == 0) {
            bool key_ok = f[0][0] != '\0';
            for (const char *p = f[0]; *p; p++)
                key_ok = key_ok && ((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9'));
            ok = key_ok ? parse_header(&c, s, &cap, f, n, rest_copy ? rest_copy : raw_rest)
                        : fail(&c, "unrecognised record '%.40s'", f[0]);
        } else {
            ok = fail(&c, "unrecognised record '%.40s' after the header", f[0]);
        }
        free(rest_copy);
    }
    if (ok && gz && (gz->cut || gz->trailing)) {
        c.line++;
        ok = fail(&c, gz->cut ? "the compressed data ends early (a truncated file)"
                              : "data after the compressed stream");
    }
    if (ok && c.line == 0) {
        c.line = 1;
        ok = fail(&c, "empty file");
    }
    else if (ok && !ended) {
        c.line++;
        ok = fail(&c, "truncated: no end record");
    }
    free(f);
    free(cap.depth);
    if (s) {
        /* the tree stays with the snapshot: its stacks are read from it */
        s->node_parent = cap.parent;
        s->node_frame = cap.frame;
        s->nnodes = cap.nnodes;
    } else {
        free(cap.parent);
        free(cap.frame);
    }
    if (!ok) {
        ml_snapshot_free(s);
        return NULL;
    }
    return s;
}

void ml_snapshot_free(ml_snapshot_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nheaders; i++) {
        free(s->headers[i].key);
        free(s->headers[i].value);
    }
    for (size_t i = 0; i < s->nmodules; i++) {
        free(s->modules[i].build_id);
        free(s->modules[i].path);
    }
    for (size_t i = 0; i < s->nframes; i++) {
        free(s->frames[i].function);
        free(s->frames[i].file);
        for (uint32_t k = 0; k < s->frames[i].ninlined; k++) {
            free(s->frames[i].inlined[k].function);
            free(s->frames[i].inlined[k].file);
        }
        free(s->frames[i].inlined);
    }
    for (size_t i = 0; i < s->nstacks; i++)
        free(s->stacks[i].frames);
    free(s->headers);
    free(s->modules);
    free(s->frames);
    free(s->stacks);
    free(s->node_parent);
    free(s->node_frame);
    free(s->path);
    free(s->exe);
    free(s->cmdline);
    free(s->trigger);
    free(s);
}

const char *ml_snapshot_header(const ml_snapshot_t *s, const char *key)
{
    for (size_t i = 0; i < s->nheaders; i++)
        if (strcmp(s->headers[i].key, key) == 0)
            return s->headers[i].value;
    return NULL;
}
