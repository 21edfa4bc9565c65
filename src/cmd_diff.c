/* cmd_diff.c — `memledger diff BASE HEAD [MORE...]`: the stacks whose live
 * memory grew, matched across snapshots by address-free identity, so the
 * snapshots may come from one process or from two different ones. */
#include "cli.h"
#include "cli_util.h"
#include "units.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: memledger diff BASE HEAD [MORE...] [OPTIONS]\n"
    "\n"
    "Shows the call stacks whose live memory grew from BASE to the last snapshot,\n"
    "largest growth first. With three or more snapshots, stacks that grew in every\n"
    "interval are marked 'only grows': the signature of a leak, as opposed to a\n"
    "cache or pool that grew once and stopped.\n"
    "\n"
    "Options:\n"
    "  -n, --limit N          show N stacks (text default 10; json default all; 0 = all)\n"
    "      --domain D         only domain D: malloc, python, cuda (cuda.* too), ...\n"
    "      --format text|json output format (default text)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 done; 2 bad usage or an unreadable snapshot.\n";

typedef struct {
    uint32_t uid;
    int64_t growth_bytes, growth_count, live_bytes, live_count;
    bool only_grows;
} row_t;

static int by_growth(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->growth_bytes != y->growth_bytes)
        return x->growth_bytes < y->growth_bytes ? 1 : -1;
    if (x->growth_count != y->growth_count)
        return x->growth_count < y->growth_count ? 1 : -1;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static void json_snapshot(const ml_snapshot_t *s)
{
    printf("{\"path\":");
    cli_json_str(stdout, s->path);
    printf(",\"pid\":%ld,\"seq\":%ld,\"time\":%.6f,\"rss\":%llu,\"sample_bytes\":%llu}", s->pid, s->seq,
           s->time, (unsigned long long)s->rss, (unsigned long long)s->sample_bytes);
}

int cmd_diff(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'n'}, {"domain", required_argument, NULL, 'D'},
        {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    uint64_t limit = 0;
    bool limit_set = false, json = false;
    const char *domain = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!ml_parse_u64_range(optarg, 0, UINT32_MAX, &limit))
                return cli_usage("diff", "--limit '%s' is not a number", optarg);
            limit_set = true;
            break;
        case 'D':
            if (!ml_domain_filter_valid(optarg))
                return cli_usage("diff", "--domain '%s' is not a domain (malloc, python, cuda, "
                                         "cuda.managed, cuda.host, cuda.vmm)", optarg);
            domain = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "json") && strcmp(optarg, "text"))
                return cli_usage("diff", "--format must be text or json, not '%s'", optarg);
            json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            fputs(usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("diff", "unknown option");
        }
    }
    int nsnap = argc - optind;
    if (nsnap < 2)
        return cli_usage("diff", "expected at least two snapshots (BASE HEAD)");
    if (!limit_set)
        limit = json ? 0 : 10;

    ml_snapshot_t **snaps = calloc((size_t)nsnap, sizeof *snaps);
    ml_stackset_t *set = ml_stackset_new();
    int status = ML_EXIT_OK;
    if (!snaps || !set) {
        cli_error("out of memory");
        return ML_EXIT_FAIL;
    }
    for (int i = 0; i < nsnap; i++) {
        snaps[i] = cli_load(argv[optind + i]);
        if (!snaps[i]) {
            status = ML_EXIT_USAGE;
            goto out;
        }
        if (ml_stackset_add(set, snaps[i]) < 0) {
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

    size_t n = ml_stackset_nstacks(set), k = 0;
    row_t *rows = calloc(n + 1, sizeof *rows);
    int64_t grown = 0, grown_count = 0;
    int64_t dom_base[ML_DOM_COUNT] = {0}, dom_head[ML_DOM_COUNT] = {0};
    for (int d = 0; d < ML_DOM_COUNT; d++) {
        dom_base[d] = snaps[0]->domain_live_bytes[d];
        dom_head[d] = snaps[nsnap - 1]->domain_live_bytes[d];
    }
    for (uint32_t u = 0; u < n; u++) {
        const ml_sstack_t *st = ml_stackset_stack(set, u);
        if (!ml_domain_matches(st->domain, domain))
            continue;
        ml_sval_t first = ml_stackset_value(set, 0, u), last = ml_stackset_value(set, (size_t)nsnap - 1, u);
        row_t r = {u, last.live_bytes - first.live_bytes, last.live_count - first.live_count,
                   last.live_bytes, last.live_count, true};
        for (int i = 1; i < nsnap; i++)
            if (ml_stackset_value(set, (size_t)i, u).live_bytes <=
                ml_stackset_value(set, (size_t)i - 1, u).live_bytes)
                r.only_grows = false;
        if (r.growth_bytes <= 0 && r.growth_count <= 0)
            continue;
        rows[k++] = r;
        grown = ml_sat_add(grown, r.growth_bytes);
        grown_count = ml_sat_add(grown_count, r.growth_count);
    }
    qsort(rows, k, sizeof *rows, by_growth);
    size_t show = limit && limit < k ? limit : k;
    char b1[64], b2[64], b3[64], fb[2048];
    if (json) {
        printf("{\"snapshots\":[");
        for (int i = 0; i < nsnap; i++) {
            if (i)
                putchar(',');
            json_snapshot(snaps[i]);
        }
        printf("],\"domain\":");
        cli_json_str(stdout, domain);
        printf(",\"growth_bytes\":%lld,\"growth_count\":%lld,\"stacks\":[", (long long)grown,
               (long long)grown_count);
        for (size_t i = 0; i < show; i++) {
            const ml_sstack_t *st = ml_stackset_stack(set, rows[i].uid);
            printf("%s{\"growth_bytes\":%lld,\"growth_count\":%lld,\"live_bytes\":%lld,\"live_count\":%lld,"
                   "\"only_grows\":%s,\"domain\":\"%s\",\"frames\":[",
                   i ? "," : "", (long long)rows[i].growth_bytes, (long long)rows[i].growth_count,
                   (long long)rows[i].live_bytes, (long long)rows[i].live_count,
                   rows[i].only_grows ? "true" : "false", ml_domain_name(st->domain));
            for (uint32_t f = 0; f < st->nframes; f++) {
                if (f)
                    putchar(',');
                cli_json_frame(stdout, ml_stackset_frame(set, st->frames[f]));
            }
            printf("]}");
        }
        printf("]}\n");
    } else {
        const ml_snapshot_t *b = snaps[0], *h = snaps[nsnap - 1];
        if (b->pid == h->pid)
            printf("memledger diff: %d snapshots of pid %ld over %.1f s (seq %ld -> %ld)\n", nsnap, b->pid,
                   h->time - b->time, b->seq, h->seq);
        else
            printf("memledger diff: %d snapshots, base pid %ld, head pid %ld\n", nsnap, b->pid, h->pid);
        for (int d = 0; d < ML_DOM_COUNT; d++) {
            if (!dom_base[d] && !dom_head[d])
                continue;
            if (!ml_domain_matches(d, domain))
                continue;
            printf("  %-13s live %s -> %s  (%s)\n", ml_domain_name(d), cli_bytes(dom_base[d], false, b1, sizeof b1),
                   cli_bytes(dom_head[d], false, b2, sizeof b2),
                   cli_bytes(dom_head[d] - dom_base[d], true, b3, sizeof b3));
        }
        if (!k)
            printf("\nNo stack grew.\n");
        else
            printf("\n%zu stack%s grew: %s and %+lld allocations in all%s\n", k, k == 1 ? "" : "s",
                   cli_bytes(grown, true, b1, sizeof b1), (long long)grown_count,
                   nsnap >= 3 ? "; 'only grows' marks growth in every interval" : "");
        for (size_t i = 0; i < show; i++) {
            const ml_sstack_t *st = ml_stackset_stack(set, rows[i].uid);
            printf("\n#%zu  %s  %+lld allocations  %s  (live %s in %lld)%s\n", i + 1,
                   cli_bytes(rows[i].growth_bytes, true, b1, sizeof b1), (long long)rows[i].growth_count,
                   ml_domain_name(st->domain), cli_bytes(rows[i].live_bytes, false, b2, sizeof b2),
                   (long long)rows[i].live_count, nsnap >= 3 && rows[i].only_grows ? "  [only grows]" : "");
            if (!st->nframes)
                printf("    [no frames: stack table full, see docs/config.md MEMLEDGER_STACKS]\n");
            for (uint32_t f = 0; f < st->nframes; f++)
                printf("    %s\n", cli_frame_text(ml_stackset_frame(set, st->frames[f]), true, fb, sizeof fb));
        }
        if (show < k)
            printf("\n... %zu more stacks grew (use -n 0 to see all)\n", k - show);
    }
    free(rows);
out:
    ml_stackset_free(set);
    for (int i = 0; i < nsnap; i++)
        ml_snapshot_free(snaps[i]);
    free(snaps);
    return status;
}
