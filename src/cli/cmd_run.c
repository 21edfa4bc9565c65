/* cmd_run.c — `memledger run`: start a command with the library preloaded
 * and the MEMLEDGER_* settings its options ask for. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "common/config.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: memledger run [OPTIONS] -- COMMAND [ARG...]\n"
    "\n"
    "Runs COMMAND with libmemledger.so preloaded. Take snapshots with\n"
    "'memledger snapshot PID' (or kill -USR2 PID); compare them with 'memledger diff'.\n"
    "\n"
    "Options (each sets the MEMLEDGER_* variable named, see docs/config.md):\n"
    "  -d, --dir DIR         write snapshots into DIR (MEMLEDGER_DIR; default: here)\n"
    "  -s, --signal SIG      snapshot signal, e.g. USR1 or RTMIN+3 (MEMLEDGER_SIGNAL)\n"
    "  -i, --interval TIME   also snapshot every TIME, e.g. 30s or 5m (MEMLEDGER_INTERVAL)\n"
    "  -e, --at-exit         also snapshot when the program exits (MEMLEDGER_AT_EXIT=1)\n"
    "      --sample SIZE     sample about one allocation per SIZE bytes, e.g. 512KiB\n"
    "                        (MEMLEDGER_SAMPLE_BYTES; default 0: every allocation)\n"
    "      --depth N         native frames per stack (MEMLEDGER_DEPTH; default 64)\n"
    "      --cuda MODE       CUDA allocations: auto, hooks, cupti or off (MEMLEDGER_CUDA;\n"
    "                        see docs/cuda.md)\n"
    "  -h, --help            show this help\n";

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},    {"signal", required_argument, NULL, 's'},
        {"interval", required_argument, NULL, 'i'}, {"at-exit", no_argument, NULL, 'e'},
        {"sample", required_argument, NULL, 'S'}, {"depth", required_argument, NULL, 'D'},
        {"cuda", required_argument, NULL, 'C'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+d:s:i:eh", opts, NULL)) != -1) {
        uint64_t v;
        int sig;
        switch (c) {
        case 'd': {
            struct stat st;
            if (stat(optarg, &st) != 0 || !S_ISDIR(st.st_mode))
                return cli_usage("run", "--dir '%s' is not a directory", optarg);
            char abs[PATH_MAX];
            setenv("MEMLEDGER_DIR", realpath(optarg, abs) ? abs : optarg, 1);
            break;
        }
        case 's':
            if (!ml_parse_signal(optarg, &sig))
                return cli_usage("run", "--signal '%s' is not a signal memledger can use", optarg);
            setenv("MEMLEDGER_SIGNAL", optarg, 1);
            break;
        case 'i':
            if (!ml_parse_duration_ms(optarg, &v))
                return cli_usage("run", "--interval '%s' is not a duration (30, 2.5s, 500ms, 5m)", optarg);
            setenv("MEMLEDGER_INTERVAL", optarg, 1);
            break;
        case 'e':
            setenv("MEMLEDGER_AT_EXIT", "1", 1);
            break;
        case 'S':
            if (!ml_parse_size(optarg, &v))
                return cli_usage("run", "--sample '%s' is not a size (4096, 512KiB, 1MiB)", optarg);
            setenv("MEMLEDGER_SAMPLE_BYTES", optarg, 1);
            break;
        case 'D':
            if (!ml_parse_u64_range(optarg, 1, ML_MAX_DEPTH, &v))
                return cli_usage("run", "--depth '%s' is not a number from 1 to %d", optarg, ML_MAX_DEPTH);
            setenv("MEMLEDGER_DEPTH", optarg, 1);
            break;
        case 'C':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "hooks") != 0 && strcmp(optarg, "cupti") != 0 &&
                strcmp(optarg, "off") != 0)
                return cli_usage("run", "--cuda '%s' is not one of auto, hooks, cupti, off", optarg);
            setenv("MEMLEDGER_CUDA", optarg, 1);
            break;
        case 'h':
            fputs(usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("run", "unknown option");
        }
    }
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc)
        return cli_usage("run", "no command given");

    char lib[PATH_MAX];
    if (!cli_find_library(lib, sizeof lib)) {
        cli_error("cannot find libmemledger.so next to this program or in its lib directory; "
                  "set MEMLEDGER_LIB to its path");
        return ML_EXIT_USAGE;
    }
    /* memledger goes first: an allocator preloaded after it (jemalloc,
     * tcmalloc) then serves the memory and memledger still sees every call. */
    const char *pre = getenv("LD_PRELOAD");
    size_t len = strlen(lib) + (pre ? strlen(pre) : 0) + 2;
    char *preload = malloc(len);
    if (!preload)
        return ML_EXIT_FAIL;
    if (pre && *pre && !strstr(pre, "libmemledger"))
        snprintf(preload, len, "%s:%s", lib, pre);
    else
        snprintf(preload, len, "%s", pre && strstr(pre, "libmemledger") ? pre : lib);
    setenv("LD_PRELOAD", preload, 1);
    free(preload);
    execvp(argv[optind], argv + optind);
    cli_error("cannot run '%s': %s", argv[optind], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
