/* cmd_snapshot.c — `memledger snapshot PID [--tree]`: ask a process running
 * the ledger (or each one in its tree) for a snapshot and print the path of
 * each once complete (the work is snapshot_request.c's, shared with
 * `memledger watch`). */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/proctree.h"
#include "cli/snapshot_request.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: memledger snapshot PID [--tree] [--timeout TIME] [--verbose]\n"
    "\n"
    "Asks process PID (running under memledger) for a snapshot and prints the\n"
    "snapshot's path once the file is complete. The process keeps running, and\n"
    "its own handler for the snapshot signal (gunicorn's SIGUSR2) does not run:\n"
    "memledger marks its request.\n"
    "\n"
    "Options:\n"
    "      --tree          snapshot PID and every descendant of it that runs under\n"
    "                      memledger (a pre-fork server's master and its workers),\n"
    "                      one path per line; the others are skipped, with a note\n"
    "  -t, --timeout TIME  give up after TIME (default 60s)\n"
    "  -v, --verbose       say on stderr which process each path is: its pid, its\n"
    "                      place in the tree (worker N of PPID) and command line\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 printed a path for each process asked; 1 a snapshot could not\n"
    "be written (the process's reason is printed), came too late, or the process\n"
    "ended; 2 bad usage, or no process asked runs under memledger.\n";

typedef struct {
    ml_proc_t *proc;
    ml_target_t target;
    int state; /* -1 waiting, 0 done, 1 failed */
    char path[sizeof(((ml_target_t *)0)->dir) + 64];
} item_t;

/* "worker 2 of 1234" from the library's own count of forks, else the
 * process's place among its parent's children under the ledger. */
static void role(const item_t *items, size_t i, char *buf, size_t cap)
{
    const item_t *it = &items[i];
    if (it->proc->depth == 0) {
        snprintf(buf, cap, "the process asked for");
        return;
    }
    if (it->target.status_fd >= 0 && it->target.status.worker && it->target.status.parent == it->proc->ppid) {
        snprintf(buf, cap, "worker %u of %ld", it->target.status.worker, it->proc->ppid);
        return;
    }
    unsigned k = 0;
    for (size_t j = 0; j <= i; j++)
        k += items[j].proc->ppid == it->proc->ppid && items[j].state != 2;
    snprintf(buf, cap, "child %u of %ld (by start time)", k, it->proc->ppid);
}

static int tree(long pid, uint64_t timeout_ms, bool verbose)
{
    size_t n = 0;
    ml_proc_t *procs = ml_proctree(pid, &n);
    if (!procs) {
        cli_error("cannot read process %ld: %s", pid, errno == ENOENT ? "no such process" : strerror(errno));
        return ML_EXIT_USAGE;
    }
    item_t *items = calloc(n, sizeof *items);
    if (!items) {
        ml_proctree_free(procs, n);
        cli_error("out of memory");
        return ML_EXIT_FAIL;
    }
    char err[2 * PATH_MAX + 256];
    size_t asked = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        it->proc = &procs[i];
        it->target.status_fd = -1;
        int rc = ml_target_open(procs[i].pid, &it->target, err, sizeof err);
        if (rc == 0)
            rc = ml_target_request(&it->target, err, sizeof err);
        if (rc) {
            it->state = 2; /* skipped */
            if (rc == 2)
                cli_error("skipped pid %ld (%.80s): %s", procs[i].pid, procs[i].cmdline, err);
            else {
                cli_error("%s", err);
                failed++;
            }
            continue;
        }
        it->state = -1;
        asked++;
    }
    /* every request is out: now wait for them together */
    for (size_t waiting = asked; waiting;) {
        waiting = 0;
        for (size_t i = 0; i < n; i++) {
            item_t *it = &items[i];
            if (it->state != -1)
                continue;
            int rc = ml_target_poll(&it->target, timeout_ms, it->path, sizeof it->path, err, sizeof err);
            if (rc == 1) {
                cli_error("%s", err);
                failed++;
            }
            it->state = rc;
            waiting += rc == -1;
        }
        if (waiting)
            usleep(2000);
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != 0)
            continue;
        printf("%s\n", items[i].path);
        if (verbose) {
            char r[96];
            role(items, i, r, sizeof r);
            cli_error("pid %ld, %s: %.200s: %s", items[i].proc->pid, r, items[i].proc->cmdline, items[i].path);
        }
    }
    for (size_t i = 0; i < n; i++)
        ml_target_close(&items[i].target);
    free(items);
    ml_proctree_free(procs, n);
    if (!asked && !failed) {
        cli_error("no process in the tree of %ld runs under memledger", pid);
        return ML_EXIT_USAGE;
    }
    return failed ? ML_EXIT_FAIL : ML_EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
    enum { O_TREE = 256 };
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'},
                                         {"tree", no_argument, NULL, O_TREE},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    uint64_t timeout_ms = 60000;
    bool all = false, verbose = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:vh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!ml_parse_duration_ms(optarg, &timeout_ms))
                return cli_usage("snapshot", "--timeout '%s' is not a duration (10, 2.5s, 500ms)", optarg);
            break;
        case O_TREE:
            all = true;
            break;
        case 'v':
            verbose = true;
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
    if (all)
        return tree(pid, timeout_ms, verbose);

    ml_target_t target;
    char err[2 * PATH_MAX + 256], path[sizeof target.dir + 64];
    int rc = ml_target_open(pid, &target, err, sizeof err);
    if (rc == 0)
        rc = ml_target_snapshot(&target, timeout_ms, NULL, path, sizeof path, err, sizeof err);
    ml_target_close(&target);
    if (rc != 0) {
        cli_error("%s", err);
        return rc;
    }
    printf("%s\n", path);
    if (verbose) {
        char cmd[4096];
        cli_error("pid %ld: %.200s: %s", pid, ml_proc_cmdline(pid, cmd, sizeof cmd), path);
    }
    return ML_EXIT_OK;
}
