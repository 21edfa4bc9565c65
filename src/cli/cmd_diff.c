/* cmd_diff.c — `memledger diff BASE HEAD [MORE...]`: the stacks whose live
 * memory grew, matched across snapshots by address-free identity, so the
 * snapshots may come from one process or from two different ones; and the
 * CI thresholds. The computation is growth.c's, the formats report_*.c's:
 * this file reads options and snapshots and decides the exit status. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/diff_report.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: memledger diff BASE HEAD [MORE...] [OPTIONS]\n"
    "\n"
    "Shows the call stacks whose live memory grew from BASE to the last snapshot,\n"
    "largest growth first. The snapshots may come from one process or from two\n"
    "(a base build and a PR build): stacks are matched by module build-id and\n"
    "offset, and by Python file, function and line, never by address. With three\n"
    "or more snapshots, stacks that grew in every interval are marked 'only\n"
    "grows': the signature of a leak, where a cache or a pool that filled during\n"
    "some intervals and then stopped is not.\n"
    "\n"
    "Options:\n"
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

int cmd_diff(int argc, char **argv)
{
    enum { O_DOMAIN = 256, O_FORMAT, O_GROUP, O_INCLUDE, O_EXCLUDE, O_MIN, O_ABOVE, O_TOTAL, O_COLOR };
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'n'},         {"domain", required_argument, NULL, O_DOMAIN},
        {"format", required_argument, NULL, O_FORMAT},   {"group-by", required_argument, NULL, O_GROUP},
        {"include", required_argument, NULL, O_INCLUDE}, {"exclude", required_argument, NULL, O_EXCLUDE},
        {"min-growth", required_argument, NULL, O_MIN},  {"fail-above", required_argument, NULL, O_ABOVE},
        {"fail-total-above", required_argument, NULL, O_TOTAL},
        {"color", required_argument, NULL, O_COLOR},     {"colour", required_argument, NULL, O_COLOR},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0}};
    uint64_t limit = 0, min_growth = 0;
    bool limit_set = false;
    int format = FMT_TEXT;
    const char *color = NULL;
    cli_list_t inc = {NULL, 0, 0}, exc = {NULL, 0, 0};
    ml_growth_opts_t gopts = {.group_by = ML_GROUP_STACK};
    ml_diff_report_t r = {0};
    int c, status = ML_EXIT_OK;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!ml_parse_u64_range(optarg, 0, UINT32_MAX, &limit))
                return cli_usage("diff", "--limit '%s' is not a number", optarg);
            limit_set = true;
            break;
        case O_DOMAIN:
            if (!ml_domain_filter_valid(optarg))
                return cli_usage("diff", "--domain '%s' is not a domain (malloc, python, cuda, "
                                         "cuda.managed, cuda.host, cuda.vmm)", optarg);
            gopts.domain = optarg;
            break;
        case O_FORMAT:
            if (strcmp(optarg, "text") == 0)
                format = FMT_TEXT;
            else if (strcmp(optarg, "json") == 0)
                format = FMT_JSON;
            else if (strcmp(optarg, "markdown") == 0 || strcmp(optarg, "md") == 0)
                format = FMT_MARKDOWN;
            else
                return cli_usage("diff", "--format must be text, json or markdown, not '%s'", optarg);
            break;
        case O_GROUP:
            if (!ml_group_by_parse(optarg, &gopts.group_by))
                return cli_usage("diff", "--group-by must be stack, line or function, not '%s'", optarg);
            break;
        case O_INCLUDE:
        case O_EXCLUDE:
            if (!*optarg)
                return cli_usage("diff", "--%s needs a pattern", c == O_INCLUDE ? "include" : "exclude");
            if (!cli_list_push(c == O_INCLUDE ? &inc : &exc, optarg)) {
                cli_error("out of memory");
                return ML_EXIT_FAIL;
            }
            break;
        case O_MIN:
            if (!ml_parse_size(optarg, &min_growth))
                return cli_usage("diff", "--min-growth '%s' is not a size (4096, 64KiB, 1MiB)", optarg);
            break;
        case O_ABOVE:
            if (!ml_limit_parse(optarg, false, &r.fail_above))
                return cli_usage("diff", "--fail-above '%s' is not a size (50MiB, 1GiB, 4096)", optarg);
            break;
        case O_TOTAL:
            if (!ml_limit_parse(optarg, true, &r.fail_total))
                return cli_usage("diff", "--fail-total-above '%s' is not a size (50MiB) or a percentage (75%%)",
                                 optarg);
            break;
        case O_COLOR:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never"))
                return cli_usage("diff", "--color must be auto, always or never, not '%s'", optarg);
            color = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("diff", "unknown option");
        }
    }
    int nsnap = argc - optind;
    if (nsnap < 2) {
        free(inc.v);
        free(exc.v);
        return cli_usage("diff", "expected at least two snapshots (BASE HEAD)");
    }
    if (!limit_set)
        limit = format == FMT_JSON ? 0 : 10;
    cli_set_patterns(&gopts, &inc, &exc);

    ml_snapshot_t **snaps = calloc((size_t)nsnap, sizeof *snaps);
    ml_stackset_t *set = ml_stackset_new();
    ml_growth_t *g = set ? ml_growth_new(set, &gopts) : NULL;
    ml_growth_row_t *grown = NULL;
    if (!snaps || !g) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
        goto out;
    }
    for (int i = 0; i < nsnap; i++) {
        snaps[i] = cli_load(argv[optind + i]);
        if (!snaps[i]) {
            status = ML_EXIT_USAGE;
            goto out;
        }
        if (ml_stackset_add(set, snaps[i]) < 0 || !ml_growth_feed(g, (size_t)i)) {
            cli_error("out of memory reading %s", argv[optind + i]);
            status = ML_EXIT_FAIL;
            goto out;
        }
    }
    for (int i = 1; i < nsnap; i++)
        if (snaps[i]->sample_bytes != snaps[0]->sample_bytes)
            cli_error("warning: %s was sampled every %llu bytes and %s every %llu; growth mixes estimates",
                      snaps[0]->path, (unsigned long long)snaps[0]->sample_bytes, snaps[i]->path,
                      (unsigned long long)snaps[i]->sample_bytes);

    size_t nall;
    const ml_growth_row_t *rows = ml_growth_rows(g, &nall);
    grown = calloc(nall + 1, sizeof *grown);
    if (!rows || !grown) {
        cli_error("out of memory");
        status = ML_EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < nall; i++) {
        if (rows[i].growth_bytes <= 0 && rows[i].growth_count <= 0)
            continue;
        if (!r.largest && rows[i].growth_bytes > 0)
            r.largest = &rows[i];
        if (rows[i].growth_bytes < 0 || (uint64_t)rows[i].growth_bytes < min_growth) {
            r.hidden++;
            continue;
        }
        grown[r.nrows++] = rows[i];
        r.grown_bytes = ml_sat_add(r.grown_bytes, rows[i].growth_bytes);
        r.grown_count = ml_sat_add(r.grown_count, rows[i].growth_count);
        r.only_grows += ml_growth_only_grows(&rows[i]);
    }
    r.snaps = (const ml_snapshot_t *const *)snaps;
    r.nsnaps = (size_t)nsnap;
    r.set = set;
    r.rows = grown;
    r.show = limit && limit < r.nrows ? limit : r.nrows;
    ml_growth_totals(g, &r.total_first, &r.total_last);
    r.group_by = gopts.group_by;
    r.domain = gopts.domain;
    r.include = inc.v;
    r.ninclude = inc.n;
    r.exclude = exc.v;
    r.nexclude = exc.n;
    r.min_growth = min_growth;
    r.above_crossed = r.largest && ml_limit_crossed(&r.fail_above, 0, r.largest->growth_bytes);
    r.total_crossed = ml_limit_crossed(&r.fail_total, r.total_first.live_bytes, r.total_last.live_bytes);
    r.color = format == FMT_TEXT && cli_color(stdout, color);
    if (format == FMT_JSON)
        ml_report_json(stdout, &r);
    else if (format == FMT_MARKDOWN)
        ml_report_markdown(stdout, &r);
    else
        ml_report_text(stdout, &r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the report: %s", strerror(errno));
        status = ML_EXIT_FAIL;
    } else if (r.above_crossed || r.total_crossed) {
        char lim[48], b[32];
        if (r.above_crossed)
            cli_error("threshold crossed: a %s grew by %s, more than --fail-above %s",
                      r.group_by == ML_GROUP_STACK ? "stack" : "group",
                      cli_human(r.largest->growth_bytes, false, b, sizeof b),
                      ml_limit_text(&r.fail_above, lim, sizeof lim));
        if (r.total_crossed)
            cli_error("threshold crossed: live bytes grew by %s, more than --fail-total-above %s",
                      cli_human(r.total_last.live_bytes - r.total_first.live_bytes, false, b, sizeof b),
                      ml_limit_text(&r.fail_total, lim, sizeof lim));
        status = ML_EXIT_FAIL;
    }
out:
    free(grown);
    ml_growth_free(g);
    ml_stackset_free(set);
    for (int i = 0; snaps && i < nsnap; i++)
        ml_snapshot_free(snaps[i]);
    free(snaps);
    free(inc.v);
    free(exc.v);
    return status;
}
