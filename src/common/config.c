/* config.c — MEMLEDGER_* variables into ml_config (see config.h).
 * Never allocates: getenv, getcwd into a fixed buffer, the io.h formatter. */
#include "common/config.h"
#include "common/io.h"
#include "common/units.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

ml_config_t ml_config;

static const char *const known_vars[] = {
    "MEMLEDGER_ENABLE", "MEMLEDGER_DIR", "MEMLEDGER_SIGNAL", "MEMLEDGER_SAMPLE_BYTES",
    "MEMLEDGER_DEPTH", "MEMLEDGER_STACKS", "MEMLEDGER_AT_EXIT", "MEMLEDGER_INTERVAL",
    "MEMLEDGER_UNWIND", "MEMLEDGER_REDACT_CMDLINE", "MEMLEDGER_PYTHON", "MEMLEDGER_CUDA",
    "MEMLEDGER_EXIT_STALL",
};

bool ml_parse_signal(const char *s, int *out)
{
    static const struct { const char *name; int sig; } names[] = {
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}, {"URG", SIGURG},
        {"PWR", SIGPWR},   {"WINCH", SIGWINCH}, {"PROF", SIGPROF}, {"TTIN", SIGTTIN},
        {"TTOU", SIGTTOU},
    };
    uint64_t n;
    if (!s)
        return false;
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "none") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return true;
    }
    if (ml_parse_u64_range(s, 1, 64, &n)) {
        if (n == SIGKILL || n == SIGSTOP || n == SIGSEGV || n == SIGBUS || n == SIGFPE ||
            n == SIGILL || n == SIGABRT)
            return false;
        *out = (int)n;
        return true;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    if (strncasecmp(s, "RTMIN+", 6) == 0 && ml_parse_u64_range(s + 6, 0, 30, &n) &&
        SIGRTMIN + (int)n <= SIGRTMAX) {
        *out = SIGRTMIN + (int)n;
        return true;
    }
    for (size_t i = 0; i < ML_ARRAY_LEN(names); i++)
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].sig;
            return true;
        }
    return false;
}

/* `memledger attach` hands its settings over as "NAME=value" lines: they
 * stand in for the environment, which a running process cannot be given.
 * Kept here as NUL-separated strings, ending in an empty one. */
static char settings_buf[8192];
static bool from_settings;

static const char *env(const char *name)
{
    if (!from_settings)
        return getenv(name);
    size_t n = strlen(name);
    for (const char *p = settings_buf; *p; p += strlen(p) + 1)
        if (strncmp(p, name, n) == 0 && p[n] == '=')
            return p + n + 1;
    return NULL;
}

/* A value as it can be shown on one line: control characters become '?',
 * and a long value is cut (the warning stays one line whatever it holds). */
static const char *printable(const char *v, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *v && n + 4 < cap; v++)
        buf[n++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
    if (*v) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static void bad(const char *name, const char *value, const char *expected, const char *fallback)
{
    char shown[80];
    ml_warn("%s='%s' is not %s; %s", name, printable(value, shown, sizeof shown), expected, fallback);
}

static void load_u64(const char *name, uint64_t lo, uint64_t hi, uint64_t *dst)
{
    const char *v = env(name);
    uint64_t n;
    if (!v)
        return;
    if (ml_parse_u64_range(v, lo, hi, &n)) {
        *dst = n;
        return;
    }
    char expected[96], fallback[64];
    ml_fmt(expected, sizeof expected, "a whole number from %llu to %llu",
           (unsigned long long)lo, (unsigned long long)hi);
    ml_fmt(fallback, sizeof fallback, "using %llu", (unsigned long long)*dst);
    bad(name, v, expected, fallback);
}

static void load_bool(const char *name, bool *dst)
{
    const char *v = env(name);
    if (v && !ml_parse_bool(v, dst))
        bad(name, v, "0 or 1", *dst ? "using 1" : "using 0");
}

static void load_dir(void)
{
    const char *v = env("MEMLEDGER_DIR");
    char cwd[PATH_MAX];
    if (v && *v == '\0') {
        bad("MEMLEDGER_DIR", v, "a directory", "using the current directory");
        v = NULL;
    }
    if (v && strlen(v) >= sizeof ml_config.dir - 64) {
        bad("MEMLEDGER_DIR", "...", "a path shorter than PATH_MAX", "using the current directory");
        v = NULL;
    }
    if (v && v[0] == '/') {
        ml_fmt(ml_config.dir, sizeof ml_config.dir, "%s", v);
        return;
    }
    /* Relative paths are fixed now: a daemon that chdir("/") later must
     * still write where its user asked. */
    if (!getcwd(cwd, sizeof cwd)) {
        ml_fmt(ml_config.dir, sizeof ml_config.dir, "%s", v ? v : ".");
        return;
    }
    if (v && strcmp(v, ".") != 0)
        ml_fmt(ml_config.dir, sizeof ml_config.dir, "%s/%s", cwd, v);
    else
        ml_fmt(ml_config.dir, sizeof ml_config.dir, "%s", cwd);
}

static void warn_unknown(void)
{
    extern char **environ;
    char *lines[256];
    char **list = environ;
    if (from_settings) {
        size_t k = 0;
        for (char *p = settings_buf; *p && k + 1 < ML_ARRAY_LEN(lines); p += strlen(p) + 1)
            lines[k++] = p;
        lines[k] = NULL;
        list = lines;
    }
    for (char **e = list; e && *e; e++) {
        if (strncmp(*e, "MEMLEDGER_", 10) != 0)
            continue;
        size_t n = strcspn(*e, "=");
        bool known = false;
        for (size_t i = 0; i < ML_ARRAY_LEN(known_vars) && !known; i++)
            known = strlen(known_vars[i]) == n && strncmp(known_vars[i], *e, n) == 0;
        if (!known) {
            char name[64], shown[80];
            ml_fmt(name, sizeof name, "%s", *e);
            name[n < sizeof name ? n : sizeof name - 1] = '\0';
            ml_warn("%s is not a memledger setting (see docs/config.md); ignored",
                    printable(name, shown, sizeof shown));
        }
    }
}

void ml_config_load(void)
{
    ml_config_t *c = &ml_config;
    c->enabled = true;
    c->signal = SIGUSR2;
    c->sample_bytes = 0;
    c->depth = ML_DEFAULT_DEPTH;
    c->stacks = ML_DEFAULT_STACKS;
    c->at_exit = false;
    c->exit_stall_ms = ML_DEFAULT_EXIT_STALL_MS;
    c->interval_ms = 0;
    c->unwind = ML_UNWIND_AUTO;
    c->redact_cmdline = false;
    c->python = true;
    c->cuda = ML_CUDA_AUTO;

    load_bool("MEMLEDGER_ENABLE", &c->enabled);
    load_dir();

    const char *v = env("MEMLEDGER_SIGNAL");
    if (v && !ml_parse_signal(v, &c->signal))
        bad("MEMLEDGER_SIGNAL", v, "a signal such as USR2, USR1, RTMIN+3, a number, or off",
            "using SIGUSR2");

    v = env("MEMLEDGER_SAMPLE_BYTES");
    if (v && !ml_parse_size(v, &c->sample_bytes)) {
        bad("MEMLEDGER_SAMPLE_BYTES", v, "a size such as 0, 4096 or 512KiB",
            "tracking every allocation");
        c->sample_bytes = 0;
    }

    uint64_t n = c->depth;
    load_u64("MEMLEDGER_DEPTH", 1, ML_MAX_DEPTH, &n);
    c->depth = (unsigned)n;

    n = c->stacks;
    load_u64("MEMLEDGER_STACKS", ML_MIN_STACKS, ML_MAX_STACKS, &n);
    c->stacks = (uint32_t)n;

    load_bool("MEMLEDGER_AT_EXIT", &c->at_exit);

    v = env("MEMLEDGER_EXIT_STALL");
    uint64_t stall;
    if (v && (!ml_parse_duration_ms(v, &stall) || stall < ML_MIN_EXIT_STALL_MS))
        bad("MEMLEDGER_EXIT_STALL", v, "a duration of at least 1s such as 20, 90s or 5m", "using 20s");
    else if (v)
        c->exit_stall_ms = stall;

    v = env("MEMLEDGER_INTERVAL");
    if (v && !ml_parse_duration_ms(v, &c->interval_ms)) {
        bad("MEMLEDGER_INTERVAL", v, "a duration such as 30, 2.5, 500ms or 5m", "no interval snapshots");
        c->interval_ms = 0;
    }
    if (c->interval_ms && c->interval_ms < 100) {
        char shown[80];
        ml_warn("MEMLEDGER_INTERVAL='%s' is below 100ms; using 100ms", printable(v, shown, sizeof shown));
        c->interval_ms = 100;
    }

    v = env("MEMLEDGER_UNWIND");
    if (v) {
        if (strcmp(v, "auto") == 0)
            c->unwind = ML_UNWIND_AUTO;
        else if (strcmp(v, "fp") == 0)
            c->unwind = ML_UNWIND_FP;
        else if (strcmp(v, "libunwind") == 0)
            c->unwind = ML_UNWIND_LIBUNWIND;
        else
            bad("MEMLEDGER_UNWIND", v, "one of auto, fp, libunwind", "using auto");
    }

    load_bool("MEMLEDGER_REDACT_CMDLINE", &c->redact_cmdline);
    load_bool("MEMLEDGER_PYTHON", &c->python);

    v = env("MEMLEDGER_CUDA");
    if (v) {
        static const char *const modes[] = {[ML_CUDA_AUTO] = "auto", [ML_CUDA_HOOKS] = "hooks",
                                            [ML_CUDA_CUPTI] = "cupti", [ML_CUDA_OFF] = "off"};
        size_t i = 0;
        while (i < ML_ARRAY_LEN(modes) && strcmp(v, modes[i]) != 0)
            i++;
        if (i < ML_ARRAY_LEN(modes))
            c->cuda = (enum ml_cuda_mode)i;
        else
            bad("MEMLEDGER_CUDA", v, "one of auto, hooks, cupti, off", "using auto");
    }
    warn_unknown();
}

void ml_config_load_settings(const char *settings)
{
    size_t n = 0;
    for (const char *p = settings; p && *p && n + 2 < sizeof settings_buf; p++)
        settings_buf[n++] = *p == '\n' ? '\0' : *p;
    settings_buf[n] = '\0';
    settings_buf[n + 1] = '\0';
    from_settings = true;
    ml_config_load();
}
