/* whylayout.c — the per-version offsets `memledger why` reads (see
 * whylayout.h): offsetof() values from each version's headers (x86-64,
 * default build), Debian's 3.11 the same as upstream's. */
#include "python/whylayout.h"

static const ml_pywhy_layout_t layouts[] = {
    {.hex = 0x0308, .values = ML_PYW_VALUES_NONE, .func_code = 16, .func_closure = 48, .func_qualname = 104,
     .func_globals = 24, .co_nlocals = 28, .co_varnames = 72, .co_cellvars = 88, .co_freevars = 80,
     .f_localsplus = 360, .co_localsplusnames = -1, .co_localspluskinds = -1, .co_nlocalsplus = -1,
     .co_nfreevars = -1, .if_localsplus = -1, .ht_cached_keys = -1, .dk_log2_index_bytes = -1,
     .dk_nentries = -1, .dk_indices = -1, .dv_values = -1, .dv_valid = -1, .long_tag = -1},
    {.hex = 0x0309, .values = ML_PYW_VALUES_NONE, .func_code = 16, .func_closure = 48, .func_qualname = 104,
     .func_globals = 24, .co_nlocals = 28, .co_varnames = 72, .co_cellvars = 88, .co_freevars = 80,
     .f_localsplus = 360, .co_localsplusnames = -1, .co_localspluskinds = -1, .co_nlocalsplus = -1,
     .co_nfreevars = -1, .if_localsplus = -1, .ht_cached_keys = -1, .dk_log2_index_bytes = -1,
     .dk_nentries = -1, .dk_indices = -1, .dv_values = -1, .dv_valid = -1, .long_tag = -1},
    {.hex = 0x030a, .values = ML_PYW_VALUES_NONE, .func_code = 48, .func_closure = 72, .func_qualname = 40,
     .func_globals = 16, .co_nlocals = 28, .co_varnames = 72, .co_cellvars = 88, .co_freevars = 80,
     .f_localsplus = 352, .co_localsplusnames = -1, .co_localspluskinds = -1, .co_nlocalsplus = -1,
     .co_nfreevars = -1, .if_localsplus = -1, .ht_cached_keys = -1, .dk_log2_index_bytes = -1,
     .dk_nentries = -1, .dk_indices = -1, .dv_values = -1, .dv_valid = -1, .long_tag = -1},
    {.hex = 0x030b, .values = ML_PYW_VALUES_311, .func_code = 48, .func_closure = 72, .func_qualname = 40,
     .func_globals = 16, .co_nlocals = -1, .co_varnames = -1, .co_cellvars = -1, .co_freevars = -1,
     .f_localsplus = -1, .co_localsplusnames = 96, .co_localspluskinds = 104, .co_nlocalsplus = 76,
     .co_nfreevars = 92, .if_localsplus = 72, .ht_cached_keys = 872, .dk_log2_index_bytes = 9,
     .dk_nentries = 24, .dk_indices = 32, .dv_values = 0, .dv_valid = -1, .long_tag = -1},
    {.hex = 0x030c, .values = ML_PYW_VALUES_312, .func_code = 48, .func_closure = 72, .func_qualname = 40,
     .func_globals = 16, .co_nlocals = -1, .co_varnames = -1, .co_cellvars = -1, .co_freevars = -1,
     .f_localsplus = -1, .co_localsplusnames = 96, .co_localspluskinds = 104, .co_nlocalsplus = 72,
     .co_nfreevars = 88, .if_localsplus = 72, .ht_cached_keys = 880, .dk_log2_index_bytes = 9,
     .dk_nentries = 24, .dk_indices = 32, .dv_values = 0, .dv_valid = -1, .long_tag = 16},
    {.hex = 0x030d, .values = ML_PYW_VALUES_313, .func_code = 48, .func_closure = 72, .func_qualname = 40,
     .func_globals = 16, .co_nlocals = -1, .co_varnames = -1, .co_cellvars = -1, .co_freevars = -1,
     .f_localsplus = -1, .co_localsplusnames = 96, .co_localspluskinds = 104, .co_nlocalsplus = 72,
     .co_nfreevars = 88, .if_localsplus = 72, .ht_cached_keys = 880, .dk_log2_index_bytes = 9,
     .dk_nentries = 24, .dk_indices = 32, .dv_values = 8, .dv_valid = 3, .long_tag = 16},
};

const ml_pywhy_layout_t *ml_pywhy_layout(unsigned hex)
{
    for (size_t i = 0; i < ML_ARRAY_LEN(layouts); i++)
        if (layouts[i].hex == hex)
            return &layouts[i];
    return NULL;
}
