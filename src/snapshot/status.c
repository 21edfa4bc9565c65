/* status.c — the status page (see status.h and common/status.h).
 * The page is a memfd sealed against shrinking, so nobody who opens it
 * through /proc can make the library's own accesses fault. */
#include "snapshot/status.h"
#include "common/config.h"
#include "common/io.h"
#include "snapshot/snapshot_write.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static ml_status_t *page;
static int page_fd = -1;

/* Who the process is, for the header lines too (kept apart from the page:
 * a process without one still says it). */
static struct {
    uint32_t worker;
    int parent;
    uint64_t since_ns;
    uint64_t start_cs; /* process_start_cs, worked out once: the clocks' readings jitter */
    bool attached, header;
} me;

static void page_write_begin(void) { __atomic_fetch_add(&page->gen, 1, __ATOMIC_ACQ_REL); }
static void page_write_end(void) { __atomic_fetch_add(&page->gen, 1, __ATOMIC_RELEASE); }

/* Sizes the page. Under an RLIMIT_FSIZE below its size the kernel answers
 * with SIGXFSZ, whose default action ends the process: it stays blocked
 * here, and one it raised is taken back (there is then no page). */
static bool size_page(int fd)
{
    sigset_t xfsz, old;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, &old);
    bool ok = ftruncate(fd, sizeof(ml_status_t)) == 0;
    if (!ok && errno == EFBIG) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&xfsz, NULL, &zero) == SIGXFSZ)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

static bool make_page(void)
{
    int fd = memfd_create(ML_STATUS_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return false;
    if (!size_page(fd)) {
        close(fd);
        return false;
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    void *p = mmap(NULL, sizeof(ml_status_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return false;
    }
    page = p;
    page_fd = fd;
    return true;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fill(uint32_t flags, uint32_t worker, int parent, uint64_t since)
{
    page->version = ML_STATUS_VERSION;
    page->size = sizeof(ml_status_t);
    page->pid = (int32_t)getpid();
    page->signal = ml_config.signal;
    page->flags = flags;
    page->worker = worker;
    page->parent = parent;
    page->start_time_ns = since;
    ml_fmt(page->dir, sizeof page->dir, "%s", ml_config.dir);
    /* the magic last: a reader that sees it sees the rest */
    __atomic_store_n(&page->magic, ML_STATUS_MAGIC, __ATOMIC_RELEASE);
}

/* Reads a small file whole into buf; its length, or -1. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* When the process started, in hundredths of a second since the epoch:
 * /proc/self/stat's start (clock ticks since boot) placed on the wall
 * clock through CLOCK_BOOTTIME; 0 if unknown. The same figure `memledger`
 * can work out for any pid. */
static uint64_t process_start_cs(void)
{
    char buf[1024];
    if (slurp("/proc/self/stat", buf, sizeof buf) <= 0)
        return 0;
    char *p = strrchr(buf, ')'); /* the command name may hold anything */
    /* field 22 (starttime) */
    for (int field = 3; field <= 22 && p; field++)
        p = strchr(p + 1, ' ');
    long hz = sysconf(_SC_CLK_TCK);
    if (!p || hz <= 0)
        return 0;
    uint64_t started = strtoull(p + 1, NULL, 10) * 100 / (uint64_t)hz; /* since boot */
    struct timespec wall, boot;
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    uint64_t wall_cs = (uint64_t)wall.tv_sec * 100 + (uint64_t)wall.tv_nsec / 10000000;
    uint64_t boot_cs = (uint64_t)boot.tv_sec * 100 + (uint64_t)boot.tv_nsec / 10000000;
    return boot_cs >= started && wall_cs > boot_cs - started ? wall_cs - (boot_cs - started) : 0;
}

static void identity_header(ml_out_t *o)
{
    if (!me.start_cs)
        me.start_cs = process_start_cs();
    uint64_t cs = me.start_cs;
    if (cs)
        ml_out_printf(o, "start_time\t%llu.%02llu\n", (unsigned long long)(cs / 100), (unsigned long long)(cs % 100));
    if (me.worker)
        ml_out_printf(o, "worker\t%u\t%d\n", me.worker, me.parent);
    ml_out_printf(o, "tracking\t%s\t%llu.%09llu\n", me.attached ? "attach" : "start",
                  (unsigned long long)(me.since_ns / 1000000000ull), (unsigned long long)(me.since_ns % 1000000000ull));
}

bool ml_status_open(uint32_t flags)
{
    if (!me.header) {
        me.header = true;
        me.attached = (flags & ML_STATUS_ATTACHED) != 0;
        me.since_ns = now_ns();
        ml_snapshot_add_header(identity_header);
    }
    if (page)
        return true;
    if (!make_page())
        return false;
    fill(flags, 0, 0, me.since_ns);
    return true;
}

void ml_status_request(void)
{
    ml_status_t *p = page;
    if (p)
        __atomic_fetch_add(&p->requests, 1, __ATOMIC_RELEASE);
}

uint64_t ml_status_requests(void)
{
    ml_status_t *p = page;
    return p ? __atomic_load_n(&p->requests, __ATOMIC_ACQUIRE) : 0;
}

void ml_status_done(uint64_t covered, uint64_t seq, int err)
{
    if (!page)
        return;
    page_write_begin();
    page->covered = covered;
    page->seq = seq;
    page->error = err;
    if (err)
        page->failed++;
    else
        page->written++;
    page_write_end();
}

void ml_status_flags(uint32_t set, uint32_t clear)
{
    if (!page)
        return;
    uint32_t f = __atomic_load_n(&page->flags, __ATOMIC_RELAXED);
    __atomic_store_n(&page->flags, (f | set) & ~clear, __ATOMIC_RELEASE);
}

void ml_status_python(int state, const char *note)
{
    if (!page)
        return;
    page_write_begin();
    ml_fmt(page->note, sizeof page->note, "%s", note ? note : "");
    page->python = state;
    page_write_end();
}

void ml_status_after_fork_child(uint32_t worker, int parent)
{
    me.worker = worker;
    me.parent = parent;
    me.start_cs = 0; /* the child's own */
    if (!page)
        return;
    uint32_t flags = page->flags;
    uint64_t since = page->start_time_ns;
    int python = page->python;
    char note[ML_STATUS_NOTE_MAX];
    memcpy(note, page->note, sizeof note);
    munmap(page, sizeof(ml_status_t)); /* shared with the parent: its requests are not ours */
    close(page_fd);
    page = NULL;
    page_fd = -1;
    if (!make_page())
        return;
    page->python = python;
    memcpy(page->note, note, sizeof note);
    fill(flags, worker, parent, since);
}
