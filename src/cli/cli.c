/* cli.c — `memledger`: dispatch to the command named by the first argument. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "common/grow.h"
#include "memledger.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"run", cmd_run, "run a command with the ledger preloaded"},
    {"snapshot", cmd_snapshot, "ask a running process (or its tree) for a snapshot, print its path"},
    {"attach", cmd_attach, "start tracking in a running process started without memledger"},
    {"detach", cmd_detach, "end what attach started"},
    {"top", cmd_top, "show the stacks holding the most live memory in a snapshot"},
    {"diff", cmd_diff, "show the stacks whose live memory grew between snapshots"},
    {"watch", cmd_watch, "snapshot a process every few seconds, show what keeps growing"},
    {"export", cmd_export, "write a snapshot, or its growth, as pprof, collapsed stacks or HTML"},
    {"why", cmd_why, "show what keeps the blocks of the stacks that grew alive, from a root"},
};

static void help(FILE *out)
{
    fprintf(out, "Usage: memledger COMMAND [ARGS...]\n\n"
                 "Finds the call stacks that keep memory in a running program.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].what);
    fprintf(out, "\n'memledger COMMAND --help' describes each. A typical session:\n"
                 "  memledger run --dir /tmp/snaps -- python serve.py &\n"
                 "  memledger snapshot $!        # after warm-up\n"
                 "  memledger snapshot $!        # after load\n"
                 "  memledger diff /tmp/snaps/memledger.$!.1.snap /tmp/snaps/memledger.$!.2.snap\n"
                 "A pre-fork server (gunicorn, uvicorn --workers): 'memledger snapshot --tree $!' and\n"
                 "'memledger diff --by-process /tmp/snaps'. Started without memledger: 'memledger attach PID'.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return ML_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        help(stdout);
        return ML_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("memledger %s\n", MEMLEDGER_VERSION);
        return ML_EXIT_OK;
    }
    ml_grow_prefer_huge_pages(true); /* large snapshots: see grow.h */
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    cli_error("'%s' is not a command. Try 'memledger --help'.", argv[1]);
    return ML_EXIT_USAGE;
}
