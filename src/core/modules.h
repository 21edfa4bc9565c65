/* modules.h — every shared object the process has had loaded, with its
 * build-id, kept after it is unloaded so its frames can still be named.
 * Owns: the registry and its generations (each load or unload seen bumps
 * the generation; a stack remembers the generation it was captured under,
 * so an address reused by a later library is not misread).
 * Must never allocate through the hooked allocator and never wait on a lock
 * from a hook: the loader may hold its own lock while calling malloc. */
#ifndef ML_MODULES_H
#define ML_MODULES_H

#include "common/common.h"
#include <stdatomic.h>

#define ML_BUILD_ID_MAX 32
#define ML_MODULES_MAX 16384 /* modules registered over the process's life; later ones are not */

typedef struct {
    uintptr_t bias;               /* load bias (dlpi_addr) */
    uintptr_t lo, hi;             /* span of the PT_LOAD segments, absolute */
    const char *path;             /* as the loader named it; the executable's from /proc/self/exe */
    uint8_t build_id[ML_BUILD_ID_MAX];
    uint8_t build_id_len;
    uint32_t added_gen;
    _Atomic uint32_t removed_gen; /* 0 while loaded */
    uint32_t seen_epoch;          /* private to the refresh */
} ml_module_t;

void ml_modules_init(void);

/* Checks the loader's add/remove counters and, when they moved, records the
 * new modules and the removed ones. Cheap when nothing changed. `wait`
 * false (from hooks) gives up at once when another thread is refreshing.
 * Returns the current generation. */
uint32_t ml_modules_sync(bool wait);

/* The loader's own counters of modules loaded and unloaded so far
 * (dl_iterate_phdr's dlpi_adds and dlpi_subs): cheap, no lock of ours. */
void ml_modules_loader_counts(unsigned long long *adds, unsigned long long *subs);

/* The current generation, as the last refresh left it (one load: no look
 * at the loader, so it suits threads that must not wait for its lock). */
uint32_t ml_modules_generation(void);

/* Index of the module that held `pc` at generation `gen`, or -1. When
 * none did yet, the first module registered at pc after `gen`: a hook
 * that found the registry busy took pc before its module was registered. */
int ml_modules_find(uintptr_t pc, uint32_t gen);

/* The loaded module that holds `pc` now, and pc's offset from its load
 * bias. For hooks: lock-free (a sorted table of loaded modules, republished
 * after each change); when pc is in none of them, the registry is
 * refreshed once without waiting and asked again. False when pc is still
 * in no known module (JIT code). A return address on the stack is always
 * in a loaded module: code cannot be unloaded while a frame will return
 * to it, so "now" is the module the frame belongs to. */
bool ml_modules_locate(uintptr_t pc, uint32_t *index, uintptr_t *offset);

/* Bumped (release) whenever code is unloaded (dlclose, or a removal the
 * registry notices): raw return addresses remembered before may now mean
 * another module's code. */
extern _Atomic uint32_t ml_code_epoch;
void ml_modules_unloaded(void);

/* Called with each module the registry adds, by whichever thread refreshed
 * it (a hook or the dumper), with the refresh lock held (not the loader's):
 * it must not lock, allocate or call the loader. One observer (python.c's). */
void ml_modules_set_observer(void (*fn)(const ml_module_t *m));

uint32_t ml_modules_count(void);
const ml_module_t *ml_modules_get(uint32_t index);

/* Lower-case hex of the build-id into buf (cap >= 2*ML_BUILD_ID_MAX+1); "" if none. */
char *ml_build_id_hex(const ml_module_t *m, char *buf, size_t cap);

/* After fork in the child: the lock may have been held by a thread that no
 * longer exists. */
void ml_modules_after_fork_child(void);

#endif
