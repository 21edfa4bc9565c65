/* stackset.c — address-free stack identity across snapshots (see stackset.h).
 * Frames are interned by an identity string; stacks by their domain and
 * frame-uid sequence. Both maps are open-addressing tables that grow. */
#include "cli/stackset.h"
#include "cli/cython.h"
#include "cli/demangle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    uint32_t uid; /* +1; 0 empty */
} bucket_t;

typedef struct {
    bucket_t *b;
    size_t cap, n;
} map_t;

typedef struct {
    char *build_id, *path;
} smodule_t;

struct ml_stackset {
    map_t fmap, smap;
    smodule_t *modules;     /* module names, owned, shared by the frames */
    size_t nmodules;
    char **fkeys;           /* identity string per frame uid */
    ml_sframe_t *frames;
    size_t nframes, frames_cap;
    ml_sstack_t *stacks;
    size_t nstacks, stacks_cap;
    ml_sval_t **values;     /* [snapshot][stack uid], grown as stacks appear */
    size_t *values_cap;
    size_t nsnaps;
};

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

static bool map_grow(map_t *m)
{
    size_t nc = m->cap ? m->cap * 2 : 1024;
    bucket_t *nb = calloc(nc, sizeof *nb);
    if (!nb)
        return false;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->b[i].uid)
            continue;
        size_t j = m->b[i].hash & (nc - 1);
        while (nb[j].uid)
            j = (j + 1) & (nc - 1);
        nb[j] = m->b[i];
    }
    free(m->b);
    m->b = nb;
    m->cap = nc;
    return true;
}

ml_stackset_t *ml_stackset_new(void) { return calloc(1, sizeof(ml_stackset_t)); }

void ml_stackset_free(ml_stackset_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->nframes; i++) {
        free(set->fkeys[i]);
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
        free(set->values[i]);
    free(set->values);
    free(set->values_cap);
    free(set->fkeys);
    free(set->frames);
    free(set->stacks);
    free(set->fmap.b);
    free(set->smap.b);
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
    smodule_t *nm = realloc(set->modules, (set->nmodules + snap->nmodules + 1) * sizeof *nm);
    if (!nm)
        return false;
    set->modules = nm;
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
    if ((set->fmap.n + 1) * 2 > set->fmap.cap && !map_grow(&set->fmap)) {
        free(key);
        return 0;
    }
    uint64_t h = hash_bytes(key, strlen(key), 0xcbf29ce484222325ull);
    size_t j = h & (set->fmap.cap - 1);
    for (; set->fmap.b[j].uid; j = (j + 1) & (set->fmap.cap - 1)) {
        uint32_t u = set->fmap.b[j].uid - 1;
        if (set->fmap.b[j].hash == h && strcmp(set->fkeys[u], key) == 0) {
            free(key);
            return u + 1;
        }
    }
    if (set->nframes == set->frames_cap) {
        size_t nc = set->frames_cap ? set->frames_cap * 2 : 1024;
        char **nk = realloc(set->fkeys, nc * sizeof *nk);
        if (nk)
            set->fkeys = nk;
        ml_sframe_t *nf = realloc(set->frames, nc * sizeof *nf);
        if (nf)
            set->frames = nf;
        if (!nk || !nf) {
            free(key);
            return 0;
        }
        set->frames_cap = nc;
    }
    bool ok = true;
    ml_sframe_t sf = {.kind = f->kind, .line = f->line, .offset = f->offset};
    sf.function = f->function ? ml_demangle(f->function) : NULL;
    sf.file = dup_or_null(f->file, &ok);
    char py[512];
    if (f->kind == ML_FRAME_NATIVE && f->function && ml_cython_name(f->function, py, sizeof py))
        sf.cython = dup_or_null(py, &ok);
    if ((f->function && !sf.function) || !ok) {
        free((char *)sf.function);
        free((char *)sf.file);
        free((char *)sf.cython);
        free(key);
        return 0;
    }
    if (f->module >= 0) {
        const smodule_t *m = &set->modules[modmap[f->module]];
        sf.module = m->path;
        sf.build_id = m->build_id;
    }
    uint32_t u = (uint32_t)set->nframes++;
    set->fkeys[u] = key;
    set->frames[u] = sf;
    set->fmap.b[j].hash = h;
    set->fmap.b[j].uid = u + 1;
    set->fmap.n++;
    return u + 1;
}

/* Returns the stack's uid (+1), 0 on out of memory. Takes `frames`. */
static uint32_t intern_stack(ml_stackset_t *set, int domain, uint32_t *frames, uint32_t n)
{
    if ((set->smap.n + 1) * 2 > set->smap.cap && !map_grow(&set->smap))
        return 0;
    uint64_t h = hash_bytes(frames, n * sizeof *frames, 0xcbf29ce484222325ull ^ (uint64_t)domain);
    size_t j = h & (set->smap.cap - 1);
    for (; set->smap.b[j].uid; j = (j + 1) & (set->smap.cap - 1)) {
        uint32_t u = set->smap.b[j].uid - 1;
        const ml_sstack_t *s = &set->stacks[u];
        if (set->smap.b[j].hash == h && s->domain == domain && s->nframes == n &&
            memcmp(s->frames, frames, n * sizeof *frames) == 0) {
            free(frames);
            return u + 1;
        }
    }
    if (set->nstacks == set->stacks_cap) {
        size_t nc = set->stacks_cap ? set->stacks_cap * 2 : 1024;
        ml_sstack_t *ns = realloc(set->stacks, nc * sizeof *ns);
        if (!ns)
            return 0;
        set->stacks = ns;
        set->stacks_cap = nc;
    }
    uint32_t u = (uint32_t)set->nstacks++;
    set->stacks[u].domain = domain;
    set->stacks[u].nframes = n;
    set->stacks[u].frames = frames;
    set->smap.b[j].hash = h;
    set->smap.b[j].uid = u + 1;
    set->smap.n++;
    return u + 1;
}

static bool values_fit(ml_stackset_t *set, size_t snap, size_t uid)
{
    if (uid < set->values_cap[snap])
        return true;
    size_t nc = set->values_cap[snap] ? set->values_cap[snap] : 1024;
    while (nc <= uid)
        nc *= 2;
    ml_sval_t *v = realloc(set->values[snap], nc * sizeof *v);
    if (!v)
        return false;
    memset(v + set->values_cap[snap], 0, (nc - set->values_cap[snap]) * sizeof *v);
    set->values[snap] = v;
    set->values_cap[snap] = nc;
    return true;
}

int ml_stackset_add(ml_stackset_t *set, const ml_snapshot_t *snap)
{
    ml_sval_t **nv = realloc(set->values, (set->nsnaps + 1) * sizeof *nv);
    if (!nv)
        return -1;
    set->values = nv;
    size_t *nc = realloc(set->values_cap, (set->nsnaps + 1) * sizeof *nc);
    if (!nc)
        return -1;
    set->values_cap = nc;
    size_t si = set->nsnaps++;
    set->values[si] = NULL;
    set->values_cap[si] = 0;

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
        if (!uid || !values_fit(set, si, uid - 1)) {
            if (!uid)
                free(frames);
            free(fuid);
            return -1;
        }
        ml_sval_t *v = &set->values[si][uid - 1];
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
    free(set->values[snap]);
    set->values[snap] = NULL;
    set->values_cap[snap] = 0;
}

const ml_sstack_t *ml_stackset_stack(const ml_stackset_t *set, uint32_t uid) { return &set->stacks[uid]; }

const ml_sframe_t *ml_stackset_frame(const ml_stackset_t *set, uint32_t uid) { return &set->frames[uid]; }

ml_sval_t ml_stackset_value(const ml_stackset_t *set, size_t snap, uint32_t uid)
{
    ml_sval_t zero = {0, 0, 0, 0, false};
    if (snap >= set->nsnaps || uid >= set->values_cap[snap])
        return zero;
    return set->values[snap][uid];
}
