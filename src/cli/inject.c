/* inject.c — calling functions in another process through ptrace (see
 * inject.h).
 *
 * How a call goes (x86-64, System V calling convention): the chosen thread
 * is seized and interrupted alone (PTRACE_SEIZE, PTRACE_INTERRUPT), so the
 * rest of the process runs on. It must be waiting in a system call such as
 * select or epoll_wait: a thread stopped in the middle of user code may
 * hold a lock (malloc's, the loader's) that the called function needs, and
 * would wait for itself. Its registers and vector state are saved. For a
 * call, the instruction pointer is set to the function, the arguments go
 * into rdi, rsi, rdx, rcx, r8, r9, and the return address pushed is 0: the
 * function's return faults there, and that SIGSEGV stop, seen by the
 * tracer alone, ends the call. orig_rax = -1 keeps the kernel from
 * restarting the interrupted system call on top of the call; putting the
 * saved registers back at the end lets it restart as if nothing happened.
 *
 * The first call, on the thread's own stack (below its red zone), maps a
 * scratch area in the target: later calls run on a stack at its top and
 * find their data (paths, settings, a buffer for messages) at its bottom.
 * The last call unmaps it. Signals that arrive for the thread meanwhile are
 * held back and delivered when it is let go. */
#include "cli/inject.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- finding functions in the target (any architecture) ---- */

bool ml_remote_module(long pid, const char *prefix, char *out, size_t cap)
{
    char path[64], line[PATH_MAX + 256];
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    size_t pl = strlen(prefix);
    while (!found && fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/');
        if (!p)
            continue;
        p[strcspn(p, "\n")] = '\0';
        const char *base = strrchr(p, '/') + 1;
        if (strncmp(base, prefix, pl) == 0) {
            snprintf(out, cap, "%s", p);
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Where `path`'s code is mapped: the executable mapping's address and file
 * offset (a file mapped only to be read, as a symbolizer does, is not the
 * loaded image). False if none. */
static bool code_map(long pid, const char *path, uint64_t *addr, uint64_t *offset)
{
    char mp[64], line[PATH_MAX + 256];
    snprintf(mp, sizeof mp, "/proc/%ld/maps", pid);
    FILE *f = fopen(mp, "r");
    if (!f)
        return false;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, off;
        char perms[8];
        int n = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &lo, &hi, perms, &off, &n) < 4 || !n)
            continue;
        char *p = line + n;
        p[strcspn(p, "\n")] = '\0';
        if (perms[2] == 'x' && strcmp(p, path) == 0) {
            *addr = lo;
            *offset = off;
            found = true;
        }
    }
    fclose(f);
    return found;
}

uint64_t ml_remote_symbol(long pid, const char *path, const char *name)
{
    char file[PATH_MAX + 64];
    snprintf(file, sizeof file, "/proc/%ld/root%s", pid, path); /* its own view (a container) */
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (img == MAP_FAILED)
        return 0;
    uint64_t result = 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
#define IN(off, len) ((uint64_t)(off) <= size && (uint64_t)(len) <= size - (uint64_t)(off))
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        !IN(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)) || !IN(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)))
        goto out;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff);
    uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE) - 1, code_addr = 0, code_off = 0, code_vaddr = UINT64_MAX;
    /* the load bias: the code mapping's address less its segment's address in the file */
    if (code_map(pid, path, &code_addr, &code_off))
        for (unsigned i = 0; i < eh->e_phnum; i++)
            if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) && (ph[i].p_offset & ~pg) == code_off)
                code_vaddr = ph[i].p_vaddr & ~pg;
    const Elf64_Sym *syms = NULL;
    const char *strs = NULL;
    const uint16_t *versym = NULL;
    size_t nsyms = 0, strsz = 0;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type == SHT_DYNSYM && sh[i].sh_link < eh->e_shnum && IN(sh[i].sh_offset, sh[i].sh_size) &&
            IN(sh[sh[i].sh_link].sh_offset, sh[sh[i].sh_link].sh_size)) {
            syms = (const Elf64_Sym *)(img + sh[i].sh_offset);
            nsyms = sh[i].sh_size / sizeof *syms;
            strs = (const char *)img + sh[sh[i].sh_link].sh_offset;
            strsz = sh[sh[i].sh_link].sh_size;
        } else if (sh[i].sh_type == SHT_GNU_versym && IN(sh[i].sh_offset, sh[i].sh_size)) {
            versym = (const uint16_t *)(img + sh[i].sh_offset);
        }
    }
    if (!syms || code_vaddr == UINT64_MAX)
        goto out;
    uint64_t value = 0;
    for (size_t i = 0; i < nsyms; i++) {
        const Elf64_Sym *s = &syms[i];
        unsigned type = ELF64_ST_TYPE(s->st_info);
        if (s->st_shndx == SHN_UNDEF || s->st_name >= strsz || (type != STT_FUNC && type != STT_GNU_IFUNC) ||
            strcmp(strs + s->st_name, name) != 0)
            continue;
        bool hidden = versym && (versym[i] & 0x8000); /* an old version kept for old programs */
        if (!value || !hidden)
            value = s->st_value;
        if (!hidden)
            break;
    }
    if (value)
        result = code_addr - code_vaddr + value;
#undef IN
out:
    munmap((void *)img, size);
    return result;
}

#if defined(__x86_64__)

#define SCRATCH_SIZE (1u << 20) /* a stack for the calls at its top, their data at its bottom */
#define DATA_SIZE (64u << 10)
#define MAX_PENDING 8

struct ml_inject {
    long pid, tid;
    struct user_regs_struct saved;
    unsigned char xstate[16384];
    size_t xstate_len;           /* 0: not saved that way */
    struct user_fpregs_struct fp;
    bool have_fp;
    uint64_t scratch;            /* the scratch area, 0 until mapped */
    uint64_t data_used;
    uint64_t mmap_fn, munmap_fn;
    int pending[MAX_PENDING];
    size_t npending;
};

long ml_inject_tid(const ml_inject_t *in) { return in->tid; }

/* System calls a thread waits in while it holds no lock of its own. */
static int wait_rank(long nr)
{
    switch (nr) {
    case SYS_read: case SYS_poll: case SYS_select: case SYS_pause: case SYS_accept: case SYS_recvfrom:
    case SYS_recvmsg: case SYS_wait4: case SYS_rt_sigtimedwait: case SYS_rt_sigsuspend: case SYS_epoll_wait:
    case SYS_waitid: case SYS_pselect6: case SYS_ppoll: case SYS_epoll_pwait: case SYS_accept4:
    case SYS_recvmmsg:
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
#endif
        return 3;
    case SYS_nanosleep: case SYS_clock_nanosleep:
        return 2; /* fine, but their restart bookkeeping is the most delicate */
    case SYS_futex:
        return 1; /* a lock or condition wait: the thread may hold another lock */
    default:
        return 0;
    }
}

/* True when thread tid blocks SIGSEGV: a call's return fault would then
 * make the kernel reset the process's SIGSEGV handler to the default
 * (force_sig_fault), so such a thread (memledger's own) is never borrowed. */
static bool blocks_segv(long pid, long tid)
{
    char path[96], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/status", pid, tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    const char *b = strstr(buf, "\nSigBlk:");
    if (!b)
        return true;
    unsigned long long mask = strtoull(b + 8, NULL, 16);
    return (mask >> (SIGSEGV - 1) & 1) || (mask >> (SIGBUS - 1) & 1);
}

/* What /proc says thread tid is doing: its rank as above, 0 when running. */
static int thread_rank(long pid, long tid)
{
    char path[96], buf[256];
    if (blocks_segv(pid, tid))
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/syscall", pid, tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long nr = strtol(buf, &end, 10);
    return end == buf ? 0 : nr < 0 ? 0 : wait_rank(nr);
}

/* The best thread to borrow: the highest rank, the main thread first. */
static long choose_thread(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long best = 0;
    int best_rank = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long tid = strtol(e->d_name, NULL, 10);
        if (tid <= 0)
            continue;
        int r = thread_rank(pid, tid) * 2 + (tid == pid);
        if (r > best_rank) {
            best_rank = r;
            best = tid;
        }
    }
    closedir(d);
    return best_rank >= 2 ? best : 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool mem_write(ml_inject_t *in, uint64_t addr, const void *data, size_t n)
{
    struct iovec l = {(void *)data, n}, r = {(void *)addr, n};
    if (process_vm_writev((pid_t)in->pid, &l, 1, &r, 1, 0) == (ssize_t)n)
        return true;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/mem", in->pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = pwrite(fd, data, n, (off_t)addr) == (ssize_t)n;
    close(fd);
    return ok;
}

bool ml_inject_read(ml_inject_t *in, uint64_t addr, void *buf, size_t n)
{
    struct iovec l = {buf, n}, r = {(void *)addr, n};
    if (process_vm_readv((pid_t)in->pid, &l, 1, &r, 1, 0) == (ssize_t)n)
        return true;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/mem", in->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = pread(fd, buf, n, (off_t)addr) == (ssize_t)n;
    close(fd);
    return ok;
}

static void hold_pending(ml_inject_t *in, int sig)
{
    if (in->npending < MAX_PENDING)
        in->pending[in->npending++] = sig;
}

/* Lets the thread go as it was: registers back, detach, held signals
 * delivered (the first with the detach, the others after). */
static void let_go(ml_inject_t *in)
{
    ptrace(PTRACE_SETREGS, in->tid, NULL, &in->saved);
    if (in->xstate_len) {
        struct iovec v = {in->xstate, in->xstate_len};
        ptrace(PTRACE_SETREGSET, in->tid, (void *)NT_X86_XSTATE, &v);
    } else if (in->have_fp) {
        ptrace(PTRACE_SETFPREGS, in->tid, NULL, &in->fp);
    }
    int first = in->npending ? in->pending[0] : 0;
    ptrace(PTRACE_DETACH, in->tid, NULL, (void *)(long)first);
    for (size_t i = 1; i < in->npending; i++)
        syscall(SYS_tgkill, (pid_t)in->pid, (pid_t)in->tid, in->pending[i]);
}

/* Waits for the thread's next stop; the raw status, or -1 when it ended. */
static int next_stop(ml_inject_t *in)
{
    int st;
    for (;;) {
        pid_t r = waitpid((pid_t)in->tid, &st, __WALL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
            return -1;
        return st;
    }
}

/* Seizes and stops thread tid; its status in *st. */
static int seize(ml_inject_t *in, long tid, int *stop)
{
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0)
        return errno;
    in->tid = tid;
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0) {
        int e = errno;
        ptrace(PTRACE_DETACH, tid, NULL, NULL);
        return e;
    }
    *stop = next_stop(in);
    return *stop < 0 ? ESRCH : 0;
}

ml_inject_t *ml_inject_open(long pid, uint64_t wait_ms, bool *eperm, char *err, size_t cap)
{
    *eperm = false;
    ml_inject_t *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    in->pid = pid;
    uint64_t deadline = now_ms() + wait_ms;
    unsigned running = 0;
    for (;;) {
        long tid = choose_thread(pid);
        if (tid < 0) {
            snprintf(err, cap, "cannot read /proc/%ld/task: %s", pid, strerror(errno));
            free(in);
            return NULL;
        }
        if (tid > 0) {
            int stop = 0;
            int e = seize(in, tid, &stop);
            if (e == EPERM || e == EACCES) {
                *eperm = true;
                snprintf(err, cap, "ptrace refused to attach to thread %ld: %s", tid, strerror(e));
                free(in);
                return NULL;
            }
            if (e == 0) {
                in->npending = 0;
                if (((stop >> 16) & 0xff) == 0 && WSTOPSIG(stop) != SIGTRAP)
                    hold_pending(in, WSTOPSIG(stop)); /* a signal arrived with our stop: it goes later */
                bool regs = ptrace(PTRACE_GETREGS, tid, NULL, &in->saved) == 0;
                if (regs && (long)in->saved.orig_rax >= 0 && wait_rank((long)in->saved.orig_rax) > 0) {
                    struct iovec v = {in->xstate, sizeof in->xstate};
                    if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &v) == 0)
                        in->xstate_len = v.iov_len;
                    else
                        in->have_fp = ptrace(PTRACE_GETFPREGS, tid, NULL, &in->fp) == 0;
                    if (in->xstate_len || in->have_fp)
                        return in;
                }
                /* it left its system call meanwhile: let it go, look again */
                if (regs)
                    let_go(in);
                else
                    ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)(in->npending ? in->pending[0] : 0));
                running++;
            }
        }
        if (now_ms() >= deadline) {
            snprintf(err, cap, "no thread of process %ld stayed waiting in a system call for %llu ms (%s): "
                               "memledger borrows an idle thread to load itself; try again when the process "
                               "is less busy", pid, (unsigned long long)wait_ms,
                     running ? "each one chosen was running again by the time it stopped" : "all of them are busy");
            free(in);
            return NULL;
        }
        usleep(20000);
    }
}

uint64_t ml_inject_push(ml_inject_t *in, const void *data, size_t n)
{
    uint64_t at = in->scratch + ((in->data_used + 15) & ~(uint64_t)15);
    if (!in->scratch || at + n > in->scratch + DATA_SIZE || !mem_write(in, at, data, n))
        return 0;
    in->data_used = at + n - in->scratch;
    return at;
}

static void hold_off_signals(sigset_t *old)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    sigaddset(&s, SIGQUIT);
    sigprocmask(SIG_BLOCK, &s, old);
}

/* One call with `sp` as the stack pointer before the return address. */
static bool call_on(ml_inject_t *in, uint64_t sp, uint64_t fn, const uint64_t args[6], uint64_t *ret,
                    void (*progress)(long), char *err, size_t cap)
{
    uint64_t ra = 0;
    sp = (sp & ~(uint64_t)15) - 8; /* at the function's entry: 8 below a 16-byte boundary */
    if (!mem_write(in, sp, &ra, sizeof ra)) {
        snprintf(err, cap, "cannot write into process %ld's memory: %s", in->pid, strerror(errno));
        return false;
    }
    struct user_regs_struct r = in->saved;
    r.rip = fn;
    r.rsp = sp;
    r.rdi = args[0];
    r.rsi = args[1];
    r.rdx = args[2];
    r.rcx = args[3];
    r.r8 = args[4];
    r.r9 = args[5];
    r.rax = 0;
    r.orig_rax = (unsigned long long)-1; /* not in a system call: nothing to restart */
    if (ptrace(PTRACE_SETREGS, in->tid, NULL, &r) != 0) {
        snprintf(err, cap, "cannot set thread %ld's registers: %s", in->tid, strerror(errno));
        return false;
    }
    sigset_t old;
    hold_off_signals(&old);
    bool ok = false, told = false;
    uint64_t start = now_ms();
    int sig = 0;
    for (;;) {
        if (ptrace(PTRACE_CONT, in->tid, NULL, (void *)(long)sig) != 0) {
            snprintf(err, cap, "cannot resume thread %ld: %s", in->tid, strerror(errno));
            break;
        }
        sig = 0;
        int st;
        pid_t w;
        while ((w = waitpid((pid_t)in->tid, &st, __WALL | WNOHANG)) == 0) {
            if (!told && progress && now_ms() - start > 10000) {
                progress(in->pid);
                told = true;
            }
            usleep(1000);
        }
        if (w < 0 || WIFEXITED(st) || WIFSIGNALED(st)) {
            snprintf(err, cap, "process %ld ended during the call", in->pid);
            in->tid = 0;
            break;
        }
        if ((st >> 16) & 0xff)
            continue; /* an event stop (the interrupt, a group stop): go on */
        int s = WSTOPSIG(st);
        if (s == SIGSEGV || s == SIGBUS) {
            struct user_regs_struct now;
            memset(&now, 0, sizeof now);
            if (ptrace(PTRACE_GETREGS, in->tid, NULL, &now) == 0 && now.rip == ra) {
                *ret = now.rax;
                ok = true;
            } else {
                snprintf(err, cap, "the call faulted in process %ld (signal %d at %#llx in thread %ld); the "
                                   "thread is put back as it was", in->pid, s, (unsigned long long)now.rip, in->tid);
            }
            break;
        }
        hold_pending(in, s); /* not now: delivered when the thread is let go */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return ok;
}

bool ml_inject_scratch(ml_inject_t *in, char *err, size_t cap)
{
    if (in->scratch)
        return true;
    /* called on the thread's own stack, below its red zone */
    char libc[PATH_MAX];
    if (!ml_remote_module(in->pid, "libc.so", libc, sizeof libc) ||
        !(in->mmap_fn = ml_remote_symbol(in->pid, libc, "mmap")) ||
        !(in->munmap_fn = ml_remote_symbol(in->pid, libc, "munmap"))) {
        snprintf(err, cap, "cannot find mmap in process %ld's C library", in->pid);
        return false;
    }
    uint64_t args[6] = {0, SCRATCH_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        (uint64_t)-1, 0};
    uint64_t area = 0;
    if (!call_on(in, in->saved.rsp - 256, in->mmap_fn, args, &area, NULL, err, cap))
        return false;
    if (area == (uint64_t)MAP_FAILED || area == 0) {
        snprintf(err, cap, "process %ld could not map %u bytes of scratch memory", in->pid, SCRATCH_SIZE);
        return false;
    }
    in->scratch = area;
    return true;
}

bool ml_inject_call(ml_inject_t *in, uint64_t fn, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t *ret,
                    void (*progress)(long pid), char *err, size_t cap)
{
    if (!ml_inject_scratch(in, err, cap))
        return false;
    uint64_t args[6] = {a0, a1, a2, 0, 0, 0};
    return call_on(in, in->scratch + SCRATCH_SIZE - 64, fn, args, ret, progress, err, cap);
}

void ml_inject_close(ml_inject_t *in)
{
    if (!in)
        return;
    if (in->tid) {
        if (in->scratch) {
            uint64_t args[6] = {in->scratch, SCRATCH_SIZE, 0, 0, 0, 0}, r;
            char err[256];
            call_on(in, in->saved.rsp - 256, in->munmap_fn, args, &r, NULL, err, sizeof err);
        }
        let_go(in);
    }
    free(in);
}

#else /* not x86-64 */

struct ml_inject {
    int unused;
};

bool ml_inject_scratch(ml_inject_t *in, char *err, size_t cap)
{
    (void)in;
    snprintf(err, cap, "memledger attach works on x86-64 only");
    return false;
}

ml_inject_t *ml_inject_open(long pid, uint64_t wait_ms, bool *eperm, char *err, size_t cap)
{
    (void)pid;
    (void)wait_ms;
    *eperm = false;
    snprintf(err, cap, "memledger attach works on x86-64 only");
    return NULL;
}
long ml_inject_tid(const ml_inject_t *in) { (void)in; return 0; }
uint64_t ml_inject_push(ml_inject_t *in, const void *data, size_t n) { (void)in; (void)data; (void)n; return 0; }
bool ml_inject_call(ml_inject_t *in, uint64_t fn, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t *ret,
                    void (*progress)(long pid), char *err, size_t cap)
{
    (void)in; (void)fn; (void)a0; (void)a1; (void)a2; (void)ret; (void)progress;
    snprintf(err, cap, "memledger attach works on x86-64 only");
    return false;
}
bool ml_inject_read(ml_inject_t *in, uint64_t addr, void *buf, size_t n) { (void)in; (void)addr; (void)buf; (void)n; return false; }
void ml_inject_close(ml_inject_t *in) { (void)in; }

#endif
