/* symbolize.c — names for native frames (see symbolize.h), from the
 * module's file as modfile.c keeps it open: the function from its sorted
 * symbols, file:line from libdwfl. What it finds is copied into a cache
 * keyed by module and address, so a frame is looked up in the file once,
 * and its name outlives the file being released (an unloaded module).
 * Dumper-side only: allocates freely. */

#include "snapshot/symbolize.h"
#include "snapshot/modfile.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t mod;
    uintptr_t pc;
    ml_symbol_t sym;
    bool used;
} cache_entry_t;

static cache_entry_t *cache;
static size_t cache_cap, cache_used;

void ml_symbolize_reset(void)
{
    cache = NULL;
    cache_cap = cache_used = 0;
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
    ml_modfile_t *f = ml_modfile_lock(mod, true, NULL);
    if (f) {
        GElf_Addr addr = pc - 1;
        out->function = keep(ml_modfile_function(f, addr));
        Dwfl_Line *line = dwfl_module_getsrc(ml_modfile_dwfl(f), addr);
        if (line) {
            int lineno = 0;
            const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
            if (file) {
                out->file = keep(file);
                out->line = lineno;
            }
        }
        ml_modfile_unlock(f);
    }
    if (cache_cap && cache_used * 2 < cache_cap) {
        cache[j].used = true;
        cache[j].mod = mod;
        cache[j].pc = pc;
        cache[j].sym = *out;
        cache_used++;
    }
}
