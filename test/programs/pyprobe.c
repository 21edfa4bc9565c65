/* pyprobe.c — the offsets memledger reads, from a CPython's own headers.
 * test_pylayout.py compiles this against each installed version's include
 * directory (with Py_BUILD_CORE, for the internal structures) and compares
 * its output with memledger's built-in table (pylayout_dump). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
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
#if PY_VERSION_HEX < 0x030B0000
    P("ts_frame", offsetof(PyThreadState, frame));
    P("cf_current", -1);
    P("fr_back", offsetof(PyFrameObject, f_back));
    P("fr_code", offsetof(PyFrameObject, f_code));
    P("fr_instr", offsetof(PyFrameObject, f_lasti));
    P("fr_owner", -1);
    P("fr_is_entry", -1);
    P("co_qualname", -1);
    P("co_code_adaptive", -1);
#elif PY_VERSION_HEX < 0x030D0000
    P("ts_frame", offsetof(PyThreadState, cframe));
    P("cf_current", offsetof(_PyCFrame, current_frame));
    P("fr_back", offsetof(_PyInterpreterFrame, previous));
    P("fr_code", offsetof(_PyInterpreterFrame, f_code));
    P("fr_instr", offsetof(_PyInterpreterFrame, prev_instr));
    P("fr_owner", offsetof(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030C0000
    P("fr_is_entry", offsetof(_PyInterpreterFrame, is_entry));
#else
    P("fr_is_entry", -1);
    P("owned_by_cstack", FRAME_OWNED_BY_CSTACK);
#endif
    P("co_qualname", offsetof(PyCodeObject, co_qualname));
    P("co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
#else
    P("ts_frame", offsetof(PyThreadState, current_frame));
    P("cf_current", -1);
    P("fr_back", offsetof(_PyInterpreterFrame, previous));
    P("fr_code", offsetof(_PyInterpreterFrame, f_executable));
    P("fr_instr", offsetof(_PyInterpreterFrame, instr_ptr));
    P("fr_owner", offsetof(_PyInterpreterFrame, owner));
    P("fr_is_entry", -1);
    P("owned_by_cstack", FRAME_OWNED_BY_CSTACK);
    P("co_qualname", offsetof(PyCodeObject, co_qualname));
    P("co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
#endif
    P("co_filename", offsetof(PyCodeObject, co_filename));
    P("co_name", offsetof(PyCodeObject, co_name));
    P("co_firstlineno", offsetof(PyCodeObject, co_firstlineno));
#if PY_VERSION_HEX < 0x030A0000
    P("co_lines", offsetof(PyCodeObject, co_lnotab));
#else
    P("co_lines", offsetof(PyCodeObject, co_linetable));
#endif
    P("ob_type", offsetof(PyObject, ob_type));
    P("uni_length", offsetof(PyASCIIObject, length));
    P("uni_state", offsetof(PyASCIIObject, state));
    P("uni_ascii_size", sizeof(PyASCIIObject));
    P("uni_compact_size", sizeof(PyCompactUnicodeObject));
    P("bytes_size", offsetof(PyVarObject, ob_size));
    P("bytes_sval", offsetof(PyBytesObject, ob_sval));
    struct _gc_runtime_state *g = NULL;
#if PY_VERSION_HEX < 0x03090000
    P("gc_in_runtime", offsetof(_PyRuntimeState, gc));
    P("gc_in_interp", -1);
#else
    P("gc_in_runtime", -1);
    P("gc_in_interp", offsetof(PyInterpreterState, gc));
#endif
    P("gc_enabled", (char *)&g->enabled - (char *)g);
    P("gc_count0", (char *)&g->generations[0].count - (char *)g);
    P("gc_stride", sizeof(struct gc_generation));
    /* the state bits copy_str reads: kind at bit 2, compact 5, ascii 6 */
    PyASCIIObject a;
    memset(&a, 0, sizeof a);
    a.state.kind = 4;
    a.state.compact = 1;
    a.state.ascii = 1;
    unsigned bits;
    memcpy(&bits, (char *)&a + offsetof(PyASCIIObject, state), sizeof bits);
    P("uni_state_bits", bits);
    return 0;
}
