/* pywhy_probe.c — the offsets `memledger why` reads, from a CPython's own
 * headers. test_pywhy_layout.py compiles this against each installed
 * version's include directory (with Py_BUILD_CORE, for the internal
 * structures) and compares its output with src/python/whylayout.c's table
 * (pywhy_dump). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "structmember.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#endif
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_gc.h"
#else
#include "internal/pycore_pystate.h"
#endif
#if PY_VERSION_HEX < 0x030B0000
#include "frameobject.h"
#endif

#define P(name, expr) printf("%s %ld\n", name, (long)(expr))

int main(void)
{
    P("hex", PY_VERSION_HEX >> 16);
    P("ob_refcnt", offsetof(PyObject, ob_refcnt));
    P("ob_size", offsetof(PyVarObject, ob_size));
    P("tp_name", offsetof(PyTypeObject, tp_name));
    P("tp_basicsize", offsetof(PyTypeObject, tp_basicsize));
    P("tp_itemsize", offsetof(PyTypeObject, tp_itemsize));
    P("tp_flags", offsetof(PyTypeObject, tp_flags));
    P("tp_traverse", offsetof(PyTypeObject, tp_traverse));
    P("tp_members", offsetof(PyTypeObject, tp_members));
    P("tp_base", offsetof(PyTypeObject, tp_base));
    P("tp_dict", offsetof(PyTypeObject, tp_dict));
    P("tp_dictoffset", offsetof(PyTypeObject, tp_dictoffset));
    P("gc_head", sizeof(PyGC_Head));
    struct _gc_runtime_state *g = NULL;
    P("gc_gen0", (char *)&g->generations[0].head - (char *)g);
    P("gc_gen_stride", sizeof(struct gc_generation));
    P("gc_permanent", (char *)&g->permanent_generation.head - (char *)g);
    P("gc_collecting", (char *)&g->collecting - (char *)g);
    P("list_items", offsetof(PyListObject, ob_item));
    P("tuple_items", offsetof(PyTupleObject, ob_item));
    P("cell_ref", offsetof(PyCellObject, ob_ref));
    P("module_dict", sizeof(PyObject)); /* md_dict follows the header (moduleobject.c) */
    P("float_val", offsetof(PyFloatObject, ob_fval));
    P("member_size", sizeof(PyMemberDef));
    P("member_type", offsetof(PyMemberDef, type));
    P("member_offset", offsetof(PyMemberDef, offset));
    P("bytearray_bytes", offsetof(PyByteArrayObject, ob_bytes));
    P("func_code", offsetof(PyFunctionObject, func_code));
    P("func_closure", offsetof(PyFunctionObject, func_closure));
    P("func_qualname", offsetof(PyFunctionObject, func_qualname));
    P("func_globals", offsetof(PyFunctionObject, func_globals));
#if PY_VERSION_HEX < 0x030B0000
    P("co_nlocals", offsetof(PyCodeObject, co_nlocals));
    P("co_varnames", offsetof(PyCodeObject, co_varnames));
    P("co_cellvars", offsetof(PyCodeObject, co_cellvars));
    P("co_freevars", offsetof(PyCodeObject, co_freevars));
    P("f_localsplus", offsetof(PyFrameObject, f_localsplus));
    P("ht_cached_keys", -1);
    P("values", 0);
#else
    P("co_localsplusnames", offsetof(PyCodeObject, co_localsplusnames));
    P("co_localspluskinds", offsetof(PyCodeObject, co_localspluskinds));
    P("co_nlocalsplus", offsetof(PyCodeObject, co_nlocalsplus));
    P("co_nfreevars", offsetof(PyCodeObject, co_nfreevars));
    P("if_localsplus", offsetof(_PyInterpreterFrame, localsplus));
    P("ht_cached_keys", offsetof(PyHeapTypeObject, ht_cached_keys));
    P("dk_log2_index_bytes", offsetof(PyDictKeysObject, dk_log2_index_bytes));
    P("dk_nentries", offsetof(PyDictKeysObject, dk_nentries));
    P("dk_indices", offsetof(PyDictKeysObject, dk_indices));
    P("dv_values", offsetof(PyDictValues, values));
    P("co_fast_cell", CO_FAST_CELL);
    P("co_fast_free", CO_FAST_FREE);
    P("tpf_managed_dict", Py_TPFLAGS_MANAGED_DICT);
#if PY_VERSION_HEX >= 0x030D0000
    P("dv_valid", offsetof(PyDictValues, valid));
    P("tpf_inline_values", Py_TPFLAGS_INLINE_VALUES);
    P("values", 3);
#elif PY_VERSION_HEX >= 0x030C0000
    P("values", 2);
#else
    P("values", 1);
#endif
#endif
#if PY_VERSION_HEX >= 0x030C0000
    P("long_digits", offsetof(PyLongObject, long_value.ob_digit));
    P("long_tag", offsetof(PyLongObject, long_value.lv_tag));
#else
    P("long_digits", offsetof(PyLongObject, ob_digit));
    P("long_tag", -1);
#endif
    return 0;
}
