/* cmd_export.c — `memledger export SNAPSHOT [--base BASE] --format F -o FILE`:
 * a snapshot (or its growth since BASE) for other tools: pprof (pprof.c),
 * collapsed stacks (collapsed.c) or a self-contained HTML report
 * (report_html.c). Which stacks, and their values, come from growth.c as
 * for `memledger diff`. The file appears complete or not at all: it is
 * written under a temporary name beside FILE and renamed. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/export.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: memledger export SNAPSHOT [--base BASE] --format FORMAT -o FILE [OPTIONS]\n"
    "\n"
    "Writes SNAPSHOT's live memory per stack, or with --base the growth of each\n"
    "stack since BASE (only the stacks that grew), in a form other tools read:\n"
    "\n"
    "  pprof      gzipped profile.proto for go tool pprof, Grafana Pyroscope, Parca;\n"
    "             sample types inuse_space, inuse_objects, alloc_space, alloc_objects\n"
    "  collapsed  'root;caller;...;leaf BYTES' per line, for flamegraph.pl,\n"
    "             inferno and speedscope\n"
    "  html       one self-contained page (nothing fetched from the network): a\n"
    "             flame graph (hover, click to zoom), the top stacks, totals per domain\n"
    "\n"
    "Options:\n"
    "  -b, --base BASE        show growth since BASE (a snapshot of this process or\n"
    "                         of another; stacks match by build-id and offset)\n"
    "  -f, --format FORMAT    pprof, collapsed or html (required)\n"
    "  -o, --output FILE      where to write ('-' for standard output; required)\n"
    "      --domain D         only domain D: malloc, python, cuda (cuda.* too), ...\n"
    "      --include PATTERN  only stacks with a frame whose function, file or module\n"
    "                         matches the glob PATTERN (repeatable)\n"
    "      --exclude PATTERN  leave out stacks with a frame that matches (repeatable)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 written; 1 could not write FILE; 2 bad usage or an\n"
    "unreadable snapshot.\n";

enum { FMT_NONE, FMT_PPROF, FMT_COLLAPSED, FMT_HTML };

/* Writes through `fn` to `path` atomically (or to stdout for "-"). */
static int write_out(const char *path, bool (*fn)(FILE *, const ml_export_t *, char *, size_t), const ml_export_t *e)
{
    char err[512] = "";
    if (strcmp(path, "-") == 0) {
        bool ok = fn(stdout, e, err, sizeof err) && fflush(stdout) == 0;
        if (!ok)
            cli_error("cannot write the export to standard output: %s", err[0] ? err : strerror(errno));
        return ok ? ML_EXIT_OK : ML_EXIT_FAIL;
    }
    char tmp[PATH_MAX + 32];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    snprintf(tmp, sizeof tmp, "%.*s.%s.XXXXXX", dirlen, path, slash ? slash + 1 : path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return ML_EXIT_FAIL;
    }
    fchmod(fd, 0644); /* a report is for sharing; mkstemp makes 0600 */
    FILE *f = fdopen(fd, "w");
    bool ok = f && fn(f, e, err, sizeof err);
    if (f && fclose(f) != 0 && ok) {
        snprintf(err, sizeof err, "%s", strerror(errno));
        ok = false;
    } else if (!f) {
        close(fd);
    }
    if (ok && rename(tmp, path) != 0) {
        snprintf(err, sizeof err, "%s", strerror(errno));
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        cli_error("cannot write %s: %s", path, err[0] ? err : "unknown error");
        return ML_EXIT_FAIL;
    }
    return ML_EXIT_OK;
}

int cmd_export(int argc, char **argv)
{
    enum { O_DOMAIN = 256, O_INCLUDE, O_EXCLUDE };
    static const struct option opts[] = {
        {"base", required_argument, NULL, 'b'},          {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},        {"domain", required_argument, NULL, O_DOMAIN},
        {"include", required_argument, NULL, O_INCLUDE}, {"exclude", required_argument, NULL, O_EXCLUDE},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0}};
    const char *base_path = NULL, *out_path = NULL;
    int format = FMT_NONE, c, status = ML_EXIT_OK;
    cli_list_t inc = {NULL, 0, 0}, exc = {NULL, 0, 0};
    ml_growth_opts_t gopts = {.group_by = ML_GROUP_STACK};
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            base_path = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "pprof") == 0)
                format = FMT_PPROF;
            else if (strcmp(optarg, "collapsed") == 0)
                format = FMT_COLLAPSED;
            else if (strcmp(optarg, "html") == 0)
                format = FMT_HTML;
            else
                return cli_usage("export", "--format must be pprof, collapsed or html, not '%s'", optarg);
            break;
        case 'o':
            out_path = optarg;
            break;
        case O_DOMAIN:
            if (!ml_domain_filter_valid(optarg))
                return cli_usage("export", "--domain '%s' is not a domain (malloc, python, cuda, "
                                           "cuda.managed, cuda.host, cuda.vmm)", optarg);
            gopts.domain = optarg;
            break;
        case O_INCLUDE:
        case O_EXCLUDE:
            if (!*optarg)
                return cli_usage("export", "--%s needs a pattern", c == O_INCLUDE ? "include" : "exclude");
            if (!cli_list_push(c == O_INCLUDE ? &inc : &exc, optarg)) {
                cli_error("out of memory");
                return ML_EXIT_FAIL;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("export", "unknown option");
        }
    }
    if (argc - optind != 1)
        status = cli_usage("export", "expected one snapshot");
    else if (format == FMT_NONE)
        status = cli_usage("export", "--format is required (pprof, collapsed or html)");
    else if (!out_path || !*out_path)
        status = cli_usage("export", "-o FILE is required ('-' writes to standard output)");
    if (status != ML_EXIT_OK) {
        free(inc.v);
        free(exc.v);
        return status;
    }
    cli_set_patterns(&gopts, &inc, &exc);

    ml_snapshot_t *base = NULL, *head = NULL;
    ml_stackset_t *set = ml_stackset_new();
    ml_growth_t *g = set ? ml_growth_new(set, &gopts) : NULL;
    ml_growth_row_t *rows = NULL;
    if (!g) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
        goto out;
    }
    if ((base_path && !(base = cli_load(base_path))) || !(head = cli_load(argv[optind]))) {
        status = ML_EXIT_USAGE;
        goto out;
    }
    size_t fed = 0;
    if ((base && (ml_stackset_add(set, base) < 0 || !ml_growth_feed(g, fed++))) || ml_stackset_add(set, head) < 0 ||
        !ml_growth_feed(g, fed)) {
        cli_error("out of memory reading the snapshots");
        status = ML_EXIT_FAIL;
        goto out;
    }
    size_t nall;
    const ml_growth_row_t *all = ml_growth_rows(g, &nall);
    rows = calloc(nall + 1, sizeof *rows);
    if (!all || !rows) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
        goto out;
    }
    ml_export_t e = {.set = set, .base = base, .head = head, .rows = rows, .domain = gopts.domain};
    for (size_t i = 0; i < nall; i++)
        if ((base ? all[i].growth_bytes : all[i].last.live_bytes) > 0)
            rows[e.nrows++] = all[i];
    status = write_out(out_path,
                       format == FMT_PPROF       ? ml_export_pprof
                       : format == FMT_COLLAPSED ? ml_export_collapsed
                                                 : ml_export_html,
                       &e);
out:
    free(rows);
    ml_growth_free(g);
    ml_stackset_free(set);
    ml_snapshot_free(base);
    ml_snapshot_free(head);
    free(inc.v);
    free(exc.v);
    return status;
}
