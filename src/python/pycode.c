/* pycode.c — code objects as serials, and naming them (see pycode.h).
 *
 * Why serials and not addresses: a stack is interned in the ledger by its
 * words, and lives as long as the process; a code object does not. When a
 * code object is freed and another one is created at the same address (a
 * module reloaded, a function compiled by exec in a loop), a stack holding
 * the raw address would be named after whichever object lives there when
 * the snapshot is written. So a stack holds a serial handed out the first
 * time a captured stack meets the code object, and the serial's record
 * (file, function, first line, a copy of the line table) is copied right
 * then, by the thread whose frame holds the code object alive. The
 * OBJ-domain free hook sees every code object being freed (they are plain
 * PyObject_Malloc blocks on every supported version: not gc-tracked) and
 * takes its address out of the table before the memory is released, so the
 * next code object there starts a new serial. Records are never freed:
 * old stacks stay nameable.
 *
 * When the OBJ hook is not in place (PYTHONMALLOC made Python replace it)
 * frees go unseen, so each entry also keeps a fingerprint of its code
 * object, from what it holds rather than where (a code object made at a
 * freed one's address often gets its strings at the freed strings'
 * addresses too): the length and first bytes of its file name, name and
 * line table, and its first line. An entry whose fingerprint no longer
 * matches is retired like a freed one. With the hook in place every
 * fingerprint is 0 and never decides.
 *
 * The table: open addressing, linear probing, in memory the library maps.
 * A key is the code address (8-aligned), 0 for empty, 1 for a deleted
 * entry, address|1 while its record is being made. An insert claims a slot
 * by compare-and-swap, makes the record, writes the value and then
 * publishes the key with release order, so a reader that sees the key sees
 * the value. Two threads meeting the same new code object at once may, in
 * a rare interleaving with a delete, both insert it: two serials with equal
 * names, which readers merge by name anyway.
 *
 * Cost on the hot path: a hash and one or two loads per Python frame. */
#include "python/pycode.h"
#include "common/io.h"
#include "core/sysmem.h"

#include <stdatomic.h>
#include <string.h>

#define SLOTS_LOG2 20            /* a million live code objects seen in stacks */
#define SLOTS (1u << SLOTS_LOG2)
#define MAX_PROBE 64
#define MAX_SERIALS (1u << 22)
#define ARENA_BYTES (128u << 20) /* reserved; touched as records are made */
#define MAX_STR 4096             /* characters copied from a name or path */
#define MAX_LINETABLE (1u << 20)

#define KEY_EMPTY 0
#define KEY_DELETED 1

typedef struct {
    _Atomic uint64_t key;
    _Atomic uint32_t val;  /* serial | ML_PYCODE_HIDDEN */
    _Atomic uint32_t fp;   /* ml_pycode_fingerprint of the code object */
} slot_t;

typedef struct {
    const char *file, *name;
    const uint8_t *lines;
    uint32_t nlines;
    int32_t first;
} rec_t;

#define LC_LOG2 16

uintptr_t ml_pycode_type;
static _Atomic uint64_t *line_cache;
_Atomic uint32_t ml_pycode_epoch = 1;
static slot_t *slots;
static const rec_t *_Atomic *recs;
static _Atomic uint32_t next_serial = 1;
static ml_arena_t arena;
static ml_pylayout_t L;
static uintptr_t str_type, bytes_type;
static _Atomic uint64_t n_interned, n_forgotten, n_dropped;

bool ml_pycode_init(const ml_pylayout_t *layout, uintptr_t code_type, uintptr_t s_type, uintptr_t b_type)
{
    if (!slots) {
        slots = ml_sysmem_map((size_t)SLOTS * sizeof *slots);
        recs = ml_sysmem_map((size_t)MAX_SERIALS * sizeof *recs);
        line_cache = ml_sysmem_map(sizeof *line_cache << LC_LOG2);
        if (!slots || !recs || !ml_arena_init(&arena, ARENA_BYTES))
            return false;
    }
    L = *layout;
    str_type = s_type;
    bytes_type = b_type;
    __atomic_store_n(&ml_pycode_type, code_type, __ATOMIC_RELEASE);
    return true;
}

static inline size_t slot_of(uintptr_t code)
{
    return (size_t)(((uint64_t)code >> 3) * 0x9e3779b97f4a7c15ull >> (64 - SLOTS_LOG2));
}

static inline uintptr_t rd_ptr(uintptr_t base, int off) { return *(const uintptr_t *)(base + (uintptr_t)off); }

/* ---- copying a record out of a live code object ---- */

/* A str object as UTF-8 in the arena. Names and paths of code objects are
 * compact strings (made by interning); anything else is not copied. */
static const char *copy_str(uintptr_t o)
{
    if (!o || (o & 7) || rd_ptr(o, ML_PY_OB_TYPE) != str_type)
        return NULL;
    int64_t len = *(const int64_t *)(o + ML_PY_UNI_LENGTH);
    uint32_t state = *(const uint32_t *)(o + (uintptr_t)L.uni_state);
    unsigned kind = (state >> ML_PY_UNI_KIND_SHIFT) & 7, compact = (state >> ML_PY_UNI_COMPACT_BIT) & 1,
             ascii = (state >> ML_PY_UNI_ASCII_BIT) & 1;
    if (!compact || len < 0 || (kind != 1 && kind != 2 && kind != 4))
        return NULL;
    if (len > MAX_STR)
        len = MAX_STR;
    const unsigned char *data = (const unsigned char *)(o + (uintptr_t)(ascii ? L.uni_ascii_size : L.uni_compact_size));
    char *s = ml_arena_alloc(&arena, (size_t)len * 4 + 1);
    if (!s)
        return NULL;
    size_t k = 0;
    for (int64_t i = 0; i < len; i++) {
        uint32_t c = kind == 1 ? data[i] : kind == 2 ? ((const uint16_t *)data)[i] : ((const uint32_t *)data)[i];
        k += ml_utf8_put(s + k, c > 0x10ffff ? 0xfffd : c);
    }
    s[k] = '\0';
    return s;
}

static void copy_lines(uintptr_t code, rec_t *r)
{
    uintptr_t b = rd_ptr(code, L.co_lines);
    if (!b || (b & 7) || rd_ptr(b, ML_PY_OB_TYPE) != bytes_type)
        return;
    int64_t n = *(const int64_t *)(b + (uintptr_t)L.bytes_size);
    if (n <= 0 || n > MAX_LINETABLE)
        return;
    uint8_t *t = ml_arena_alloc(&arena, (size_t)n);
    if (!t)
        return;
    memcpy(t, (const void *)(b + (uintptr_t)L.bytes_sval), (size_t)n);
    r->lines = t;
    r->nlines = (uint32_t)n;
}

/* Makes the record of the code object at `code`; returns its value
 * (serial | flags), or 0 when there is no room. */
static uint32_t make_record(uintptr_t code)
{
    uint32_t serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
    if (serial >= MAX_SERIALS)
        return 0;
    rec_t *r = ml_arena_alloc(&arena, sizeof *r);
    if (!r)
        return 0;
    r->file = copy_str(rd_ptr(code, L.co_filename));
    r->name = copy_str(rd_ptr(code, L.co_qualname >= 0 ? L.co_qualname : L.co_name));
    r->first = *(const int32_t *)(code + (uintptr_t)L.co_firstlineno);
    copy_lines(code, r);
    atomic_store_explicit(&recs[serial], r, memory_order_release);
    atomic_fetch_add_explicit(&n_interned, 1, memory_order_relaxed);
    /* 3.12+ runs a class's __init__ behind a small code object of its own
     * (file "<shim>"); a traceback does not show it, nor do we */
    bool hidden = r->file && strcmp(r->file, "<shim>") == 0;
    return serial | (hidden ? ML_PYCODE_HIDDEN : 0);
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0xff51afd7ed558ccdull; }

/* Up to 16 bytes of an object's data, never past its end. */
static uint64_t mix_data(uint64_t h, const unsigned char *p, int64_t len)
{
    h = mix(h, (uint64_t)len);
    for (int64_t i = 0; i < len && i < 16; i++)
        h = mix(h, p[i]);
    return h;
}

static uint64_t mix_str(uint64_t h, uintptr_t o)
{
    if (!o || (o & 7) || rd_ptr(o, ML_PY_OB_TYPE) != str_type)
        return mix(h, 1);
    int64_t len = *(const int64_t *)(o + ML_PY_UNI_LENGTH);
    uint32_t state = *(const uint32_t *)(o + (uintptr_t)L.uni_state);
    unsigned kind = (state >> ML_PY_UNI_KIND_SHIFT) & 7, ascii = (state >> ML_PY_UNI_ASCII_BIT) & 1;
    if (!((state >> ML_PY_UNI_COMPACT_BIT) & 1) || len < 0 || (kind != 1 && kind != 2 && kind != 4))
        return mix(h, 2);
    return mix_data(h, (const unsigned char *)(o + (uintptr_t)(ascii ? L.uni_ascii_size : L.uni_compact_size)),
                    len * kind);
}

uint32_t ml_pycode_fingerprint(uintptr_t code)
{
    uint64_t h = mix(0x243f6a8885a308d3ull, (uint64_t)*(const int32_t *)(code + (uintptr_t)L.co_firstlineno));
    h = mix_str(h, rd_ptr(code, L.co_filename));
    h = mix_str(h, rd_ptr(code, L.co_qualname >= 0 ? L.co_qualname : L.co_name));
    uintptr_t b = rd_ptr(code, L.co_lines);
    if (b && !(b & 7) && rd_ptr(b, ML_PY_OB_TYPE) == bytes_type)
        h = mix_data(h, (const unsigned char *)(b + (uintptr_t)L.bytes_sval), *(const int64_t *)(b + (uintptr_t)L.bytes_size));
    uint32_t fp = (uint32_t)(h >> 32);
    return fp ? fp : 1;
}

/* ---- the table ---- */

/* Another thread is making the record of this very code object: it takes
 * a few hundred nanoseconds; past that, the frame goes unnamed. */
static uint32_t wait_made(slot_t *s, uintptr_t code)
{
    for (int i = 0; i < 4096; i++) {
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == code)
            return atomic_load_explicit(&s->val, memory_order_relaxed);
        if (k != (code | 1))
            break;
        __builtin_ia32_pause();
    }
    return 0;
}

static void retire(slot_t *s)
{
    atomic_store_explicit(&s->key, KEY_DELETED, memory_order_release);
    atomic_fetch_add_explicit(&ml_pycode_epoch, 1, memory_order_release);
    atomic_fetch_add_explicit(&n_forgotten, 1, memory_order_relaxed);
}

static uint32_t insert(uintptr_t code, uint32_t fp)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t i = slot_of(code), free_at = SIZE_MAX;
        for (unsigned p = 0; p < MAX_PROBE; p++, i = (i + 1) & (SLOTS - 1)) {
            uint64_t k = atomic_load_explicit(&slots[i].key, memory_order_acquire);
            if (k == code) {
                if (atomic_load_explicit(&slots[i].fp, memory_order_relaxed) == fp)
                    return atomic_load_explicit(&slots[i].val, memory_order_relaxed);
                retire(&slots[i]); /* a dead code object's entry: its free went unseen */
                k = KEY_DELETED;
            }
            if (k == (code | 1))
                return wait_made(&slots[i], code);
            if (k == KEY_DELETED && free_at == SIZE_MAX)
                free_at = i;
            if (k == KEY_EMPTY) {
                if (free_at == SIZE_MAX)
                    free_at = i;
                break;
            }
        }
        if (free_at == SIZE_MAX)
            break;
        uint64_t expect = atomic_load_explicit(&slots[free_at].key, memory_order_relaxed);
        if (expect != KEY_EMPTY && expect != KEY_DELETED)
            continue;
        if (!atomic_compare_exchange_strong_explicit(&slots[free_at].key, &expect, (uint64_t)code | 1,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        /* a code object without a record stays in the table with value 0,
         * so it costs one lookup, not a new attempt, each time */
        uint32_t v = make_record(code);
        if (!v)
            atomic_fetch_add_explicit(&n_dropped, 1, memory_order_relaxed);
        atomic_store_explicit(&slots[free_at].val, v, memory_order_relaxed);
        atomic_store_explicit(&slots[free_at].fp, fp, memory_order_relaxed);
        atomic_store_explicit(&slots[free_at].key, (uint64_t)code, memory_order_release);
        return v;
    }
    atomic_fetch_add_explicit(&n_dropped, 1, memory_order_relaxed);
    return 0;
}

uint32_t ml_pycode_serial(uintptr_t code, uint32_t fp)
{
    size_t i = slot_of(code);
    for (unsigned p = 0; p < MAX_PROBE; p++, i = (i + 1) & (SLOTS - 1)) {
        uint64_t k = atomic_load_explicit(&slots[i].key, memory_order_acquire);
        if (ML_LIKELY(k == code) && atomic_load_explicit(&slots[i].fp, memory_order_relaxed) == fp)
            return atomic_load_explicit(&slots[i].val, memory_order_relaxed);
        if (k == KEY_EMPTY || k == code)
            break;
        if (k == (code | 1))
            return wait_made(&slots[i], code);
    }
    return insert(code, fp);
}

void ml_pycode_forget(uintptr_t code)
{
    if (!slots)
        return;
    size_t i = slot_of(code);
    for (unsigned p = 0; p < MAX_PROBE; p++, i = (i + 1) & (SLOTS - 1)) {
        uint64_t k = atomic_load_explicit(&slots[i].key, memory_order_acquire);
        if (k == KEY_EMPTY)
            return;
        if (k == code)
            retire(&slots[i]); /* no return: a rare double insert (see the top) left a twin */
    }
}

/* ---- naming ---- */

static bool varint(const uint8_t *t, size_t len, size_t *i, uint32_t *out)
{
    uint32_t v = 0;
    unsigned shift = 0;
    for (;;) {
        if (*i >= len || shift > 28)
            return false;
        uint8_t b = t[(*i)++];
        v |= (uint32_t)(b & 63) << shift;
        shift += 6;
        if (!(b & 64))
            break;
    }
    *out = v;
    return true;
}

int ml_pyline(int format, const uint8_t *t, size_t len, int first, int32_t addr)
{
    if (addr < 0)
        return first;
    if (format == ML_PYL_LNOTAB) {
        /* (address delta, signed line delta) pairs: the line of the last
         * entry that starts at or before addr */
        int line = first;
        int64_t a = 0;
        for (size_t i = 0; i + 1 < len; i += 2) {
            a += t[i];
            if (a > addr)
                break;
            line += (int8_t)t[i + 1];
        }
        return line;
    }
    if (format == ML_PYL_LINETABLE) {
        /* (address delta, line delta) pairs, each a range [end, end+delta);
         * a line delta of -128 means the range has no line */
        int line = first, this_line = -1;
        int64_t end = 0;
        for (size_t i = 0; i + 1 < len; i += 2) {
            int64_t start = end;
            end += t[i];
            int8_t d = (int8_t)t[i + 1];
            if (d == -128) {
                this_line = -1;
            } else {
                line += d;
                this_line = line;
            }
            if (addr >= start && addr < end)
                return this_line;
        }
        return -1;
    }
    /* PEP 657 location entries: a first byte 1ccccnnn (code c, n+1 code
     * units), then that code's fields. Codes 13 and 14 open with the line
     * delta as a signed varint; 10-12 move 0-2 lines; 15 has no location;
     * 0-9 stay on the line. */
    int line = first;
    int64_t end = 0;
    size_t i = 0;
    while (i < len) {
        uint8_t b = t[i];
        if (!(b & 0x80)) {
            i++;
            continue;
        }
        unsigned code = (b >> 3) & 15, units = (b & 7) + 1;
        size_t j = i + 1;
        if (code == 13 || code == 14) {
            uint32_t v;
            if (!varint(t, len, &j, &v))
                return -1;
            line += (v & 1) ? -(int)(v >> 1) : (int)(v >> 1);
        } else if (code >= 10 && code <= 12) {
            line += (int)code - 10;
        }
        int64_t start = end;
        end += 2 * (int64_t)units;
        if (addr >= start && addr < end)
            return code == 15 ? -1 : line;
        i++;
        while (i < len && !(t[i] & 0x80))
            i++;
    }
    return -1;
}

static const rec_t *rec_of(uint32_t serial)
{
    serial &= ~ML_PYCODE_HIDDEN;
    if (!recs || !serial || serial >= MAX_SERIALS)
        return NULL;
    return atomic_load_explicit(&recs[serial], memory_order_acquire);
}

/* The line cache: (serial, address) -> line in one 64-bit word, so that a
 * reader never sees half an entry: serial (22 bits) | address + 1 (20) |
 * line + 2 (22). Pairs that do not fit are decoded each time. */

static int decode_line(uint32_t serial, int32_t addr)
{
    const rec_t *r = rec_of(serial);
    if (!r)
        return -1;
    return r->lines || addr < 0 ? ml_pyline(L.lines, r->lines, r->nlines, r->first, addr) : -1;
}

int ml_pycode_line(uint32_t serial, int32_t addr)
{
    serial &= ~ML_PYCODE_HIDDEN;
    uint32_t a = (uint32_t)addr + 1; /* -1 (not started) is 0 */
    if (!line_cache || serial >= (1u << 22) || a >= (1u << 20))
        return decode_line(serial, addr);
    uint64_t key = (uint64_t)serial << 42 | (uint64_t)a << 22;
    _Atomic uint64_t *e = &line_cache[(key * 0x9e3779b97f4a7c15ull) >> (64 - LC_LOG2)];
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed);
    if ((v & ~(((uint64_t)1 << 22) - 1)) == key && (v & (((uint64_t)1 << 22) - 1)))
        return (int)(v & (((uint64_t)1 << 22) - 1)) - 2;
    int line = decode_line(serial, addr);
    if (line >= -1 && line + 2 < (1 << 22))
        atomic_store_explicit(e, key | (uint64_t)(line + 2), memory_order_relaxed);
    return line;
}

bool ml_pycode_name(uint32_t serial, int line, ml_pyframe_t *out)
{
    const rec_t *r = rec_of(serial);
    if (!r)
        return false;
    out->function = r->name ? r->name : "?";
    out->file = r->file;
    out->line = line > 0 ? line : 0;
    return true;
}

void ml_pycode_stats(ml_pycode_stats_t *s)
{
    s->interned = atomic_load_explicit(&n_interned, memory_order_relaxed);
    s->forgotten = atomic_load_explicit(&n_forgotten, memory_order_relaxed);
    s->dropped = atomic_load_explicit(&n_dropped, memory_order_relaxed);
}
