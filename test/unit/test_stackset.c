/* test_stackset.c — stackset.c on snapshots built in memory: whatever the
 * numbering of a snapshot's nodes, frames and stacks (the last snapshot's,
 * another, duplicated records, a version 1 snapshot between), a stack is
 * found by its domain and frame identities alone, its values are summed
 * per snapshot, and its frames, written out only when it is asked for,
 * are its path. The set tries the last snapshot's numbers first (hints):
 * these cases make the hints right, wrong, and right but for a parent. */
#include "check.h"
#include "cli/stackset.h"

#include <stdlib.h>
#include <string.h>

#define NID 48      /* frame identities */
#define NPATH 700   /* call paths to choose stacks from */
#define MAXD 40     /* the deepest path */
#define MAXS 2000   /* stacks of one snapshot */
#define MAXN 100000 /* nodes of one snapshot */
#define MAXSNAP 10
#define MAXU 20000  /* stacks of the set */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void shuffle(uint32_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        uint32_t j = rnd((uint32_t)i), t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static ml_rmodule_t modules[] = {
    {0, "aa", 0x1000, 0x100000, false, "/srv/app/bin/service"},
    {1, "bb", 0x9000, 0x100000, false, "/srv/app/lib/libthing.so"},
};

/* A frame identity's module and offset. */
static int32_t id_module(uint32_t id) { return (int32_t)(id % 2); }
static uint64_t id_offset(uint32_t id) { return 0x100 + 16 * (uint64_t)id; }

/* Call paths, outermost frame first: each shares the outer part of an
 * earlier one, as a process's stacks do. */
typedef struct {
    int domain;
    uint32_t n;
    uint32_t o[MAXD];
} path_t;

static path_t paths[NPATH];

static void make_paths(void)
{
    for (uint32_t p = 0; p < NPATH; p++) {
        path_t *x = &paths[p];
        x->domain = rnd(3) ? ML_DOM_MALLOC : ML_DOM_PYTHON;
        x->n = 0;
        if (p && rnd(8)) {
            const path_t *from = &paths[rnd(p)];
            uint32_t keep = rnd(from->n + 1);
            memcpy(x->o, from->o, keep * sizeof *x->o);
            x->n = keep;
        }
        for (uint32_t k = rnd(9); k > 0 && x->n < MAXD; k--)
            x->o[x->n++] = rnd(NID);
    }
}

/* A snapshot and the memory it points to (freed by drop). */
typedef struct {
    ml_snapshot_t s;
    ml_rframe_t frames[2 * NID];
    char names[2 * NID][16];
    ml_rstack_t stacks[MAXS];
    uint32_t v1frames[MAXS][MAXD];
    uint32_t parent[MAXN + 1], frame[MAXN + 1];
} snap_t;

/* How a snapshot is numbered. */
typedef struct {
    bool v1;          /* stacks as lists of frames, no tree */
    bool shuffle;     /* frames, node order (parents still first) and stacks in random order */
    bool twin_frames; /* every identity written as two frame records */
    bool twin_nodes;  /* some nodes written twice */
} how_t;

/* The frame records of a snapshot: id_of[i] is the identity of record i;
 * rec[id][0..1] the records of identity id. */
static void make_frames(snap_t *sn, const how_t *how, uint32_t rec[NID][2])
{
    uint32_t nrec = how->twin_frames ? 2 * NID : NID, order[2 * NID];
    for (uint32_t i = 0; i < nrec; i++)
        order[i] = i;
    if (how->shuffle)
        shuffle(order, nrec);
    for (uint32_t i = 0; i < nrec; i++) {
        uint32_t id = order[i] % NID;
        ml_rframe_t *f = &sn->frames[i];
        snprintf(sn->names[i], sizeof sn->names[i], "fn%u", id);
        *f = (ml_rframe_t){ML_FRAME_NATIVE, id_module(id), id_offset(id), sn->names[i], NULL, 0, false, 0, NULL};
        rec[id][order[i] / NID] = i;
        if (!how->twin_frames)
            rec[id][1] = i;
    }
    sn->s.frames = sn->frames;
    sn->s.nframes = nrec;
}

/* A snapshot of the paths chosen[0..n) with live bytes live[i]. */
static snap_t *build(const uint32_t *chosen, const int64_t *live, size_t n, const how_t *how)
{
    snap_t *sn = calloc(1, sizeof *sn);
    uint32_t rec[NID][2];
    sn->s.version = how->v1 ? 1 : 2;
    sn->s.modules = modules;
    sn->s.nmodules = ML_ARRAY_LEN(modules);
    make_frames(sn, how, rec);
    uint32_t sorder[MAXS];
    for (uint32_t i = 0; i < n; i++)
        sorder[i] = i;
    if (how->shuffle)
        shuffle(sorder, n);
    /* the tree as a trie of the paths (trie node t: tparent[t], tframe[t],
     * its children from child[t] on through sibling[]); a twin is a second
     * node for the same (parent, frame) */
    static uint32_t tparent[MAXN + 1], tframe[MAXN + 1], child[MAXN + 1], sibling[MAXN + 1], leaf[MAXS];
    uint32_t nt = 0;
    child[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        const path_t *p = &paths[chosen[sorder[i]]];
        sn->stacks[i] = (ml_rstack_t){.id = i, .domain = p->domain, .live_bytes = live[sorder[i]],
                                      .live_count = 1, .total_bytes = live[sorder[i]], .total_count = 1};
        if (how->v1) {
            for (uint32_t k = 0; k < p->n; k++)
                sn->v1frames[i][k] = rec[p->o[p->n - 1 - k]][rnd(2)];
            sn->stacks[i].nframes = p->n;
            sn->stacks[i].frames = p->n ? sn->v1frames[i] : NULL;
            continue;
        }
        uint32_t t = 0;
        for (uint32_t k = 0; k < p->n && nt < MAXN; k++) {
            uint32_t f = rec[p->o[k]][rnd(2)], c = 0;
            for (uint32_t x = child[t]; x && !c; x = sibling[x])
                if (tframe[x] == f)
                    c = x;
            if (!c || (how->twin_nodes && !rnd(16))) {
                c = ++nt;
                tparent[c] = t;
                tframe[c] = f;
                child[c] = 0;
                sibling[c] = child[t];
                child[t] = c;
            }
            t = c;
        }
        leaf[i] = t;
        sn->stacks[i].nframes = p->n;
    }
    CHECK(nt < MAXN);
    sn->s.stacks = sn->stacks;
    sn->s.nstacks = n;
    if (how->v1)
        return sn;
    /* number the trie: parents first, children in the order listed, or
     * in a random order that still puts parents first */
    static uint32_t num[MAXN + 1], ready[MAXN + 1];
    uint32_t nready = 0, next = 0;
    num[0] = 0;
    for (uint32_t x = child[0]; x; x = sibling[x])
        ready[nready++] = x;
    while (nready) {
        uint32_t at = how->shuffle ? rnd(nready) : nready - 1, x = ready[at];
        ready[at] = ready[--nready];
        num[x] = ++next;
        for (uint32_t y = child[x]; y; y = sibling[y])
            ready[nready++] = y;
    }
    for (uint32_t x = 1; x <= nt; x++) {
        sn->parent[num[x]] = num[tparent[x]];
        sn->frame[num[x]] = tframe[x];
    }
    sn->s.node_parent = sn->parent;
    sn->s.node_frame = sn->frame;
    sn->s.nnodes = nt;
    for (uint32_t i = 0; i < n; i++)
        sn->stacks[i].node = num[leaf[i]];
    return sn;
}

/* A copy of `from` (version 2) whose nodes have other frames here and
 * there: the children of such a node keep their frames but get another
 * parent, so the last snapshot's numbers are right for their frame and
 * wrong for their parent. */
static snap_t *mutate(const snap_t *from)
{
    snap_t *sn = malloc(sizeof *sn);
    memcpy(sn, from, sizeof *sn);
    sn->s.frames = sn->frames;
    for (size_t i = 0; i < sn->s.nframes; i++)
        sn->frames[i].function = sn->names[i];
    sn->s.stacks = sn->stacks;
    sn->s.node_parent = sn->parent;
    sn->s.node_frame = sn->frame;
    for (size_t x = 1; x <= sn->s.nnodes; x++)
        if (!rnd(12))
            sn->frame[x] = rnd((uint32_t)sn->s.nframes);
    for (size_t i = 0; i < sn->s.nstacks; i++)
        sn->stacks[i].live_bytes += 7;
    return sn;
}

/* ---- what the set must say ---- */

/* A stack's identity as text: domain, then each frame's module and
 * offset, innermost first. */
static void key_of(const ml_snapshot_t *s, size_t i, char *out, size_t cap)
{
    uint32_t fr[MAXD + 1];
    const ml_rstack_t *st = &s->stacks[i];
    ml_snapshot_stack_frames(s, st, fr);
    size_t at = (size_t)snprintf(out, cap, "%d:", st->domain);
    for (uint32_t k = 0; k < st->nframes && at < cap; k++) {
        const ml_rframe_t *f = &s->frames[fr[k]];
        at += (size_t)snprintf(out + at, cap - at, "%d/%llx,", f->module, (unsigned long long)f->offset);
    }
}

static char *uid_key[MAXU]; /* the identity each uid stood for, first seen */

typedef struct {
    uint32_t uid;
    char key[MAXD * 12 + 8];
} seen_t;

static seen_t seen[MAXSNAP][MAXS];
static size_t nseen[MAXSNAP];

/* Adds snapshot `sn` as snapshot si and checks at once what needs no
 * frames: one uid per identity, the domain, the values summed. */
static void add_and_check(ml_stackset_t *set, size_t si, const snap_t *sn)
{
    const ml_snapshot_t *s = &sn->s;
    uint32_t *uids = calloc(s->nstacks + 1, sizeof *uids);
    CHECK_EQ(ml_stackset_add_mapped(set, s, uids), si);
    nseen[si] = s->nstacks;
    for (size_t i = 0; i < s->nstacks; i++) {
        seen_t *e = &seen[si][i];
        e->uid = uids[i];
        key_of(s, i, e->key, sizeof e->key);
        CHECK(e->uid < ml_stackset_nstacks(set) && e->uid < MAXU);
        if (e->uid >= MAXU)
            continue;
        CHECK_EQ(ml_stackset_domain(set, e->uid), s->stacks[i].domain);
        if (!uid_key[e->uid]) {
            /* a new uid: no other uid may stand for the same identity */
            for (uint32_t u = 0; u < MAXU; u++)
                if (uid_key[u] && strcmp(uid_key[u], e->key) == 0) {
                    fprintf(stderr, "uids %u and %u are both %s\n", u, e->uid, e->key);
                    CHECK(false);
                }
            uid_key[e->uid] = strdup(e->key);
        } else if (strcmp(uid_key[e->uid], e->key) != 0) {
            fprintf(stderr, "uid %u is %s and %s\n", e->uid, uid_key[e->uid], e->key);
            CHECK(false);
        }
    }
    /* values: the sum over the snapshot's stacks of each uid */
    for (size_t i = 0; i < s->nstacks; i++) {
        int64_t sum = 0;
        for (size_t j = 0; j < s->nstacks; j++)
            if (uids[j] == uids[i])
                sum += s->stacks[j].live_bytes;
        ml_sval_t v = ml_stackset_value(set, si, uids[i]);
        CHECK(v.present);
        CHECK_EQ(v.live_bytes, sum);
    }
    free(uids);
}

/* Every stack's frames, asked for now (some long after they were made):
 * the path of its identity. */
static void check_frames(const ml_stackset_t *set, size_t nsnaps)
{
    for (size_t si = 0; si < nsnaps; si++)
        for (size_t i = 0; i < nseen[si]; i++) {
            const seen_t *e = &seen[si][i];
            const ml_sstack_t *st = ml_stackset_stack(set, e->uid);
            char key[sizeof e->key];
            size_t at = (size_t)snprintf(key, sizeof key, "%d:", st->domain);
            for (uint32_t k = 0; k < st->nframes && at < sizeof key; k++) {
                const ml_sframe_t *f = ml_stackset_frame(set, st->frames[k]);
                int32_t m = strcmp(f->build_id, "aa") == 0 ? 0 : 1;
                at += (size_t)snprintf(key + at, sizeof key - at, "%d/%llx,", m, (unsigned long long)f->offset);
            }
            if (strcmp(key, e->key) != 0)
                fprintf(stderr, "stack %u: frames %s, should be %s\n", e->uid, key, e->key);
            CHECK(strcmp(key, e->key) == 0);
        }
}

static void reset(void)
{
    for (uint32_t u = 0; u < MAXU; u++) {
        free(uid_key[u]);
        uid_key[u] = NULL;
    }
    memset(nseen, 0, sizeof nseen);
}

/* Picks n paths (repeats allowed: the writer may write a stack twice). */
static void choose(uint32_t *chosen, int64_t *live, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        chosen[i] = rnd(NPATH);
        live[i] = 1 + rnd(100000);
    }
}

static void test_numberings(void)
{
    static uint32_t a[MAXS], d[MAXS];
    static int64_t la[MAXS], ld[MAXS];
    size_t na = 1500, nd = 1800;
    choose(a, la, na);
    choose(d, ld, nd);
    for (size_t i = 0; i < na / 3; i++)
        d[i] = a[i]; /* d shares some of a's stacks */
    const how_t plain = {0}, mixed = {.shuffle = true, .twin_frames = true, .twin_nodes = true}, v1 = {.v1 = true},
                twins = {.twin_frames = true, .twin_nodes = true};
    snap_t *s[MAXSNAP];
    s[0] = build(a, la, na, &plain);
    s[1] = build(a, la, na, &plain);   /* the same numbering: every hint right */
    s[2] = build(a, la, na, &mixed);   /* the same stacks numbered otherwise */
    s[3] = build(d, ld, nd, &plain);   /* other stacks */
    s[4] = mutate(s[3]);               /* hints right for frames, wrong for parents */
    s[5] = build(d, ld, nd, &v1);      /* no tree: hints dropped */
    s[6] = build(d, ld, nd, &plain);
    s[7] = build(a, la, na, &twins);   /* duplicated frames and nodes */
    s[8] = build(a, la, na, &mixed);
    s[9] = build(a, la, na, &mixed);
    ml_stackset_t *set = ml_stackset_new();
    for (size_t k = 0; k < MAXSNAP; k++) {
        add_and_check(set, k, s[k]);
        if (k == 4)
            check_frames(set, k + 1); /* some frames now, the others after more adds */
    }
    check_frames(set, MAXSNAP);
    ml_stackset_free(set);
    reset();
    for (size_t k = 0; k < MAXSNAP; k++)
        free(s[k]);
}

/* Stacks whose frames are never asked for cost nothing and leak nothing;
 * one asked for twice is the same. */
static void test_frames_on_demand(void)
{
    static uint32_t a[MAXS];
    static int64_t la[MAXS];
    choose(a, la, 500);
    const how_t plain = {0};
    snap_t *s = build(a, la, 500, &plain);
    ml_stackset_t *set = ml_stackset_new();
    CHECK_EQ(ml_stackset_add(set, &s->s), 0);
    size_t n = ml_stackset_nstacks(set);
    CHECK(n > 0);
    const ml_sstack_t *st = ml_stackset_stack(set, (uint32_t)(n - 1));
    uint32_t first = st->nframes ? st->frames[0] : UINT32_MAX;
    CHECK(ml_stackset_stack(set, (uint32_t)(n - 1)) == st);
    CHECK(!st->nframes || st->frames[0] == first);
    CHECK(st->frames != NULL);
    ml_stackset_free(set);
    free(s);
}

int main(void)
{
    make_paths();
    RUN(test_numberings);
    RUN(test_frames_on_demand);
    return check_failures ? 1 : 0;
}
