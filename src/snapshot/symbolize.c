/* symbolize.c — names for native frames (see symbolize.h), from the
 * module's file as modfile.c keeps it open: the function from its sorted
 * symbols, file:line from libdwfl, the inlined functions from the DWARF
 * scopes (libdw) that hold the address. What it finds is copied into a cache
 * keyed by module and address, so a frame is looked up in the file once,
 * and its name outlives the file being released (an unloaded module).
 * Dumper-side only: allocates freely. */

#include "snapshot/symbolize.h"
#include "snapshot/modfile.h"

#include <dwarf.h>
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

/* A string attribute of `die`, or of the DIE it stands for: an inlined
 * subroutine names nothing itself, its abstract origin (and that one's
 * specification, for a C++ member) does. */
static const char *die_string(Dwarf_Die *die, unsigned name)
{
    Dwarf_Attribute attr;
    return dwarf_attr_integrate(die, name, &attr) ? dwarf_formstring(&attr) : NULL;
}

/* The function an inlined subroutine is: its linkage name first, mangled
 * as the ELF symbols are (the CLI demangles both alike), else its name (C
 * functions have no other). */
static const char *inlined_name(Dwarf_Die *die)
{
    const char *name = die_string(die, DW_AT_linkage_name);
    if (!name)
        name = die_string(die, DW_AT_MIPS_linkage_name); /* older GCC */
    return name ? name : die_string(die, DW_AT_name);
}

/* The place an inlined subroutine was called from, in its caller: its
 * DW_AT_call_file (an index into the CU's file table) and call_line. */
static void call_site(Dwarf_Die *cudie, Dwarf_Die *die, const char **file, int *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word v;
    *file = NULL;
    *line = 0;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_attr(die, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &v) == 0 &&
        dwarf_getsrcfiles(cudie, &files, &nfiles) == 0 && v < nfiles)
        *file = dwarf_filesrc(files, (size_t)v, NULL, NULL);
    if (dwarf_attr(die, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &v) == 0 && v <= INT32_MAX)
        *line = (int)v;
}

/* The functions inlined at `addr`, innermost first, into out->inlined; the
 * frame's own file:line becomes the call site in the real function (what
 * was the innermost code's line is the innermost inlined function's).
 * dwarf_getscopes finds the innermost scope holding the address, but past
 * an inlined subroutine it goes on with the scopes of that function's
 * abstract definition; the concrete chain (lexical blocks, inlined
 * subroutines, then the subprogram holding them all, where this stops) is
 * the innermost scope's own parents, dwarf_getscopes_die's answer. */
static void inlined_at(Dwfl_Module *mod, GElf_Addr addr, ml_symbol_t *out)
{
    Dwarf_Addr bias;
    Dwarf_Die *cudie = dwfl_module_addrdie(mod, addr, &bias);
    Dwarf_Die *scopes = NULL, innermost;
    int n = cudie ? dwarf_getscopes(cudie, addr - bias, &scopes) : 0;
    if (n > 0) {
        innermost = scopes[0];
        free(scopes);
        scopes = NULL;
        n = dwarf_getscopes_die(&innermost, &scopes);
    }
    int count = 0;
    for (int i = 0; i < n && dwarf_tag(&scopes[i]) != DW_TAG_subprogram; i++)
        count += dwarf_tag(&scopes[i]) == DW_TAG_inlined_subroutine;
    ml_inlined_t *v = count > 0 ? calloc((size_t)count, sizeof *v) : NULL;
    if (v) {
        const char *file = out->file;
        int line = out->line, k = 0;
        for (int i = 0; i < n && k < count; i++) {
            if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
                continue;
            const char *cfile;
            int cline;
            call_site(cudie, &scopes[i], &cfile, &cline);
            v[k++] = (ml_inlined_t){keep(inlined_name(&scopes[i])), file, line};
            file = keep(cfile); /* out->file (already kept) went to the innermost */
            line = cline;
        }
        out->file = file;
        out->line = line;
        out->inlined = v;
        out->ninlined = (uint32_t)k;
    }
    free(scopes);
}

void ml_symbolize(uint32_t mod, uintptr_t pc, ml_symbol_t *out)
{
    *out = (ml_symbol_t){NULL, NULL, 0, 0, NULL};
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
        inlined_at(ml_modfile_dwfl(f), addr, out);
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
