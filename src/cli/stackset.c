/* stackset.c — address-free stack identity across snapshots (see stackset.h).
 * Frames are interned by an identity string (a strmap: a frame's uid is
 * its string's id); stacks by their domain and frame-uid sequence, found
 * again through common/hashidx.h. */
#include "cli/stackset.h"
#include "cli/cython.h"
#include "cli/demangle.h"
#include "cli/strmap.h"
#include "common/grow.h"
#include "common/hashidx.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *build_id, *path;
} smodule_t;

typedef struct {
    ml_sval_t *v;           /* by stack uid, grown as stacks appear */
    size_t cap;
} svalues_t;

struct ml_stackset {
    ml_strmap_t *fkeys;     /* identity string -> frame uid */
    ml_hashidx_t sidx;      /* stacks by domain and frames */
    smodule_t *modules;     /* module names, owned, shared by the frames */
    size_t nmodules, modules_cap;
    ml_sframe_t *frames;
    size_t nframes, frames_cap;
    ml_sstack_t *stacks;
    size_t nstacks, stacks_cap;
    svalues_t *values;      /* by snapshot */
    size_t nsnaps, values_cap;
};

ml_stackset_t *ml_stackset_new(void)
{
    ml_stackset_t *set = calloc(1, sizeof *set);
    if (set && !(set->fkeys = ml_strmap_new())) {
        free(set);
        return NULL;
    }
    return set;
}

void ml_stackset_free(ml_stackset_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->nframes; i++) {
        free((char *)set->frames[i].function);
        free((char *)set->frames[i].file);
        free((char *)set->frames[i].cython);
    }
    for (size_t i = 0; i < set->nmodules; i++) {
        free(set->modules[i].build_id);
        free(set->modules[i].path);
    }
    free(set->modules);
    for (size_t i = 0; i < set->nstacks; i++)
        free(set->stacks[i].frames);
    for (size_t i = 0; i < set->nsnaps; i++)
        free(set->values[i].v);
    free(set->values);
    free(set->frames);
    free(set->stacks);
    ml_strmap_free(set->fkeys);
    ml_hashidx_free(&set->sidx);
    free(set);
}

static char *frame_key(const ml_snapshot_t *snap, const ml_rframe_t *f)
{
    char *k = NULL;
    int r;
    if (f->kind == ML_FRAME_PYTHON) {
        r = asprintf(&k, "p\t%s\t%s\t%d", f->file ? f->file : "", f->function ? f->function : "", f->line);
    } else if (f->module >= 0) {
        const ml_rmodule_t *m = &snap->modules[f->module];
        r = asprintf(&k, "n\t%s\t%" PRIx64, m->build_id ? m->build_id : m->path ? m->path : "?", f->offset);
    } else {
        r = asprintf(&k, "a\t%" PRIx64, f->offset);
    }
    return r < 0 ? NULL : k;
}

static bool same(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static char *dup_or_null(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *ok = false;
    return d;
}

/* Fills map[i] with the set's copy of the snapshot's module i, copying the
 * modules it has not seen (modules are few: a linear search). Frames keep
 * pointers to the strings, never into the array, which may move. */
static bool add_modules(ml_stackset_t *set, const ml_snapshot_t *snap, uint32_t *map)
{
    if (!ML_GROW(set->modules, set->modules_cap, set->nmodules + snap->nmodules))
        return false;
    for (size_t i = 0; i < snap->nmodules; i++) {
        const ml_rmodule_t *r = &snap->modules[i];
        size_t j = 0;
        while (j < set->nmodules && !(same(set->modules[j].build_id, r->build_id) && same(set->modules[j].path, r->path)))
            j++;
        map[i] = (uint32_t)j;
        if (j < set->nmodules)
            continue;
        bool ok = true;
        smodule_t *m = &set->modules[set->nmodules];
        m->build_id = dup_or_null(r->build_id, &ok);
        m->path = dup_or_null(r->path, &ok);
        set->nmodules++;
        if (!ok)
            return false;
    }
    return true;
}

/* Returns the frame's uid (+1), 0 on out of memory. */
static uint32_t intern_frame(ml_stackset_t *set, const ml_snapshot_t *snap, const uint32_t *modmap,
                             const ml_rframe_t *f)
{
    char *key = frame_key(snap, f);
    if (!key)
        return 0;
    uint32_t u = ml_strmap_find(set->fkeys, key);
    if (u != UINT32_MAX) {
        free(key);
        return u + 1;
    }
    /* the frame is made before its key is added, so that a failure leaves
     * no key without a frame: uids and key ids stay one and the same */
    if (!ML_GROW(set->frames, set->frames_cap, set->nframes + 1)) {
        free(key);
        return 0;
    }
    bool ok = true;
    ml_sframe_t sf = {.kind = f->kind, .line = f->line, .offset = f->offset};
    sf.function = f->function ? ml_demangle(f->function) : NULL;
    sf.file = dup_or_null(f->file, &ok);
    char py[512];
    if (f->kind == ML_FRAME_NATIVE && f->function && ml_cython_name(f->function, py, sizeof py))
        sf.cython = dup_or_null(py, &ok);
    uint32_t id = ok && (sf.function || !f->function) ? ml_strmap_id(set->fkeys, key) : UINT32_MAX;
    free(key);
    if (id != set->nframes) {
        free((char *)sf.function);
        free((char *)sf.file);
        free((char *)sf.cython);
        return 0;
    }
    if (f->module >= 0) {
        const smodule_t *m = &set->modules[modmap[f->module]];
        sf.module = m->path;
        sf.build_id = m->build_id;
    }
    set->frames[set->nframes++] = sf;
    return (uint32_t)set->nframes;
}

typedef struct {
    const ml_stackset_t *set;
    int domain;
    const uint32_t *frames;
    uint32_t n;
} sprobe_t;

static bool same_stack(const void *ctx, uint32_t uid)
{
    const sprobe_t *p = ctx;
    const ml_sstack_t *s = &p->set->stacks[uid];
    return s->domain == p->domain && s->nframes == p->n && memcmp(s->frames, p->frames, p->n * sizeof *p->frames) == 0;
}

/* Returns the stack's uid (+1), 0 on out of memory. Takes `frames`. */
static uint32_t intern_stack(ml_stackset_t *set, int domain, uint32_t *frames, uint32_t n)
{
    uint64_t h = ml_hash_u64(ml_hash_u32s(frames, n, ML_HASH_SEED ^ (uint64_t)domain));
    sprobe_t probe = {set, domain, frames, n};
    uint32_t u = ml_hashidx_find(&set->sidx, h, same_stack, &probe);
    if (u != ML_HASHIDX_NONE) {
        free(frames);
        return u + 1;
    }
    u = (uint32_t)set->nstacks;
    if (!ML_GROW(set->stacks, set->stacks_cap, set->nstacks + 1) || !ml_hashidx_add(&set->sidx, h, u))
        return 0;
    set->stacks[u] = (ml_sstack_t){domain, n, frames};
    set->nstacks++;
    return u + 1;
}

int ml_stackset_add(ml_stackset_t *set, const ml_snapshot_t *snap)
{
    if (!ML_GROW(set->values, set->values_cap, set->nsnaps + 1))
        return -1;
    size_t si = set->nsnaps++; /* its values start empty: ML_GROW zeroes */

    uint32_t *fuid = malloc((snap->nframes + 1) * sizeof *fuid);
    uint32_t *modmap = malloc((snap->nmodules + 1) * sizeof *modmap);
    if (!fuid || !modmap || !add_modules(set, snap, modmap)) {
        free(fuid);
        free(modmap);
        return -1;
    }
    for (size_t i = 0; i < snap->nframes; i++) {
        fuid[i] = intern_frame(set, snap, modmap, &snap->frames[i]);
        if (!fuid[i]) {
            free(fuid);
            free(modmap);
            return -1;
        }
        fuid[i]--;
    }
    free(modmap);
    for (size_t i = 0; i < snap->nstacks; i++) {
        const ml_rstack_t *st = &snap->stacks[i];
        uint32_t *frames = malloc((st->nframes + 1) * sizeof *frames);
        if (!frames) {
            free(fuid);
            return -1;
        }
        for (uint32_t k = 0; k < st->nframes; k++)
            frames[k] = fuid[st->frames[k]];
        uint32_t uid = intern_stack(set, st->domain, frames, st->nframes);
        svalues_t *sv = &set->values[si];
        if (!uid || !ML_GROW(sv->v, sv->cap, uid)) {
            if (!uid)
                free(frames);
            free(fuid);
            return -1;
        }
        ml_sval_t *v = &sv->v[uid - 1];
        v->present = true;
        v->live_bytes = ml_sat_add(v->live_bytes, st->live_bytes);
        v->live_count = ml_sat_add(v->live_count, st->live_count);
        v->total_bytes = ml_sat_add(v->total_bytes, st->total_bytes);
        v->total_count = ml_sat_add(v->total_count, st->total_count);
    }
    free(fuid);
    return (int)si;
}

size_t ml_stackset_nsnapshots(const ml_stackset_t *set) { return set->nsnaps; }
size_t ml_stackset_nstacks(const ml_stackset_t *set) { return set->nstacks; }
size_t ml_stackset_nframes(const ml_stackset_t *set) { return set->nframes; }

void ml_stackset_drop_values(ml_stackset_t *set, size_t snap)
{
    if (snap >= set->nsnaps)
        return;
    free(set->values[snap].v);
    set->values[snap] = (svalues_t){NULL, 0};
}

const ml_sstack_t *ml_stackset_stack(const ml_stackset_t *set, uint32_t uid) { return &set->stacks[uid]; }

const ml_sframe_t *ml_stackset_frame(const ml_stackset_t *set, uint32_t uid) { return &set->frames[uid]; }

ml_sval_t ml_stackset_value(const ml_stackset_t *set, size_t snap, uint32_t uid)
{
    ml_sval_t zero = {0, 0, 0, 0, false};
    if (snap >= set->nsnaps || uid >= set->values[snap].cap)
        return zero;
    return set->values[snap].v[uid];
}
