/* snapshot_write.c — one snapshot from the live ledger (see snapshot_write.h).
 *
 * A snapshot is sized by what is live, not by everything the process ever
 * did: `import torch` alone sees about a million distinct stacks, almost
 * all of which hold nothing a moment later. So, in four steps:
 *   select_stacks  the stacks that hold memory now, and those that
 *                  allocated or freed anything since this process's
 *                  previous snapshot: so every allocation shows, with its
 *                  stack, in the snapshot that follows it (unless the store
 *                  collected the stack first: core/ledger.c), a stack that
 *                  went to zero is seen going there, and a stack that did
 *                  nothing and holds nothing is left out; every stack still
 *                  counts in the domain totals;
 *   select_nodes   the call-tree nodes on their paths, each once, numbered
 *                  parents first (a parent is always older than its child,
 *                  so ascending node ids are such an order);
 *   number_frames  the distinct frames of those nodes, each once;
 *   write_body     header, modules, frames, nodes, stacks — gzip
 *                  compressed on its way to the file.
 * The ledger is read while threads keep allocating: counters are summed
 * shard by shard without stopping anyone, so a snapshot is a consistent
 * view of each stack, not an instant of the whole process.
 *
 * A big process's snapshot takes seconds (a million stacks), and the exit
 * path waits for one in flight for as long as it moves: every step bumps
 * ml_snapshot_progress as it goes, and the name of the temporary file is
 * published while it is open, so an exit that gives up on a stuck write
 * can still remove it. */

#include "snapshot/snapshot_write.h"
#include "common/config.h"
#include "common/format.h"
#include "common/io.h"
#include "core/addrtab.h"
#include "core/ledger.h"
#include "core/modules.h"
#include "core/stacktree.h"
#include "core/track.h"
#include "snapshot/symbolize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

_Atomic uint64_t ml_snapshots_failed;
_Atomic uint64_t ml_snapshot_progress;

static inline void progress(void) { atomic_fetch_add_explicit(&ml_snapshot_progress, 1, memory_order_relaxed); }

static ml_header_fn header_fns[8];
static _Atomic unsigned nheader_fns;
static ml_pyframe_fn pyframe_fn;

static struct {
    const char *name;
    uint64_t (*resident)(void);
} memory_fns[8];
static _Atomic unsigned nmemory_fns;

void ml_snapshot_add_header(ml_header_fn fn)
{
    unsigned i = atomic_fetch_add(&nheader_fns, 1);
    if (i < ML_ARRAY_LEN(header_fns))
        header_fns[i] = fn;
}

void ml_snapshot_add_memory(const char *name, uint64_t (*resident)(void))
{
    unsigned i = atomic_load(&nmemory_fns);
    if (i >= ML_ARRAY_LEN(memory_fns))
        return;
    memory_fns[i].name = name;
    memory_fns[i].resident = resident;
    atomic_store(&nmemory_fns, i + 1);
}

void ml_snapshot_set_pyframe_fn(ml_pyframe_fn fn) { pyframe_fn = fn; }

static ml_snapshot_want_ids_fn ids_want;
static ml_snapshot_ids_fn ids_fn;

void ml_snapshot_set_ids_observer(ml_snapshot_want_ids_fn want, ml_snapshot_ids_fn fn)
{
    ids_want = want;
    ids_fn = fn;
}

/* ---- what a snapshot holds ---- */

typedef struct {
    uint32_t id;
    ml_stack_view_t v;
    ml_totals_t t;
} row_t;

typedef struct {
    row_t *rows;
    size_t nrows;
    uint32_t nstacks;           /* ids looked at */
    uint64_t *live;             /* bit per id: it holds memory now */
    ml_totals_t dom[ML_DOM_COUNT];
    uint32_t *out_of;           /* node id -> its number in the file (0: the root, or not written) */
    uint32_t *nodes;            /* the file's nodes in order: node ids */
    uint32_t nnodes;
    uint32_t *frame_of;         /* per file node: its frame's number */
    uint64_t *frames;           /* the file's frames in order: encoded words */
    uint32_t nframes;
} plan_t;

/* Which stack ids held memory at this process's previous snapshot (the
 * dumper thread's alone: snapshots are written one at a time). A stack is
 * written when it holds memory now or did then: a diff of two snapshots
 * sees every stack whose live bytes changed, and a stack that only ever
 * churned (import-time temporaries: a third of a PyTorch process's stacks)
 * costs nothing in the file; its allocations stay in the domain totals.
 * An id given back and reused since is at worst written once for nothing. */
static uint64_t *prev_live;
static uint32_t prev_n;

static inline bool was_live(uint32_t id) { return id < prev_n && (prev_live[id >> 6] >> (id & 63) & 1); }

static int select_stacks(plan_t *p)
{
    p->nstacks = ml_ledger_ids();
    p->rows = malloc((size_t)p->nstacks * sizeof *p->rows + 1);
    p->live = calloc(((size_t)p->nstacks + 63) / 64 + 1, sizeof *p->live);
    if (!p->rows || !p->live)
        return ENOMEM;
    for (uint32_t id = 0; id < p->nstacks; id++) {
        row_t *r = &p->rows[p->nrows];
        if ((id & 1023) == 0)
            progress();
        if (!ml_ledger_stack(id, &r->v))
            continue;
        ml_ledger_totals(id, &r->t);
        ml_totals_t *d = &p->dom[r->v.domain];
        d->live_bytes += r->t.live_bytes;
        d->live_count += r->t.live_count;
        d->total_bytes += r->t.total_bytes;
        d->total_count += r->t.total_count;
        bool live = r->t.live_count || r->t.live_bytes;
        if (live)
            p->live[id >> 6] |= 1ull << (id & 63);
        if (live || was_live(id)) {
            r->id = id;
            p->nrows++;
        }
    }
    return 0;
}

/* This snapshot was written: its counts are what the next compares with. */
static void remember_live(plan_t *p)
{
    free(prev_live);
    prev_live = p->live;
    prev_n = p->nstacks;
    p->live = NULL;
}

static int select_nodes(plan_t *p, const ml_tree_t *t)
{
    uint32_t total = ml_tree_count((ml_tree_t *)t);
    p->out_of = calloc(total + 1, sizeof *p->out_of);
    if (!p->out_of)
        return ENOMEM;
    uint32_t marked = 0;
    for (size_t i = 0; i < p->nrows; i++) {
        if ((i & 1023) == 0)
            progress();
        /* up to the root, or to a node another stack marked already */
        for (uint32_t n = p->rows[i].v.leaf; n != ML_NODE_ROOT && n < total && !p->out_of[n];
             n = ml_tree_node(t, n)->parent) {
            p->out_of[n] = 1;
            marked++;
        }
    }
    p->nodes = malloc((size_t)marked * sizeof *p->nodes + 1);
    if (!p->nodes)
        return ENOMEM;
    for (uint32_t n = 1; n < total && p->nnodes < marked; n++)
        if (p->out_of[n]) {
            p->nodes[p->nnodes++] = n;
            p->out_of[n] = p->nnodes;
        }
    return 0;
}

typedef struct {
    uint64_t word;
    uint32_t first; /* its number in first-seen order */
} word_t;

static int cmp_word(const void *a, const void *b)
{
    uint64_t x = ((const word_t *)a)->word, y = ((const word_t *)b)->word;
    return (x > y) - (x < y);
}

/* The file's frames: each distinct word of the written nodes once, in word
 * order (a module's frames together, as symbolizing reads them). Distinct
 * words are found with a hash table (a million nodes share ~100,000
 * frames; sorting the nodes themselves took a third of a snapshot), then
 * only those are sorted. */
static int number_frames(plan_t *p, const ml_tree_t *t)
{
    size_t cap = 64;
    while (cap < (size_t)p->nnodes * 2)
        cap *= 2;
    uint32_t *slot = calloc(cap, sizeof *slot); /* first-seen number + 1 */
    word_t *seen = malloc((size_t)p->nnodes * sizeof *seen + 1);
    p->frame_of = malloc((size_t)p->nnodes * sizeof *p->frame_of + 1);
    p->frames = malloc((size_t)p->nnodes * sizeof *p->frames + 1);
    if (!slot || !seen || !p->frame_of || !p->frames) {
        free(slot);
        free(seen);
        return ENOMEM;
    }
    uint32_t nseen = 0;
    for (uint32_t i = 0; i < p->nnodes; i++) {
        if ((i & 0xffff) == 0)
            progress();
        uint64_t w = ml_tree_node(t, p->nodes[i])->word;
        size_t j = (size_t)((w * 0x9e3779b97f4a7c15ull) >> 24) & (cap - 1);
        while (slot[j] && seen[slot[j] - 1].word != w)
            j = (j + 1) & (cap - 1);
        if (!slot[j]) {
            seen[nseen] = (word_t){w, nseen};
            slot[j] = ++nseen;
        }
        p->frame_of[i] = slot[j] - 1; /* first-seen for now */
    }
    free(slot);
    qsort(seen, nseen, sizeof *seen, cmp_word);
    uint32_t *rank = malloc((size_t)nseen * sizeof *rank + 1);
    if (!rank) {
        free(seen);
        return ENOMEM;
    }
    for (uint32_t k = 0; k < nseen; k++) {
        p->frames[k] = seen[k].word;
        rank[seen[k].first] = k;
    }
    p->nframes = nseen;
    for (uint32_t i = 0; i < p->nnodes; i++)
        p->frame_of[i] = rank[p->frame_of[i]];
    free(rank);
    free(seen);
    return 0;
}

static void plan_free(plan_t *p)
{
    free(p->rows);
    free(p->live);
    free(p->out_of);
    free(p->nodes);
    free(p->frame_of);
    free(p->frames);
}

/* ---- writing ---- */

static void read_status(uint64_t *rss, uint64_t *peak)
{
    char buf[4096];
    *rss = *peak = 0;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = strstr(buf, "VmRSS:");
    if (p)
        *rss = strtoull(p + 6, NULL, 10) * 1024;
    p = strstr(buf, "VmHWM:");
    if (p)
        *peak = strtoull(p + 6, NULL, 10) * 1024;
}

static void write_cmdline(ml_out_t *o)
{
    ml_out_str(o, "cmdline");
    if (ml_config.redact_cmdline) {
        ml_out_str(o, "\t[redacted]\n");
        return;
    }
    char buf[8192];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        buf[n] = '\0';
        for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
            ml_out_char(o, '\t');
            ml_out_field(o, p);
        }
    }
    ml_out_char(o, '\n');
}

static void write_kv_u64(ml_out_t *o, const char *k, uint64_t v)
{
    ml_out_str(o, k);
    ml_out_char(o, '\t');
    ml_out_u64(o, v);
    ml_out_char(o, '\n');
}

static const char *const domain_names[] = ML_DOMAIN_NAMES;

static void write_header(ml_out_t *o, pid_t pid, unsigned seq, const char *trigger, const plan_t *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t rss, peak;
    read_status(&rss, &peak);
    char exe[4096];
    ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[en > 0 ? en : 0] = '\0';

    ml_out_printf(o, "%s\t%d\n", ML_FORMAT_MAGIC, ML_FORMAT_VERSION);
    write_kv_u64(o, "pid", (uint64_t)pid);
    write_kv_u64(o, "ppid", (uint64_t)getppid());
    ml_out_str(o, "exe\t");
    ml_out_field(o, exe);
    ml_out_char(o, '\n');
    write_cmdline(o);
    ml_out_printf(o, "time\t%llu.%09llu\n", (unsigned long long)ts.tv_sec, (unsigned long long)ts.tv_nsec);
    write_kv_u64(o, "seq", seq);
    ml_out_printf(o, "trigger\t%s\n", trigger);
    write_kv_u64(o, "rss", rss);
    write_kv_u64(o, "peak_rss", peak);
    write_kv_u64(o, "sample_bytes", ml_config.sample_bytes);
    write_kv_u64(o, "depth", ml_config.depth);

    ml_ledger_stats_t ls;
    ml_ledger_stats(&ls);
    ml_addrtab_stats_t as;
    ml_addrtab_stats(&as);
    uint64_t store = ml_ledger_resident();
    ml_out_printf(o, "stacks\t%llu\t%llu\t%llu\n", (unsigned long long)(ls.used - ML_STACK_FIRST),
                  (unsigned long long)ls.capacity, (unsigned long long)ls.overflowed);
    ml_out_printf(o,
                  "store\tresident\t%llu\tnodes\t%llu\tstacks\t%llu\tnode_capacity\t%llu\tdegraded\t%llu"
                  "\tcollections\t%llu\tcollected\t%llu\n",
                  (unsigned long long)store, (unsigned long long)ls.nodes,
                  (unsigned long long)(ls.used - ML_STACK_FIRST), (unsigned long long)ls.nodes_capacity,
                  (unsigned long long)ls.degraded, (unsigned long long)ls.collections,
                  (unsigned long long)ls.collected);
    ml_out_printf(o, "written\tstacks\t%zu\tnodes\t%u\tframes\t%u\n", p->nrows, p->nnodes, p->nframes);
    ml_out_printf(o, "addresses\t%llu\t%llu\n", (unsigned long long)as.entries, (unsigned long long)as.bytes);
    ml_out_printf(o, "memory\tstacks\t%llu\taddresses\t%llu", (unsigned long long)store,
                  (unsigned long long)as.bytes);
    unsigned nm_fns = atomic_load(&nmemory_fns);
    for (unsigned i = 0; i < nm_fns && i < ML_ARRAY_LEN(memory_fns); i++)
        ml_out_printf(o, "\t%s\t%llu", memory_fns[i].name, (unsigned long long)memory_fns[i].resident());
    ml_out_char(o, '\n');
    ml_out_printf(o, "problem\taddress_reused_untracked\t%llu\n", (unsigned long long)as.replaced);
    ml_out_printf(o, "problem\taddress_table_full\t%llu\n", (unsigned long long)as.nomem);
    ml_out_printf(o, "problem\tstack_store_degraded\t%llu\n", (unsigned long long)ls.degraded);
    ml_out_printf(o, "problem\tstack_store_overflowed\t%llu\n", (unsigned long long)ls.overflowed);
    ml_out_printf(o, "problem\tcounts_dropped\t%llu\n", (unsigned long long)ls.counts_dropped);
    ml_out_printf(o, "problem\tsnapshots_failed\t%llu\n", (unsigned long long)atomic_load(&ml_snapshots_failed));
    for (int d = 0; d < ML_DOM_COUNT; d++) {
        uint64_t rb, rc; /* what collected stacks of the domain had allocated */
        ml_ledger_retired((unsigned)d, &rb, &rc);
        ml_out_printf(o, "domain\t%s\t%llu\t%llu\t%llu\t%llu\n", domain_names[d],
                      (unsigned long long)p->dom[d].live_bytes, (unsigned long long)p->dom[d].live_count,
                      (unsigned long long)(p->dom[d].total_bytes + rb),
                      (unsigned long long)(p->dom[d].total_count + rc));
    }
    unsigned nh = atomic_load(&nheader_fns);
    for (unsigned i = 0; i < nh && i < ML_ARRAY_LEN(header_fns); i++)
        if (header_fns[i])
            header_fns[i](o);
}

static void write_modules(ml_out_t *o)
{
    uint32_t nm = ml_modules_count();
    for (uint32_t i = 0; i < nm; i++) {
        const ml_module_t *m = ml_modules_get(i);
        char bid[2 * ML_BUILD_ID_MAX + 1];
        ml_build_id_hex(m, bid, sizeof bid);
        ml_out_printf(o, "module\t%u\t%s\t%llx\t%llx\t%s\t", i, bid[0] ? bid : "-", (unsigned long long)m->bias,
                      (unsigned long long)(m->hi - m->lo),
                      atomic_load(&m->removed_gen) ? "unloaded" : "loaded");
        ml_out_field(o, m->path);
        ml_out_char(o, '\n');
    }
}

static void write_name(ml_out_t *o, const char *function, const char *file, int line)
{
    ml_out_field(o, function);
    ml_out_char(o, '\t');
    ml_out_field(o, file);
    ml_out_char(o, '\t');
    if (line > 0)
        ml_out_u64(o, (uint64_t)line);
    else
        ml_out_char(o, '-');
}

/* Returns the functions inlined at the address, for write_frame's
 * `inline` records after the frame's line. */
static ml_symbol_t write_native(ml_out_t *o, uint32_t mi, uintptr_t offset)
{
    const ml_module_t *m = ml_modules_get(mi);
    ml_symbol_t s;
    ml_symbolize(mi, m->bias + offset, &s);
    ml_out_printf(o, "native\t%u\t%llx\t", mi, (unsigned long long)offset);
    write_name(o, s.function, s.file, s.line);
    return s;
}

static void write_frame(ml_out_t *o, uint32_t i, uint64_t w, uint32_t gen)
{
    progress(); /* naming a frame may read a module's debug information first */
    ml_symbol_t native = {NULL, NULL, 0, 0, NULL};
    ml_out_printf(o, "frame\t%u\t", i);
    switch (ML_WORD_KIND(w)) {
    case ML_WORD_MARK:
        ml_out_str(o, "mark\t-\t-\t");
        if (ML_MARK_IS_PY_ELIDED(w))
            ml_out_printf(o, "[%u Python frames elided]\t-\t-", ML_MARK_PY_ELIDED_COUNT(w));
        else
            write_name(o, w == ML_MARK_ELIDED ? "[native frames left out: the stack store was full]" : "[mark]",
                       NULL, 0);
        break;
    case ML_WORD_PY: {
        ml_pyframe_t py = {NULL, NULL, 0};
        if (!pyframe_fn || !pyframe_fn(w, &py))
            py.function = "[unknown python frame]";
        ml_out_str(o, "python\t-\t-\t");
        write_name(o, py.function, py.file, py.line);
        break;
    }
    case ML_WORD_ABS: {
        /* in no module when captured (JIT code, or one registered late):
         * named by the module that held it in the generation it was taken */
        uintptr_t pc = ml_word_abs_pc(w);
        int mi = ml_modules_find(pc, ml_word_abs_gen(w, gen));
        if (mi >= 0)
            native = write_native(o, (uint32_t)mi, pc - ml_modules_get((uint32_t)mi)->bias);
        else
            ml_out_printf(o, "native\t-\t%llx\t-\t-\t-", (unsigned long long)pc);
        break;
    }
    default:
        native = write_native(o, (uint32_t)(w >> ML_WORD_MODULE_SHIFT) - 1, (uintptr_t)(w & ML_WORD_OFFSET_MASK));
        break;
    }
    ml_out_char(o, '\n');
    /* the functions inlined at the address, innermost first, each under the
     * frame it belongs to (docs/format.md, "Inlined frames") */
    for (uint32_t k = 0; k < native.ninlined; k++) {
        ml_out_printf(o, "inline\t%u\t", i);
        write_name(o, native.inlined[k].function, native.inlined[k].file, native.inlined[k].line);
        ml_out_char(o, '\n');
    }
}

static void write_body(ml_out_t *o, pid_t pid, unsigned seq, const char *trigger, const plan_t *p, uint32_t gen,
                       const ml_tree_t *t)
{
    write_header(o, pid, seq, trigger, p);
    write_modules(o);
    for (uint32_t f = 0; f < p->nframes; f++)
        write_frame(o, f, p->frames[f], gen);
    /* nodes: the k-th record is node k; "N" when its parent is the node
     * just before it (the usual case: chains), else "n" and how far back
     * its parent is (k back: the root) */
    for (uint32_t i = 0; i < p->nnodes; i++) {
        uint32_t parent = ml_tree_node(t, p->nodes[i])->parent;
        uint32_t at = parent == ML_NODE_ROOT ? 0 : p->out_of[parent];
        if (at == i)
            ml_out_printf(o, "N\t%u\n", p->frame_of[i]);
        else
            ml_out_printf(o, "n\t%u\t%u\n", p->frame_of[i], i + 1 - at);
    }
    for (size_t i = 0; i < p->nrows; i++) {
        const row_t *r = &p->rows[i];
        ml_out_printf(o, "s\t%s\t%llu\t%llu\t%llu\t%llu\t", domain_names[r->v.domain],
                      (unsigned long long)r->t.live_bytes, (unsigned long long)r->t.live_count,
                      (unsigned long long)r->t.total_bytes, (unsigned long long)r->t.total_count);
        if (r->v.overflow)
            ml_out_char(o, '-');
        else
            ml_out_u64(o, r->v.leaf == ML_NODE_ROOT ? 0 : p->out_of[r->v.leaf]);
        ml_out_char(o, '\n');
    }
    ml_out_printf(o, "end\t%zu\t%u\t%u\n", p->nrows, p->nframes, p->nnodes);
}

/* ---- the file: gzip on the way out, temporary name, rename ---- */

typedef struct {
    z_stream z;
    int fd;
    unsigned char out[1 << 16];
} gz_t;

static int gz_drain(gz_t *g, int flush)
{
    do {
        g->z.next_out = g->out;
        g->z.avail_out = sizeof g->out;
        int r = deflate(&g->z, flush);
        if (r == Z_STREAM_ERROR)
            return EIO;
        size_t have = sizeof g->out - g->z.avail_out, off = 0;
        while (off < have) {
            ssize_t w = write(g->fd, g->out + off, have - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return errno;
            off += (size_t)w;
        }
    } while (g->z.avail_out == 0);
    return 0;
}

static int gz_sink(void *ctx, const char *p, size_t n)
{
    gz_t *g = ctx;
    progress();
    g->z.next_in = (unsigned char *)(uintptr_t)p;
    g->z.avail_in = (uInt)n;
    return gz_drain(g, Z_NO_FLUSH);
}

/* ---- the temporary file while it is open ----
 * Its path is published so the exit path, giving up on a write that
 * stopped, can remove it (ml_snapshot_discard_temp). Who removes it is
 * settled by one compare-and-swap on temp_state: the writer taking it back
 * before renaming, or the exit path taking it away. */

enum { TEMP_NONE, TEMP_OPEN, TEMP_DISCARDED };
static char temp_path[PATH_MAX + 128];
static _Atomic int temp_state;

static void temp_publish(const char *dir, const char *name)
{
    ml_fmt(temp_path, sizeof temp_path, "%s/%s", dir, name);
    atomic_store(&temp_state, TEMP_OPEN);
}

/* The writer's: true when the file is still its own to rename or remove. */
static bool temp_take_back(void)
{
    int open_ = TEMP_OPEN;
    bool mine = atomic_compare_exchange_strong(&temp_state, &open_, TEMP_NONE);
    if (!mine)
        atomic_store(&temp_state, TEMP_NONE); /* discarded: already removed */
    return mine;
}

bool ml_snapshot_discard_temp(char *path, size_t cap)
{
    int open_ = TEMP_OPEN;
    if (!atomic_compare_exchange_strong(&temp_state, &open_, TEMP_DISCARDED))
        return false;
    unlink(temp_path);
    if (path)
        ml_fmt(path, cap, "%s", temp_path);
    return true;
}

void ml_snapshot_after_fork_child(void) { atomic_store(&temp_state, TEMP_NONE); }

/* ---- Stale temporary files ----
 * A process killed while it writes (SIGKILL, the OOM killer, a container's
 * grace period running out) leaves its temporary file: nothing of it runs
 * any more to remove it. The next process writing into the directory does,
 * when that is certainly safe, looking at most once a minute. A file goes
 * only if all of these hold:
 *   - its name is exactly .memledger.<pid>.<seq>.snap.<hex>.tmp, the shape
 *     create_temp makes (nothing else in the directory is ever touched);
 *   - no process <pid> exists here (kill(pid, 0) says ESRCH) and it is not
 *     this process's own pid;
 *   - it is a regular file (never a symlink) owned by this process's user;
 *   - no writer holds it: a writer keeps an flock on its temporary file
 *     while it writes, and the kernel drops it when the writer dies,
 *     whatever PID namespace it ran in (a pid that does not exist here
 *     may be a live writer's in another namespace sharing the directory);
 *     and it has not been written to for STALE_UNLOCKED_S, longer than a
 *     writer takes between creating its file and locking it. Where the
 *     filesystem cannot lock, the file must be untouched for STALE_TEMP_S
 *     instead: such a writer bumps its file's time with every 64 KiB. */
#define STALE_UNLOCKED_S 2
#define STALE_TEMP_S 600
#define STALE_LOOK_EVERY_S 60

/* The pid in a temporary file's name; 0 when the name is not one. */
static long stale_temp_pid(const char *name)
{
    static const char head[] = ".memledger.", tail[] = "." ML_SNAPSHOT_EXT ".";
    if (strncmp(name, head, sizeof head - 1) != 0)
        return 0;
    const char *p = name + sizeof head - 1;
    long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (!digits || *p != '.' || pid <= 0 || pid > INT_MAX)
        return 0;
    for (digits = 0, p++; *p >= '0' && *p <= '9' && digits < 10; p++)
        digits++;
    if (!digits || strncmp(p, tail, sizeof tail - 1) != 0)
        return 0;
    for (digits = 0, p += sizeof tail - 1; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
        digits++;
    return digits && digits <= 16 && strcmp(p, ".tmp") == 0 ? pid : 0;
}

static void clean_stale_temps(int dfd)
{
    static int64_t last_look; /* the writer's alone */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (last_look && now.tv_sec - last_look < STALE_LOOK_EVERY_S)
        return;
    last_look = now.tv_sec ? now.tv_sec : 1;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = stale_temp_pid(e->d_name);
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            st.st_uid != geteuid() || wall.tv_sec - st.st_mtime < STALE_UNLOCKED_S)
            continue;
        int tfd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat ts;
        if (tfd < 0 || fstat(tfd, &ts) != 0 || ts.st_ino != st.st_ino || ts.st_dev != st.st_dev) {
            if (tfd >= 0)
                close(tfd);
            continue;
        }
        bool unheld = flock(tfd, LOCK_EX | LOCK_NB) == 0;
        bool lockable = unheld || errno == EWOULDBLOCK;
        if (unheld || (!lockable && wall.tv_sec - st.st_mtime >= STALE_TEMP_S))
            unlinkat(dfd, e->d_name, 0);
        close(tfd); /* and the lock with it */
    }
    closedir(d);
}

/* Creates the temporary file: never through a symlink (O_NOFOLLOW), never
 * over an existing file (O_EXCL), mode 0600. The name carries a random part,
 * so a file left by an earlier process with the same pid, or one planted in
 * a shared directory, cannot block the snapshot. Returns the fd, or -1 with
 * errno set. */
static int create_temp(int dfd, pid_t pid, unsigned seq, char *name, size_t cap)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)attempt << 56);
        }
        ml_fmt(name, cap, ".memledger.%d.%u.%s.%08llx.tmp", (int)pid, seq, ML_SNAPSHOT_EXT,
               (unsigned long long)(r & 0xffffffffffull));
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            (void)flock(fd, LOCK_EX | LOCK_NB); /* held while it is written: see "Stale temporary files" */
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Writes the plan into an open file, compressed. Returns 0 or an errno. */
static int write_file(int fd, pid_t pid, unsigned seq, const char *trigger, const plan_t *p, uint32_t gen,
                      const ml_tree_t *t)
{
    gz_t *g = malloc(sizeof *g);
    ml_out_t *o = malloc(sizeof *o);
    int err = 0;
    if (!g || !o) {
        free(g);
        free(o);
        return ENOMEM;
    }
    memset(&g->z, 0, sizeof g->z);
    g->fd = fd;
    /* level 1: a snapshot is mostly repeated names and small numbers, which
     * the fastest level already shrinks several times over */
    if (deflateInit2(&g->z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(g);
        free(o);
        return ENOMEM;
    }
    ml_out_init_sink(o, gz_sink, g);
    write_body(o, pid, seq, trigger, p, gen, t);
    if (!ml_out_flush(o))
        err = o->err ? o->err : EIO;
    g->z.next_in = NULL;
    g->z.avail_in = 0;
    if (!err)
        err = gz_drain(g, Z_FINISH);
    deflateEnd(&g->z);
    free(g);
    free(o);
    return err;
}

/* Hands the written records' stack ids to the observer, if it wants them. */
static void tell_ids(unsigned seq, const char *trigger, const plan_t *p)
{
    if (!ids_fn || !ids_want || !ids_want(trigger))
        return;
    uint32_t *ids = malloc(p->nrows * sizeof *ids + 1);
    if (!ids)
        return;
    for (size_t i = 0; i < p->nrows; i++)
        ids[i] = p->rows[i].id;
    ids_fn(seq, ids, p->nrows);
    free(ids);
}

/* ---- the final name: never another file's ----
 * A pid comes back: in a container the service is pid 1 (or another small
 * fixed pid) after every restart, and an exec keeps the pid. So the name
 * memledger.<pid>.<seq>.snap may already be taken, by an earlier process's
 * snapshot: the one a user keeps to compare against. A snapshot therefore
 * takes a number above every snapshot of its pid already in the directory
 * (the names stay sortable in snapshot order, and `memledger snapshot`
 * finds the new one as "a higher number than before"), and is renamed
 * into place only where no file is: a writer racing for the same name
 * (another pid namespace sharing the directory) makes it take the next. */

/* The largest <seq> of the names memledger.<pid>.<seq>.snap in dir; 0 when
 * none (or the directory cannot be read: the write then says why). Numbers
 * past ML_SEQ_MAX are ignored: no writer makes them. */
static unsigned highest_seq(const char *dir, pid_t pid)
{
    char prefix[32];
    size_t pl = ml_fmt(prefix, sizeof prefix, "memledger.%d.", (int)pid);
    DIR *d = opendir(dir);
    unsigned best = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        const char *p = e->d_name + pl;
        unsigned long long n = 0;
        int digits = 0;
        for (; *p >= '0' && *p <= '9' && n <= ML_SEQ_MAX; p++, digits++)
            n = n * 10 + (unsigned)(*p - '0');
        if (digits && n <= ML_SEQ_MAX && strcmp(p, "." ML_SNAPSHOT_EXT) == 0 && n > best)
            best = (unsigned)n;
    }
    if (d)
        closedir(d);
    return best;
}

/* Renames tmp to memledger.<pid>.<*seq>.snap in dfd without ever replacing
 * a file: renameat2(RENAME_NOREPLACE), or where the filesystem or kernel
 * lacks it, link + unlink; where it has no hard links either, a check
 * just before a plain rename (a writer racing within that gap could still
 * lose its file; docs/format.md). A name found taken moves *seq on. The
 * final name goes to final. Returns 0 or an errno value. */
static int rename_noreplace(int dfd, const char *tmp, pid_t pid, unsigned *seq, char *final, size_t cap)
{
    for (int attempt = 0; attempt < 64 && *seq <= ML_SEQ_MAX; attempt++, ++*seq) {
        ml_fmt(final, cap, "memledger.%d.%u.%s", (int)pid, *seq, ML_SNAPSHOT_EXT);
        if (renameat2(dfd, tmp, dfd, final, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            continue;
        if (errno != EINVAL && errno != ENOSYS && errno != EPERM && errno != EOPNOTSUPP)
            return errno;
        if (linkat(dfd, tmp, dfd, final, 0) == 0) {
            unlinkat(dfd, tmp, 0);
            return 0;
        }
        if (errno == EEXIST)
            continue;
        if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EMLINK)
            return errno;
        if (faccessat(dfd, final, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
            continue;
        return renameat(dfd, tmp, dfd, final) == 0 ? 0 : errno;
    }
    return EEXIST;
}

int ml_snapshot_write(const char *dir, pid_t pid, unsigned *seqp, const char *trigger, char *path_out, size_t cap)
{
    char tmp[128], final[128];
    unsigned seq = *seqp;
    unsigned above = highest_seq(dir, pid); /* an earlier process's snapshots: never overwritten */
    if (seq <= above)
        seq = above + 1;
    ml_fmt(final, sizeof final, "memledger.%d.%u.%s", (int)pid, seq, ML_SNAPSHOT_EXT);
    /* The temporary file comes first, so a snapshot shows in the directory
     * from its start (a big one spends seconds choosing what to write).
     * Every step is relative to one open descriptor of the directory, so a
     * directory renamed or replaced mid-write cannot split the temporary
     * file from its final name. */
    int err = 0, fd = -1;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        err = errno;
    /* The signals are held while the file and the exit path's record of
     * it disagree (made but not published, taken back but not renamed): a
     * program's handler for the snapshot signal, chained from memledger's
     * on this thread, may call exit(), and the exit path then removes only
     * the temporary file it knows of. */
    sigset_t all, old;
    sigfillset(&all);
    if (!err) {
        clean_stale_temps(dfd);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        if ((fd = create_temp(dfd, pid, seq, tmp, sizeof tmp)) < 0)
            err = errno;
        else
            temp_publish(dir, tmp);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    plan_t p;
    memset(&p, 0, sizeof p);
    if (!err) {
        uint32_t gen = ml_modules_sync(true);
        /* the stacks' leaves are nodes of the current tree: no collection
         * runs while a snapshot is written (both hold the dumper's lock) */
        const ml_tree_t *t = ml_ledger_tree();
        err = select_stacks(&p);
        if (!err)
            err = select_nodes(&p, t);
        if (!err)
            err = number_frames(&p, t);
        if (!err)
            err = write_file(fd, pid, seq, trigger, &p, gen, t);
    }
    if (fd >= 0) {
        if (close(fd) != 0 && !err)
            err = errno;
        pthread_sigmask(SIG_BLOCK, &all, &old);
        if (!temp_take_back())
            err = ECANCELED; /* the exit path gave up on it and removed it */
        else if (!err)
            err = rename_noreplace(dfd, tmp, pid, &seq, final, sizeof final);
        if (err && err != ECANCELED)
            unlinkat(dfd, tmp, 0);
        else if (!err && path_out)
            ml_fmt(path_out, cap, "%s/%s", dir, final);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    *seqp = seq;
    if (dfd >= 0)
        close(dfd);
    if (!err) {
        remember_live(&p);
        tell_ids(seq, trigger, &p);
    }
    plan_free(&p);
    if (err)
        atomic_fetch_add(&ml_snapshots_failed, 1);
    return err;
}
