/* modfile.h — each module's file, opened once for everyone who reads it:
 * the unwind rules (CFI from .eh_frame) and the symbolizer (symbol table,
 * DWARF lines, separate debuginfo).
 * Owns: per module of the registry (a modules.h index stands for one load
 * of one file: its path, load bias and build-id), one libdwfl session
 * reported at the module's load bias, the CFI reader and a sorted copy of
 * the function symbols made from it, and a lock per module held around
 * every use of them (libdw handles are not for concurrent use).
 * Allocates: only from rule computation (a hook that won the rule lock, or
 * memledger's thread) and from the dumper or a snapshot's caller; never
 * from the bookkeeping path. Must never make a hook wait: a hook asks with
 * wait false and is told the module is busy, and tries again later.
 * Releases the handles of unloaded modules (ml_modfile_sweep), so what it
 * holds follows what the process has loaded, not what it ever loaded. */
#ifndef ML_MODFILE_H
#define ML_MODFILE_H

#include "common/common.h"
#include <elfutils/libdwfl.h>

typedef struct ml_modfile ml_modfile_t;

/* Registers the sweep with the dumper thread (after every wake-up, never
 * during a snapshot; the dumper also sweeps after each snapshot). */
void ml_modfile_init(void);

/* Module `mod`'s file (opened on first use), locked for the caller until
 * ml_modfile_unlock. Returns NULL when there is none to read (the vDSO, a
 * file that is gone, or one replaced since it was loaded: another
 * build-id), or, with `wait` false, when another thread is using it: then
 * *busy (when given) is set, and asking later may succeed. `wait` true
 * blocks while another thread uses the module (the dumper and the rule
 * service; never a hook). */
ml_modfile_t *ml_modfile_lock(uint32_t mod, bool wait, bool *busy);
void ml_modfile_unlock(ml_modfile_t *f);

/* What a locked file offers; valid until it is unlocked. */

/* The libdwfl module, reported at the load bias: it takes absolute
 * addresses (lines, inlined scopes). */
Dwfl_Module *ml_modfile_dwfl(ml_modfile_t *f);

/* The .eh_frame CFI, or NULL when the file has none; *bias is what to
 * subtract from an absolute address to look it up. */
Dwarf_CFI *ml_modfile_eh_cfi(ml_modfile_t *f, Dwarf_Addr *bias);

/* The name of the function holding absolute address `addr`, from the
 * symbol table (.symtab, or .dynsym when stripped), or NULL. */
const char *ml_modfile_function(ml_modfile_t *f, GElf_Addr addr);

/* Releases the handles of modules the registry lists as unloaded (a later
 * ml_modfile_lock opens the file again). Cheap when the registry has not
 * changed since the last sweep and nothing was opened for an unloaded
 * module meanwhile. Run where no snapshot is being written (the dumper's
 * exclusive services), so a snapshot never loses a file it is naming
 * frames from; it waits for no lock another thread may hold long. */
void ml_modfile_sweep(void);

/* Figures for tests: files open now, files opened and released so far. */
void ml_modfile_stats(uint32_t *open, uint64_t *opened, uint64_t *released);

/* After fork in the child: a module whose lock a parent thread held may be
 * half updated; it is forgotten (leaked, not touched) and its lock made
 * anew. The others stay open and shared with the parent. */
void ml_modfile_after_fork_child(void);

#endif
