/* pyversions.c — the layouts of the CPython versions memledger reads (see
 * pyversions.h). The figures are offsetof() values from each version's
 * headers (x86-64, default build: not debug, not free-threaded); Debian's
 * 3.11 build has the same layout as upstream 3.11. */
#include "python/pyversions.h"

#include <string.h>

static const ml_pylayout_t builtin[] = {
    {.hex = 0x0308, .frames = ML_PYF_OBJECT, .lines = ML_PYL_LNOTAB,
     .ts_frame = 24, .cf_current = -1, .fr_back = 24, .fr_code = 32, .fr_instr = 104,
     .fr_owner = -1, .fr_is_entry = -1, .lasti_bytes = 1,
     .co_filename = 104, .co_name = 112, .co_qualname = -1, .co_firstlineno = 40, .co_lines = 120,
     .co_code_adaptive = -1, .uni_state = 32, .uni_ascii_size = 48, .uni_compact_size = 72,
     .bytes_size = 16, .bytes_sval = 32,
     .gc_in_runtime = 344, .gc_in_interp = -1, .gc_enabled = 12, .gc_count0 = 44, .gc_stride = 24},
    {.hex = 0x0309, .frames = ML_PYF_OBJECT, .lines = ML_PYL_LNOTAB,
     .ts_frame = 24, .cf_current = -1, .fr_back = 24, .fr_code = 32, .fr_instr = 104,
     .fr_owner = -1, .fr_is_entry = -1, .lasti_bytes = 1,
     .co_filename = 104, .co_name = 112, .co_qualname = -1, .co_firstlineno = 40, .co_lines = 120,
     .co_code_adaptive = -1, .uni_state = 32, .uni_ascii_size = 48, .uni_compact_size = 72,
     .bytes_size = 16, .bytes_sval = 32,
     .gc_in_runtime = -1, .gc_in_interp = 616, .gc_enabled = 12, .gc_count0 = 44, .gc_stride = 24},
    {.hex = 0x030a, .frames = ML_PYF_OBJECT, .lines = ML_PYL_LINETABLE,
     .ts_frame = 24, .cf_current = -1, .fr_back = 24, .fr_code = 32, .fr_instr = 96,
     .fr_owner = -1, .fr_is_entry = -1, .lasti_bytes = 2,
     .co_filename = 104, .co_name = 112, .co_qualname = -1, .co_firstlineno = 40, .co_lines = 120,
     .co_code_adaptive = -1, .uni_state = 32, .uni_ascii_size = 48, .uni_compact_size = 72,
     .bytes_size = 16, .bytes_sval = 32,
     .gc_in_runtime = -1, .gc_in_interp = 616, .gc_enabled = 12, .gc_count0 = 44, .gc_stride = 24},
    {.hex = 0x030b, .frames = ML_PYF_ENTRY, .lines = ML_PYL_LOCATIONS,
     .ts_frame = 56, .cf_current = 8, .fr_back = 48, .fr_code = 32, .fr_instr = 56,
     .fr_owner = 69, .fr_is_entry = 68, .lasti_bytes = 0,
     .co_filename = 112, .co_name = 120, .co_qualname = 128, .co_firstlineno = 72, .co_lines = 136,
     .co_code_adaptive = 184, .uni_state = 32, .uni_ascii_size = 48, .uni_compact_size = 72,
     .bytes_size = 16, .bytes_sval = 32,
     .gc_in_runtime = -1, .gc_in_interp = 648, .gc_enabled = 12, .gc_count0 = 44, .gc_stride = 24},
    {.hex = 0x030c, .frames = ML_PYF_CSTACK, .lines = ML_PYL_LOCATIONS,
     .ts_frame = 56, .cf_current = 0, .fr_back = 8, .fr_code = 0, .fr_instr = 56,
     .fr_owner = 70, .fr_is_entry = -1, .lasti_bytes = 0,
     .co_filename = 112, .co_name = 120, .co_qualname = 128, .co_firstlineno = 68, .co_lines = 136,
     .co_code_adaptive = 192, .uni_state = 32, .uni_ascii_size = 40, .uni_compact_size = 56,
     .bytes_size = 16, .bytes_sval = 32,
     .gc_in_runtime = -1, .gc_in_interp = 112, .gc_enabled = 12, .gc_count0 = 44, .gc_stride = 24},
};

const ml_pylayout_t *ml_pylayout_builtin(unsigned hex)
{
    for (size_t i = 0; i < ML_ARRAY_LEN(builtin); i++)
        if (builtin[i].hex == hex)
            return &builtin[i];
    return NULL;
}

/* The 3.13 _Py_DebugOffsets, as the interpreter lays it out: every field a
 * uint64_t, groups one after the other, each group opening with its size. */
typedef struct {
    char cookie[8];
    uint64_t version, free_threaded;
    struct { uint64_t size, finalizing, interpreters_head; } runtime_state;
    struct {
        uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins, ceval_gil,
            gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked,
            gil_runtime_state_holder;
    } interpreter_state;
    struct {
        uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id,
            datastack_chunk, status;
    } thread_state;
    struct { uint64_t size, previous, executable, instr_ptr, localsplus, owner; } interpreter_frame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
            localspluskinds, co_code_adaptive;
    } code_object;
    struct { uint64_t size, ob_type; } pyobject;
    struct { uint64_t size, tp_name, tp_repr, tp_flags; } type_object;
    struct { uint64_t size, ob_item, ob_size; } tuple_object, list_object;
    struct { uint64_t size, ma_keys, ma_values; } dict_object;
    struct { uint64_t size, ob_fval; } float_object;
    struct { uint64_t size, lv_tag, ob_digit; } long_object;
    struct { uint64_t size, ob_size, ob_sval; } bytes_object;
    struct { uint64_t size, state, length, asciiobject_size; } unicode_object;
    struct { uint64_t size, collecting; } gc;
} debug_offsets_313_t;

static bool fits(uint64_t v, uint64_t limit) { return v < limit && v < INT16_MAX; }

bool ml_pylayout_from_debug_offsets(const void *runtime, unsigned hex, ml_pylayout_t *out)
{
    const debug_offsets_313_t *d = runtime;
    if (hex != 0x030d || memcmp(d->cookie, "xdebugpy", 8) != 0 || (d->version >> 16) != hex ||
        d->free_threaded)
        return false;
    /* Every offset must lie inside the structure it is an offset of: a
     * debug offsets block that says otherwise is not the one described here. */
    if (!fits(d->thread_state.current_frame, d->thread_state.size) ||
        !fits(d->interpreter_frame.previous, d->interpreter_frame.size) ||
        !fits(d->interpreter_frame.executable, d->interpreter_frame.size) ||
        !fits(d->interpreter_frame.instr_ptr, d->interpreter_frame.size) ||
        !fits(d->interpreter_frame.owner, d->interpreter_frame.size) ||
        !fits(d->code_object.filename, d->code_object.size) ||
        !fits(d->code_object.name, d->code_object.size) ||
        !fits(d->code_object.qualname, d->code_object.size) ||
        !fits(d->code_object.linetable, d->code_object.size) ||
        !fits(d->code_object.firstlineno, d->code_object.size) ||
        !fits(d->code_object.co_code_adaptive, d->code_object.size + 1) ||
        !fits(d->unicode_object.state, d->unicode_object.size) ||
        !fits(d->unicode_object.asciiobject_size, d->unicode_object.size + 1) ||
        !fits(d->bytes_object.ob_size, d->bytes_object.size) ||
        !fits(d->bytes_object.ob_sval, d->bytes_object.size) ||
        !fits(d->interpreter_state.gc, d->interpreter_state.size))
        return false;
    memset(out, 0, sizeof *out);
    out->hex = hex;
    out->frames = ML_PYF_CSTACK;
    out->lines = ML_PYL_LOCATIONS;
    out->ts_frame = (int16_t)d->thread_state.current_frame;
    out->cf_current = -1;
    out->fr_back = (int16_t)d->interpreter_frame.previous;
    out->fr_code = (int16_t)d->interpreter_frame.executable;
    out->fr_instr = (int16_t)d->interpreter_frame.instr_ptr;
    out->fr_owner = (int16_t)d->interpreter_frame.owner;
    out->fr_is_entry = -1;
    out->co_filename = (int16_t)d->code_object.filename;
    out->co_name = (int16_t)d->code_object.name;
    out->co_qualname = (int16_t)d->code_object.qualname;
    out->co_firstlineno = (int16_t)d->code_object.firstlineno;
    out->co_lines = (int16_t)d->code_object.linetable;
    out->co_code_adaptive = (int16_t)d->code_object.co_code_adaptive;
    out->uni_state = (int16_t)d->unicode_object.state;
    out->uni_ascii_size = (int16_t)d->unicode_object.asciiobject_size;
    /* PyCompactUnicodeObject adds utf8_length and utf8 (not published) */
    out->uni_compact_size = (int16_t)(d->unicode_object.asciiobject_size + 16);
    out->bytes_size = (int16_t)d->bytes_object.ob_size;
    out->bytes_sval = (int16_t)d->bytes_object.ob_sval;
    out->gc_in_runtime = -1;
    out->gc_in_interp = (int16_t)d->interpreter_state.gc;
    /* inside struct _gc_runtime_state (not published): enabled and the
     * generations' counts, as in 3.12 */
    out->gc_enabled = 12;
    out->gc_count0 = 44;
    out->gc_stride = 24;
    return true;
}
