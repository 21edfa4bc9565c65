/* symbolize.c — libdwfl-backed names for native frames (see symbolize.h).
 * Each module gets its own Dwfl session, reported at the module's load
 * bias, so a module that was unloaded (and whose address range another now
 * uses) is still named from its file. Dumper-side only: allocates freely. */

#include "symbolize.h"
#include "modules.h"

#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    bool tried;
    Dwfl *dwfl;
    Dwfl_Module *mod;
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
    s->mod = dwfl_report_elf(s->dwfl, base ? base + 1 : m->path, m->path, -1, m->bias, false);
    dwfl_report_end(s->dwfl, NULL, NULL);
    if (s->mod && !same_build_id(s->mod, m))
        s->mod = NULL; /* the file on disk was replaced: its symbols would lie */
    return s->mod ? s : NULL;
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
        GElf_Addr addr = pc - 1, off;
        GElf_Sym sym;
        const char *name = dwfl_module_addrinfo(s->mod, addr, &off, &sym, NULL, NULL, NULL);
        out->function = keep(name);
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
