/* symbolize.c — libdwfl-backed names for native frames (see symbolize.h).
 * Each module gets its own Dwfl session, reported at the module's load
 * bias, so a module that was unloaded (and whose address range another now
 * uses) is still named from its file. Function names come from a sorted
 * copy of the module's symbol table, searched by halving: libdwfl's own
 * address lookup scans every symbol on each call, which for a library of
 * 200,000 symbols (libtorch) made a snapshot take minutes.
 * Dumper-side only: allocates freely. */

#include "snapshot/symbolize.h"
#include "core/modules.h"

#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    GElf_Addr lo, size; /* size 0: extends to the next symbol */
    const char *name;   /* libdwfl's, valid while the session lives */
    int rank;           /* at equal addresses the better name: global, weak, local */
} fsym_t;

typedef struct {
    bool tried, syms_tried;
    Dwfl *dwfl;
    Dwfl_Module *mod;
    fsym_t *syms;
    size_t nsyms;
} session_t;

typedef struct {
    uint32_t mod;
    uintptr_t pc;
    ml_symbol_t sym;
    bool used;
} cache_entry_t;

static session_t *sessions;
static uint32_t nsessions;
static cache_entry_t *cache;
static size_t cache_cap, cache_used;

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

void ml_symbolize_reset(void)
{
    sessions = NULL;
    nsessions = 0;
    cache = NULL;
    cache_cap = cache_used = 0;
}

static bool same_build_id(Dwfl_Module *mod, const ml_module_t *m)
{
    const unsigned char *bits;
    GElf_Addr vaddr;
    int n = dwfl_module_build_id(mod, &bits, &vaddr);
    if (n <= 0 || !m->build_id_len)
        return true; /* nothing to compare: trust the path */
    return (size_t)n >= m->build_id_len && memcmp(bits, m->build_id, m->build_id_len) == 0;
}

static session_t *session(uint32_t idx)
{
    if (idx >= nsessions) {
        uint32_t n = nsessions ? nsessions : 64;
        while (n <= idx)
            n *= 2;
        session_t *s = realloc(sessions, n * sizeof *s);
        if (!s)
            return NULL;
        memset(s + nsessions, 0, (n - nsessions) * sizeof *s);
        sessions = s;
        nsessions = n;
    }
    session_t *s = &sessions[idx];
    if (s->tried)
        return s->mod ? s : NULL;
    s->tried = true;
    const ml_module_t *m = ml_modules_get(idx);
    if (m->path[0] != '/' || access(m->path, R_OK) != 0)
        return NULL; /* the vDSO, or a file that is gone */
    s->dwfl = dwfl_begin(&callbacks);
    if (!s->dwfl)
        return NULL;
    dwfl_report_begin(s->dwfl);
    const char *base = strrchr(m->path, '/');
    /* m->bias is the load bias (addresses are bias + p_vaddr): libdwfl
     * takes it as such with add_p_vaddr; without, it would place the
     * file's lowest p_vaddr at it, which is the same only where that is 0
     * (not for a library linked or prelinked at an address of its own) */
    s->mod = dwfl_report_elf(s->dwfl, base ? base + 1 : m->path, m->path, -1, m->bias, true);
    dwfl_report_end(s->dwfl, NULL, NULL);
    if (s->mod && !same_build_id(s->mod, m))
        s->mod = NULL; /* the file on disk was replaced: its symbols would lie */
    return s->mod ? s : NULL;
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

static void load_symbols(session_t *s)
{
    s->syms_tried = true;
    int n = dwfl_module_getsymtab(s->mod);
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
        const char *name = dwfl_module_getsym_info(s->mod, i, &sym, &addr, &shndx, NULL, NULL);
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
    s->syms = v;
    s->nsyms = u;
}

/* The function holding addr: the last symbol starting at or before it that
 * covers it (a sized symbol ending before addr does not, but one a little
 * further back may, when symbols nest). */
static const char *function_at(session_t *s, GElf_Addr addr)
{
    if (!s->syms_tried)
        load_symbols(s);
    size_t lo = 0, hi = s->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->syms[mid].lo <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo, tries = 0; i-- > 0 && tries < 8; tries++) {
        const fsym_t *f = &s->syms[i];
        if (!f->size || addr < f->lo + f->size)
            return f->name;
    }
    return NULL;
}

static size_t slot(uint32_t mod, uintptr_t pc)
{
    uint64_t h = (pc ^ ((uint64_t)mod << 48)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (cache_cap - 1);
}

static void cache_grow(void)
{
    size_t ncap = cache_cap ? cache_cap * 2 : 4096;
    cache_entry_t *n = calloc(ncap, sizeof *n);
    if (!n)
        return;
    cache_entry_t *old = cache;
    size_t oldcap = cache_cap;
    cache = n;
    cache_cap = ncap;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].used)
            continue;
        size_t j = slot(old[i].mod, old[i].pc);
        while (cache[j].used)
            j = (j + 1) & (cache_cap - 1);
        cache[j] = old[i];
    }
    free(old);
}

static const char *keep(const char *s) { return s ? strdup(s) : NULL; }

void ml_symbolize(uint32_t mod, uintptr_t pc, ml_symbol_t *out)
{
    out->function = out->file = NULL;
    out->line = 0;
    if (cache_used * 2 >= cache_cap)
        cache_grow();
    size_t j = 0;
    if (cache_cap) {
        for (j = slot(mod, pc); cache[j].used; j = (j + 1) & (cache_cap - 1))
            if (cache[j].mod == mod && cache[j].pc == pc) {
                *out = cache[j].sym;
                return;
            }
    }
    session_t *s = session(mod);
    if (s) {
        GElf_Addr addr = pc - 1;
        out->function = keep(function_at(s, addr));
        Dwfl_Line *line = dwfl_module_getsrc(s->mod, addr);
        if (line) {
            int lineno = 0;
            const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
            if (file) {
                out->file = keep(file);
                out->line = lineno;
            }
        }
    }
    if (cache_cap && cache_used * 2 < cache_cap) {
        cache[j].used = true;
        cache[j].mod = mod;
        cache[j].pc = pc;
        cache[j].sym = *out;
        cache_used++;
    }
}
