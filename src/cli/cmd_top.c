/* cmd_top.c — `memledger top SNAPSHOT`: the stacks holding the most live
 * memory in one snapshot. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "common/units.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: memledger top SNAPSHOT [OPTIONS]\n"
    "\n"
    "Shows the call stacks holding the most live memory in SNAPSHOT, largest\n"
    "first (ties: more live allocations first, so a stack of zero-byte blocks\n"
    "shows too).\n"
    "\n"
    "Options:\n"
    "  -n, --limit N          show N stacks (default 10; 0 for all)\n"
    "      --domain D         only domain D: malloc, python, cuda (cuda.* too), ...\n"
    "      --format text|json output format (default text)\n"
    "  -h, --help             show this help\n";

typedef struct {
    uint32_t uid;
    ml_sval_t v;
} row_t;

static int by_live(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->v.live_bytes != y->v.live_bytes)
        return x->v.live_bytes < y->v.live_bytes ? 1 : -1;
    if (x->v.live_count != y->v.live_count) /* zero-byte blocks still cost a chunk each */
        return x->v.live_count < y->v.live_count ? 1 : -1;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

int cmd_top(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'n'}, {"domain", required_argument, NULL, 'D'},
        {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    uint64_t limit = 10;
    const char *domain = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!ml_parse_u64_range(optarg, 0, UINT32_MAX, &limit))
                return cli_usage("top", "--limit '%s' is not a number", optarg);
            break;
        case 'D':
            if (!ml_domain_filter_valid(optarg))
                return cli_usage("top", "--domain '%s' is not a domain (malloc, python, cuda, cuda.managed, "
                                        "cuda.host, cuda.vmm)", optarg);
            domain = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "json") && strcmp(optarg, "text"))
                return cli_usage("top", "--format must be text or json");
            json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            fputs(usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("top", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage("top", "expected one snapshot file");
    ml_snapshot_t *snap = cli_load(argv[optind]);
    if (!snap)
        return ML_EXIT_USAGE;
    ml_stackset_t *set = ml_stackset_new();
    if (!set || ml_stackset_add(set, snap) < 0) {
        cli_error("out of memory");
        return ML_EXIT_FAIL;
    }
    size_t n = ml_stackset_nstacks(set), k = 0;
    row_t *rows = calloc(n + 1, sizeof *rows);
    int64_t total = 0;
    for (uint32_t u = 0; u < n; u++) {
        ml_sval_t v = ml_stackset_value(set, 0, u);
        /* a stack of zero-byte blocks (malloc(0)) holds 0 bytes but is live;
         * the domain alone is asked here: a stack's frames are written out of
         * the tree only for the rows shown */
        if (!ml_domain_matches(ml_stackset_domain(set, u), domain) || (v.live_bytes <= 0 && v.live_count <= 0))
            continue;
        rows[k].uid = u;
        rows[k].v = v;
        total = ml_sat_add(total, v.live_bytes);
        k++;
    }
    qsort(rows, k, sizeof *rows, by_live);
    size_t show = limit && limit < k ? limit : k;
    char b1[64], b2[64], fb[2048];
    if (json) {
        printf("{\"snapshot\":");
        cli_json_str(stdout, snap->path);
        printf(",\"pid\":%ld,\"seq\":%ld,\"live_bytes\":%lld,\"stacks\":[", snap->pid, snap->seq,
               (long long)total);
        for (size_t i = 0; i < show; i++) {
            const ml_sstack_t *st = ml_stackset_stack(set, rows[i].uid);
            printf("%s{\"live_bytes\":%lld,\"live_count\":%lld,\"total_bytes\":%lld,\"total_count\":%lld,"
                   "\"domain\":\"%s\",\"frames\":[",
                   i ? "," : "", (long long)rows[i].v.live_bytes, (long long)rows[i].v.live_count,
                   (long long)rows[i].v.total_bytes, (long long)rows[i].v.total_count,
                   ml_domain_name(st->domain));
            cli_json_frames(stdout, set, st);
            printf("]}");
        }
        printf("]}\n");
    } else {
        printf("%s: pid %ld, snapshot %ld, %s live in %zu stacks%s%s\n", snap->path, snap->pid, snap->seq,
               cli_bytes(total, false, b1, sizeof b1), k, domain ? " of domain " : "", domain ? domain : "");
        for (size_t i = 0; i < show; i++) {
            const ml_sstack_t *st = ml_stackset_stack(set, rows[i].uid);
            printf("\n#%zu  %s in %lld allocations  %s  (%s allocated in all)\n", i + 1,
                   cli_bytes(rows[i].v.live_bytes, false, b1, sizeof b1), (long long)rows[i].v.live_count,
                   ml_domain_name(st->domain), cli_bytes(rows[i].v.total_bytes, false, b2, sizeof b2));
            if (!st->nframes)
                printf("    [no frames: the stack store was full, see docs/config.md MEMLEDGER_STACKS]\n");
            ml_sframe_t view;
            for (uint32_t j = 0, n = cli_shown_count(set, st); j < n; j++)
                printf("    %s\n", cli_frame_text(cli_shown_frame(set, st, j, &view), true, fb, sizeof fb));
        }
        if (show < k)
            printf("\n... %zu more stacks (use -n 0 to see all)\n", k - show);
    }
    free(rows);
    ml_stackset_free(set);
    ml_snapshot_free(snap);
    return ML_EXIT_OK;
}
