/* symbolize.c — libdwfl-backed names for native frames (see symbolize.h).
 * Each module gets its own Dwfl session, reported at the module's load
 * bias, so a module that was unloaded (and whose address range another now
 * uses) is still named from its file. Dumper-side only: allocates freely. */

#include "symbolize.h"
#include "modules.h"

#include <elfutils/libdwfl.h>
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
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
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
