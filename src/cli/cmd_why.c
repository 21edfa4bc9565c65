/* cmd_why.c — `memledger why PID [--base SNAPSHOT]`: for the stacks that
 * grew most (or hold the most), what keeps their blocks alive.
 *
 * The exchange with the process (docs/why.md; src/python/why.c is the
 * other side): write the request file, take a snapshot as `memledger
 * snapshot` does (the process takes the request when that snapshot is
 * written and remembers which stack each of its records is), choose the
 * stacks from that snapshot (growth.c against --base, else live bytes),
 * name them by their places in a select file, wait for the answer file,
 * read it (why_result.c) and remove it. The snapshot stays, like any
 * other. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/growth.h"
#include "cli/snapshot_request.h"
#include "cli/user_frame.h"
#include "cli/why_result.h"
#include "common/format.h"
#include "common/units.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "Usage: memledger why PID [--base SNAPSHOT] [-n N] [--format text|json] [OPTIONS]\n"
    "\n"
    "Explains what keeps memory alive in process PID (running under memledger).\n"
    "It takes a snapshot, picks the N stacks that grew most since SNAPSHOT (or,\n"
    "without --base, those holding the most live memory now), samples a few live\n"
    "blocks of each, and asks the process, for each block, for the chain of\n"
    "references that keeps it alive, from a root: a module global, a class\n"
    "attribute, a thread's local variable, a native global, an object held from\n"
    "outside Python's object graph, or an unreachable reference cycle the garbage\n"
    "collector has not collected. Each hop names how the next object is held: an\n"
    "attribute, a dict key, an index, a closure variable, or native ownership (a\n"
    "bytearray's or a tensor's buffer).\n"
    "\n"
    "The process keeps running. Its native memory is scanned without stopping it;\n"
    "its Python objects are walked while it holds the GIL, which pauses its Python\n"
    "threads for at most --max-pause (the pause is reported). No Python code of\n"
    "the program runs: no __repr__, __eq__, __hash__ or __getattr__.\n"
    "\n"
    "Options:\n"
    "      --base SNAPSHOT    rank stacks by growth since this snapshot\n"
    "  -n, --limit N          stacks to explain (default 5, at most 64)\n"
    "      --samples K        live blocks sampled per stack (default 3, at most 16)\n"
    "      --domain D         only domain D: malloc, python, cuda (cuda.* too), ...\n"
    "      --max-pause TIME   longest the process's Python threads may wait (default 2s)\n"
    "      --time-limit TIME  longest the whole search may take in the process\n"
    "                         (default 30s); what is found by then is reported\n"
    "  -t, --timeout TIME     give up waiting for the snapshot after TIME (default 60s)\n"
    "      --format FMT       text (default) or json (the diff's stacks, each with a\n"
    "                         `retainers` list)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 answered; 1 the process did not answer (ended, timed out,\n"
    "refused); 2 bad usage, an unreadable --base, or PID is not a process running\n"
    "under memledger.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

typedef struct {
    long pid;
    const char *base;
    uint64_t limit, samples, max_pause_ms, time_limit_ms, timeout_ms;
    const char *domain;
    bool json;
} args_t;

/* One chosen stack. */
typedef struct {
    uint32_t uid, user;
    int domain;
    int64_t growth_bytes, growth_count, live_bytes, live_count, base_live_bytes;
} pick_t;

static int parse(int argc, char **argv, args_t *a)
{
    enum { O_BASE = 256, O_SAMPLES, O_DOMAIN, O_PAUSE, O_TLIMIT, O_FORMAT };
    static const struct option opts[] = {
        {"base", required_argument, NULL, O_BASE},        {"limit", required_argument, NULL, 'n'},
        {"samples", required_argument, NULL, O_SAMPLES},  {"domain", required_argument, NULL, O_DOMAIN},
        {"max-pause", required_argument, NULL, O_PAUSE},  {"time-limit", required_argument, NULL, O_TLIMIT},
        {"timeout", required_argument, NULL, 't'},        {"format", required_argument, NULL, O_FORMAT},
        {"help", no_argument, NULL, 'h'},                 {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case O_BASE:
            a->base = optarg;
            break;
        case 'n':
            if (!ml_parse_u64_range(optarg, 1, ML_WHY_MAX_STACKS, &a->limit))
                return cli_usage("why", "--limit '%s' is not a number from 1 to %d", optarg, ML_WHY_MAX_STACKS);
            break;
        case O_SAMPLES:
            if (!ml_parse_u64_range(optarg, 1, ML_WHY_MAX_SAMPLES, &a->samples))
                return cli_usage("why", "--samples '%s' is not a number from 1 to %d", optarg, ML_WHY_MAX_SAMPLES);
            break;
        case O_DOMAIN:
            if (!ml_domain_filter_valid(optarg))
                return cli_usage("why", "--domain '%s' is not a domain (malloc, python, cuda, cuda.managed, "
                                        "cuda.host, cuda.vmm)", optarg);
            a->domain = optarg;
            break;
        case O_PAUSE:
        case O_TLIMIT:
        case 't': {
            uint64_t *v = c == O_PAUSE ? &a->max_pause_ms : c == O_TLIMIT ? &a->time_limit_ms : &a->timeout_ms;
            const char *name = c == O_PAUSE ? "--max-pause" : c == O_TLIMIT ? "--time-limit" : "--timeout";
            if (!ml_parse_duration_ms(optarg, v) || !*v || *v > 3600000)
                return cli_usage("why", "%s '%s' is not a duration from 1ms to 1h (500ms, 2s, 1m)", name, optarg);
            break;
        }
        case O_FORMAT:
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return cli_usage("why", "--format must be text or json, not '%s'", optarg);
            a->json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(ML_EXIT_OK);
        default:
            return cli_usage("why", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage("why", "expected one PID");
    uint64_t pid;
    if (!ml_parse_u64_range(argv[optind], 1, INT32_MAX, &pid))
        return cli_usage("why", "'%s' is not a process id", argv[optind]);
    a->pid = (long)pid;
    if (a->max_pause_ms > a->time_limit_ms)
        a->max_pause_ms = a->time_limit_ms;
    return ML_EXIT_OK;
}

/* ---- the files ---- */

/* Writes text to dir/name through a temporary name, mode 0600. */
static bool put_file(const char *dir, const char *name, const char *text, char *err, size_t errcap)
{
    char tmp[2 * PATH_MAX + 128], final[2 * PATH_MAX + 128];
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    snprintf(tmp, sizeof tmp, "%s/.%s.%08llx.tmp", dir, name, (unsigned long long)(r & 0xffffffffull));
    snprintf(final, sizeof final, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "cannot write %s: %s", tmp, strerror(errno));
        return false;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    bool ok = done == len;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, final) != 0) {
        snprintf(err, errcap, "cannot write %s: %s", final, strerror(errno ? errno : EIO));
        unlink(tmp);
        return false;
    }
    return true;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits until path exists (want = true) or is gone. Returns 0, or 1 on
 * timeout, 2 on Ctrl-C, 3 when the process ended. */
static int wait_for(const char *path, bool want, uint64_t timeout_ms, long pid)
{
    uint64_t end = now_ms() + timeout_ms;
    for (unsigned i = 0;; i++) {
        struct stat st;
        if ((lstat(path, &st) == 0) == want)
            return 0;
        if (stop)
            return 2;
        if (now_ms() > end)
            return 1;
        if (!(i % 10) && ml_process_ended(pid))
            return 3;
        struct timespec step = {0, 10 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
}

/* ---- choosing the stacks ---- */

static int by_live(const void *x, const void *y)
{
    const pick_t *a = x, *b = y;
    if (a->live_bytes != b->live_bytes)
        return a->live_bytes < b->live_bytes ? 1 : -1;
    return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/* The stacks to explain, into picks[limit]; returns how many, -1 when out
 * of memory. Snapshot 0 of `set` is the base when there is one; the head
 * is the last. */
static long choose(const ml_stackset_t *set, size_t head, const args_t *a, pick_t *picks)
{
    ml_growth_opts_t o = {.domain = a->domain, .group_by = ML_GROUP_STACK};
    ml_growth_t *g = ml_growth_new(set, &o);
    size_t n = 0;
    const ml_growth_row_t *rows = NULL;
    bool ok = g != NULL;
    for (size_t i = 0; ok && i <= head; i++)
        ok = ml_growth_feed(g, i);
    if (ok)
        rows = ml_growth_rows(g, &n);
    if (!rows) {
        ml_growth_free(g);
        return -1;
    }
    pick_t *all = calloc(n + 1, sizeof *all);
    if (!all) {
        ml_growth_free(g);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const ml_growth_row_t *r = &rows[i];
        bool keep = head ? r->growth_bytes > 0 : r->last.live_bytes > 0;
        if (!keep)
            continue;
        all[k++] = (pick_t){.uid = r->stack, .user = r->user, .domain = r->domain,
                            .growth_bytes = head ? r->growth_bytes : r->last.live_bytes,
                            .growth_count = head ? r->growth_count : r->last.live_count,
                            .live_bytes = r->last.live_bytes, .live_count = r->last.live_count,
                            .base_live_bytes = head ? r->first.live_bytes : 0};
    }
    if (!head)
        qsort(all, k, sizeof *all, by_live);
    size_t take = k < a->limit ? k : a->limit;
    memcpy(picks, all, take * sizeof *picks);
    free(all);
    ml_growth_free(g);
    return (long)take;
}

/* ---- rendering ---- */

static const char *root_json_kind(const ml_why_rsample_t *s)
{
    static const struct {
        const char *file, *json;
    } k[] = {{"global", "module_global"}, {"local", "frame_local"}, {"external", "external"},
             {"unreachable", "unreachable_cycle"}, {"native", "native_global"}, {"none", "none"},
             {"unknown", "unknown"}};
    for (size_t i = 0; i < ML_ARRAY_LEN(k); i++)
        if (strcmp(s->kind, k[i].file) == 0)
            return k[i].json;
    return "unknown";
}

static bool is_(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

/* A growing string. */
typedef struct {
    char *s;
    size_t len, cap;
} str_t;

static void sadd(str_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sadd(str_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *x = realloc(b->s, cap);
        if (!x)
            return;
        b->s = x;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The path as one line: an expression where Python can say it
 * (__main__.REG.tensors[5]), arrows where it cannot. */
static void path_text(const ml_why_result_t *r, const ml_why_rsample_t *s, str_t *b)
{
    char h1[32];
    size_t i = 0;
    if (is_(s->kind, "global")) {
        if (s->nhops && is_(s->hops[0].via, "global")) {
            sadd(b, "%s.%s", s->a ? s->a : "?", s->hops[0].name ? s->hops[0].name : "?");
            i = 1;
        } else {
            sadd(b, "module %s", s->a ? s->a : "?");
        }
    } else if (is_(s->kind, "local")) {
        sadd(b, "%s", s->c ? s->c : "?");
    } else if (is_(s->kind, "external") || is_(s->kind, "unreachable")) {
        sadd(b, "<%s object>", s->type ? s->type : "?");
    } else if (is_(s->kind, "native")) {
        if (s->b)
            sadd(b, "native global %s+0x%lx in %s", s->b, (unsigned long)s->line, s->a ? s->a : "?");
        else
            sadd(b, "native global at +0x%lx in %s", (unsigned long)s->line, s->a ? s->a : "?");
    } else if (is_(s->kind, "none")) {
        sadd(b, s->nhops ? "(no root found)" : "nothing");
    } else {
        sadd(b, "not found");
    }
    size_t nnative = 0;
    for (; i < s->nhops; i++) {
        const ml_why_rhop_t *h = &s->hops[i];
        if (s->elided && i == s->elided_at)
            sadd(b, " ... (%" PRIu64 " hops) ...", s->elided);
        if (h->native) {
            /* the object (or native block) holds a pointer into the next block */
            if (!nnative++ && h->type && !is_(h->type, "native block"))
                sadd(b, " (%s) -> native pointer at +0x%" PRIx64, h->type, h->off);
            else
                sadd(b, "%s%s block, pointer at +0x%" PRIx64, nnative == 1 && is_(s->kind, "none") ? " " : " -> ",
                     cli_human((int64_t)h->size, false, h1, sizeof h1), h->off);
            continue;
        }
        const char *name = h->name ? h->name : "";
        if (is_(h->via, "attribute") || is_(h->via, "class attribute") || is_(h->via, "global"))
            sadd(b, ".%s", name);
        else if (is_(h->via, "key") || is_(h->via, "index"))
            sadd(b, "[%s]", name);
        else if (is_(h->via, "closure") && *name)
            sadd(b, " -> closure variable '%s' of %s()", name, h->func ? h->func : "?");
        else if (is_(h->via, "closure"))
            sadd(b, ".__closure__");
        else if (is_(h->via, "__dict__"))
            sadd(b, ".__dict__");
        else if (is_(h->via, "cell"))
            sadd(b, " -> cell contents");
        else if (is_(h->via, "local"))
            sadd(b, " -> local '%s' of a frame", name);
        else
            sadd(b, " -> %s%s%s of %s", h->via ? h->via : "?", *name ? " " : "", name, h->type ? h->type : "?");
    }
    if (s->elided && s->elided_at >= s->nhops)
        sadd(b, " ... (%" PRIu64 " hops)", s->elided);
    if (nnative)
        sadd(b, " -> this %s block", cli_human((int64_t)s->size, false, h1, sizeof h1));
    else if (s->object)
        sadd(b, "  (%s, %s)", s->object, cli_human((int64_t)s->size, false, h1, sizeof h1));
    if (is_(s->kind, "local"))
        sadd(b, "  [local variable in %s at %s:%ld]", s->b ? s->b : "?", s->a ? s->a : "?", s->line);
    else if (is_(s->kind, "external"))
        sadd(b, "  [held from outside Python's object graph: a C extension, the interpreter, or a leaked reference]");
    else if (is_(s->kind, "unreachable")) {
        sadd(b, "  [unreachable: part of a reference cycle the garbage collector has not collected");
        if (r->has_gc)
            sadd(b, "; gc %s, generation counts %d, %d, %d", r->gc_enabled ? "enabled" : "disabled", r->gc_count[0],
                 r->gc_count[1], r->gc_count[2]);
        sadd(b, "]");
    } else if (is_(s->kind, "none"))
        sadd(b, "  [no reference found: no Python object, tracked block or module global points at it (thread stacks "
                "and memory memledger does not track are not searched)]");
    else if (is_(s->kind, "unknown"))
        sadd(b, "  [not found within the limits]");
}

static void text_report(const args_t *a, const ml_stackset_t *set, const ml_snapshot_t *head, const pick_t *picks,
                        long npicks, const ml_why_result_t *r)
{
    char b1[32], b2[32], fb[2048];
    printf("memledger why: pid %ld, snapshot %s%s%s\n", a->pid, head->path, a->base ? ", base " : "",
           a->base ? a->base : "");
    if (r->py_version && r->searched)
        printf("Python %s: %" PRIu64 " objects tracked by gc, %" PRIu64 " walked; gc %s (generation counts %d, %d, "
               "%d)\n",
               r->py_version, r->objects, r->visited, r->gc_enabled ? "enabled" : "disabled", r->gc_count[0],
               r->gc_count[1], r->gc_count[2]);
    if (r->searched)
        printf("paused the program's Python threads %.1f ms (waited %.1f ms for the GIL); the search took %.1f ms, "
               "%.1f ms of it scanning native memory without pausing\n",
               (double)r->pause_us / 1000.0, (double)r->gil_wait_us / 1000.0, (double)r->run_us / 1000.0,
               (double)r->scan_us / 1000.0);
    else
        printf("the search took %.1f ms, scanning native memory without pausing the program; Python objects not "
               "searched: %s\n",
               (double)r->run_us / 1000.0, r->why_not ? r->why_not : "no interpreter");
    for (size_t i = 0; i < r->nstopped; i++)
        printf("note: %s\n", r->stopped[i]);
    if (!npicks)
        printf("\nNo stack %s.\n", a->base ? "grew" : "holds live memory");
    for (long i = 0; i < npicks; i++) {
        const pick_t *p = &picks[i];
        const ml_sstack_t *st = ml_stackset_stack(set, p->uid);
        const ml_why_rstack_t *ws = ml_why_result_stack(r, (uint32_t)i);
        printf("\n#%ld  %s in %s%" PRId64 " allocations  %s", i + 1, cli_bytes(p->growth_bytes, a->base != NULL, b1, sizeof b1),
               a->base ? "+" : "", p->growth_count, ml_domain_name(p->domain));
        if (a->base)
            printf("  (%s live)", cli_human(p->live_bytes, false, b2, sizeof b2));
        printf("\n");
        if (p->user != UINT32_MAX && p->user < st->nframes) {
            unsigned shown = 0;
            for (uint32_t f = p->user; f < st->nframes && shown < 3; f++) {
                const ml_sframe_t *fr = ml_stackset_frame(set, st->frames[f]);
                if (f != p->user && fr->kind != ML_FRAME_PYTHON)
                    continue;
                printf("    %s %s\n", shown ? "            " : "allocated at", cli_frame_text(fr, true, fb, sizeof fb));
                shown++;
            }
        }
        if (!ws) {
            printf("  no answer for this stack\n");
            continue;
        }
        printf("  kept alive by (%zu of %" PRIu64 " live block%s sampled):\n", ws->nsamples, ws->live_blocks,
               ws->live_blocks == 1 ? "" : "s");
        if (!ws->nsamples && ml_domain_matches(p->domain, "cuda"))
            printf("    (CUDA blocks are not sampled: their addresses are device memory)\n");
        else if (!ws->nsamples)
            printf("    (no live block left: freed since the snapshot)\n");
        for (size_t k = 0; k < ws->nsamples; k++) {
            str_t b = {0};
            path_text(r, &ws->samples[k], &b);
            printf("    %s\n", b.s ? b.s : "?");
            free(b.s);
        }
    }
}

static void json_root(FILE *out, const ml_why_result_t *r, const ml_why_rsample_t *s)
{
    const char *kind = root_json_kind(s);
    bool cls = is_(s->kind, "global") && s->nhops > 1 && is_(s->hops[0].via, "global") &&
               is_(s->hops[1].via, "class attribute");
    fprintf(out, "{\"kind\":\"%s\"", cls ? "class_attribute" : kind);
    if (is_(s->kind, "global")) {
        fputs(",\"module\":", out);
        cli_json_str(out, s->a);
        fputs(",\"name\":", out);
        cli_json_str(out, s->nhops && is_(s->hops[0].via, "global") ? s->hops[0].name : NULL);
        if (cls) {
            fputs(",\"attribute\":", out);
            cli_json_str(out, s->hops[1].name);
        }
    } else if (is_(s->kind, "local")) {
        fputs(",\"file\":", out);
        cli_json_str(out, s->a);
        fputs(",\"line\":", out);
        if (s->line > 0)
            fprintf(out, "%ld", s->line);
        else
            fputs("null", out);
        fputs(",\"function\":", out);
        cli_json_str(out, s->b);
        fputs(",\"name\":", out);
        cli_json_str(out, s->c);
    } else if (is_(s->kind, "external") || is_(s->kind, "unreachable")) {
        fputs(",\"type\":", out);
        cli_json_str(out, s->type);
        if (is_(s->kind, "unreachable") && r->has_gc)
            fprintf(out, ",\"gc_enabled\":%s,\"gc_counts\":[%d,%d,%d]", r->gc_enabled ? "true" : "false",
                    r->gc_count[0], r->gc_count[1], r->gc_count[2]);
    } else if (is_(s->kind, "native")) {
        fputs(",\"module\":", out);
        cli_json_str(out, s->a);
        fputs(",\"symbol\":", out);
        cli_json_str(out, s->b);
        fprintf(out, ",\"offset\":%ld", s->line);
    }
    fputc('}', out);
}

static void json_retainer(FILE *out, const ml_why_result_t *r, const ml_why_rsample_t *s)
{
    fprintf(out, "{\"block\":{\"address\":\"0x%" PRIx64 "\",\"size\":%" PRIu64 ",\"domain\":", s->addr, s->size);
    cli_json_str(out, s->domain);
    fputs("},\"root\":", out);
    json_root(out, r, s);
    fputs(",\"path\":[", out);
    for (size_t i = 0; i < s->nhops; i++) {
        const ml_why_rhop_t *h = &s->hops[i];
        if (i)
            fputc(',', out);
        if (s->elided && i == s->elided_at)
            fprintf(out, "{\"type\":null,\"via\":\"elided\",\"name\":\"%" PRIu64 " hops\"},", s->elided);
        fputs("{\"type\":", out);
        cli_json_str(out, h->type);
        if (h->native) {
            fprintf(out, ",\"via\":\"native\",\"name\":\"+0x%" PRIx64 "\",\"block_size\":%" PRIu64 ",\"domain\":", h->off,
                    h->size);
            cli_json_str(out, h->domain);
        } else {
            fputs(",\"via\":", out);
            cli_json_str(out, h->via);
            fputs(",\"name\":", out);
            cli_json_str(out, h->name && *h->name ? h->name : NULL);
            if (h->func) {
                fputs(",\"function\":", out);
                cli_json_str(out, h->func);
            }
        }
        fputc('}', out);
    }
    fputs("],\"object\":", out);
    cli_json_str(out, s->object);
    str_t b = {0};
    path_text(r, s, &b);
    fputs(",\"text\":", out);
    cli_json_str(out, b.s);
    free(b.s);
    fputc('}', out);
}

static void json_report(const args_t *a, const ml_stackset_t *set, const ml_snapshot_t *head, const pick_t *picks,
                        long npicks, const ml_why_result_t *r)
{
    FILE *out = stdout;
    fprintf(out, "{\"pid\":%ld,\"snapshot\":", a->pid);
    cli_json_str(out, head->path);
    fputs(",\"base\":", out);
    cli_json_str(out, a->base);
    fputs(",\"python\":{\"version\":", out);
    cli_json_str(out, r->py_version);
    fprintf(out, ",\"searched\":%s,\"why_not\":", r->searched ? "true" : "false");
    cli_json_str(out, r->why_not);
    if (r->has_gc)
        fprintf(out, ",\"gc_enabled\":%s,\"gc_counts\":[%d,%d,%d]", r->gc_enabled ? "true" : "false", r->gc_count[0],
                r->gc_count[1], r->gc_count[2]);
    fprintf(out, ",\"objects\":%" PRIu64 ",\"objects_walked\":%" PRIu64 "}", r->objects, r->visited);
    fprintf(out, ",\"pause_ms\":%.3f,\"gil_wait_ms\":%.3f,\"run_ms\":%.3f,\"scan_ms\":%.3f", (double)r->pause_us / 1000.0,
            (double)r->gil_wait_us / 1000.0, (double)r->run_us / 1000.0, (double)r->scan_us / 1000.0);
    fprintf(out, ",\"max_pause_ms\":%" PRIu64 ",\"time_limit_ms\":%" PRIu64, a->max_pause_ms, a->time_limit_ms);
    fprintf(out, ",\"heap\":{\"blocks\":%" PRIu64 ",\"blocks_scanned\":%" PRIu64 ",\"bytes_scanned\":%" PRIu64
                 ",\"levels\":%u,\"read_failures\":%" PRIu64 "}",
            r->blocks_seen, r->blocks_scanned, r->bytes_scanned, r->levels, r->read_failures);
    fputs(",\"stopped\":[", out);
    for (size_t i = 0; i < r->nstopped; i++) {
        if (i)
            fputc(',', out);
        cli_json_str(out, r->stopped[i]);
    }
    fputs("],\"stacks\":[", out);
    for (long i = 0; i < npicks; i++) {
        const pick_t *p = &picks[i];
        const ml_sstack_t *st = ml_stackset_stack(set, p->uid);
        const ml_why_rstack_t *ws = ml_why_result_stack(r, (uint32_t)i);
        fprintf(out,
                "%s{\"growth_bytes\":%" PRId64 ",\"growth_count\":%" PRId64 ",\"live_bytes\":%" PRId64
                ",\"live_count\":%" PRId64 ",\"base_live_bytes\":%" PRId64 ",\"domain\":\"%s\",\"user_frame\":",
                i ? "," : "", p->growth_bytes, p->growth_count, p->live_bytes, p->live_count, p->base_live_bytes,
                ml_domain_name(p->domain));
        if (p->user == UINT32_MAX)
            fputs("null", out);
        else /* an index into the frames as listed, inlined functions included */
            fprintf(out, "%" PRIu32, cli_shown_index(set, st, p->user));
        fputs(",\"frames\":[", out);
        cli_json_frames(out, set, st);
        fprintf(out, "],\"live_blocks\":%" PRIu64 ",\"sampled\":%zu,\"retainers\":[", ws ? ws->live_blocks : 0,
                ws ? ws->nsamples : 0);
        for (size_t k = 0; ws && k < ws->nsamples; k++) {
            if (k)
                fputc(',', out);
            json_retainer(out, r, &ws->samples[k]);
        }
        fputs("]}", out);
    }
    fputs("]}\n", out);
}

/* ---- the command ---- */

int cmd_why(int argc, char **argv)
{
    args_t a = {.limit = 5, .samples = 3, .max_pause_ms = 2000, .time_limit_ms = 30000, .timeout_ms = 60000};
    int rc = parse(argc, argv, &a);
    if (rc != ML_EXIT_OK)
        return rc;
    ml_snapshot_t *base = NULL, *head = NULL;
    if (a.base && !(base = cli_load(a.base)))
        return ML_EXIT_USAGE;

    ml_target_t t;
    char err[2 * PATH_MAX + 256];
    rc = ml_target_open(a.pid, &t, err, sizeof err);
    if (rc != 0) {
        cli_error("%s", err);
        ml_snapshot_free(base);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t tok = 0;
    if (getrandom(&tok, sizeof tok, GRND_NONBLOCK) != (ssize_t)sizeof tok)
        tok = (uint64_t)now_ms() ^ (uint64_t)getpid() << 32;
    char token[24], name[128], text[512], path[sizeof t.dir + 160], snap[sizeof t.dir + 64];
    snprintf(token, sizeof token, "%016llx", (unsigned long long)tok);
    snprintf(name, sizeof name, "memledger.%ld.%s", a.pid, ML_WHY_REQUEST_SUFFIX);
    snprintf(path, sizeof path, "%s/%s", t.dir, name);
    snprintf(text, sizeof text, "%s\t%d\ntoken\t%s\nsamples\t%llu\nmax_pause_ms\t%llu\ntime_limit_ms\t%llu\n",
             ML_WHY_REQUEST_MAGIC, ML_WHY_VERSION, token, (unsigned long long)a.samples,
             (unsigned long long)a.max_pause_ms, (unsigned long long)a.time_limit_ms);
    ml_stackset_t *set = NULL;
    ml_why_result_t *res = NULL;
    pick_t picks[ML_WHY_MAX_STACKS];
    long npicks = 0;
    rc = ML_EXIT_FAIL;
    if (!put_file(t.dir, name, text, err, sizeof err)) {
        cli_error("%s", err);
        goto out;
    }
    if (ml_target_snapshot(&t, a.timeout_ms, &stop, snap, sizeof snap, err, sizeof err) != 0) {
        cli_error("%s", err);
        unlink(path);
        goto out;
    }
    /* the process takes the request once its snapshot is written */
    if (wait_for(path, false, 5000, a.pid) != 0) {
        unlink(path);
        cli_error("process %ld did not take the request (its libmemledger.so may predate `memledger why`, or "
                  "its MEMLEDGER_DIR is not %s)", a.pid, t.dir);
        goto out;
    }
    if (!(head = cli_load(snap)))
        goto out;
    set = ml_stackset_new();
    uint32_t *uids = calloc(head->nstacks + 1, sizeof *uids);
    if (!set || !uids || (base && ml_stackset_add(set, base) < 0) || ml_stackset_add_mapped(set, head, uids) < 0 ||
        (npicks = choose(set, base ? 1 : 0, &a, picks)) < 0) {
        free(uids);
        cli_error("out of memory");
        goto out;
    }
    /* name each chosen stack by all of its places in the snapshot */
    str_t sel = {0};
    sadd(&sel, "%s\t%d\ntoken\t%s\n", ML_WHY_SELECT_MAGIC, ML_WHY_VERSION, token);
    for (long i = 0; i < npicks; i++)
        for (size_t k = 0; k < head->nstacks; k++)
            if (uids[k] == picks[i].uid)
                sadd(&sel, "stack\t%ld\t%zu\n", i, k);
    free(uids);
    snprintf(name, sizeof name, "memledger.%ld.%ld.%s", a.pid, head->seq, ML_WHY_SELECT_SUFFIX);
    if (!sel.s)
        snprintf(err, sizeof err, "out of memory");
    bool sent = sel.s && put_file(t.dir, name, sel.s, err, sizeof err);
    free(sel.s);
    if (!sent) {
        cli_error("%s", err);
        goto out;
    }
    snprintf(path, sizeof path, "%s/memledger.%ld.%ld.%s", t.dir, a.pid, head->seq, ML_WHY_RESULT_SUFFIX);
    int waited = wait_for(path, true, a.time_limit_ms + 30000, a.pid);
    if (waited != 0) {
        char sp[sizeof path + 64];
        snprintf(sp, sizeof sp, "%s/%s", t.dir, name);
        unlink(sp);
        if (waited == 2)
            cli_error("interrupted while process %ld searched", a.pid);
        else if (waited == 3)
            cli_error("process %ld ended before it answered", a.pid);
        else
            cli_error("no answer from process %ld within %llu ms", a.pid,
                      (unsigned long long)(a.time_limit_ms + 30000));
        goto out;
    }
    res = ml_why_result_load(path, err, sizeof err);
    unlink(path);
    if (!res) {
        cli_error("%s", err);
        goto out;
    }
    if (!res->token || strcmp(res->token, token) != 0) {
        cli_error("%s answers another request (token %s, not %s)", path, res->token ? res->token : "-", token);
        goto out;
    }
    if (res->error) {
        cli_error("process %ld: %s", a.pid, res->error);
        goto out;
    }
    if (a.json)
        json_report(&a, set, head, picks, npicks, res);
    else
        text_report(&a, set, head, picks, npicks, res);
    rc = fflush(stdout) == 0 && !ferror(stdout) ? ML_EXIT_OK : ML_EXIT_FAIL;
out:
    ml_why_result_free(res);
    ml_stackset_free(set);
    ml_snapshot_free(head);
    ml_snapshot_free(base);
    return rc;
}
