/* cmd_snapshot.c — `memledger snapshot PID`: signal a process running the
 * ledger and print the path of the snapshot it writes, once complete (the
 * work is snapshot_request.c's, shared with `memledger watch`). */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/snapshot_request.h"
#include "common/units.h"

#include <getopt.h>

static const char usage[] =
    "Usage: memledger snapshot PID [--timeout TIME]\n"
    "\n"
    "Asks process PID (running under memledger) for a snapshot and prints the\n"
    "snapshot's path once the file is complete. The process keeps running.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout TIME  give up after TIME (default 60s)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 printed a path; 1 no snapshot in time or the process ended;\n"
    "2 bad usage, or PID is not a process running under memledger.\n";

int cmd_snapshot(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    uint64_t timeout_ms = 60000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!ml_parse_duration_ms(optarg, &timeout_ms))
                return cli_usage("snapshot", "--timeout '%s' is not a duration (10, 2.5s, 500ms)", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("snapshot", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage("snapshot", "expected one PID");
    uint64_t pidv;
    if (!ml_parse_u64_range(argv[optind], 1, INT32_MAX, &pidv))
        return cli_usage("snapshot", "'%s' is not a process id", argv[optind]);
    long pid = (long)pidv;

    ml_target_t target;
    char err[2 * PATH_MAX + 256], path[sizeof target.dir + 64];
    int rc = ml_target_open(pid, &target, err, sizeof err);
    if (rc == 0)
        rc = ml_target_snapshot(&target, timeout_ms, NULL, path, sizeof path, err, sizeof err);
    if (rc != 0) {
        cli_error("%s", err);
        return rc;
    }
    printf("%s\n", path);
    return ML_EXIT_OK;
}
