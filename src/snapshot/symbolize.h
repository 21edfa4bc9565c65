/* symbolize.h — names for native frames: function from the ELF symbol
 * tables (.symtab, or .dynsym in stripped libraries); file:line and the
 * functions inlined at the address from DWARF (in the file or its separate
 * debuginfo), through elfutils' libdwfl and libdw.
 * Owns: a cache of answers (module and address to names it copied); the
 * module files it reads are modfile.h's, shared with the unwind rules.
 * Runs only in the dumper (or a thread asking for a snapshot): it allocates,
 * so it must never be reached from a hook. */
#ifndef ML_SYMBOLIZE_H
#define ML_SYMBOLIZE_H

#include "common/common.h"

/* A function inlined at an address: its name (the linkage name, mangled as
 * in the file, else the plain name), and the line running in it there. */
typedef struct {
    const char *function; /* NULL when unknown; owned by the symbolizer */
    const char *file;     /* NULL when unknown */
    int line;             /* 0 when unknown */
} ml_inlined_t;

typedef struct {
    const char *function; /* NULL when unknown; owned by the symbolizer */
    const char *file;     /* NULL when unknown */
    int line;             /* 0 when unknown */
    /* The functions inlined at the address (DWARF's inlined subroutines),
     * innermost first; the last was inlined into `function`, and then
     * file:line is where, in `function`, it was called. None without
     * DWARF or where nothing was inlined. Owned by the symbolizer. */
    uint32_t ninlined;
    const ml_inlined_t *inlined;
} ml_symbol_t;

/* Names the code at `pc` in module `mod` (a modules.h index). `pc` is a
 * return address: the call instruction before it is what gets named. */
void ml_symbolize(uint32_t mod, uintptr_t pc, ml_symbol_t *out);

/* Forgets everything (after fork: a session may have been half-updated by
 * the parent's dumper). Leaks the old state rather than touch it. */
void ml_symbolize_reset(void);

#endif
