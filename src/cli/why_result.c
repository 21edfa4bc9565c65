/* why_result.c — reading a `memledger why` answer (see why_result.h). The
 * file is text, one record per line, fields separated by tabs and escaped
 * as in snapshots ("-" alone is absent); the library writes it in
 * src/python/why.c. */
#include "cli/why_result.h"
#include "cli/snapshot_read.h"
#include "common/format.h"
#include "common/io.h"
#include "common/grow.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *path;
    size_t line;
    char *err;
    size_t errcap;
} ctx_t;

static bool fail(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(ctx_t *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errcap, "%s:%zu: %s", c->path, c->line, msg);
    return false;
}

static bool snum(const char *s, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (!*s || errno || *end)
        return false;
    *v = x;
    return true;
}

static void free_hop(ml_why_rhop_t *h)
{
    free(h->type);
    free(h->via);
    free(h->name);
    free(h->func);
    free(h->domain);
}

static void free_sample(ml_why_rsample_t *s)
{
    free(s->domain);
    free(s->kind);
    free(s->a);
    free(s->b);
    free(s->c);
    free(s->type);
    free(s->object);
    for (size_t i = 0; i < s->nhops; i++)
        free_hop(&s->hops[i]);
    free(s->hops);
}

void ml_why_result_free(ml_why_result_t *r)
{
    if (!r)
        return;
    free(r->token);
    free(r->error);
    free(r->py_version);
    free(r->why_not);
    for (size_t i = 0; i < r->nstopped; i++)
        free(r->stopped[i]);
    free(r->stopped);
    for (size_t i = 0; i < r->nstacks; i++) {
        for (size_t k = 0; k < r->stacks[i].nsamples; k++)
            free_sample(&r->stacks[i].samples[k]);
        free(r->stacks[i].samples);
    }
    free(r->stacks);
    free(r);
}

const ml_why_rstack_t *ml_why_result_stack(const ml_why_result_t *r, uint32_t slot)
{
    for (size_t i = 0; i < r->nstacks; i++)
        if (r->stacks[i].slot == slot)
            return &r->stacks[i];
    return NULL;
}

static const char *const root_kinds[] = {"unknown", "global", "local", "external", "unreachable", "native", "none"};

static bool known_kind(const char *k)
{
    for (size_t i = 0; i < ML_ARRAY_LEN(root_kinds); i++)
        if (strcmp(k, root_kinds[i]) == 0)
            return true;
    return false;
}

typedef struct {
    size_t stacks, samples, hops, stopped;
} caps_t;

static bool parse_line(ctx_t *c, ml_why_result_t *r, caps_t *cap, char **f, int n, bool *ended)
{
    ml_why_rstack_t *st = r->nstacks ? &r->stacks[r->nstacks - 1] : NULL;
    ml_why_rsample_t *sm = st && st->nsamples ? &st->samples[st->nsamples - 1] : NULL;
    uint64_t u;
    if (strcmp(f[0], "token") == 0 && n == 2) {
        return ml_field_unescape(f[1], &r->token) || fail(c, "bad token");
    } else if (strcmp(f[0], "pid") == 0 && n == 2) {
        return snum(f[1], &r->pid) || fail(c, "bad pid");
    } else if (strcmp(f[0], "seq") == 0 && n == 2) {
        return snum(f[1], &r->seq) || fail(c, "bad seq");
    } else if (strcmp(f[0], "error") == 0 && n == 2) {
        return ml_field_unescape(f[1], &r->error) || fail(c, "bad error text");
    } else if (strcmp(f[0], "python") == 0 && n == 4) {
        r->searched = strcmp(f[2], "1") == 0;
        return (ml_field_unescape(f[1], &r->py_version) && ml_field_unescape(f[3], &r->why_not)) || fail(c, "bad python record");
    } else if (strcmp(f[0], "gc") == 0 && n == 5) {
        long v[4];
        for (int i = 0; i < 4; i++)
            if (!snum(f[i + 1], &v[i]))
                return fail(c, "bad gc record");
        r->has_gc = true;
        r->gc_enabled = (int)v[0];
        for (int i = 0; i < 3; i++)
            r->gc_count[i] = (int)v[i + 1];
        return true;
    } else if (strcmp(f[0], "time") == 0 && n == 9) {
        return (ml_field_u64(f[2], &r->gil_wait_us, 10) && ml_field_u64(f[4], &r->pause_us, 10) && ml_field_u64(f[6], &r->run_us, 10) &&
                ml_field_u64(f[8], &r->scan_us, 10)) ||
               fail(c, "bad time record");
    } else if (strcmp(f[0], "objects") == 0 && n == 3) {
        return (ml_field_u64(f[1], &r->objects, 10) && ml_field_u64(f[2], &r->visited, 10)) || fail(c, "bad objects record");
    } else if (strcmp(f[0], "heap") == 0 && n == 6) {
        if (!ml_field_u64(f[1], &r->blocks_seen, 10) || !ml_field_u64(f[2], &r->blocks_scanned, 10) ||
            !ml_field_u64(f[3], &r->bytes_scanned, 10) || !ml_field_u64(f[4], &u, 10) || u > 64 || !ml_field_u64(f[5], &r->read_failures, 10))
            return fail(c, "bad heap record");
        r->levels = (unsigned)u;
        return true;
    } else if (strcmp(f[0], "stopped") == 0 && n == 2) {
        if (!ML_GROW(r->stopped, cap->stopped, r->nstopped + 1))
            return fail(c, "out of memory");
        return ml_field_unescape(f[1], &r->stopped[r->nstopped++]) || fail(c, "bad stopped text");
    } else if (strcmp(f[0], "stack") == 0 && n == 4) {
        if (!ml_field_u64(f[1], &u, 10) || u >= ML_WHY_MAX_STACKS)
            return fail(c, "bad stack slot '%s'", f[1]);
        if (!ML_GROW(r->stacks, cap->stacks, r->nstacks + 1))
            return fail(c, "out of memory");
        st = &r->stacks[r->nstacks++];
        st->slot = (uint32_t)u;
        cap->samples = 0;
        return ml_field_u64(f[2], &st->live_blocks, 10) || fail(c, "bad live block count");
    } else if (strcmp(f[0], "sample") == 0 && n == 5) {
        if (!st)
            return fail(c, "sample before any stack");
        if (!ml_field_u64(f[1], &u, 10) || u != st->slot)
            return fail(c, "sample of slot %s inside the stack of slot %u", f[1], st->slot);
        if (!ML_GROW(st->samples, cap->samples, st->nsamples + 1))
            return fail(c, "out of memory");
        sm = &st->samples[st->nsamples++];
        cap->hops = 0;
        return (ml_field_u64(f[2], &sm->addr, 16) && ml_field_u64(f[3], &sm->size, 10) && ml_field_unescape(f[4], &sm->domain)) ||
               fail(c, "bad sample record");
    } else if (strcmp(f[0], "root") == 0 && n == 7) {
        if (!sm || sm->kind)
            return fail(c, "root without a sample");
        if (!known_kind(f[1]))
            return fail(c, "unknown root kind '%s'", f[1]);
        return (ml_field_unescape(f[1], &sm->kind) && ml_field_unescape(f[2], &sm->a) && ml_field_unescape(f[3], &sm->b) &&
                ml_field_unescape(f[4], &sm->c) && snum(f[5], &sm->line) && ml_field_unescape(f[6], &sm->type)) ||
               fail(c, "bad root record");
    } else if ((strcmp(f[0], "hop") == 0 && n == 5) || (strcmp(f[0], "native") == 0 && n == 5)) {
        if (!sm || !sm->kind)
            return fail(c, "%s before its sample's root", f[0]);
        if (!ML_GROW(sm->hops, cap->hops, sm->nhops + 1))
            return fail(c, "out of memory");
        ml_why_rhop_t *h = &sm->hops[sm->nhops++];
        if (f[0][0] == 'n') {
            h->native = true;
            return (ml_field_unescape(f[1], &h->type) && ml_field_u64(f[2], &h->off, 16) && ml_field_u64(f[3], &h->size, 10) &&
                    ml_field_unescape(f[4], &h->domain)) ||
                   fail(c, "bad native record");
        }
        return (ml_field_unescape(f[1], &h->type) && ml_field_unescape(f[2], &h->via) && ml_field_unescape(f[3], &h->name) &&
                ml_field_unescape(f[4], &h->func)) ||
               fail(c, "bad hop record");
    } else if (strcmp(f[0], "elided") == 0 && n == 2) {
        if (!sm || !sm->kind)
            return fail(c, "elided before its sample's root");
        sm->elided_at = sm->nhops;
        return ml_field_u64(f[1], &sm->elided, 10) || fail(c, "bad elided count");
    } else if (strcmp(f[0], "object") == 0 && n == 2) {
        if (!sm || !sm->kind)
            return fail(c, "object before its sample's root");
        return ml_field_unescape(f[1], &sm->object) || fail(c, "bad object type");
    } else if (strcmp(f[0], "end_sample") == 0 && n == 1) {
        return (sm && sm->kind) || fail(c, "end_sample without a sample and its root");
    } else if (strcmp(f[0], "end") == 0 && n == 1) {
        *ended = true;
        return true;
    }
    return fail(c, "unrecognised record '%.40s' with %d fields", f[0], n);
}

ml_why_result_t *ml_why_result_load(const char *path, char *err, size_t errcap)
{
    ctx_t c = {path, 0, err, errcap};
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ml_why_result_t *r = calloc(1, sizeof *r);
    caps_t cap = {0};
    char *line = NULL, *f[12];
    size_t lcap = 0;
    ssize_t len;
    bool ok = r != NULL, ended = false;
    while (ok && (len = getline(&line, &lcap, fp)) >= 0) {
        c.line++;
        if (ended) {
            ok = fail(&c, "data after the end record");
            break;
        }
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        int n = ml_split_tabs(line, f, 12);
        if (c.line == 1) {
            char *endp;
            long v = n == 2 ? strtol(f[1], &endp, 10) : -1;
            if (n != 2 || strcmp(f[0], ML_WHY_RESULT_MAGIC) != 0)
                ok = fail(&c, "not a memledger why answer");
            else if (v != ML_WHY_VERSION || *endp)
                ok = fail(&c, "answer version %s; this memledger reads version %d", f[1], ML_WHY_VERSION);
            continue;
        }
        ok = parse_line(&c, r, &cap, f, n, &ended);
    }
    free(line);
    fclose(fp);
    if (ok && !ended) {
        c.line++;
        ok = fail(&c, "truncated: no end record");
    }
    if (!ok) {
        if (!r)
            snprintf(err, errcap, "%s: out of memory", path);
        ml_why_result_free(r);
        return NULL;
    }
    return r;
}
