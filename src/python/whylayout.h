/* whylayout.h — where each CPython version keeps what `memledger why`
 * reads while it walks the object graph (python/whygraph.c).
 * Owns: the offsets of the type object, the gc's generation lists,
 * containers, functions, code objects, frames, instance attributes
 * (managed dicts and their values) and small ints, per version, from each
 * version's own headers (test/programs/pywhy_probe.c prints them from the
 * headers; test_pylayout.py's `why` part compares).
 * Must never guess: a version it does not know gets no layout, and `why`
 * then reports native ownership only. Reads no memory. */
#ifndef ML_WHYLAYOUT_H
#define ML_WHYLAYOUT_H

#include "common/common.h"

/* The same on every supported version (3.8-3.13, default builds, x86-64);
 * the probe test checks each against the headers. */
#define ML_PYW_OB_REFCNT 0
#define ML_PYW_OB_SIZE 16
#define ML_PYW_TP_NAME 24
#define ML_PYW_TP_BASICSIZE 32
#define ML_PYW_TP_ITEMSIZE 40
#define ML_PYW_TP_FLAGS 168
#define ML_PYW_TP_TRAVERSE 184
#define ML_PYW_TP_MEMBERS 240
#define ML_PYW_TP_BASE 256
#define ML_PYW_TP_DICT 264
#define ML_PYW_TP_DICTOFFSET 288
#define ML_PYW_GC_HEAD 16           /* sizeof(PyGC_Head): an object follows its gc header */
#define ML_PYW_GC_GEN0 24           /* generations[0].head in struct _gc_runtime_state */
#define ML_PYW_GC_GEN_STRIDE 24     /* sizeof(struct gc_generation) */
#define ML_PYW_GC_PERMANENT 104     /* permanent_generation.head (gc.freeze()) */
#define ML_PYW_GC_COLLECTING 200    /* int collecting */
#define ML_PYW_LIST_ITEMS 24
#define ML_PYW_TUPLE_ITEMS 24
#define ML_PYW_CELL_REF 16
#define ML_PYW_MODULE_DICT 16
#define ML_PYW_LONG_DIGITS 24
#define ML_PYW_FLOAT_VAL 16
#define ML_PYW_MEMBER_SIZE 40       /* sizeof(PyMemberDef): name at 0 */
#define ML_PYW_MEMBER_TYPE 8
#define ML_PYW_MEMBER_OFFSET 16
#define ML_PYW_BYTEARRAY_BYTES 32

/* tp_flags bits (object.h, the same on every supported version) */
#define ML_PYW_TPF_INLINE_VALUES (1ul << 2)   /* 3.13 */
#define ML_PYW_TPF_MANAGED_DICT (1ul << 4)    /* 3.11+ */
#define ML_PYW_TPF_HEAPTYPE (1ul << 9)
#define ML_PYW_TPF_HAVE_GC (1ul << 14)
#define ML_PYW_TPF_LONG_SUBCLASS (1ul << 24)
#define ML_PYW_TPF_LIST_SUBCLASS (1ul << 25)
#define ML_PYW_TPF_TUPLE_SUBCLASS (1ul << 26)
#define ML_PYW_TPF_BYTES_SUBCLASS (1ul << 27)
#define ML_PYW_TPF_UNICODE_SUBCLASS (1ul << 28)
#define ML_PYW_TPF_DICT_SUBCLASS (1ul << 29)
#define ML_PYW_TPF_TYPE_SUBCLASS (1ul << 31)

/* co_localspluskinds (3.11+) */
#define ML_PYW_CO_FAST_CELL 0x40
#define ML_PYW_CO_FAST_FREE 0x80

/* How a version keeps an instance's attributes when the class does not
 * give it a dict slot of its own (Py_TPFLAGS_MANAGED_DICT). */
enum ml_pyw_values {
    ML_PYW_VALUES_NONE,    /* 3.8-3.10: a real dict at tp_dictoffset */
    ML_PYW_VALUES_311,     /* values pointer at obj-32, dict pointer at obj-24 */
    ML_PYW_VALUES_312,     /* obj-24 holds the dict, or the values pointer - 1 (odd) */
    ML_PYW_VALUES_313,     /* inline values after the object (Py_TPFLAGS_INLINE_VALUES), dict at obj-24 */
};

typedef struct {
    unsigned hex;            /* 0x030b for 3.11 */
    uint8_t values;          /* enum ml_pyw_values */
    int16_t func_code, func_closure, func_qualname, func_globals;
    /* 3.8-3.10: the frame object's locals, and the code's names for them */
    int16_t co_nlocals, co_varnames, co_cellvars, co_freevars, f_localsplus;
    /* 3.11+: the interpreter frame's locals, and the code's names and kinds */
    int16_t co_localsplusnames, co_localspluskinds, co_nlocalsplus, co_nfreevars, if_localsplus;
    /* 3.11+: a class's shared attribute names, and the values they index */
    int16_t ht_cached_keys, dk_log2_index_bytes, dk_nentries, dk_indices, dv_values, dv_valid;
    int16_t long_tag;        /* 3.12+: lv_tag (ndigits << 3 | sign); -1: ob_size is the signed digit count */
} ml_pywhy_layout_t;

/* The layout for major.minor `hex` (0x0308 ... 0x030d), or NULL. */
const ml_pywhy_layout_t *ml_pywhy_layout(unsigned hex);

#endif
