/* pyframes.c — reading the calling thread's Python frames (see pyframes.h).
 *
 * Where the frames are: PyGILState_GetThisThreadState() reads the thread
 * state from a thread-specific key (pthread_getspecific; no lock, no
 * syscall), and it answers whether or not the thread holds the GIL: a
 * thread inside a C call that released the GIL still finds its own state.
 * Threads Python never ran on (an OpenMP pool, memledger's own) have none
 * and keep native stacks. From the thread state:
 *   3.8-3.10  tstate->frame, a PyFrameObject chain through f_back; one
 *             _PyEval_EvalFrameDefault call per frame; f_lasti in bytes
 *             (3.10: in code units).
 *   3.11      tstate->cframe->current_frame, a _PyInterpreterFrame chain
 *             through `previous`; one eval call runs frames up to and
 *             including one flagged is_entry; prev_instr points at the
 *             instruction running.
 *   3.12      the same through tstate->cframe; an eval call begins with a
 *             frame owned by the C stack (owner 3), skipped here.
 *   3.13      tstate->current_frame, offsets from _Py_DebugOffsets;
 *             instr_ptr, f_executable.
 * The thread state is not cached per thread: PyGILState_Release can free
 * it and a later PyGILState_Ensure make a new one, and the lookup is itself
 * one thread-specific read, so a cache would save nothing worth a stale
 * pointer.
 *
 * Safety: only the calling thread's own chain is read, while that thread
 * is stopped in an allocation, so the interpreter is not changing it
 * underneath (frames are linked only once initialised, and unlinked before
 * they are cleared). Each pointer followed must be non-null and aligned,
 * each code object must carry PyCode_Type, and a walk stops after
 * MAX_FRAMES frames, so a chain that is not what it should be ends the
 * walk rather than being trusted. */
#include "pyframes.h"
#include "capture.h"
#include "config.h"
#include "pycode.h"

#include <string.h>

#define MAX_FRAMES 256

static ml_pyframes_conf_t C;
static ml_pylayout_t L;

typedef struct {
    uint32_t serial;
    int32_t addr;
    bool ends_call;  /* the outermost frame of one eval-loop call */
} pyf_t;

void ml_pyframes_init(const ml_pyframes_conf_t *conf)
{
    C = *conf;
    L = *conf->layout;
    C.layout = &L;
}

static inline uintptr_t rd(uintptr_t base, int off) { return *(const uintptr_t *)(base + (uintptr_t)(intptr_t)off); }

static inline bool is_eval(uintptr_t pc)
{
    uintptr_t a = pc - 1; /* a return address; the call is before it */
    return (a >= C.eval_lo && a < C.eval_hi) || (a >= C.cold_lo && a < C.cold_hi);
}

static unsigned walk(uintptr_t ts, pyf_t *out, unsigned max)
{
    uintptr_t f = rd(ts, L.ts_frame);
    if (L.cf_current >= 0)
        f = f && !(f & 7) ? rd(f, L.cf_current) : 0;
    unsigned n = 0;
    for (unsigned seen = 0; f && !(f & 7) && n < max && seen < MAX_FRAMES; seen++) {
        uintptr_t back = rd(f, L.fr_back);
        if (L.frames == ML_PYF_CSTACK && *(const int8_t *)(f + (uintptr_t)L.fr_owner) == ML_PY_OWNED_BY_CSTACK) {
            if (n)
                out[n - 1].ends_call = true;
            f = back;
            continue;
        }
        bool ends = L.frames == ML_PYF_OBJECT ||
                    (L.frames == ML_PYF_ENTRY && *(const uint8_t *)(f + (uintptr_t)L.fr_is_entry));
        uintptr_t code = rd(f, L.fr_code);
        if (!code || (code & 7) || rd(code, ML_PY_OB_TYPE) != C.code_type) {
            /* 3.13 frames can run objects other than code; show nothing */
            if (ends && n)
                out[n - 1].ends_call = true;
            f = back;
            continue;
        }
        int32_t addr;
        if (L.frames == ML_PYF_OBJECT) {
            int lasti = *(const int *)(f + (uintptr_t)L.fr_instr);
            addr = lasti < 0 ? -1 : lasti * L.lasti_bytes;
        } else {
            intptr_t d = (intptr_t)(rd(f, L.fr_instr) - (code + (uintptr_t)L.co_code_adaptive));
            addr = d < 0 || d > INT32_MAX ? -1 : (int32_t)d;
        }
        uint32_t s = ml_pycode_serial(code);
        if (s & ML_PYCODE_HIDDEN) {
            if (ends && n)
                out[n - 1].ends_call = true;
        } else {
            out[n++] = (pyf_t){s, addr, ends};
        }
        f = back;
    }
    return n;
}

static unsigned current(pyf_t *out, unsigned max)
{
    uintptr_t ts = (uintptr_t)C.this_thread_state();
    if (!ts || (ts & 7))
        return 0;
    return walk(ts, out, max);
}

static inline void put(uint64_t *words, unsigned *k, const pyf_t *f)
{
    words[(*k)++] = ML_WORD_PY | f->serial;
    words[(*k)++] = (uint32_t)f->addr;
}

unsigned ml_pyframes_merge(uint64_t *words, unsigned n, unsigned max)
{
    pyf_t fr[MAX_FRAMES];
    unsigned nf = current(fr, MAX_FRAMES);
    if (!nf)
        return n;
    uint64_t native[ML_MAX_DEPTH + 32];
    if (n > ML_ARRAY_LEN(native))
        n = ML_ARRAY_LEN(native);
    memcpy(native, words, n * sizeof *words);
    unsigned k = 0, fi = 0;
    for (unsigned i = 0; i < n; i++) {
        if (fi < nf && is_eval(native[i])) {
            do {
                if (k + 2 > max)
                    return k;
                put(words, &k, &fr[fi]);
            } while (!fr[fi++].ends_call && fi < nf);
            continue;
        }
        if (k + 1 > max)
            return k;
        words[k++] = native[i];
    }
    while (fi < nf && k + 2 <= max)
        put(words, &k, &fr[fi++]);
    return k;
}

unsigned ml_pyframes_walk(uint64_t *words, unsigned max)
{
    pyf_t fr[MAX_FRAMES];
    unsigned nf = current(fr, MAX_FRAMES), k = 0;
    for (unsigned i = 0; i < nf && k + 2 <= max; i++)
        put(words, &k, &fr[i]);
    return k;
}

bool ml_pyframes_name(uint64_t w0, uint64_t w1, ml_pyframe_t *out)
{
    return ml_pycode_name((uint32_t)(w0 & 0xffffffffu), (int32_t)(uint32_t)w1, out);
}
