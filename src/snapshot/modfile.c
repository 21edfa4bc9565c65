/* modfile.c — one opened file per module, shared (see modfile.h).
 *
 * Why one libdwfl session per module rather than a bare Elf for the CFI and
 * a session for names: both readers want the same file, and a session
 * holds exactly one open descriptor and one mapping of it whichever of
 * its parts is asked for; the CFI comes from the session's own Elf
 * (dwfl_module_eh_cfi), the DWARF and separate debuginfo only when the
 * symbolizer first asks for a line. A module reported at its load bias
 * takes absolute addresses, so a module that was unloaded (and whose range
 * another now uses) is still named from its own file.
 *
 * The table: one slot per registry index, published once (a CAS: a hook
 * and the dumper may both be first) and never freed, so a pointer read
 * from it stays good; what a slot holds changes only under its lock. A
 * registry index never changes meaning (a module loaded again is a new
 * index), so a slot is never stale, only unneeded once its module is
 * unloaded: the sweep then ends its session, and the slot can open the
 * file again if a snapshot still has frames to name from it.
 *
 * Function names come from a sorted copy of the module's symbol table,
 * searched by halving: libdwfl's own address lookup scans every symbol on
 * each call, which for a library of 200,000 symbols (libtorch) made a
 * snapshot take minutes. */

#include "snapshot/modfile.h"
#include "core/modules.h"
#include "snapshot/dumper.h"

#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    GElf_Addr lo, size; /* size 0: extends to the next symbol */
    const char *name;   /* libdwfl's, valid while the session lives */
    int rank;           /* at equal addresses the better name: global, weak, local */
} fsym_t;

struct ml_modfile {
    pthread_mutex_t lock; /* everything below, and every use of the handles */
    uint32_t index;       /* in the registry */
    bool tried;           /* opened, or found to have nothing to open */
    Dwfl *dwfl;           /* the session; NULL when nothing could be opened */
    Dwfl_Module *mod;
    bool cfi_tried;
    Dwarf_CFI *cfi; /* the session's: ends with it */
    Dwarf_Addr cfi_bias;
    bool syms_tried;
    fsym_t *syms;
    size_t nsyms;
};

static ml_modfile_t *_Atomic files[ML_MODULES_MAX];
static _Atomic uint32_t nopen;
static _Atomic uint64_t nopened, nreleased;
/* the sweep's gate: the registry generation it last saw, and whether a
 * file was opened for an unloaded module (or left busy) since */
static uint32_t swept_gen;
static _Atomic bool sweep_again;

static char *debuginfo_path = NULL;

/* True when the ELF file open on fd carries the build-id `id` (or either
 * side has none, when there is nothing to compare). */
static bool build_id_matches(int fd, const unsigned char *id, int idlen)
{
    if (idlen <= 0)
        return true;
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!elf)
        return false;
    const void *bits = NULL;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &bits);
    bool ok = n <= 0 || (n == idlen && memcmp(bits, id, (size_t)n) == 0);
    elf_end(elf);
    return ok;
}

/* Separate debug information, from local files only: by build-id under
 * /usr/lib/debug/.build-id, then by the .gnu_debuglink name next to the
 * file, in its .debug/ directory, and under /usr/lib/debug. Never through
 * debuginfod (which libdw's standard callback starts): that would load
 * libcurl, a TLS stack and a network client into the program being
 * watched, and has crashed programs that bundle their own OpenSSL. */
static int find_debuginfo_local(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                                const char *file_name, const char *debuglink, GElf_Word crc, char **found)
{
    int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc, found);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* libdwfl opens it without */
    if (fd >= 0 || !debuglink || !file_name || strchr(debuglink, '/'))
        return fd;
    const unsigned char *id = NULL;
    GElf_Addr vaddr;
    int idlen = dwfl_module_build_id(mod, &id, &vaddr);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file_name);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    static const char *const forms[] = {"%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        char path[2 * PATH_MAX + 32];
        snprintf(path, sizeof path, forms[i], dir, debuglink);
        if (strcmp(path, file_name) == 0)
            continue;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (build_id_matches(fd, id, idlen)) {
            *found = strdup(path);
            return fd;
        }
        close(fd);
    }
    return -1;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = find_debuginfo_local,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

static bool same_build_id(Dwfl_Module *mod, const ml_module_t *m)
{
    const unsigned char *bits;
    GElf_Addr vaddr;
    int n = dwfl_module_build_id(mod, &bits, &vaddr);
    if (n <= 0 || !m->build_id_len)
        return true; /* nothing to compare: trust the path */
    return (size_t)n >= m->build_id_len && memcmp(bits, m->build_id, m->build_id_len) == 0;
}

static bool unloaded(uint32_t index)
{
    return atomic_load_explicit(&ml_modules_get(index)->removed_gen, memory_order_acquire) != 0;
}

/* Opens f's file (lock held). */
static void open_file(ml_modfile_t *f)
{
    f->tried = true;
    const ml_module_t *m = ml_modules_get(f->index);
    if (m->path[0] != '/')
        return; /* the vDSO, or a name the loader made up */
    /* Opened here, close-on-exec: libdwfl's own open is not, and the
     * program's children would inherit a descriptor per module. The session
     * takes the descriptor and closes it when it ends; when dwfl_report_elf
     * refuses the file, the descriptor is still ours (libdwfl would close
     * it itself only for a compressed file: the ELF magic rules that out). */
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* gone */
    char magic[SELFMAG];
    Dwfl *dwfl = NULL;
    if (pread(fd, magic, SELFMAG, 0) != SELFMAG || memcmp(magic, ELFMAG, SELFMAG) != 0 ||
        !(dwfl = dwfl_begin(&callbacks))) {
        close(fd);
        return;
    }
    dwfl_report_begin(dwfl);
    const char *base = strrchr(m->path, '/');
    /* m->bias is the loader's bias (what the file's addresses are moved
     * by), which libdwfl takes as such with add_p_vaddr; without it, it
     * would read it as where the first segment starts */
    Dwfl_Module *mod = dwfl_report_elf(dwfl, base ? base + 1 : m->path, m->path, fd, m->bias, true);
    dwfl_report_end(dwfl, NULL, NULL);
    if (!mod)
        close(fd);
    if (!mod || !same_build_id(mod, m)) {
        dwfl_end(dwfl); /* replaced on disk: its symbols and CFI would lie */
        return;
    }
    f->dwfl = dwfl;
    f->mod = mod;
    atomic_fetch_add_explicit(&nopen, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&nopened, 1, memory_order_relaxed);
    if (unloaded(f->index))
        atomic_store_explicit(&sweep_again, true, memory_order_release); /* for a snapshot: not for long */
}

/* Ends f's session and forgets what came from it (lock held). */
static void release(ml_modfile_t *f)
{
    if (f->dwfl) {
        dwfl_end(f->dwfl);
        atomic_fetch_sub_explicit(&nopen, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&nreleased, 1, memory_order_relaxed);
    }
    free(f->syms);
    f->tried = f->cfi_tried = f->syms_tried = false;
    f->dwfl = NULL;
    f->mod = NULL;
    f->cfi = NULL;
    f->cfi_bias = 0;
    f->syms = NULL;
    f->nsyms = 0;
}

/* The slot of registry index `index`, made on first use. */
static ml_modfile_t *slot(uint32_t index)
{
    ml_modfile_t *f = atomic_load_explicit(&files[index], memory_order_acquire);
    if (f)
        return f;
    ml_modfile_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    pthread_mutex_init(&n->lock, NULL);
    n->index = index;
    if (atomic_compare_exchange_strong_explicit(&files[index], &f, n, memory_order_acq_rel, memory_order_acquire))
        return n;
    pthread_mutex_destroy(&n->lock); /* another thread made it first */
    free(n);
    return f;
}

ml_modfile_t *ml_modfile_lock(uint32_t index, bool wait, bool *busy)
{
    if (busy)
        *busy = false;
    if (index >= ml_modules_count())
        return NULL;
    ml_modfile_t *f = slot(index);
    if (!f)
        return NULL;
    if (!wait) {
        if (pthread_mutex_trylock(&f->lock) != 0) {
            if (busy)
                *busy = true;
            return NULL;
        }
    } else {
        pthread_mutex_lock(&f->lock);
    }
    if (!f->tried)
        open_file(f);
    if (!f->mod) {
        pthread_mutex_unlock(&f->lock);
        return NULL;
    }
    return f;
}

void ml_modfile_unlock(ml_modfile_t *f) { pthread_mutex_unlock(&f->lock); }

Dwfl_Module *ml_modfile_dwfl(ml_modfile_t *f) { return f->mod; }

Dwarf_CFI *ml_modfile_eh_cfi(ml_modfile_t *f, Dwarf_Addr *bias)
{
    if (!f->cfi_tried) {
        f->cfi_tried = true;
        f->cfi = dwfl_module_eh_cfi(f->mod, &f->cfi_bias);
    }
    *bias = f->cfi_bias;
    return f->cfi;
}

static int fsym_order(const void *a, const void *b)
{
    const fsym_t *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank > y->rank ? -1 : 1;
    return x->size > y->size ? -1 : x->size < y->size;
}

static void load_symbols(ml_modfile_t *f)
{
    f->syms_tried = true;
    int n = dwfl_module_getsymtab(f->mod);
    if (n <= 0)
        return;
    fsym_t *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return;
    size_t k = 0;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx;
        const char *name = dwfl_module_getsym_info(f->mod, i, &sym, &addr, &shndx, NULL, NULL);
        if (!name || !*name || shndx == SHN_UNDEF)
            continue;
        int type = GELF_ST_TYPE(sym.st_info), bind = GELF_ST_BIND(sym.st_info);
        if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
            continue;
        if (type == STT_NOTYPE && (shndx == SHN_ABS || !sym.st_size))
            continue; /* section and file markers, not code */
        v[k++] = (fsym_t){addr, sym.st_size, name, bind == STB_GLOBAL ? 2 : bind == STB_WEAK ? 1 : 0};
    }
    qsort(v, k, sizeof *v, fsym_order);
    /* one entry per address: the best-ranked name, sorted first */
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || v[i].lo != v[u - 1].lo)
            v[u++] = v[i];
    f->syms = v;
    f->nsyms = u;
}

/* The function holding addr: the last symbol starting at or before it that
 * covers it (a sized symbol ending before addr does not, but one a little
 * further back may, when symbols nest). */
const char *ml_modfile_function(ml_modfile_t *f, GElf_Addr addr)
{
    if (!f->syms_tried)
        load_symbols(f);
    size_t lo = 0, hi = f->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->syms[mid].lo <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo, tries = 0; i-- > 0 && tries < 8; tries++) {
        const fsym_t *s = &f->syms[i];
        if (!s->size || addr < s->lo + s->size)
            return s->name;
    }
    return NULL;
}

void ml_modfile_sweep(void)
{
    uint32_t gen = ml_modules_generation();
    if (gen == swept_gen && !atomic_exchange_explicit(&sweep_again, false, memory_order_acq_rel))
        return;
    swept_gen = gen;
    uint32_t n = ml_modules_count();
    for (uint32_t i = 0; i < n; i++) {
        ml_modfile_t *f = atomic_load_explicit(&files[i], memory_order_acquire);
        if (!f || !unloaded(i))
            continue;
        if (pthread_mutex_trylock(&f->lock) != 0) {
            atomic_store_explicit(&sweep_again, true, memory_order_release); /* in use: next time */
            continue;
        }
        if (f->tried)
            release(f);
        pthread_mutex_unlock(&f->lock);
    }
}

static bool sweep_service(void)
{
    ml_modfile_sweep();
    return false;
}

void ml_modfile_init(void)
{
    elf_version(EV_CURRENT);
    /* exclusive: never while a snapshot is naming frames from these files */
    ml_dumper_add_service(sweep_service, true);
}

void ml_modfile_stats(uint32_t *open, uint64_t *opened, uint64_t *released)
{
    *open = atomic_load_explicit(&nopen, memory_order_relaxed);
    *opened = atomic_load_explicit(&nopened, memory_order_relaxed);
    *released = atomic_load_explicit(&nreleased, memory_order_relaxed);
}

void ml_modfile_after_fork_child(void)
{
    uint32_t n = ml_modules_count();
    for (uint32_t i = 0; i < n; i++) {
        ml_modfile_t *f = atomic_load_explicit(&files[i], memory_order_relaxed);
        if (!f)
            continue;
        if (pthread_mutex_trylock(&f->lock) == 0) {
            pthread_mutex_unlock(&f->lock); /* nobody was using it: it is whole */
            continue;
        }
        /* held by a thread the child does not have: leave its state alone */
        ml_modfile_t *fresh = calloc(1, sizeof *fresh);
        if (fresh) {
            pthread_mutex_init(&fresh->lock, NULL);
            fresh->index = i;
        }
        atomic_store_explicit(&files[i], fresh, memory_order_relaxed);
        if (f->dwfl)
            atomic_fetch_sub_explicit(&nopen, 1, memory_order_relaxed);
    }
}
