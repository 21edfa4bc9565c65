/* cmd_watch.c — `memledger watch PID --every TIME`: snapshot a running
 * process at a steady pace and print, after each snapshot, the stacks that
 * have grown in every interval so far, until interrupted.
 * The snapshots are asked for as `memledger snapshot` does
 * (snapshot_request.c) and stay where the process wrote them. Growth is
 * growth.c's, fed one snapshot at a time: only the first snapshot's and
 * the latest's figures are kept in memory, so a watch of hours costs what
 * the distinct stacks cost, not what the snapshots do. Which rows are
 * shown is diff_report.c's choice, as for diff, narrowed to the rows that
 * grew in every interval. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/diff_report.h"
#include "cli/growth.h"
#include "cli/snapshot_request.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "Usage: memledger watch PID --every TIME [OPTIONS]\n"
    "\n"
    "Takes a snapshot of process PID (running under memledger) every TIME and,\n"
    "after each, prints the stacks whose live memory has grown in every interval\n"
    "so far: the leak candidates. A cache or pool drops out of the list the\n"
    "first time it does not grow. Runs until interrupted (Ctrl-C), or until\n"
    "--count snapshots. The snapshots are kept where the process writes them\n"
    "(its MEMLEDGER_DIR) and their paths are printed, for 'memledger diff'.\n"
    "\n"
    "Options:\n"
    "  -e, --every TIME         time between snapshots: 10, 2.5s, 500ms, 1m (required)\n"
    "  -c, --count N            stop after N snapshots (default: until interrupted)\n"
    "  -n, --limit N            show N stacks after each snapshot (default 10; 0 = all)\n"
    "      --domain D           only domain D: malloc, python, cuda (cuda.* too), ...\n"
    "      --group-by HOW       stack (default), line or function, as for diff\n"
    "      --include PATTERN    only stacks with a frame matching PATTERN (repeatable)\n"
    "      --exclude PATTERN    leave out stacks with a frame matching (repeatable)\n"
    "      --min-growth SIZE    hide stacks that grew by less than SIZE in all\n"
    "  -t, --timeout TIME       wait this long for each snapshot (default 60s)\n"
    "      --color WHEN         auto (default), always or never\n"
    "  -h, --help               show this help\n"
    "\n"
    "Exit status: 0 interrupted, or --count snapshots taken; 1 the process ended\n"
    "or a snapshot could not be taken or read; 2 bad usage, or PID is not a\n"
    "process running under memledger.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Sleeps until `deadline` (CLOCK_MONOTONIC) or a stop request. */
static void pause_until(const struct timespec *deadline)
{
    while (!stop) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec))
            return;
        struct timespec step = {0, 50 * 1000 * 1000}; /* short steps: a signal need not interrupt the sleep */
        nanosleep(&step, NULL);
    }
}

typedef struct {
    uint64_t limit, min_growth;
    bool color;
} view_t;

/* Prints the progress line and, from the second snapshot, the rows that
 * grew in every interval (diff_report.c chooses them, as for diff).
 * Returns false when out of memory. */
static bool report(const view_t *v, const ml_stackset_t *set, ml_growth_t *g, size_t n, const char *path,
                   double since, int64_t rss)
{
    const char *bold = v->color ? "\033[1m" : "", *red = v->color ? "\033[31m" : "", *reset = v->color ? "\033[0m" : "";
    ml_diff_report_t r = {.set = set, .min_growth = v->min_growth};
    if (!ml_diff_report_select(&r, g, v->limit, true))
        return false;
    char b1[32], b2[32], b3[32], fb[2048];
    /* the progress line */
    printf("%s[%zu] +%.1f s%s  %s  live %s (%s since the first), rss %s", bold, n, since, reset, path,
           cli_human(r.total_last.live_bytes, false, b1, sizeof b1),
           cli_human(r.total_last.live_bytes - r.total_first.live_bytes, true, b2, sizeof b2),
           cli_human(rss, false, b3, sizeof b3));
    if (n == 1) {
        printf("  (the baseline)\n");
    } else {
        printf("  %s%zu only grow%s%s\n", r.nrows ? red : "", r.nrows, r.nrows == 1 ? "s" : "", r.nrows ? reset : "");
        for (size_t i = 0; i < r.show; i++) {
            const ml_growth_row_t *row = &r.rows[i];
            const ml_sstack_t *st = ml_stackset_stack(set, row->stack);
            const char *where = "[no frames: the stack store was full]";
            if (row->user != UINT32_MAX)
                where = cli_frame_text(ml_stackset_frame(set, st->frames[row->user]), true, fb, sizeof fb);
            printf("    %s%11s%s %+9lld  %-8s %s\n", red, cli_human(row->growth_bytes, true, b1, sizeof b1), reset,
                   (long long)row->growth_count, ml_domain_name(row->domain), where);
        }
        if (r.show < r.nrows)
            printf("    ... %zu more\n", r.nrows - r.show);
    }
    fflush(stdout);
    ml_diff_report_free(&r);
    return true;
}

int cmd_watch(int argc, char **argv)
{
    enum { O_DOMAIN = 256, O_GROUP, O_INCLUDE, O_EXCLUDE, O_MIN, O_COLOR };
    static const struct option opts[] = {
        {"every", required_argument, NULL, 'e'},         {"count", required_argument, NULL, 'c'},
        {"limit", required_argument, NULL, 'n'},         {"timeout", required_argument, NULL, 't'},
        {"domain", required_argument, NULL, O_DOMAIN},   {"group-by", required_argument, NULL, O_GROUP},
        {"include", required_argument, NULL, O_INCLUDE}, {"exclude", required_argument, NULL, O_EXCLUDE},
        {"min-growth", required_argument, NULL, O_MIN},  {"color", required_argument, NULL, O_COLOR},
        {"colour", required_argument, NULL, O_COLOR},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    uint64_t every_ms = 0, count = 0, timeout_ms = 60000;
    view_t view = {10, 0, false};
    const char *color = NULL;
    cli_list_t inc = {NULL, 0, 0}, exc = {NULL, 0, 0};
    ml_growth_opts_t gopts = {.group_by = ML_GROUP_STACK};
    int c, status = ML_EXIT_OK;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:c:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (!ml_parse_duration_ms(optarg, &every_ms) || every_ms < 100)
                status = cli_usage("watch", "--every '%s' is not a duration of at least 100ms (10, 2.5s, 1m)", optarg);
            break;
        case 'c':
            if (!ml_parse_u64_range(optarg, 1, UINT32_MAX, &count))
                status = cli_usage("watch", "--count '%s' is not a number of snapshots", optarg);
            break;
        case 'n':
            if (!ml_parse_u64_range(optarg, 0, UINT32_MAX, &view.limit))
                status = cli_usage("watch", "--limit '%s' is not a number", optarg);
            break;
        case 't':
            if (!ml_parse_duration_ms(optarg, &timeout_ms))
                status = cli_usage("watch", "--timeout '%s' is not a duration (10, 2.5s, 500ms)", optarg);
            break;
        case O_DOMAIN:
            if (!ml_domain_filter_valid(optarg))
                status = cli_usage("watch", "--domain '%s' is not a domain (malloc, python, cuda, ...)", optarg);
            gopts.domain = optarg;
            break;
        case O_GROUP:
            if (!ml_group_by_parse(optarg, &gopts.group_by))
                status = cli_usage("watch", "--group-by must be stack, line or function, not '%s'", optarg);
            break;
        case O_INCLUDE:
        case O_EXCLUDE:
            if (!*optarg || !cli_list_push(c == O_INCLUDE ? &inc : &exc, optarg))
                status = cli_usage("watch", "--%s needs a pattern", c == O_INCLUDE ? "include" : "exclude");
            break;
        case O_MIN:
            if (!ml_parse_size(optarg, &view.min_growth))
                status = cli_usage("watch", "--min-growth '%s' is not a size (4096, 64KiB, 1MiB)", optarg);
            break;
        case O_COLOR:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never"))
                status = cli_usage("watch", "--color must be auto, always or never, not '%s'", optarg);
            color = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            free(inc.v);
            free(exc.v);
            return ML_EXIT_OK;
        default:
            status = cli_usage("watch", "unknown option");
        }
        if (status != ML_EXIT_OK)
            break;
    }
    uint64_t pid = 0;
    if (status == ML_EXIT_OK && argc - optind != 1)
        status = cli_usage("watch", "expected one PID");
    else if (status == ML_EXIT_OK && !ml_parse_u64_range(argv[optind], 1, INT32_MAX, &pid))
        status = cli_usage("watch", "'%s' is not a process id", argv[optind]);
    else if (status == ML_EXIT_OK && !every_ms)
        status = cli_usage("watch", "--every TIME is required");
    if (status != ML_EXIT_OK) {
        free(inc.v);
        free(exc.v);
        return status;
    }
    cli_set_patterns(&gopts, &inc, &exc);
    view.color = cli_color(stdout, color);

    ml_target_t target;
    char err[2 * PATH_MAX + 256], path[sizeof target.dir + 64];
    ml_stackset_t *set = NULL;
    ml_growth_t *g = NULL;
    status = ml_target_open((long)pid, &target, err, sizeof err);
    if (status != ML_EXIT_OK) {
        cli_error("%s", err);
        goto out;
    }
    set = ml_stackset_new();
    g = set ? ml_growth_new(set, &gopts) : NULL;
    if (!g) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    printf("memledger watch: pid %ld every %.1f s; snapshots go to %s; Ctrl-C stops\n", target.pid,
           (double)every_ms / 1000.0, target.dir);
    fflush(stdout);
    struct timespec start, next;
    clock_gettime(CLOCK_MONOTONIC, &start);
    next = start;
    size_t taken = 0;
    double first_time = 0;
    while (!stop && (!count || taken < count)) {
        int rc = ml_target_snapshot(&target, timeout_ms, &stop, path, sizeof path, err, sizeof err);
        if (rc != 0) {
            if (stop)
                break;
            cli_error("%s", err);
            status = ML_EXIT_FAIL;
            break;
        }
        ml_snapshot_t *snap = cli_load(path);
        if (!snap) {
            status = ML_EXIT_USAGE;
            break;
        }
        int si = ml_stackset_add(set, snap);
        bool ok = si >= 0 && ml_growth_feed(g, (size_t)si);
        if (ok && si >= 2)
            ml_stackset_drop_values(set, (size_t)si - 1); /* keep the first and the latest */
        if (taken == 0)
            first_time = snap->time;
        taken++;
        ok = ok && report(&view, set, g, taken, path, snap->time - first_time, (int64_t)snap->rss);
        ml_snapshot_free(snap);
        if (!ok) {
            cli_error("out of memory");
            status = ML_EXIT_FAIL;
            break;
        }
        /* a steady pace: the next snapshot is due `every` after the last was due */
        next.tv_sec += (time_t)(every_ms / 1000);
        next.tv_nsec += (long)(every_ms % 1000) * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        if (!count || taken < count)
            pause_until(&next);
    }
    if (status == ML_EXIT_OK)
        printf("memledger watch: %s after %zu snapshot%s; they are kept in %s\n", stop ? "stopped" : "done", taken,
               taken == 1 ? "" : "s", target.dir);
out:
    ml_target_close(&target);
    ml_growth_free(g);
    ml_stackset_free(set);
    free(inc.v);
    free(exc.v);
    return status;
}
