/* pylayout_dump.c — memledger's layout of one CPython version, in the form
 * test/programs/pyprobe.c prints, for test_pylayout.py. For a version that
 * publishes _Py_DebugOffsets, argv[2] names its libpython, which is loaded
 * (not started) to read them from _PyRuntime. */
#include "python/pyversions.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    unsigned hex = (unsigned)strtoul(argv[1], NULL, 16);
    const ml_pylayout_t *L = ml_pylayout_builtin(hex);
    ml_pylayout_t from_debug;
    if (!L && argc > 2) {
        void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        void *rt = h ? dlsym(h, "_PyRuntime") : NULL;
        if (!rt) {
            fprintf(stderr, "pylayout_dump: no _PyRuntime in %s\n", argv[2]);
            return 1;
        }
        if (!ml_pylayout_from_debug_offsets(rt, hex, &from_debug)) {
            fprintf(stderr, "pylayout_dump: %s: debug offsets not usable\n", argv[2]);
            return 1;
        }
        L = &from_debug;
    }
    if (!L) {
        fprintf(stderr, "pylayout_dump: no layout for %x\n", hex);
        return 1;
    }
#define P(f) printf(#f " %ld\n", (long)L->f)
    printf("hex %ld\n", (long)L->hex);
    P(ts_frame); P(cf_current); P(fr_back); P(fr_code); P(fr_instr); P(fr_owner); P(fr_is_entry);
    P(co_qualname); P(co_code_adaptive); P(co_filename); P(co_name); P(co_firstlineno); P(co_lines);
    P(uni_state); P(uni_ascii_size); P(uni_compact_size); P(bytes_size); P(bytes_sval);
    P(gc_in_runtime); P(gc_in_interp); P(gc_enabled); P(gc_count0); P(gc_stride);
    printf("ob_type %d\nuni_length %d\n", ML_PY_OB_TYPE, ML_PY_UNI_LENGTH);
    if (L->frames == ML_PYF_CSTACK)
        printf("owned_by_cstack %d\n", ML_PY_OWNED_BY_CSTACK);
    printf("uni_state_bits %u\n", 4u << ML_PY_UNI_KIND_SHIFT | 1u << ML_PY_UNI_COMPACT_BIT | 1u << ML_PY_UNI_ASCII_BIT);
    return 0;
}
