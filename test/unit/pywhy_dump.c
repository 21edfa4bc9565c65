/* pywhy_dump.c — src/python/whylayout.c's layout of one CPython version, in
 * the form test/programs/pywhy_probe.c prints, for test_pywhy_layout.py. */
#include "python/whylayout.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    unsigned hex = (unsigned)strtoul(argv[1], NULL, 16);
    const ml_pywhy_layout_t *L = ml_pywhy_layout(hex);
    if (!L) {
        fprintf(stderr, "pywhy_dump: no layout for %x\n", hex);
        return 1;
    }
#define C(name, v) printf("%s %ld\n", name, (long)(v))
#define F(f) printf(#f " %ld\n", (long)L->f)
    C("hex", L->hex);
    C("ob_refcnt", ML_PYW_OB_REFCNT); C("ob_size", ML_PYW_OB_SIZE);
    C("tp_name", ML_PYW_TP_NAME); C("tp_basicsize", ML_PYW_TP_BASICSIZE); C("tp_itemsize", ML_PYW_TP_ITEMSIZE);
    C("tp_flags", ML_PYW_TP_FLAGS); C("tp_traverse", ML_PYW_TP_TRAVERSE); C("tp_members", ML_PYW_TP_MEMBERS);
    C("tp_base", ML_PYW_TP_BASE); C("tp_dict", ML_PYW_TP_DICT); C("tp_dictoffset", ML_PYW_TP_DICTOFFSET);
    C("gc_head", ML_PYW_GC_HEAD); C("gc_gen0", ML_PYW_GC_GEN0); C("gc_gen_stride", ML_PYW_GC_GEN_STRIDE);
    C("gc_permanent", ML_PYW_GC_PERMANENT); C("gc_collecting", ML_PYW_GC_COLLECTING);
    C("list_items", ML_PYW_LIST_ITEMS); C("tuple_items", ML_PYW_TUPLE_ITEMS); C("cell_ref", ML_PYW_CELL_REF);
    C("module_dict", ML_PYW_MODULE_DICT); C("float_val", ML_PYW_FLOAT_VAL);
    C("member_size", ML_PYW_MEMBER_SIZE); C("member_type", ML_PYW_MEMBER_TYPE);
    C("member_offset", ML_PYW_MEMBER_OFFSET); C("bytearray_bytes", ML_PYW_BYTEARRAY_BYTES);
    C("long_digits", ML_PYW_LONG_DIGITS);
    F(func_code); F(func_closure); F(func_qualname); F(func_globals);
    F(ht_cached_keys); F(long_tag);
    C("values", L->values);
    if (L->f_localsplus >= 0) {
        F(co_nlocals); F(co_varnames); F(co_cellvars); F(co_freevars); F(f_localsplus);
    } else {
        F(co_localsplusnames); F(co_localspluskinds); F(co_nlocalsplus); F(co_nfreevars); F(if_localsplus);
        F(dk_log2_index_bytes); F(dk_nentries); F(dk_indices); F(dv_values);
        C("co_fast_cell", ML_PYW_CO_FAST_CELL); C("co_fast_free", ML_PYW_CO_FAST_FREE);
        C("tpf_managed_dict", ML_PYW_TPF_MANAGED_DICT);
    }
    if (L->dv_valid >= 0) {
        F(dv_valid);
        C("tpf_inline_values", ML_PYW_TPF_INLINE_VALUES);
    }
    return 0;
}
