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
#include <stddef.h>

ML_EXPORT int dlclose(void *handle)
{
    static int (*real)(void *);
    if (ML_UNLIKELY(!real))
        real = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    int r = real ? real(handle) : -1;
    if (r == 0) {
        ml_modules_unloaded(); /* raw addresses the caches remember may be reused */
        ml_unwind_rules_invalidate();
        ml_rebind_forget_handles(); /* and the handle, by a later dlopen */
    }
    return r;
}
