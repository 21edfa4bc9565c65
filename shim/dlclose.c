/* shim/dlclose.c — notices libraries being unloaded.
 * Once a library is gone, another may be loaded at its addresses, and the
 * unwind rules learned for the old one would be wrong there; this hook tells
 * the rule service to start over, and the malloc-binding scan (init/rebind.h)
 * to look at the next lookup in any handle again. dlopen is deliberately not interposed: a
 * wrapper would change the caller whose RPATH the loader searches. Must
 * never do more than forward and notify. */
#include "common/common.h"
#include "core/modules.h"
#include "init/rebind.h"
#include "unwind/unwind_rules.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>

static int (*_Atomic real_dlclose)(void *);

/* The dlclose this hook forwards to: the next one after memledger. */
static int (*next_dlclose(void))(void *)
{
    int (*real)(void *) = atomic_load_explicit(&real_dlclose, memory_order_acquire);
    if (ML_UNLIKELY(!real)) {
        real = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
        atomic_store_explicit(&real_dlclose, real, memory_order_release);
    }
    return real;
}

ML_EXPORT int dlclose(void *handle)
{
    int (*real)(void *) = next_dlclose();
    int r = real ? real(handle) : -1;
    if (r == 0) {
        ml_modules_unloaded(); /* raw addresses the caches remember may be reused */
        ml_unwind_rules_invalidate();
        ml_rebind_forget_handles(); /* and the handle, by a later dlopen */
    }
    return r;
}

ML_OWN_ALIAS(dlclose, own_dlclose);

/* For shim/dlsym.c: dlsym(dlopen("libc.so.6"), "dlclose") finds the C
 * library's own dlclose, past this hook; an unload through it would go
 * unnoticed until the module registry next looks, and a library loaded at
 * the freed addresses meanwhile would be taken for the old one. */
void *ml_shim_dlclose_entry(void *found) { return found && found == (void *)next_dlclose() ? (void *)own_dlclose : found; }
