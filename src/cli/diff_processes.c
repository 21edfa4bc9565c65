/* diff_processes.c — diff per process, and the workers taken together (see
 * diff_processes.h).
 *
 * A process is its pid and its start time (the start_time header), so a
 * pid the kernel reused is another process. Its snapshots, in sequence
 * order, are one series, compared as `memledger diff` compares any series.
 * Workers are then added up: children of one parent whose command lines
 * are the same but for numbers (a gunicorn worker has its master's command
 * line; uvicorn's and multiprocessing's spawned workers differ only in
 * their descriptor numbers), the parent itself left out. The merged base is
 * the sum of each one's first snapshot, the merged head the sum of each
 * one's last, so a merged row's growth is the sum of its growth in each
 * process; beside it, each process's share says which worker grows. */
#include "cli/diff_processes.h"
#include "cli/cli_util.h"
#include "common/grow.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    long pid, ppid;
    const char *start;   /* start_time header, or NULL */
    const char *worker;  /* worker header ("N\tPARENT"), or NULL */
    const char *cmdline;
    ml_snapshot_t **snaps;
    size_t n, cap;
} proc_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files to read: files as given, each directory's snapshots. Returns
 * 0, or the exit status (the reason said). */
static int expand(char *const *args, size_t nargs, char ***out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < nargs; i++) {
        struct stat st;
        if (stat(args[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (!ML_GROW(*out, cap, *n + 1) || !((*out)[*n] = strdup(args[i])))
                goto oom;
            (*n)++;
            continue;
        }
        DIR *d = opendir(args[i]);
        if (!d) {
            cli_error("%s: cannot read the directory: %s", args[i], strerror(errno));
            return ML_EXIT_USAGE;
        }
        size_t from = *n;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (strncmp(e->d_name, "memledger.", 10) != 0 || len < 15 || strcmp(e->d_name + len - 5, ".snap") != 0)
                continue;
            char *p = NULL;
            if (!ML_GROW(*out, cap, *n + 1) || asprintf(&p, "%s/%s", args[i], e->d_name) < 0) {
                closedir(d);
                goto oom;
            }
            (*out)[(*n)++] = p;
        }
        closedir(d);
        if (*n == from) {
            cli_error("%s: no snapshot (memledger.PID.SEQ.snap) in this directory", args[i]);
            return ML_EXIT_USAGE;
        }
        qsort(*out + from, *n - from, sizeof **out, by_name);
    }
    return 0;
oom:
    cli_error("out of memory");
    return ML_EXIT_FAIL;
}

static bool same(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* Siblings whose command lines are the same once every number is left out. */
static bool workers_alike(const proc_t *a, const proc_t *b)
{
    if (a->ppid != b->ppid)
        return false;
    const char *x = a->cmdline, *y = b->cmdline;
    for (;;) {
        bool dx = *x >= '0' && *x <= '9', dy = *y >= '0' && *y <= '9';
        if (dx && dy) {
            while (*x >= '0' && *x <= '9')
                x++;
            while (*y >= '0' && *y <= '9')
                y++;
            continue;
        }
        if (*x != *y)
            return false;
        if (!*x)
            return true;
        x++;
        y++;
    }
}

static int by_seq(const void *a, const void *b)
{
    const ml_snapshot_t *x = *(ml_snapshot_t *const *)a, *y = *(ml_snapshot_t *const *)b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->time < y->time ? -1 : x->time > y->time;
}

static double start_of(const proc_t *p) { return p->start ? strtod(p->start, NULL) : p->snaps[0]->time; }

static int by_start(const void *a, const void *b)
{
    const proc_t *x = a, *y = b;
    double sx = start_of(x), sy = start_of(y);
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* "worker 2 of 1234", or "child of 1234". */
static const char *role(const proc_t *p, char *buf, size_t cap)
{
    unsigned w = 0;
    long parent = 0;
    if (p->worker && sscanf(p->worker, "%u\t%ld", &w, &parent) == 2 && w)
        snprintf(buf, cap, "worker %u of %ld", w, parent);
    else
        snprintf(buf, cap, "child of %ld", p->ppid);
    return buf;
}

static void report(FILE *out, const ml_diff_report_t *r, enum ml_diff_format f)
{
    if (f == ML_FMT_JSON)
        ml_report_json(out, r);
    else if (f == ML_FMT_MARKDOWN)
        ml_report_markdown(out, r);
    else
        ml_report_text(out, r);
}

static void json_proc_fields(FILE *out, const proc_t *p)
{
    unsigned w = 0;
    long parent = 0;
    bool has_w = p->worker && sscanf(p->worker, "%u\t%ld", &w, &parent) == 2 && w;
    fprintf(out, "\"pid\":%ld,\"ppid\":%ld,\"start_time\":", p->pid, p->ppid);
    if (p->start)
        fprintf(out, "%s", p->start);
    else
        fputs("null", out);
    if (has_w)
        fprintf(out, ",\"worker\":%u,\"parent\":%ld", w, parent);
    else
        fputs(",\"worker\":null,\"parent\":null", out);
    fputs(",\"cmdline\":", out);
    cli_json_str(out, p->cmdline);
}

/* One process's own diff: 0, or 1 when a threshold was crossed; -1 out of memory. */
static int one(const proc_t *p, const ml_diff_report_t *proto, enum ml_diff_format f, uint64_t limit, bool first)
{
    ml_stackset_t *set = ml_stackset_new();
    ml_growth_t *g = set ? ml_growth_new(set, &proto->opts) : NULL;
    bool ok = g != NULL;
    for (size_t i = 0; ok && i < p->n; i++)
        ok = ml_stackset_add(set, p->snaps[i]) >= 0 && ml_growth_feed(g, i);
    ml_diff_report_t r = *proto;
    r.snaps = (const ml_snapshot_t *const *)p->snaps;
    r.nsnaps = p->n;
    r.set = set;
    ok = ok && ml_diff_report_select(&r, g, limit, false);
    if (ok) {
        char rb[96];
        if (f == ML_FMT_JSON) {
            fputs(first ? "{" : ",{", stdout);
            json_proc_fields(stdout, p);
            fputs(",\"diff\":", stdout);
        } else if (f == ML_FMT_MARKDOWN) {
            printf("### Process %ld, %s\n\n`%s`\n\n", p->pid, role(p, rb, sizeof rb), p->cmdline);
        } else {
            printf("%s== process %ld, %s: %.200s ==\n", first ? "" : "\n", p->pid, role(p, rb, sizeof rb),
                   p->cmdline);
        }
        report(stdout, &r, f);
        if (f == ML_FMT_JSON)
            fputs("}", stdout);
    }
    int status = !ok ? -1 : r.above_crossed || r.total_crossed;
    ml_diff_report_free(&r);
    ml_growth_free(g);
    ml_stackset_free(set);
    return status;
}

/* A stand-in snapshot holding the sums of several (header figures only). */
static void sum_header(ml_snapshot_t *to, const ml_snapshot_t *s, bool first)
{
    if (first || s->time < to->time || !to->time)
        to->time = first ? s->time : to->time < s->time ? to->time : s->time;
    to->rss += s->rss;
    to->peak_rss += s->peak_rss;
    to->sample_bytes = s->sample_bytes;
    for (int d = 0; d < ML_DOM_COUNT; d++) {
        to->domain_live_bytes[d] += s->domain_live_bytes[d];
        to->domain_live_count[d] += s->domain_live_count[d];
        to->domain_total_bytes[d] += s->domain_total_bytes[d];
        to->domain_total_count[d] += s->domain_total_count[d];
    }
}

/* The processes of `group` (indexes into procs) taken together. */
static int merged(proc_t *procs, const size_t *group, size_t k, const ml_diff_report_t *proto,
                  enum ml_diff_format f, uint64_t limit, bool first)
{
    ml_stackset_t *set = ml_stackset_new();
    ml_growth_t *g = set ? ml_growth_new(set, &proto->opts) : NULL;
    bool ok = g != NULL;
    ml_snapshot_t base, head;
    memset(&base, 0, sizeof base);
    memset(&head, 0, sizeof head);
    char bpath[96], hpath[96];
    snprintf(bpath, sizeof bpath, "the first snapshots of %zu workers", k);
    snprintf(hpath, sizeof hpath, "their last snapshots");
    base.path = bpath;
    head.path = hpath;
    base.pid = head.pid = -1;
    /* slots: 0 the sum of the firsts, 1 of the lasts, then each process's first and last */
    for (size_t i = 0; ok && i < k; i++) {
        const proc_t *p = &procs[group[i]];
        ok = ml_stackset_add_into(set, p->snaps[0], 0) == 0 && ml_stackset_add_into(set, p->snaps[p->n - 1], 1) == 1;
        sum_header(&base, p->snaps[0], i == 0);
        sum_header(&head, p->snaps[p->n - 1], i == 0);
    }
    for (size_t i = 0; ok && i < k; i++) {
        const proc_t *p = &procs[group[i]];
        ok = ml_stackset_add(set, p->snaps[0]) >= 0 && ml_stackset_add(set, p->snaps[p->n - 1]) >= 0;
    }
    ok = ok && ml_growth_feed(g, 0) && ml_growth_feed(g, 1);
    const ml_snapshot_t *pair[2] = {&base, &head};
    ml_diff_report_t r = *proto;
    r.snaps = pair;
    r.nsnaps = 2;
    r.set = set;
    ok = ok && ml_diff_report_select(&r, g, limit, false);
    /* each process's share of each row shown */
    int64_t *share = ok ? calloc(r.show * k * 2 + 1, sizeof *share) : NULL;
    ok = ok && share;
    if (ok) {
        for (size_t u = 0; u < ml_stackset_nstacks(set); u++) {
            uint32_t gi = ml_growth_group_of(g, (uint32_t)u);
            if (gi == UINT32_MAX)
                continue;
            for (size_t row = 0; row < r.show; row++) {
                if (r.rows[row].group != gi)
                    continue;
                for (size_t i = 0; i < k; i++) {
                    ml_sval_t a = ml_stackset_value(set, 2 + 2 * i, (uint32_t)u);
                    ml_sval_t b = ml_stackset_value(set, 3 + 2 * i, (uint32_t)u);
                    share[(row * k + i) * 2] += b.live_bytes - a.live_bytes;
                    share[(row * k + i) * 2 + 1] += b.live_count - a.live_count;
                }
                break;
            }
        }
        const proc_t *p0 = &procs[group[0]];
        if (f == ML_FMT_JSON) {
            fputs(first ? "{" : ",{", stdout);
            printf("\"parent\":%ld,\"cmdline\":", p0->ppid);
            cli_json_str(stdout, p0->cmdline);
            fputs(",\"pids\":[", stdout);
            for (size_t i = 0; i < k; i++)
                printf("%s%ld", i ? "," : "", procs[group[i]].pid);
            fputs("],\"diff\":", stdout);
            report(stdout, &r, f);
            fputs(",\"by_process\":[", stdout);
            for (size_t row = 0; row < r.show; row++) {
                fputs(row ? ",[" : "[", stdout);
                for (size_t i = 0; i < k; i++)
                    printf("%s{\"pid\":%ld,\"growth_bytes\":%" PRId64 ",\"growth_count\":%" PRId64 "}", i ? "," : "",
                           procs[group[i]].pid, share[(row * k + i) * 2], share[(row * k + i) * 2 + 1]);
                fputs("]", stdout);
            }
            fputs("]}", stdout);
        } else {
            if (f == ML_FMT_MARKDOWN)
                printf("### %zu workers of %ld, taken together\n\n`%s`\n\n", k, p0->ppid, p0->cmdline);
            else
                printf("\n== %zu workers of %ld, taken together: %.200s ==\n", k, p0->ppid, p0->cmdline);
            report(stdout, &r, f);
            printf(f == ML_FMT_MARKDOWN ? "\nWhich process grew, row by row:\n\n" : "\n  which process grew, row by row:\n");
            for (size_t row = 0; row < r.show; row++) {
                printf(f == ML_FMT_MARKDOWN ? "- #%zu:" : "    #%-3zu", row + 1);
                for (size_t i = 0; i < k; i++) {
                    char b[32];
                    printf("%s pid %ld %s (%+" PRId64 ")", i ? "," : "", procs[group[i]].pid,
                           cli_human(share[(row * k + i) * 2], true, b, sizeof b), share[(row * k + i) * 2 + 1]);
                }
                putchar('\n');
            }
        }
    }
    free(share);
    int status = !ok ? -1 : r.above_crossed || r.total_crossed;
    ml_diff_report_free(&r);
    ml_growth_free(g);
    ml_stackset_free(set);
    return status;
}

int ml_diff_processes(char *const *args, size_t nargs, const ml_diff_report_t *proto, enum ml_diff_format f,
                      uint64_t limit)
{
    char **files = NULL;
    size_t nfiles = 0, nprocs = 0, pcap = 0;
    proc_t *procs = NULL;
    int status = ML_EXIT_OK;
    if ((status = expand(args, nargs, &files, &nfiles)) != 0)
        goto out;
    for (size_t i = 0; i < nfiles; i++) {
        ml_snapshot_t *s = cli_load(files[i]);
        if (!s) {
            status = ML_EXIT_USAGE;
            goto out;
        }
        const char *start = ml_snapshot_header(s, "start_time");
        size_t j = 0;
        while (j < nprocs && !(procs[j].pid == s->pid && same(procs[j].start, start)))
            j++;
        if (j == nprocs) {
            if (!ML_GROW(procs, pcap, nprocs + 1)) {
                ml_snapshot_free(s);
                cli_error("out of memory");
                status = ML_EXIT_FAIL;
                goto out;
            }
            procs[nprocs++] = (proc_t){s->pid, s->ppid, start, ml_snapshot_header(s, "worker"),
                                       s->cmdline ? s->cmdline : "", NULL, 0, 0};
        }
        proc_t *p = &procs[j];
        bool twice = false;
        for (size_t k = 0; k < p->n && !twice; k++)
            twice = p->snaps[k]->seq == s->seq;
        if (twice) { /* the same snapshot named twice (a file and its directory) */
            ml_snapshot_free(s);
            continue;
        }
        if (!ML_GROW(p->snaps, p->cap, p->n + 1)) {
            ml_snapshot_free(s);
            cli_error("out of memory");
            status = ML_EXIT_FAIL;
            goto out;
        }
        p->snaps[p->n++] = s;
    }
    size_t usable = 0;
    for (size_t j = 0; j < nprocs; j++) {
        qsort(procs[j].snaps, procs[j].n, sizeof *procs[j].snaps, by_seq);
        usable += procs[j].n >= 2;
    }
    qsort(procs, nprocs, sizeof *procs, by_start);
    if (!usable) {
        cli_error("no process has two snapshots among the %zu read: take two rounds of 'memledger snapshot "
                  "--tree PID'", nfiles);
        status = ML_EXIT_USAGE;
        goto out;
    }
    if (f == ML_FMT_JSON)
        fputs("{\"processes\":[", stdout);
    bool crossed = false, first = true;
    for (size_t j = 0; j < nprocs; j++) {
        if (procs[j].n < 2)
            continue;
        int rc = one(&procs[j], proto, f, limit, first);
        first = false;
        if (rc < 0) {
            cli_error("out of memory");
            status = ML_EXIT_FAIL;
            goto out;
        }
        crossed |= rc == 1;
    }
    if (f == ML_FMT_JSON) {
        fputs("],\"single\":[", stdout);
        bool any = false;
        for (size_t j = 0; j < nprocs; j++)
            if (procs[j].n == 1) {
                fputs(any ? ",{" : "{", stdout);
                json_proc_fields(stdout, &procs[j]);
                fputs(",\"path\":", stdout);
                cli_json_str(stdout, procs[j].snaps[0]->path);
                fputs("}", stdout);
                any = true;
            }
        fputs("],\"groups\":[", stdout);
    } else {
        for (size_t j = 0; j < nprocs; j++)
            if (procs[j].n == 1)
                printf("\nprocess %ld has one snapshot only (%s): nothing to compare it with\n", procs[j].pid,
                       procs[j].snaps[0]->path);
    }
    /* the processes that share a command line, taken together */
    size_t *group = calloc(nprocs + 1, sizeof *group);
    bool *done = calloc(nprocs + 1, sizeof *done);
    first = true;
    for (size_t j = 0; group && done && j < nprocs; j++) {
        if (done[j] || procs[j].n < 2)
            continue;
        size_t k = 0;
        for (size_t m = j; m < nprocs; m++)
            if (!done[m] && procs[m].n >= 2 && workers_alike(&procs[m], &procs[j])) {
                group[k++] = m;
                done[m] = true;
            }
        if (k < 2)
            continue;
        int rc = merged(procs, group, k, proto, f, limit, first);
        first = false;
        if (rc < 0) {
            status = ML_EXIT_FAIL;
            break;
        }
        crossed |= rc == 1;
    }
    if (!group || !done) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
    }
    free(group);
    free(done);
    if (f == ML_FMT_JSON)
        fputs("]}\n", stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the report: %s", strerror(errno));
        status = ML_EXIT_FAIL;
    }
    if (status == ML_EXIT_OK && crossed) {
        cli_error("threshold crossed in at least one process (see its report)");
        status = ML_EXIT_FAIL;
    }
out:
    for (size_t j = 0; j < nprocs; j++) {
        for (size_t i = 0; i < procs[j].n; i++)
            ml_snapshot_free(procs[j].snaps[i]);
        free(procs[j].snaps);
    }
    free(procs);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    return status;
}
