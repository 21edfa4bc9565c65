/* test_modfile.c — the module files shared by the unwind rules and the
 * symbolizer (snapshot/modfile.h), on two plugin libraries the test loads
 * and unloads itself.
 * Proves:
 *   - a module's file is opened once for both readers: a rule computed from
 *     its CFI (the entry of plugin_leak: CFA = RSP + 8) and a name with
 *     file:line from its symbols and DWARF leave one session and one
 *     descriptor, close-on-exec;
 *   - a thread that must not wait (a hook) is told the file is busy while
 *     another thread holds it: ml_modfile_lock says so, and
 *     ml_unwind_rules_now declines without recording the address as having
 *     no rule; a thread that may wait gets it once it is let go; rule
 *     computation on many threads and symbolizing at once all agree;
 *   - a file replaced on disk since it was loaded (another build-id) is not
 *     read: no names, no rule;
 *   - a sweep keeps loaded modules' files and releases an unloaded one's
 *     (its descriptor closed); a frame of the unloaded module is still
 *     named later (the file opened again), and the next sweep releases it
 *     again; a sweep with nothing new does nothing;
 *   - after fork, the child gets a module whose lock a parent thread held
 *     back, usable, while the files nobody held stay open and shared. */
#include "check.h"
#include "core/modules.h"
#include "snapshot/modfile.h"
#include "snapshot/symbolize.h"
#include "unwind/unwind_rules.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ML_TEST_PLUGIN_DIR
#error "ML_TEST_PLUGIN_DIR: where libplugin_a.so and libplugin_b.so are"
#endif

typedef struct {
    void *handle;
    uintptr_t entry; /* plugin_leak */
    size_t size;
    uint32_t mod;
    char path[512];
} plugin_t;

static bool load(plugin_t *p, const char *path)
{
    snprintf(p->path, sizeof p->path, "%s", path);
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return false;
    }
    void *fn = dlsym(p->handle, "plugin_leak");
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (!fn || !dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym)
        return false;
    p->entry = (uintptr_t)fn;
    p->size = sym->st_size;
    ml_modules_sync(true);
    int mi = ml_modules_find(p->entry, UINT32_MAX);
    p->mod = (uint32_t)mi;
    return mi >= 0;
}

/* Descriptors of this process open on path; *cloexec: all close-on-exec. */
static int fds_on(const char *path, bool *cloexec)
{
    char real[512];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    int n = 0;
    if (cloexec)
        *cloexec = true;
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (strcmp(target, real) != 0)
            continue;
        n++;
        if (cloexec && !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
            *cloexec = false;
    }
    return n;
}

static uint32_t open_now(void)
{
    uint32_t open;
    uint64_t opened, released;
    ml_modfile_stats(&open, &opened, &released);
    return open;
}

static uint64_t opened_so_far(void)
{
    uint32_t open;
    uint64_t opened, released;
    ml_modfile_stats(&open, &opened, &released);
    return opened;
}

static plugin_t a, b;

static void test_one_file_for_both(void)
{
    uint64_t before = opened_so_far();
    uint64_t r = ml_unwind_rule_compute(a.entry + 1); /* the row at the entry */
    CHECK_EQ(ml_rule_kind(r), ML_RULE_RSP);
    CHECK_EQ(ml_rule_cfa_off(r), 8);
    ml_symbol_t s;
    ml_symbolize(a.mod, a.entry + 1, &s);
    CHECK(s.function && strcmp(s.function, "plugin_leak") == 0);
    CHECK(s.file && strstr(s.file, "plugin.c"));
    CHECK(s.line > 0);
    CHECK_EQ(opened_so_far() - before, 1);
    bool cloexec;
    CHECK_EQ(fds_on(a.path, &cloexec), 1);
    CHECK(cloexec);
    /* and again: nothing more opened */
    ml_symbolize(a.mod, a.entry + 5, &s);
    ml_unwind_rule_compute(a.entry + 5);
    CHECK_EQ(opened_so_far() - before, 1);
    CHECK_EQ(fds_on(a.path, NULL), 1);
}

typedef struct {
    uint32_t mod;
    uint64_t pc;
    bool got, busy, rule_now;
    atomic_bool done;
} prober_t;

static void *try_once(void *arg)
{
    prober_t *p = arg;
    ml_modfile_t *f = ml_modfile_lock(p->mod, false, &p->busy);
    p->got = f != NULL;
    if (f)
        ml_modfile_unlock(f);
    uint64_t rule;
    p->rule_now = ml_unwind_rules_now(p->pc, &rule);
    return NULL;
}

static void *wait_for_it(void *arg)
{
    prober_t *p = arg;
    ml_modfile_t *f = ml_modfile_lock(p->mod, true, NULL);
    p->got = f != NULL;
    if (f)
        ml_modfile_unlock(f);
    atomic_store(&p->done, true);
    return NULL;
}

static void test_busy_never_waits(void)
{
    ml_modfile_t *f = ml_modfile_lock(a.mod, true, NULL);
    CHECK(f != NULL);
    if (!f)
        return;
    uint64_t pc = a.entry + a.size / 2, rule;
    prober_t p = {.mod = a.mod, .pc = pc};
    pthread_t t;
    pthread_create(&t, NULL, try_once, &p);
    pthread_join(t, NULL);
    CHECK(!p.got);
    CHECK(p.busy);
    CHECK(!p.rule_now);
    CHECK(!ml_rule_find(pc, &rule)); /* not taken for "no rule" */

    prober_t w = {.mod = a.mod};
    pthread_create(&t, NULL, wait_for_it, &w);
    struct timespec ms50 = {0, 50 * 1000 * 1000};
    nanosleep(&ms50, NULL);
    CHECK(!atomic_load(&w.done));
    ml_modfile_unlock(f);
    pthread_join(t, NULL);
    CHECK(w.got);

    pthread_create(&t, NULL, try_once, &p);
    pthread_join(t, NULL);
    CHECK(p.got && !p.busy && p.rule_now);
    CHECK(ml_rule_find(pc, &rule));
}

/* rules on four threads (hooks: only ever trying) while this one names */
typedef struct {
    uint64_t lo, hi;
    unsigned declined;
} racer_t;

static void *rules_racer(void *arg)
{
    racer_t *r = arg;
    for (int round = 0; round < 20; round++)
        for (uint64_t pc = r->lo; pc < r->hi; pc++) {
            uint64_t rule;
            if (!ml_unwind_rules_now(pc, &rule))
                r->declined++;
        }
    return NULL;
}

static void test_concurrent_readers(void)
{
    pthread_t t[4];
    racer_t r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer_t){b.entry + 1, b.entry + b.size, 0};
        pthread_create(&t[i], NULL, rules_racer, &r[i]);
    }
    unsigned named = 0;
    for (int round = 0; round < 200; round++)
        for (uint64_t pc = b.entry + 1; pc < b.entry + b.size; pc += 3) {
            ml_symbol_t s;
            ml_symbolize(b.mod, pc, &s);
            named += s.function && strcmp(s.function, "plugin_leak") == 0;
        }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(named > 0);
    /* every address got the rule one thread alone computes */
    for (uint64_t pc = b.entry + 1; pc < b.entry + b.size; pc++) {
        uint64_t rule;
        if (ml_rule_find(pc, &rule))
            CHECK_EQ(rule, ml_unwind_rule_compute(pc));
    }
    CHECK_EQ(fds_on(b.path, NULL), 1);
}

static bool copy_file(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    return system(cmd) == 0;
}

static void test_replaced_file_refused(void)
{
    char dir[] = "/tmp/ml_modfile.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(false); /* mkdtemp */
        return;
    }
    char path[600], other[600];
    snprintf(path, sizeof path, "%s/libcopy.so", dir);
    snprintf(other, sizeof other, "%s/libother.so", dir);
    CHECK(copy_file(ML_TEST_PLUGIN_DIR "/libplugin_a.so", path));
    CHECK(copy_file(ML_TEST_PLUGIN_DIR "/libplugin_b.so", other));
    plugin_t c;
    CHECK(load(&c, path));
    CHECK(rename(other, path) == 0); /* another build, same name */
    bool busy = true;
    CHECK(ml_modfile_lock(c.mod, true, &busy) == NULL);
    CHECK(!busy);
    CHECK_EQ(ml_unwind_rule_compute(c.entry + 1), ML_RULE_UNKNOWN);
    ml_symbol_t s;
    ml_symbolize(c.mod, c.entry + 1, &s);
    CHECK(s.function == NULL && s.file == NULL);
    CHECK_EQ(fds_on(path, NULL), 0);
    dlclose(c.handle);
    unlink(path);
    rmdir(dir);
}

static void test_sweep_releases_unloaded(void)
{
    ml_modules_sync(true);
    ml_modfile_sweep();
    uint32_t open = open_now();
    ml_modfile_sweep(); /* nothing new: nothing released */
    CHECK_EQ(open_now(), open);
    CHECK_EQ(fds_on(a.path, NULL), 1);
    CHECK_EQ(fds_on(b.path, NULL), 1);

    uint32_t bmod = b.mod;
    uintptr_t bentry = b.entry;
    CHECK(dlclose(b.handle) == 0);
    ml_modules_sync(true);
    CHECK(atomic_load(&ml_modules_get(bmod)->removed_gen) != 0);
    ml_modfile_sweep();
    CHECK_EQ(open_now(), open - 1);
    CHECK_EQ(fds_on(b.path, NULL), 0);
    CHECK_EQ(fds_on(a.path, NULL), 1); /* loaded: kept */

    /* a frame of the unloaded module not named before: the file again */
    ml_symbol_t s;
    ml_symbolize(bmod, bentry + 2, &s);
    CHECK(s.function && strcmp(s.function, "plugin_leak") == 0);
    CHECK_EQ(open_now(), open);
    ml_modfile_sweep();
    CHECK_EQ(open_now(), open - 1);
    CHECK_EQ(fds_on(b.path, NULL), 0);
}

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_state; /* 1: holding, 2: let go */

static void *holder(void *arg)
{
    ml_modfile_t *f = ml_modfile_lock(*(uint32_t *)arg, true, NULL);
    pthread_mutex_lock(&hold_mu);
    hold_state = 1;
    pthread_cond_broadcast(&hold_cv);
    while (hold_state != 2)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
    if (f)
        ml_modfile_unlock(f);
    return NULL;
}

static void test_fork_child(void)
{
    plugin_t c;
    CHECK(load(&c, ML_TEST_PLUGIN_DIR "/libplugin_b.so"));
    ml_unwind_rule_compute(c.entry + 1); /* open: nobody holds it at the fork */
    pthread_t t;
    hold_state = 0;
    pthread_create(&t, NULL, holder, &a.mod);
    pthread_mutex_lock(&hold_mu);
    while (hold_state != 1)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
    uint32_t open = open_now();
    pid_t pid = fork();
    if (pid == 0) {
        ml_modfile_after_fork_child();
        int bad = 0;
        bad += open_now() != open - 1; /* the held one forgotten */
        uint64_t opened = opened_so_far();
        bool busy = true;
        ml_modfile_t *f = ml_modfile_lock(a.mod, false, &busy);
        bad += f == NULL || busy;
        if (f) {
            const char *name = ml_modfile_function(f, a.entry);
            bad += !name || strcmp(name, "plugin_leak") != 0;
            ml_modfile_unlock(f);
        }
        bad += opened_so_far() != opened + 1; /* opened again */
        f = ml_modfile_lock(c.mod, false, &busy);
        bad += f == NULL;
        if (f)
            ml_modfile_unlock(f);
        bad += opened_so_far() != opened + 1; /* still open from the parent */
        _exit(bad);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    pthread_mutex_lock(&hold_mu);
    hold_state = 2;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
    pthread_join(t, NULL);
    dlclose(c.handle);
}

int main(void)
{
    ml_modules_init();
    if (!ml_unwind_rules_init()) {
        fprintf(stderr, "ml_unwind_rules_init failed\n");
        return 1;
    }
    if (!load(&a, ML_TEST_PLUGIN_DIR "/libplugin_a.so") || !load(&b, ML_TEST_PLUGIN_DIR "/libplugin_b.so"))
        return 1;
    RUN(test_one_file_for_both);
    RUN(test_busy_never_waits);
    RUN(test_concurrent_readers);
    RUN(test_replaced_file_refused);
    RUN(test_sweep_releases_unloaded);
    RUN(test_fork_child);
    return check_failures != 0;
}
