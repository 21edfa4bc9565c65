/* why.c — `memledger why` in the target (see why.h, docs/why.md).
 *
 * The exchange, all in MEMLEDGER_DIR, each file written under a temporary
 * name and renamed:
 *   1. the CLI writes memledger.<pid>.why-request (a token and the limits)
 *      and asks for a snapshot as `memledger snapshot` does;
 *   2. once that snapshot is written, the writer asks this file whether it
 *      wants the snapshot's stacks (one faccessat); the request is there,
 *      so it gets the ledger id of every `s` record, takes the request
 *      (read, then unlinked) and starts the search thread;
 *   3. the CLI reads the snapshot (and its base), picks the stacks that
 *      grew most and names them by their place in the snapshot in
 *      memledger.<pid>.<seq>.why-select; the thread waits for that file
 *      (up to a minute, polling every 10 ms), takes it, and searches:
 *      whyheap.c samples blocks and scans native memory (the program runs
 *      on meanwhile), whygraph.c walks Python's objects with the GIL held
 *      (the program's Python threads wait: the pause, bounded and
 *      reported);
 *   4. the thread writes memledger.<pid>.<seq>.why, which the CLI reads and
 *      removes.
 * One search at a time; a request that comes during one is answered at
 * once with an error. The thread is the library's own (nothing it
 * allocates is tracked, so the ledger's figures are the program's alone)
 * and blocks every signal. */
#include "python/why.h"
#include "common/config.h"
#include "common/format.h"
#include "common/io.h"
#include "core/sysmem.h"
#include "core/thread.h"
#include "python/whygraph.h"
#include "python/whyheap.h"
#include "snapshot/snapshot_write.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILE 65536
#define SELECT_WAIT_NS (60ull * 1000000000ull)
#define REQUEST_MAX_AGE 120 /* seconds: an older request was abandoned */

typedef struct {
    unsigned seq;
    char token[40];
    unsigned samples;
    uint64_t max_pause_ms, time_limit_ms;
    uint32_t *ids;          /* the snapshot's records' stack ids, by place */
    size_t nids;
    /* from the select file */
    uint32_t stack_id[ML_WHY_MAX_STACKS * 16], stack_slot[ML_WHY_MAX_STACKS * 16];
    size_t nstacks;
    uint32_t nslots;
} session_t;

static _Atomic int busy;

static void name_of(char *out, size_t cap, const char *what, long seq)
{
    if (seq >= 0)
        ml_fmt(out, cap, "memledger.%d.%ld.%s", (int)getpid(), seq, what);
    else
        ml_fmt(out, cap, "memledger.%d.%s", (int)getpid(), what);
}

/* A request waits (never at exit: the process is going, and a search
 * thread started now would race its teardown). */
static bool want(const char *trigger)
{
    if (strcmp(trigger, "exit") == 0)
        return false;
    char name[96];
    name_of(name, sizeof name, ML_WHY_REQUEST_SUFFIX, -1);
    int dfd = open(ml_config.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return false;
    bool there = faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    close(dfd);
    return there;
}

/* Reads a request or select file: a regular file of this user that no one
 * else may write, at most MAX_FILE bytes, younger than max_age seconds
 * (0: any age). Removes it once read. Returns its text (NUL-terminated,
 * malloc'd: this thread's allocations are untracked) or NULL. */
static char *take_file(const char *name, int max_age)
{
    int dfd = open(ml_config.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return NULL;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    char *text = NULL;
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        !(st.st_mode & 022) && st.st_size < MAX_FILE &&
        (!max_age || time(NULL) - st.st_mtime <= max_age) && (text = malloc((size_t)st.st_size + 1))) {
        size_t got = 0;
        for (;;) {
            ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        text[got] = '\0';
    }
    if (fd >= 0) {
        close(fd);
        unlinkat(dfd, name, 0); /* taken, or not one to take: either way gone */
    }
    close(dfd);
    return text;
}

/* The next line of *p split at tabs into f[max]; returns the field count,
 * 0 at the end. */
static int next_line(char **p, char **f, int max)
{
    if (!*p || !**p)
        return 0;
    char *line = *p, *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = line + strlen(line);
    }
    return ml_split_tabs(line, f, max);
}

static bool magic_ok(char **p, const char *magic)
{
    char *f[4];
    int n = next_line(p, f, 4);
    return n == 2 && strcmp(f[0], magic) == 0 && atoi(f[1]) == ML_WHY_VERSION;
}

static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (!n || n >= 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return true;
}

/* ---- the answer ---- */

static const char *const domain_names[] = ML_DOMAIN_NAMES;
static const char *const root_names[] = {"unknown", "global", "local", "external", "unreachable", "native", "none"};

static void field(ml_out_t *o, const char *s)
{
    ml_out_char(o, '\t');
    ml_out_field(o, s && *s ? s : NULL);
}

/* Native hops from node `from` down to its sample: each block holds a
 * pointer into the next. `first_type` names the first holder (the object
 * the path reached), NULL: a native block. */
static void native_hops(ml_out_t *o, const ml_why_heap_t *h, int32_t from, const char *first_type)
{
    for (int32_t k = from; k >= 0 && h->nodes[k].child >= 0; k = h->nodes[k].child) {
        const ml_why_node_t *n = &h->nodes[k];
        ml_out_str(o, "native");
        field(o, k == from && first_type && *first_type ? first_type : "native block");
        ml_out_printf(o, "\t%llx\t%llu\t%s\n", (unsigned long long)n->off, (unsigned long long)n->size,
                      domain_names[n->domain < ML_DOM_COUNT ? n->domain : 0]);
    }
}

/* The node of sample s's tree, lowest level first, with a module global
 * pointing at it; -1 when none. */
static int32_t native_root(const ml_why_heap_t *h, uint32_t s)
{
    int32_t best = -1;
    for (uint32_t i = 0; i < h->n; i++)
        if (h->nodes[i].sample == s && h->nodes[i].root_at &&
            (best < 0 || h->nodes[i].level < h->nodes[best].level))
            best = (int32_t)i;
    return best;
}

/* The holder of sample s found furthest from it (the longest chain of
 * native pointers), or -1. */
static int32_t deepest(const ml_why_heap_t *h, uint32_t s)
{
    int32_t best = -1;
    for (uint32_t i = h->nsamples; i < h->n; i++)
        if (h->nodes[i].sample == s && (best < 0 || h->nodes[i].level > h->nodes[best].level))
            best = (int32_t)i;
    return best;
}

/* `decided`: the search ran to its end, so a block with no path found has
 * none (rather than one a limit kept from being found). */
static void write_sample(ml_out_t *o, const ml_why_heap_t *h, uint32_t s, const ml_why_path_t *p, bool decided)
{
    const ml_why_node_t *n = &h->nodes[s];
    ml_out_printf(o, "sample\t%u\t%llx\t%llu\t%s\n", n->slot, (unsigned long long)n->addr,
                  (unsigned long long)n->size, domain_names[n->domain < ML_DOM_COUNT ? n->domain : 0]);
    int kind = p->kind;
    int32_t nat = kind == ML_WHY_ROOT_UNKNOWN ? native_root(h, s) : -1;
    if (nat >= 0)
        kind = ML_WHY_ROOT_NATIVE;
    else if (kind == ML_WHY_ROOT_UNKNOWN && decided)
        kind = ML_WHY_ROOT_NONE;
    ml_out_printf(o, "root\t%s", root_names[kind]);
    if (kind == ML_WHY_ROOT_NATIVE) {
        Dl_info di;
        uintptr_t at = h->nodes[nat].root_at;
        bool named = dladdr((void *)at, &di) != 0;
        field(o, named ? di.dli_fname : NULL);
        field(o, named && di.dli_saddr ? di.dli_sname : NULL);
        ml_out_printf(o, "\t-\t%llu\t-\n",
                      (unsigned long long)(!named ? at : di.dli_saddr ? at - (uintptr_t)di.dli_saddr
                                                                      : at - (uintptr_t)di.dli_fbase));
        native_hops(o, h, nat, NULL);
        ml_out_str(o, "end_sample\n");
        return;
    }
    field(o, p->a);
    field(o, p->b);
    field(o, p->c);
    ml_out_printf(o, "\t%d", p->line);
    field(o, p->type);
    ml_out_char(o, '\n');
    for (unsigned i = 0; i < p->nhops; i++) {
        if (p->elided && i == p->elided_at)
            ml_out_printf(o, "elided\t%llu\n", (unsigned long long)p->elided);
        const ml_why_hop_t *hp = &p->hops[i];
        ml_out_str(o, "hop");
        field(o, hp->type);
        field(o, hp->via);
        field(o, hp->name);
        field(o, hp->func);
        ml_out_char(o, '\n');
    }
    if (p->elided && p->elided_at == p->nhops)
        ml_out_printf(o, "elided\t%llu\n", (unsigned long long)p->elided);
    if (p->node >= 0) {
        native_hops(o, h, p->node, p->object);
        if (p->object[0] && p->node == (int32_t)s) {
            ml_out_str(o, "object");
            field(o, p->object);
            ml_out_char(o, '\n');
        }
    } else if (kind == ML_WHY_ROOT_NONE || kind == ML_WHY_ROOT_UNKNOWN) {
        int32_t d = deepest(h, s);
        if (d >= 0)
            native_hops(o, h, d, NULL);
    }
    ml_out_str(o, "end_sample\n");
}

static void write_answer(ml_out_t *o, const session_t *S, const ml_why_heap_t *h, const uint64_t *live,
                         const ml_why_path_t *paths, const ml_why_graph_stats_t *g, uint64_t run_ns,
                         uint64_t scan_ns, const char *error)
{
    ml_out_printf(o, "%s\t%d\n", ML_WHY_RESULT_MAGIC, ML_WHY_VERSION);
    ml_out_printf(o, "token\t%s\npid\t%d\nseq\t%u\n", S->token, (int)getpid(), S->seq);
    if (error) {
        ml_out_str(o, "error");
        field(o, error);
        ml_out_str(o, "\nend\n");
        return;
    }
    ml_out_str(o, "python");
    field(o, g->version);
    ml_out_printf(o, "\t%d", g->searched ? 1 : 0);
    field(o, g->why_not);
    ml_out_char(o, '\n');
    if (g->searched)
        ml_out_printf(o, "gc\t%d\t%d\t%d\t%d\n", g->gc_enabled, g->gc_count[0], g->gc_count[1], g->gc_count[2]);
    ml_out_printf(o, "time\tgil_wait_us\t%llu\tpause_us\t%llu\trun_us\t%llu\tscan_us\t%llu\n",
                  (unsigned long long)(g->gil_wait_ns / 1000), (unsigned long long)(g->pause_ns / 1000),
                  (unsigned long long)(run_ns / 1000), (unsigned long long)(scan_ns / 1000));
    ml_out_printf(o, "objects\t%llu\t%llu\n", (unsigned long long)g->objects, (unsigned long long)g->visited);
    ml_out_printf(o, "heap\t%llu\t%llu\t%llu\t%u\t%llu\n", (unsigned long long)h->blocks_seen,
                  (unsigned long long)h->blocks_scanned, (unsigned long long)h->bytes_scanned, h->levels,
                  (unsigned long long)h->read_failures);
    if (g->stopped[0]) {
        ml_out_str(o, "stopped");
        field(o, g->stopped);
        ml_out_char(o, '\n');
    }
    if (h->stopped)
        ml_out_str(o, "stopped\tthe time limit cut the native scan short\n");
    bool decided = !h->stopped && !g->stopped[0] && (g->searched || !g->version[0]);
    for (uint32_t slot = 0; slot < S->nslots; slot++) {
        uint32_t k = 0;
        for (uint32_t s = 0; s < h->nsamples; s++)
            k += h->nodes[s].slot == slot;
        ml_out_printf(o, "stack\t%u\t%llu\t%u\n", slot, (unsigned long long)live[slot], k);
        for (uint32_t s = 0; s < h->nsamples; s++)
            if (h->nodes[s].slot == slot)
                write_sample(o, h, s, &paths[s], decided);
    }
    ml_out_str(o, "end\n");
}

/* Writes the answer file for S (error: an answer saying only that). */
static void answer(const session_t *S, const ml_why_heap_t *h, const uint64_t *live, const ml_why_path_t *paths,
                   const ml_why_graph_stats_t *g, uint64_t run_ns, uint64_t scan_ns, const char *error)
{
    char final[96], tmp[128];
    name_of(final, sizeof final, ML_WHY_RESULT_SUFFIX, S->seq);
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = ml_why_now_ns();
    ml_fmt(tmp, sizeof tmp, ".%s.%08llx.tmp", final, (unsigned long long)(r & 0xffffffffull));
    int dfd = open(ml_config.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    ml_out_t *o = fd >= 0 ? ml_sysmem_map(sizeof *o) : NULL;
    if (o) {
        ml_out_init(o, fd);
        if (error) {
            ml_why_heap_t none;
            memset(&none, 0, sizeof none);
            write_answer(o, S, &none, live, paths, g, run_ns, scan_ns, error);
        } else {
            write_answer(o, S, h, live, paths, g, run_ns, scan_ns, NULL);
        }
        bool ok = ml_out_flush(o);
        ok = close(fd) == 0 && ok;
        fd = -1;
        if (!ok || renameat(dfd, tmp, dfd, final) != 0)
            unlinkat(dfd, tmp, 0);
        ml_sysmem_unmap(o, sizeof *o);
    }
    if (fd >= 0) {
        close(fd);
        unlinkat(dfd, tmp, 0);
    }
    close(dfd);
}

/* ---- the search thread ---- */

static bool parse_select(session_t *S, char *text)
{
    char *p = text, *f[4];
    if (!magic_ok(&p, ML_WHY_SELECT_MAGIC))
        return false;
    int n;
    bool token = false;
    while ((n = next_line(&p, f, 4)) > 0) {
        if (n == 2 && strcmp(f[0], "token") == 0) {
            token = strcmp(f[1], S->token) == 0;
        } else if (n == 3 && strcmp(f[0], "stack") == 0) {
            long slot = atol(f[1]), place = atol(f[2]);
            if (slot < 0 || slot >= ML_WHY_MAX_STACKS || place < 0 || (size_t)place >= S->nids ||
                S->nstacks >= ML_ARRAY_LEN(S->stack_id))
                continue;
            S->stack_id[S->nstacks] = S->ids[place];
            S->stack_slot[S->nstacks++] = (uint32_t)slot;
            if ((uint32_t)slot + 1 > S->nslots)
                S->nslots = (uint32_t)slot + 1;
        }
    }
    return token;
}

static void *search_main(void *arg)
{
    session_t *S = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    ml_thread_make_internal();
    pthread_setname_np(pthread_self(), "memledger-why");
    uint64_t start = ml_why_now_ns();
    char name[96];
    name_of(name, sizeof name, ML_WHY_SELECT_SUFFIX, S->seq);
    char *text = NULL;
    while (!(text = take_file(name, 0)) && ml_why_now_ns() - start < SELECT_WAIT_NS) {
        struct timespec ms10 = {0, 10000000};
        nanosleep(&ms10, NULL);
    }
    if (text && parse_select(S, text)) {
        uint64_t t0 = ml_why_now_ns(), deadline = t0 + S->time_limit_ms * 1000000ull;
        ml_why_heap_t h;
        uint64_t live[ML_WHY_MAX_STACKS];
        ml_why_graph_stats_t g;
        memset(&g, 0, sizeof g);
        bool ok = ml_whyheap_sample(&h, S->stack_id, S->stack_slot, S->nstacks, S->nslots, S->samples, live);
        ok = ok && ml_whyheap_scan(&h, deadline);
        uint64_t scanned = ml_why_now_ns();
        size_t pbytes = (size_t)(h.nsamples ? h.nsamples : 1) * sizeof(ml_why_path_t);
        ml_why_path_t *paths = ok ? ml_sysmem_map(pbytes) : NULL;
        if (paths) {
            ml_whygraph_run(&h, paths, S->max_pause_ms * 1000000ull, deadline, &g);
            answer(S, &h, live, paths, &g, ml_why_now_ns() - t0, scanned - t0, NULL);
            ml_sysmem_unmap(paths, pbytes);
        } else {
            answer(S, &h, live, NULL, &g, 0, 0, "out of memory for the search");
        }
        ml_whyheap_free(&h);
    }
    free(text);
    ml_sysmem_unmap(S->ids, S->nids * sizeof *S->ids + 1);
    ml_sysmem_unmap(S, sizeof *S);
    atomic_store(&busy, 0);
    return NULL;
}

/* The snapshot writer's observer: a request is there (want() said so). */
static void on_ids(unsigned seq, const uint32_t *ids, size_t n)
{
    char name[96];
    name_of(name, sizeof name, ML_WHY_REQUEST_SUFFIX, -1);
    char *text = take_file(name, REQUEST_MAX_AGE);
    if (!text)
        return;
    session_t *S = ml_sysmem_map(sizeof *S);
    char *p = text, *f[4];
    bool ok = S && magic_ok(&p, ML_WHY_REQUEST_MAGIC);
    if (S) {
        S->seq = seq;
        S->samples = 3;
        S->max_pause_ms = 2000;
        S->time_limit_ms = 30000;
    }
    int nf;
    while (ok && (nf = next_line(&p, f, 4)) > 0) {
        if (nf != 2)
            continue;
        if (strcmp(f[0], "token") == 0 && token_ok(f[1]))
            ml_fmt(S->token, sizeof S->token, "%s", f[1]);
        else if (strcmp(f[0], "samples") == 0)
            S->samples = (unsigned)atoi(f[1]);
        else if (strcmp(f[0], "max_pause_ms") == 0)
            S->max_pause_ms = strtoull(f[1], NULL, 10);
        else if (strcmp(f[0], "time_limit_ms") == 0)
            S->time_limit_ms = strtoull(f[1], NULL, 10);
    }
    free(text);
    if (!ok || !S->token[0] || S->samples < 1 || S->samples > ML_WHY_MAX_SAMPLES || !S->max_pause_ms ||
        !S->time_limit_ms || S->max_pause_ms > 600000 || S->time_limit_ms > 3600000) {
        if (S)
            ml_sysmem_unmap(S, sizeof *S);
        return;
    }
    int idle = 0;
    if (!atomic_compare_exchange_strong(&busy, &idle, 1)) {
        answer(S, NULL, NULL, NULL, NULL, 0, 0, "another `memledger why` is searching this process; try again");
        ml_sysmem_unmap(S, sizeof *S);
        return;
    }
    S->ids = ml_sysmem_map(n * sizeof *S->ids + 1);
    S->nids = n;
    pthread_attr_t a;
    pthread_t t;
    int err = S->ids ? pthread_attr_init(&a) : ENOMEM;
    if (!err) {
        memcpy(S->ids, ids, n * sizeof *ids);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 1 << 20);
        err = pthread_create(&t, &a, search_main, S);
        pthread_attr_destroy(&a);
    }
    if (err) {
        answer(S, NULL, NULL, NULL, NULL, 0, 0, "cannot start the search thread");
        if (S->ids)
            ml_sysmem_unmap(S->ids, n * sizeof *S->ids + 1);
        ml_sysmem_unmap(S, sizeof *S);
        atomic_store(&busy, 0);
    }
}

void ml_why_init(void) { ml_snapshot_set_ids_observer(want, on_ids); }

void ml_why_after_fork_child(void) { atomic_store(&busy, 0); }
