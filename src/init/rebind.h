/* rebind.h — malloc-family bindings that lead past memledger's hooks.
 * Owns: reading, in each module the process loads, the slots (GOT entries
 * and absolute pointers) that its relocations bound to a malloc-family
 * name; pointing those that bypass the hooks (a library opened with
 * RTLD_DEEPBIND binds malloc and free straight to libc) at the hooks
 * instead, when the hook forwards the call to the very function the slot
 * leads to; and naming, in every snapshot (`malloc_bypass` lines) and once
 * on stderr, a module whose slots lead to some other allocator, whose
 * allocations are therefore not seen.
 * Must never run inside an allocation hook (it calls the loader and
 * mprotect), never wait for another thread that scans, and never change
 * what a call does: only which code sees it on its way. */
#ifndef ML_REBIND_H
#define ML_REBIND_H

#include "common/common.h"

/* memledger's own entry points for the malloc family, as the shim defines
 * them (never an executable's PLT entry that stands for their address). */
typedef void (*ml_rebind_fn)(void);
typedef struct {
    ml_rebind_fn malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc,
        pvalloc, malloc_usable_size;
} ml_rebind_hooks_t;

/* The shim hands them in from a constructor that runs before memledger's
 * (as shim/pymem.c does); without them nothing is rewritten. */
void ml_rebind_offer(const ml_rebind_hooks_t *hooks);

/* Learns the hooks and what they forward to, scans the modules loaded so
 * far, and registers the snapshot header and the dumper service (a scan of
 * the modules loaded since, each time the dumper thread wakes, so before
 * every snapshot). Call once tracking is set up. */
void ml_rebind_init(void);

/* From the dlsym hook, for a lookup in `handle` (a dlopen handle): the
 * first lookup in a handle scans the modules loaded since the last scan,
 * so that a library's slots point at the hooks before the program first
 * calls into it. Cheap when the handle was seen: one hashed load. */
void ml_rebind_handle(void *handle);

/* From the dlclose hook: a handle closed may come back from a later dlopen
 * for another library, so the handles seen are forgotten. */
void ml_rebind_forget_handles(void);

/* After fork, in the child: a scan another thread had under way is gone. */
void ml_rebind_after_fork_child(void);

#endif
