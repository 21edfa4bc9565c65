/* cmd_diff.c — `memledger diff BASE HEAD [MORE...]`: the stacks whose live
 * memory grew, matched across snapshots by address-free identity, so the
 * snapshots may come from one process or from two different ones; and the
 * CI thresholds. The computation is growth.c's, the choice of rows
 * diff_report.c's, the formats report_*.c's: this file reads options and
 * snapshots and decides the exit status. Snapshots are read on a second
 * thread, each while the one before it is added to the set (a large
 * snapshot takes as long to read as to add); everything else, messages
 * included, happens on the main thread, in the order of the paths. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/diff_report.h"
#include "cli/diff_processes.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: memledger diff BASE HEAD [MORE...] [OPTIONS]\n"
    "       memledger diff --by-process SNAPSHOT|DIR... [OPTIONS]\n"
    "\n"
    "Shows the call stacks whose live memory grew from BASE to the last snapshot,\n"
    "largest growth first. The snapshots may come from one process or from two\n"
    "(a base build and a PR build): stacks are matched by module build-id and\n"
    "offset, and by Python file, function and line, never by address. With three\n"
    "or more snapshots, stacks that grew in every interval are marked 'only\n"
    "grows': the signature of a leak, where a cache or a pool that filled during\n"
    "some intervals and then stopped is not.\n"
    "\n"
    "With --by-process, the snapshots (and every snapshot in a directory given)\n"
    "may come from many processes, such as two rounds of 'memledger\n"
    "snapshot --tree' of a pre-fork server: each process (pid and start time) is\n"
    "compared with itself, and the workers of one parent (the same command line\n"
    "but for numbers) are also taken together, with each one's share of each row.\n"
    "\n"
    "Options:\n"
    "      --by-process         report per process, and the workers together (above)\n"
    "  -n, --limit N            show N rows (text and markdown: 10; json: all; 0 = all)\n"
    "      --domain D           only domain D: malloc, python, cuda (cuda.* too), ...\n"
    "      --group-by HOW       stack (default), line or function: add up the stacks\n"
    "                           whose innermost frame of user code is at the same\n"
    "                           line or in the same function (see docs/cli.md)\n"
    "      --include PATTERN    only stacks with a frame whose function, file or\n"
    "                           module matches the glob PATTERN (repeatable)\n"
    "      --exclude PATTERN    leave out stacks with a frame that matches (repeatable)\n"
    "      --min-growth SIZE    hide rows that grew by less than SIZE (e.g. 64KiB)\n"
    "      --fail-above SIZE    exit 1 when any one row grew by more than SIZE\n"
    "      --fail-total-above SIZE|PCT\n"
    "                           exit 1 when the live bytes of the selected stacks\n"
    "                           grew by more than SIZE, or PCT of BASE (e.g. 75%)\n"
    "      --format FMT         text (default), json or markdown\n"
    "      --color WHEN         auto (default: on a terminal, unless NO_COLOR is set),\n"
    "                           always or never\n"
    "  -h, --help               show this help\n"
    "\n"
    "Sizes take B, KiB, MiB, GiB (1024-based). Thresholds see every selected row,\n"
    "whatever --limit and --min-growth hide.\n"
    "\n"
    "Exit status: 0 done (and no threshold crossed); 1 a threshold was crossed;\n"
    "2 bad usage or an unreadable snapshot.\n";

enum { FMT_TEXT, FMT_JSON, FMT_MARKDOWN };

/* What the options ask for beyond the report's own fields. */
typedef struct {
    uint64_t limit;
    bool limit_set, help, by_process;
    int format;
    const char *color;
    cli_list_t inc, exc;
} args_t;

/* Reads the options into `a` and `r`; ML_EXIT_OK to go on (unless
 * a->help), else the usage status, already explained. */
static int parse(int argc, char **argv, args_t *a, ml_diff_report_t *r)
{
    enum { O_DOMAIN = 256, O_FORMAT, O_GROUP, O_INCLUDE, O_EXCLUDE, O_MIN, O_ABOVE, O_TOTAL, O_COLOR, O_BYPROC };
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'n'},         {"domain", required_argument, NULL, O_DOMAIN},
        {"format", required_argument, NULL, O_FORMAT},   {"group-by", required_argument, NULL, O_GROUP},
        {"include", required_argument, NULL, O_INCLUDE}, {"exclude", required_argument, NULL, O_EXCLUDE},
        {"min-growth", required_argument, NULL, O_MIN},  {"fail-above", required_argument, NULL, O_ABOVE},
        {"fail-total-above", required_argument, NULL, O_TOTAL},
        {"color", required_argument, NULL, O_COLOR},     {"colour", required_argument, NULL, O_COLOR},
        {"by-process", no_argument, NULL, O_BYPROC},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!ml_parse_u64_range(optarg, 0, UINT32_MAX, &a->limit))
                return cli_usage("diff", "--limit '%s' is not a number", optarg);
            a->limit_set = true;
            break;
        case O_DOMAIN:
            if (!ml_domain_filter_valid(optarg))
                return cli_usage("diff", "--domain '%s' is not a domain (malloc, python, cuda, "
                                         "cuda.managed, cuda.host, cuda.vmm)", optarg);
            r->opts.domain = optarg;
            break;
        case O_FORMAT:
            if (strcmp(optarg, "text") == 0)
                a->format = FMT_TEXT;
            else if (strcmp(optarg, "json") == 0)
                a->format = FMT_JSON;
            else if (strcmp(optarg, "markdown") == 0 || strcmp(optarg, "md") == 0)
                a->format = FMT_MARKDOWN;
            else
                return cli_usage("diff", "--format must be text, json or markdown, not '%s'", optarg);
            break;
        case O_GROUP:
            if (!ml_group_by_parse(optarg, &r->opts.group_by))
                return cli_usage("diff", "--group-by must be stack, line or function, not '%s'", optarg);
            break;
        case O_INCLUDE:
        case O_EXCLUDE:
            if (!*optarg)
                return cli_usage("diff", "--%s needs a pattern", c == O_INCLUDE ? "include" : "exclude");
            if (!cli_list_push(c == O_INCLUDE ? &a->inc : &a->exc, optarg)) {
                cli_error("out of memory");
                return ML_EXIT_FAIL;
            }
            break;
        case O_MIN:
            if (!ml_parse_size(optarg, &r->min_growth))
                return cli_usage("diff", "--min-growth '%s' is not a size (4096, 64KiB, 1MiB)", optarg);
            break;
        case O_ABOVE:
            if (!ml_limit_parse(optarg, false, &r->fail_above))
                return cli_usage("diff", "--fail-above '%s' is not a size (50MiB, 1GiB, 4096)", optarg);
            break;
        case O_TOTAL:
            if (!ml_limit_parse(optarg, true, &r->fail_total))
                return cli_usage("diff", "--fail-total-above '%s' is not a size (50MiB) or a percentage (75%%)",
                                 optarg);
            break;
        case O_COLOR:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never"))
                return cli_usage("diff", "--color must be auto, always or never, not '%s'", optarg);
            a->color = optarg;
            break;
        case O_BYPROC:
            a->by_process = true;
            break;
        case 'h':
            a->help = true;
            return ML_EXIT_OK;
        default:
            return cli_usage("diff", "unknown option");
        }
    }
    if (argc - optind < (a->by_process ? 1 : 2))
        return cli_usage("diff", a->by_process ? "expected snapshots or directories" :
                                                 "expected at least two snapshots (BASE HEAD)");
    if (!a->limit_set)
        a->limit = a->format == FMT_JSON ? 0 : 10;
    cli_set_patterns(&r->opts, &a->inc, &a->exc);
    return ML_EXIT_OK;
}

/* One snapshot read on a thread of its own. The reader shares nothing
 * with the main thread (the set and the growth are only the main
 * thread's), and keeps its error for the main thread to say. */
typedef struct {
    const char *path;
    ml_snapshot_t *snap;  /* NULL when it could not be read: why in err */
    char err[1024];
    pthread_t thread;
    bool running;         /* on its thread, not yet joined */
} reader_t;

static void *read_snapshot(void *arg)
{
    reader_t *r = arg;
    r->snap = ml_snapshot_load(r->path, r->err, sizeof r->err);
    return NULL;
}

/* Starts reading `path`; where no thread can be had, reads it now. */
static void reader_start(reader_t *r, const char *path)
{
    r->path = path;
    r->snap = NULL;
    r->err[0] = '\0';
    r->running = pthread_create(&r->thread, NULL, read_snapshot, r) == 0;
    if (!r->running)
        read_snapshot(r);
}

/* The snapshot, once read (NULL: see r->err). */
static ml_snapshot_t *reader_finish(reader_t *r)
{
    if (r->running)
        pthread_join(r->thread, NULL);
    r->running = false;
    return r->snap;
}

/* Reads the snapshots, in time order, into `set` and `g`: snapshot i+1 is
 * read while snapshot i is added (the first two are read together). The
 * first snapshot that cannot be read, or whose addition runs out of
 * memory, is the one reported, as when they were read one by one; a
 * snapshot read ahead of it is dropped unsaid. */
static int load(char **paths, int n, ml_snapshot_t **snaps, ml_stackset_t *set, ml_growth_t *g)
{
    reader_t next = {.running = false};
    bool pending = n > 1;
    if (pending)
        reader_start(&next, paths[1]);
    int status = ML_EXIT_OK;
    snaps[0] = cli_load(paths[0]);
    if (!snaps[0])
        status = ML_EXIT_USAGE;
    for (int i = 0; status == ML_EXIT_OK && i < n; i++) {
        if (ml_stackset_add(set, snaps[i]) < 0 || !ml_growth_feed(g, (size_t)i)) {
            cli_error("out of memory reading %s", paths[i]);
            status = ML_EXIT_FAIL;
        } else if (i + 1 < n) {
            snaps[i + 1] = reader_finish(&next);
            pending = false;
            if (!snaps[i + 1]) {
                cli_error("%s", next.err);
                status = ML_EXIT_USAGE;
            } else if (i + 2 < n) {
                reader_start(&next, paths[i + 2]);
                pending = true;
            }
        }
    }
    if (pending)
        ml_snapshot_free(reader_finish(&next));
    if (status != ML_EXIT_OK)
        return status;
    for (int i = 1; i < n; i++)
        if (snaps[i]->sample_bytes != snaps[0]->sample_bytes)
            cli_error("warning: %s was sampled every %llu bytes and %s every %llu; growth mixes estimates",
                      snaps[0]->path, (unsigned long long)snaps[0]->sample_bytes, snaps[i]->path,
                      (unsigned long long)snaps[i]->sample_bytes);
    return ML_EXIT_OK;
}

/* Writes the report; the exit status: a threshold crossed is said once
 * more on stderr, where a CI log shows it whatever the format. */
static int report(const ml_diff_report_t *r, int format)
{
    if (format == FMT_JSON)
        ml_report_json(stdout, r);
    else if (format == FMT_MARKDOWN)
        ml_report_markdown(stdout, r);
    else
        ml_report_text(stdout, r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the report: %s", strerror(errno));
        return ML_EXIT_FAIL;
    }
    if (!r->above_crossed && !r->total_crossed)
        return ML_EXIT_OK;
    char lim[48], b[32];
    if (r->above_crossed)
        cli_error("threshold crossed: a %s grew by %s, more than --fail-above %s",
                  r->opts.group_by == ML_GROUP_STACK ? "stack" : "group",
                  cli_human(r->largest->growth_bytes, false, b, sizeof b),
                  ml_limit_text(&r->fail_above, lim, sizeof lim));
    if (r->total_crossed)
        cli_error("threshold crossed: live bytes grew by %s, more than --fail-total-above %s",
                  cli_human(r->total_last.live_bytes - r->total_first.live_bytes, false, b, sizeof b),
                  ml_limit_text(&r->fail_total, lim, sizeof lim));
    return ML_EXIT_FAIL;
}

int cmd_diff(int argc, char **argv)
{
    args_t a = {.format = FMT_TEXT};
    ml_diff_report_t r = {.opts = {.group_by = ML_GROUP_STACK}};
    int status = parse(argc, argv, &a, &r);
    if (status != ML_EXIT_OK || a.help) {
        if (a.help)
            fputs(usage, stdout);
        free(a.inc.v);
        free(a.exc.v);
        return status;
    }
    if (a.by_process) {
        r.color = a.format == FMT_TEXT && cli_color(stdout, a.color);
        status = ml_diff_processes(argv + optind, (size_t)(argc - optind), &r,
                                   a.format == FMT_JSON ? ML_FMT_JSON : a.format == FMT_MARKDOWN ? ML_FMT_MARKDOWN
                                                                                                 : ML_FMT_TEXT,
                                   a.limit);
        free(a.inc.v);
        free(a.exc.v);
        return status;
    }
    int nsnap = argc - optind;
    ml_snapshot_t **snaps = calloc((size_t)nsnap, sizeof *snaps);
    ml_stackset_t *set = ml_stackset_new();
    ml_growth_t *g = set ? ml_growth_new(set, &r.opts) : NULL;
    if (!snaps || !g) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
    } else {
        status = load(argv + optind, nsnap, snaps, set, g);
    }
    if (status == ML_EXIT_OK) {
        r.snaps = (const ml_snapshot_t *const *)snaps;
        r.nsnaps = (size_t)nsnap;
        r.set = set;
        r.color = a.format == FMT_TEXT && cli_color(stdout, a.color);
        if (ml_diff_report_select(&r, g, a.limit, false)) {
            status = report(&r, a.format);
        } else {
            cli_error("out of memory");
            status = ML_EXIT_FAIL;
        }
    }
    ml_diff_report_free(&r);
    ml_growth_free(g);
    ml_stackset_free(set);
    for (int i = 0; snaps && i < nsnap; i++)
        ml_snapshot_free(snaps[i]);
    free(snaps);
    free(a.inc.v);
    free(a.exc.v);
    return status;
}
