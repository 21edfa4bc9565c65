/* pymem.c — the state the PyMem hooks share with the rest of the library
 * (see pymem.h): what each hook forwards to, whether the OBJ hook has run,
 * and the hook set the shim offered. Defined here, below the shim, so that
 * python.c and pyframes.c read it without naming the shim. Must never
 * hold behaviour beyond handing the offered set out. */
#include "python/pymem.h"

ml_pymem_alloc_t ml_pymem_next[ML_PYMEM_DOMAINS];
_Atomic bool ml_pymem_obj_seen;
static const ml_pymem_alloc_t *offered;

void ml_pymem_offer(const ml_pymem_alloc_t hooks[ML_PYMEM_DOMAINS]) { offered = hooks; }

bool ml_pymem_offered(void) { return offered != NULL; }

void ml_pymem_hooks(int d, ml_pymem_alloc_t *out)
{
    *out = offered[d];
    out->ctx = ml_pymem_next[d].ctx;
}

bool ml_pymem_is_hook(int d, const ml_pymem_alloc_t *a) { return offered && a->malloc == offered[d].malloc; }
