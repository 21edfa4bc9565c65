/* cmd_attach.c — `memledger attach PID` and `memledger detach PID`: start
 * the ledger in a process that was started without it, and end it there.
 * The checks and the messages are here; calling into the process is
 * inject.c's; what happens inside is src/init/attach.c's. */
#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/inject.h"
#include "cli/proctree.h"
#include "cli/snapshot_request.h"
#include "common/config.h"
#include "common/status.h"
#include "common/units.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char attach_usage[] =
    "Usage: memledger attach PID [--dir DIR] [--sample-bytes SIZE] [--signal SIG] [--tree]\n"
    "\n"
    "Starts tracking in process PID, which was started without memledger, without\n"
    "restarting it: loads libmemledger.so into it through ptrace (as a debugger\n"
    "would) and points its calls of malloc, free and the rest at memledger. In a\n"
    "Python process the interpreter's allocators are wrapped too. Memory allocated\n"
    "before the attach is unknown to memledger: snapshots show what was allocated\n"
    "from the attach on. Take them with 'memledger snapshot PID'.\n"
    "\n"
    "Options:\n"
    "  -d, --dir DIR          write snapshots into DIR (default: this directory)\n"
    "      --sample-bytes SIZE\n"
    "                         sample about one allocation per SIZE bytes, e.g. 64KiB\n"
    "                         (default 0: every allocation)\n"
    "  -s, --signal SIG       snapshot signal, e.g. USR1 or RTMIN+3 (default USR2)\n"
    "      --tree             attach to PID and to every descendant of it (a pre-fork\n"
    "                         server's master and its workers), one line each\n"
    "      --wait TIME        wait up to TIME for a thread of PID to sit idle in a\n"
    "                         system call, which memledger borrows (default 10s)\n"
    "  -h, --help             show this help\n"
    "Other MEMLEDGER_* variables set here go along (docs/config.md).\n"
    "\n"
    "It needs ptrace rights over PID: the same user (with kernel.yama.ptrace_scope\n"
    "0), or root (CAP_SYS_PTRACE). Not seen after an attach: calls through a\n"
    "function pointer taken before it (ctypes' libc.malloc), and CUDA memory\n"
    "(docs/services.md). 'memledger detach PID' undoes it.\n"
    "\n"
    "Exit status: 0 attached; 1 the attach failed (no permission, or the process\n"
    "refused; it was left as it was); 2 bad usage, or PID cannot be attached to (no\n"
    "such process, already under memledger, not a dynamically linked x86-64\n"
    "program).\n";

static const char detach_usage[] =
    "Usage: memledger detach PID\n"
    "\n"
    "Ends what 'memledger attach PID' started: the process's calls go straight to\n"
    "its allocator again, the interpreter's allocators are put back, and its own\n"
    "handler for the snapshot signal is back in place. libmemledger.so stays\n"
    "loaded (code may still be running in it) but does nothing; the process\n"
    "cannot be attached to a second time. Snapshots taken stay where they are.\n"
    "\n"
    "Options:\n"
    "      --wait TIME   wait up to TIME for an idle thread of PID (default 10s)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 detached; 1 it failed; 2 bad usage, or memledger was not\n"
    "attached to PID.\n";

typedef struct {
    const char *dir, *signal, *sample;
    uint64_t wait_ms;
} attach_opts_t;

static char *slurp(const char *path, int *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = errno;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *b = realloc(buf, cap *= 2);
        if (!b)
            free(buf);
        buf = b;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *err = buf ? 0 : ENOMEM;
    return buf;
}

/* Why the kernel will not let us trace pid, in a user's words. */
static void explain_permission(long pid, const char *what, int e, char *out, size_t cap)
{
    char proc[64], who[128] = "", yama[192] = "";
    struct stat st;
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    if (stat(proc, &st) == 0 && st.st_uid != geteuid() && geteuid() != 0)
        snprintf(who, sizeof who, " It runs as uid %u and memledger as uid %u.", (unsigned)st.st_uid,
                 (unsigned)geteuid());
    int scope = -1;
    FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "r");
    if (f) {
        if (fscanf(f, "%d", &scope) != 1)
            scope = -1;
        fclose(f);
    }
    static const char *const scopes[] = {"", "only a parent may trace its own children",
                                         "only root (CAP_SYS_PTRACE) may trace", "no process may be traced"};
    if (scope >= 1 && scope <= 3)
        snprintf(yama, sizeof yama, " kernel.yama.ptrace_scope is %d: %s.", scope, scopes[scope]);
    snprintf(out, cap,
             "no permission to trace process %ld (%s: %s).%s%s Attaching needs ptrace rights over the process: "
             "run memledger as the process's user, or as root (CAP_SYS_PTRACE)%s. The process was not touched.",
             pid, what, strerror(e), who, yama, scope == 1 ? ", or set kernel.yama.ptrace_scope=0" : "");
}

/* Checks what can be checked from outside: 0, or the exit status with err set. */
static int check_target(long pid, const char *lib, char *libc, size_t libc_cap, char *err, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld", pid);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, cap, "no process %ld", pid);
        return ML_EXIT_USAGE;
    }
    if (pid == getpid()) {
        snprintf(err, cap, "memledger cannot attach to itself");
        return ML_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    int e;
    char *maps = slurp(path, &e);
    if (!maps) {
        if (e == EACCES || e == EPERM)
            explain_permission(pid, "reading its memory map", e, err, cap);
        else
            snprintf(err, cap, "cannot read %s: %s", path, strerror(e));
        return e == ENOENT || e == ESRCH ? ML_EXIT_USAGE : ML_EXIT_FAIL;
    }
    bool loaded = strstr(maps, "/libmemledger") != NULL, musl = strstr(maps, "/ld-musl") != NULL;
    free(maps);
    if (loaded) {
        int fd;
        ml_status_t s;
        if (ml_status_find(pid, &fd, &s)) {
            close(fd);
            if (s.flags & ML_STATUS_DETACHED)
                snprintf(err, cap, "memledger was attached to process %ld and detached; it cannot attach to the "
                                   "same process twice (restart it, or run it under 'memledger run')", pid);
            else if (s.flags & ML_STATUS_ATTACHED)
                snprintf(err, cap, "memledger is already attached to process %ld; take snapshots with 'memledger "
                                   "snapshot %ld' (snapshots go to %.1024s)", pid, pid, s.dir);
            else
                snprintf(err, cap, "process %ld already runs under memledger (it was started with it); take "
                                   "snapshots with 'memledger snapshot %ld'", pid, pid);
        } else {
            snprintf(err, cap, "process %ld already has libmemledger.so loaded; take snapshots with 'memledger "
                               "snapshot %ld'", pid, pid);
        }
        return ML_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/proc/%ld/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EACCES || errno == EPERM)
            explain_permission(pid, "reading its executable", errno, err, cap);
        else
            snprintf(err, cap, "cannot read %s: %s", path, strerror(errno));
        return ML_EXIT_FAIL;
    }
    Elf64_Ehdr eh;
    ssize_t n = read(fd, &eh, sizeof eh);
    close(fd);
    if (n != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_machine != EM_X86_64) {
        snprintf(err, cap, "process %ld is not a 64-bit x86-64 program: memledger attach works on those only", pid);
        return ML_EXIT_USAGE;
    }
    if (musl) {
        snprintf(err, cap, "process %ld uses musl's C library: memledger needs glibc's", pid);
        return ML_EXIT_USAGE;
    }
    if (!ml_remote_module(pid, "libc.so", libc, libc_cap)) {
        snprintf(err, cap, "process %ld loads no C library (statically linked?): memledger cannot load a "
                           "library into it", pid);
        return ML_EXIT_USAGE;
    }
    /* the library must be the same file inside the process's view (a container) */
    char inside[PATH_MAX + 64];
    struct stat a, b;
    snprintf(inside, sizeof inside, "/proc/%ld/root%s", pid, lib);
    if (stat(lib, &a) != 0 || stat(inside, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        snprintf(err, cap, "%s is not the same file inside process %ld's file system (a container?): put "
                           "libmemledger.so where the process sees it at that path, and set MEMLEDGER_LIB", lib, pid);
        return ML_EXIT_USAGE;
    }
    return ML_EXIT_OK;
}

/* "NAME=value\n" lines: MEMLEDGER_* from here, the options over them. */
static char *settings(const attach_opts_t *o)
{
    extern char **environ;
    size_t cap = 8192, n = 0;
    char *s = calloc(1, cap);
    if (!s)
        return NULL;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "MEMLEDGER_", 10) != 0 || strncmp(*e, "MEMLEDGER_LIB=", 14) == 0 ||
            (o->dir && strncmp(*e, "MEMLEDGER_DIR=", 14) == 0) ||
            (o->signal && strncmp(*e, "MEMLEDGER_SIGNAL=", 17) == 0) ||
            (o->sample && strncmp(*e, "MEMLEDGER_SAMPLE_BYTES=", 23) == 0) || strchr(*e, '\n'))
            continue;
        n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, "%s\n", *e);
    }
    if (o->dir)
        n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, "MEMLEDGER_DIR=%s\n", o->dir);
    if (o->signal)
        n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, "MEMLEDGER_SIGNAL=%s\n", o->signal);
    if (o->sample)
        n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, "MEMLEDGER_SAMPLE_BYTES=%s\n", o->sample);
    if (n >= cap) {
        free(s);
        return NULL;
    }
    return s;
}

static void still_waiting(long pid)
{
    cli_error("still waiting for process %ld: its borrowed thread is inside memledger (loading, or waiting for "
              "a lock); interrupting now could end the process, so memledger waits", pid);
}

/* Borrows a thread of pid and calls `fn` (found in the module at `module`)
 * with the pushed arguments. Returns 0 with *ret set, or an exit status
 * with err set. */
static ml_inject_t *borrow(long pid, uint64_t wait_ms, char *err, size_t cap, int *status)
{
    bool eperm = false;
    char why[1024];
    ml_inject_t *in = ml_inject_open(pid, wait_ms, &eperm, why, sizeof why);
    if (!in) {
        if (eperm)
            explain_permission(pid, "ptrace", EPERM, err, cap);
        else
            snprintf(err, cap, "%s", why);
        *status = ML_EXIT_FAIL;
    }
    return in;
}

static int attach_one(long pid, const char *lib, const attach_opts_t *o, bool quiet_skip)
{
    char err[4096], libc[PATH_MAX];
    int status = check_target(pid, lib, libc, sizeof libc, err, sizeof err);
    if (status != ML_EXIT_OK) {
        cli_error("%s%s", quiet_skip && status == ML_EXIT_USAGE ? "skipped: " : "", err);
        return status;
    }
    uint64_t dlopen_fn = ml_remote_symbol(pid, libc, "dlopen");
    uint64_t mode = 2; /* RTLD_NOW */
    if (!dlopen_fn) { /* glibc before 2.34: libdl's lives in libc under this name */
        dlopen_fn = ml_remote_symbol(pid, libc, "__libc_dlopen_mode");
        mode = 0x80000002u; /* RTLD_NOW | __RTLD_DLOPEN */
    }
    uint64_t dlerror_fn = ml_remote_symbol(pid, libc, "dlerror");
    if (!dlopen_fn) {
        cli_error("cannot find dlopen in process %ld's C library (%s)", pid, libc);
        return ML_EXIT_FAIL;
    }
    char *set = settings(o);
    if (!set) {
        cli_error("the MEMLEDGER_* settings are too long to hand over");
        return ML_EXIT_USAGE;
    }
    ml_inject_t *in = borrow(pid, o->wait_ms, err, sizeof err, &status);
    if (!in) {
        free(set);
        cli_error("%s", err);
        return status;
    }
    char msg[512] = "";
    uint64_t ret = 0, a_lib = 0, a_set = 0, a_msg = 0;
    bool scratch = ml_inject_scratch(in, err, sizeof err);
    if (scratch) {
        a_lib = ml_inject_push(in, lib, strlen(lib) + 1);
        a_set = ml_inject_push(in, set, strlen(set) + 1);
        a_msg = ml_inject_push(in, msg, sizeof msg);
    }
    free(set);
    status = ML_EXIT_FAIL;
    if (!scratch) {
        /* err says it */
    } else if (!a_lib || !a_set || !a_msg) {
        snprintf(err, sizeof err, "cannot write into process %ld's memory", pid);
    } else if (!ml_inject_call(in, dlopen_fn, a_lib, mode, 0, &ret, still_waiting, err, sizeof err)) {
        /* err says it */
    } else if (!ret) {
        char why[512] = "?";
        uint64_t e = 0;
        if (dlerror_fn && ml_inject_call(in, dlerror_fn, 0, 0, 0, &e, NULL, err, sizeof err) && e &&
            ml_inject_read(in, e, why, sizeof why - 1))
            why[sizeof why - 1] = '\0';
        snprintf(err, sizeof err, "process %ld could not load %s: %s", pid, lib, why);
    } else {
        uint64_t fn = ml_remote_symbol(pid, lib, "memledger_attach");
        if (!fn) {
            snprintf(err, sizeof err, "cannot find memledger_attach in %s as loaded in process %ld", lib, pid);
        } else if (ml_inject_call(in, fn, a_set, a_msg, sizeof msg, &ret, still_waiting, err, sizeof err)) {
            ml_inject_read(in, a_msg, msg, sizeof msg);
            msg[sizeof msg - 1] = '\0';
            if ((int)ret == 0)
                status = ML_EXIT_OK;
            else {
                snprintf(err, sizeof err, "process %ld refused: %s", pid, msg);
                status = (int)ret == EALREADY ? ML_EXIT_USAGE : ML_EXIT_FAIL;
            }
        }
    }
    ml_inject_close(in);
    if (status != ML_EXIT_OK) {
        cli_error("%s", err);
        return status;
    }
    /* Python's part runs on memledger's own thread, once it holds the GIL */
    int fd = -1;
    ml_status_t s;
    memset(&s, 0, sizeof s);
    if (ml_status_find(pid, &fd, &s)) {
        for (int i = 0; i < 1500 && s.python == ML_STATUS_PY_PENDING; i++) {
            usleep(10000);
            ml_status_read_fd(fd, pid, &s);
        }
        close(fd);
    }
    char cmd[4096];
    printf("attached to process %ld (%.120s): %s\n", pid, ml_proc_cmdline(pid, cmd, sizeof cmd), msg);
    if (s.python == ML_STATUS_PY_PENDING)
        printf("  Python: still waiting for the GIL after 15 s; its allocations are tracked once it is free\n");
    else if (s.note[0])
        printf("  %s\n", s.note);
    printf("  snapshots go to %s: memledger snapshot %ld\n", s.dir[0] ? s.dir : "?", pid);
    return ML_EXIT_OK;
}

int cmd_attach(int argc, char **argv)
{
    enum { O_SAMPLE = 256, O_TREE, O_WAIT };
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},     {"sample-bytes", required_argument, NULL, O_SAMPLE},
        {"signal", required_argument, NULL, 's'},  {"tree", no_argument, NULL, O_TREE},
        {"wait", required_argument, NULL, O_WAIT}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    attach_opts_t o = {.wait_ms = 10000};
    bool all = false;
    char dir[PATH_MAX];
    int c;
    uint64_t v;
    int sig;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': {
            struct stat st;
            if (stat(optarg, &st) != 0 || !S_ISDIR(st.st_mode) || !realpath(optarg, dir))
                return cli_usage("attach", "--dir '%s' is not a directory", optarg);
            o.dir = dir;
            break;
        }
        case O_SAMPLE:
            if (!ml_parse_size(optarg, &v))
                return cli_usage("attach", "--sample-bytes '%s' is not a size (4096, 64KiB, 1MiB)", optarg);
            o.sample = optarg;
            break;
        case 's':
            if (!ml_parse_signal(optarg, &sig))
                return cli_usage("attach", "--signal '%s' is not a signal memledger can use", optarg);
            o.signal = optarg;
            break;
        case O_TREE:
            all = true;
            break;
        case O_WAIT:
            if (!ml_parse_duration_ms(optarg, &o.wait_ms))
                return cli_usage("attach", "--wait '%s' is not a duration (10, 2.5s, 500ms)", optarg);
            break;
        case 'h':
            fputs(attach_usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("attach", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage("attach", "expected one PID");
    uint64_t pidv;
    if (!ml_parse_u64_range(argv[optind], 1, INT32_MAX, &pidv))
        return cli_usage("attach", "'%s' is not a process id", argv[optind]);
    if (!o.dir && !getenv("MEMLEDGER_DIR")) { /* here, as for `memledger run` */
        if (!getcwd(dir, sizeof dir))
            return cli_usage("attach", "cannot tell the current directory; give --dir");
        o.dir = dir;
    }
    char lib[PATH_MAX], found[PATH_MAX];
    if (!cli_find_library(found, sizeof found) || !realpath(found, lib)) {
        cli_error("cannot find libmemledger.so next to this program or in its lib directory; "
                  "set MEMLEDGER_LIB to its path");
        return ML_EXIT_USAGE;
    }
    if (!all)
        return attach_one((long)pidv, lib, &o, false);
    size_t n = 0;
    ml_proc_t *procs = ml_proctree((long)pidv, &n);
    if (!procs) {
        cli_error("no process %llu", (unsigned long long)pidv);
        return ML_EXIT_USAGE;
    }
    int status = ML_EXIT_OK;
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = attach_one(procs[i].pid, lib, &o, true);
        done += rc == ML_EXIT_OK;
        if (rc == ML_EXIT_FAIL)
            status = ML_EXIT_FAIL;
    }
    ml_proctree_free(procs, n);
    return done || status != ML_EXIT_OK ? status : ML_EXIT_USAGE;
}

int cmd_detach(int argc, char **argv)
{
    enum { O_WAIT = 256 };
    static const struct option opts[] = {
        {"wait", required_argument, NULL, O_WAIT}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    uint64_t wait_ms = 10000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_WAIT:
            if (!ml_parse_duration_ms(optarg, &wait_ms))
                return cli_usage("detach", "--wait '%s' is not a duration (10, 2.5s, 500ms)", optarg);
            break;
        case 'h':
            fputs(detach_usage, stdout);
            return ML_EXIT_OK;
        default:
            return cli_usage("detach", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage("detach", "expected one PID");
    uint64_t pidv;
    if (!ml_parse_u64_range(argv[optind], 1, INT32_MAX, &pidv))
        return cli_usage("detach", "'%s' is not a process id", argv[optind]);
    long pid = (long)pidv;
    int fd;
    ml_status_t s;
    if (!ml_status_find(pid, &fd, &s)) {
        cli_error("memledger is not attached to process %ld (no memledger status in it)", pid);
        return ML_EXIT_USAGE;
    }
    close(fd);
    if (!(s.flags & ML_STATUS_ATTACHED) || (s.flags & ML_STATUS_DETACHED)) {
        cli_error((s.flags & ML_STATUS_DETACHED) ? "memledger was detached from process %ld already"
                                                 : "process %ld was started under memledger: detach only undoes "
                                                   "'memledger attach'", pid);
        return ML_EXIT_USAGE;
    }
    char lib[PATH_MAX], err[4096];
    if (!ml_remote_module(pid, "libmemledger", lib, sizeof lib)) {
        cli_error("cannot find libmemledger.so in process %ld's memory map", pid);
        return ML_EXIT_FAIL;
    }
    uint64_t fn = ml_remote_symbol(pid, lib, "memledger_detach");
    if (!fn) {
        cli_error("cannot find memledger_detach in %s as loaded in process %ld", lib, pid);
        return ML_EXIT_FAIL;
    }
    int status = ML_EXIT_OK;
    ml_inject_t *in = borrow(pid, wait_ms, err, sizeof err, &status);
    if (!in) {
        cli_error("%s", err);
        return status;
    }
    char msg[512] = "";
    uint64_t ret = 0, a_msg = 0;
    status = ML_EXIT_FAIL;
    if (!ml_inject_scratch(in, err, sizeof err))
        ; /* err says it */
    else if (!(a_msg = ml_inject_push(in, msg, sizeof msg)))
        snprintf(err, sizeof err, "cannot write into process %ld's memory", pid);
    else if (ml_inject_call(in, fn, a_msg, sizeof msg, 0, &ret, still_waiting, err, sizeof err)) {
        ml_inject_read(in, a_msg, msg, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        if ((int)ret == 0)
            status = ML_EXIT_OK;
        else
            snprintf(err, sizeof err, "process %ld refused: %s", pid, msg);
    }
    ml_inject_close(in);
    if (status != ML_EXIT_OK) {
        cli_error("%s", err);
        return status;
    }
    printf("detached from process %ld: %s\n", pid, msg);
    return ML_EXIT_OK;
}
