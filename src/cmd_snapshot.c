/* cmd_snapshot.c — `memledger snapshot PID`: signal a process running the
 * ledger and print the path of the snapshot it writes, once complete.
 * It finds where the process writes (MEMLEDGER_DIR) and which signal it
 * listens to (MEMLEDGER_SIGNAL) in /proc/PID/environ, and refuses to signal
 * a process that has no libmemledger.so loaded: SIGUSR2 would kill it. */
#include "cli.h"
#include "cli_util.h"
#include "config.h"
#include "format.h"
#include "units.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb)
            free(buf);
        buf = nb;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static const char *env_of(const char *environ, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = environ; p < environ + len; p += strlen(p) + 1)
        if (strncmp(p, name, nl) == 0 && p[nl] == '=')
            return p + nl + 1;
    return NULL;
}

static long max_seq(const char *dir, long pid)
{
    DIR *d = opendir(dir);
    long best = 0;
    if (!d)
        return -1;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "memledger.%ld.", pid);
    size_t pl = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        char *end;
        long s = strtol(e->d_name + pl, &end, 10);
        if (strcmp(end, "." ML_SNAPSHOT_EXT) == 0 && s > best)
            best = s;
    }
    closedir(d);
    return best;
}

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

    char path[PATH_MAX];
    size_t len = 0;
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    char *maps = read_file(path, &len);
    if (!maps) {
        cli_error("cannot read %s: %s (no such process, or not yours)", path, strerror(errno));
        return ML_EXIT_USAGE;
    }
    bool loaded = strstr(maps, "/libmemledger") != NULL;
    free(maps);
    if (!loaded) {
        cli_error("process %ld does not have libmemledger.so loaded; start it with "
                  "'memledger run -- COMMAND' or LD_PRELOAD=libmemledger.so (not signalled)", pid);
        return ML_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    char *env = read_file(path, &len);
    if (!env) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        return ML_EXIT_USAGE;
    }
    int sig = SIGUSR2;
    const char *v = env_of(env, len, "MEMLEDGER_SIGNAL");
    if (v && !ml_parse_signal(v, &sig))
        sig = SIGUSR2; /* the library fell back to the default too */
    bool enabled = true;
    const char *en = env_of(env, len, "MEMLEDGER_ENABLE");
    if (en && !ml_parse_bool(en, &enabled))
        enabled = true;
    if (!enabled || sig == 0) {
        cli_error("process %ld runs with %s; it does not answer snapshot signals", pid,
                  !enabled ? "MEMLEDGER_ENABLE=0" : "MEMLEDGER_SIGNAL=off");
        free(env);
        return ML_EXIT_USAGE;
    }
    char dir[2 * PATH_MAX + 2];
    const char *d = env_of(env, len, "MEMLEDGER_DIR");
    if (d && d[0] == '/') {
        snprintf(dir, sizeof dir, "%s", d);
    } else {
        /* relative: the library resolved it against its starting directory,
         * which is the process's cwd unless it has moved since */
        char cwdlink[64], cwd[PATH_MAX];
        snprintf(cwdlink, sizeof cwdlink, "/proc/%ld/cwd", pid);
        ssize_t n = readlink(cwdlink, cwd, sizeof cwd - 1);
        if (n <= 0) {
            cli_error("cannot read %s: %s", cwdlink, strerror(errno));
            free(env);
            return ML_EXIT_USAGE;
        }
        cwd[n] = '\0';
        snprintf(dir, sizeof dir, "%s/%s", cwd, d && *d ? d : ".");
    }
    free(env);

    long before = max_seq(dir, pid);
    if (before < 0) {
        cli_error("cannot read the snapshot directory %s: %s", dir, strerror(errno));
        return ML_EXIT_FAIL;
    }
    if (kill((pid_t)pid, sig) != 0) {
        cli_error("cannot signal process %ld: %s", pid, strerror(errno));
        return ML_EXIT_FAIL;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long after = max_seq(dir, pid);
        if (after > before) {
            printf("%s/memledger.%ld.%ld.%s\n", dir, pid, after, ML_SNAPSHOT_EXT);
            return ML_EXIT_OK;
        }
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            cli_error("process %ld ended before its snapshot was written", pid);
            return ML_EXIT_FAIL;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ms = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
                      (uint64_t)((now.tv_nsec - start.tv_nsec) / 1000000);
        if (ms >= timeout_ms) {
            cli_error("no snapshot from process %ld in %s within %llu ms (is the signal blocked, "
                      "or handled by the program itself? see docs/config.md)",
                      pid, dir, (unsigned long long)timeout_ms);
            return ML_EXIT_FAIL;
        }
        usleep(ms < 1000 ? 10000 : 50000);
    }
}
