/* python.c — CPython in the process (see python.h).
 *
 * At start: the constructor runs before the program's main, so before
 * Py_Initialize, and libpython (pyenv's shared one, or Debian's python3
 * with it linked in and its API exported) is already loaded and relocated.
 * PyMem hooks put in now see the interpreter's whole start-up, and survive
 * it unless PYTHONMALLOC (or -X dev) asks Python for other allocators.
 *
 * Later: an embedder dlopen()s libpython. The module registry notices it
 * (modules.h observer, on whichever thread refreshed) and wakes the
 * dumper, which asks the loader for it (dlopen RTLD_NOLOAD waits for a
 * load in progress to finish, so the library is relocated when we call
 * it) and attaches from there. Then only MEM and OBJ are hooked: RAW is
 * saved and restored around windows of Py_Initialize, and a hook put in
 * during one would be dropped with blocks in flight; RAW is malloc by
 * default, so the malloc hooks see those allocations anyway, with their
 * Python frames.
 *
 * The eval loop's code: the exported symbol gives _PyEval_EvalFrameDefault
 * and its size; GCC moves its rarely run blocks to a separate .cold part
 * that only the full symbol table names (Debian's python3 is stripped of
 * it). A return address there is an eval frame too, so the .cold part is
 * found from the code itself: the hot part's near jumps that land outside
 * it land, hundreds of times, inside one other unwind-table entry (FDE) —
 * that entry is the cold part.
 *
 * Attached (`memledger attach`): the interpreter is running, and Python
 * calls its allocators under the GIL, so they are swapped holding the GIL:
 * the one place memledger takes it, on the dumper thread (never on the
 * thread the attach borrowed, which may itself wait for the GIL). MEM and
 * OBJ are wrapped as they are (pymalloc, or whatever was put there); RAW
 * is malloc, which the rewritten slots already lead to memledger. Blocks
 * the interpreter made before pass through our free hooks unknown. */
#include "python/python.h"
#include "core/ledger.h"
#include "unwind/capture.h"
#include "common/config.h"
#include "snapshot/dumper.h"
#include "common/io.h"
#include "core/modules.h"
#include "python/pycode.h"
#include "python/pyframes.h"
#include "python/pymem.h"
#include "python/pystacks.h"
#include "python/pyversions.h"
#include "snapshot/snapshot_write.h"
#include "snapshot/status.h"

#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

enum { ST_NONE, ST_ATTACHING, ST_ATTACHED };
enum { RUN_IDLE, RUN_HOOK, RUN_UNHOOK }; /* what `memledger attach`/`detach` left for the dumper */

static struct {
    _Atomic int state;
    const char *_Atomic pending;  /* a libpython the registry noticed */
    char version[48];
    unsigned hex;
    bool frames;
    char why_not[160];            /* when frames are off */
    unsigned hooked;              /* domains we put hooks in */
    void (*get_allocator)(int, ml_pymem_alloc_t *);
    int (*is_initialized)(void);
    int (*is_finalizing)(void);
    void *(*interp_main)(void);
    uintptr_t runtime;
    ml_pylayout_t layout;
    ml_pyframes_conf_t conf;
    uintptr_t bias;               /* load bias of the module with the eval loop */
    _Atomic int running;          /* RUN_*: work for the dumper thread, with the GIL */
    void (*set_allocator)(int, const ml_pymem_alloc_t *);
    void *handle;                 /* what its symbols are looked up in */
} py;

static const char *const domain_names[ML_PYMEM_DOMAINS] = {"raw", "mem", "obj"};

/* ---- the eval loop's code ---- */

static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t *r = data; /* in: r[0] an address; out: r[1], r[2] its executable segment */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && r[0] >= lo && r[0] < lo + ph->p_memsz) {
            r[1] = lo;
            r[2] = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

typedef struct {
    uintptr_t lo, hi;
    unsigned hits;
} range_t;

/* The FDE most of the hot part's outward jumps land inside (see the top).
 * Byte-wise decoding of jmp/jcc rel32 also finds false targets in the
 * middle of other instructions; they scatter over unrelated entries. */
static void find_cold(uintptr_t lo, uintptr_t hi, uintptr_t *cold_lo, uintptr_t *cold_hi)
{
    uintptr_t seg[3] = {lo, 0, 0};
    *cold_lo = *cold_hi = 0;
    if (!dl_iterate_phdr(find_text, seg) || hi > seg[2])
        return;
    static range_t ranges[256];
    unsigned nr = 0, tries = 0;
    const uint8_t *code = (const uint8_t *)lo;
    for (uintptr_t i = 0; i + 6 <= hi - lo && tries < 4096; i++) {
        int32_t rel;
        uintptr_t target;
        if (code[i] == 0x0f && (code[i + 1] & 0xf0) == 0x80) {
            memcpy(&rel, code + i + 2, sizeof rel); /* unaligned */
            target = lo + i + 6 + (uintptr_t)(intptr_t)rel;
        } else if (code[i] == 0xe9) {
            memcpy(&rel, code + i + 1, sizeof rel);
            target = lo + i + 5 + (uintptr_t)(intptr_t)rel;
        } else {
            continue;
        }
        if ((target >= lo && target < hi) || target < seg[1] || target >= seg[2])
            continue;
        unsigned r = 0;
        while (r < nr && !(target >= ranges[r].lo && target < ranges[r].hi))
            r++;
        if (r == nr) {
            unw_proc_info_t pi;
            tries++;
            if (nr == ML_ARRAY_LEN(ranges) ||
                unw_get_proc_info_by_ip(unw_local_addr_space, (unw_word_t)target, &pi, NULL) != 0 ||
                pi.start_ip >= pi.end_ip || (pi.start_ip < hi && pi.end_ip > lo))
                continue;
            ranges[nr++] = (range_t){(uintptr_t)pi.start_ip, (uintptr_t)pi.end_ip, 0};
        }
        if (target != ranges[r].lo) /* a call's tail jump lands on an entry's start */
            ranges[r].hits++;
    }
    unsigned best = 0;
    for (unsigned r = 1; r < nr; r++)
        if (ranges[r].hits > ranges[best].hits)
            best = r;
    if (nr && ranges[best].hits >= 8) {
        *cold_lo = ranges[best].lo;
        *cold_hi = ranges[best].hi;
    }
}

static bool find_eval(uintptr_t eval, ml_pyframes_conf_t *c)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    struct link_map *lm = NULL;
    if (!dladdr1((void *)eval, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size ||
        !dladdr1((void *)eval, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return false;
    py.bias = lm->l_addr;
    c->eval_lo = eval;
    c->eval_hi = eval + sym->st_size;
    find_cold(c->eval_lo, c->eval_hi, &c->cold_lo, &c->cold_hi);
    return true;
}

/* ---- attaching ---- */

static void *sym(void *handle, const char *name) { return dlsym(handle, name); }

static unsigned parse_version(const char *v)
{
    char *end;
    unsigned long major = strtoul(v, &end, 10);
    if (*end != '.')
        return 0;
    unsigned long minor = strtoul(end + 1, &end, 10);
    return major < 256 && minor < 256 ? (unsigned)(major << 8 | minor) : 0;
}

static void frames_off(const char *why)
{
    ml_fmt(py.why_not, sizeof py.why_not, "%s", why);
    ml_warn("CPython %s: %s; stacks stay native", py.version, py.why_not);
}

static void start_frames(void *h)
{
    const ml_pylayout_t *builtin = ml_pylayout_builtin(py.hex);
    if (sym(h, "_Py_NegativeRefcount")) {
        frames_off("a debug build (its objects are laid out differently)");
        return;
    }
    if (builtin) {
        py.layout = *builtin;
    } else if (!py.runtime || !ml_pylayout_from_debug_offsets((const void *)py.runtime, py.hex, &py.layout)) {
        frames_off("Python frames are read on CPython 3.8 to 3.13 (default builds)");
        return;
    }
    void *ts = sym(h, "PyGILState_GetThisThreadState"), *eval = sym(h, "_PyEval_EvalFrameDefault");
    void *code = sym(h, "PyCode_Type"), *str = sym(h, "PyUnicode_Type"), *bytes = sym(h, "PyBytes_Type");
    if (!ts || !eval || !code || !str || !bytes) {
        char why[128];
        ml_fmt(why, sizeof why, "the interpreter does not export %s",
               !ts ? "PyGILState_GetThisThreadState" : !eval ? "_PyEval_EvalFrameDefault" : "its type objects");
        frames_off(why);
        return;
    }
    py.conf.layout = &py.layout;
    py.conf.this_thread_state = (void *(*)(void))ts;
    py.conf.code_type = (uintptr_t)code;
    if (!find_eval((uintptr_t)eval, &py.conf)) {
        frames_off("cannot tell where _PyEval_EvalFrameDefault ends");
        return;
    }
    if (!ml_pycode_init(&py.layout, (uintptr_t)code, (uintptr_t)str, (uintptr_t)bytes)) {
        frames_off("cannot map the code-object table");
        return;
    }
    ml_pyframes_init(&py.conf);
    ml_ledger_set_python_encoder(ml_pyframes_encode);
    ml_snapshot_set_pyframe_fn(ml_pyframes_name);
    if (ml_pystacks_init())
        ml_capture_set_merge_intern(ml_pyframes_intern);
    ml_capture_set_merge(ml_pyframes_merge);
    py.frames = true;
}

static void hook_domains(void *set_fn, unsigned mask)
{
    void (*set)(int, const ml_pymem_alloc_t *) = (void (*)(int, const ml_pymem_alloc_t *))set_fn;
    if (!ml_pymem_offered())
        return;
    for (int d = 0; d < ML_PYMEM_DOMAINS; d++) {
        if (!(mask & (1u << d)))
            continue;
        py.get_allocator(d, &ml_pymem_next[d]);
        if (ml_pymem_is_hook(d, &ml_pymem_next[d]))
            continue; /* already ours (a second attach) */
        ml_pymem_alloc_t mine;
        ml_pymem_hooks(d, &mine);
        atomic_thread_fence(memory_order_release);
        set(d, &mine);
        py.hooked |= 1u << d;
    }
}

static void header(ml_out_t *o);

/* Attaches to the interpreter whose symbols `h` finds. Returns false when
 * it is not one (no PyMem API). */
static bool attach(void *h, bool at_start)
{
    void *set = sym(h, "PyMem_SetAllocator"), *get = sym(h, "PyMem_GetAllocator");
    const char *(*version)(void) = (const char *(*)(void))sym(h, "Py_GetVersion");
    if (!set || !get || !version)
        return false;
    py.set_allocator = (void (*)(int, const ml_pymem_alloc_t *))set;
    int expect = ST_NONE;
    if (!atomic_compare_exchange_strong(&py.state, &expect, ST_ATTACHING))
        return true;
    const char *v = version();
    size_t n = strcspn(v, " ");
    n = n < sizeof py.version - 1 ? n : sizeof py.version - 1;
    memcpy(py.version, v, n);
    py.version[n] = '\0';
    py.hex = parse_version(v);
    py.get_allocator = (void (*)(int, ml_pymem_alloc_t *))get;
    py.is_initialized = (int (*)(void))sym(h, "Py_IsInitialized");
    py.is_finalizing = (int (*)(void))sym(h, "Py_IsFinalizing");
    if (!py.is_finalizing)
        py.is_finalizing = (int (*)(void))sym(h, "_Py_IsFinalizing");
    py.interp_main = (void *(*)(void))sym(h, "PyInterpreterState_Main");
    py.runtime = (uintptr_t)sym(h, "_PyRuntime");
    py.handle = h;
    start_frames(h);
    /* frames first: the first hooked allocation already gets them */
    hook_domains(set, at_start ? 7u : (1u << ML_PYMEM_MEM | 1u << ML_PYMEM_OBJ));
    const char *pm = at_start ? getenv("PYTHONMALLOC") : NULL;
    if (pm && *pm && strcmp(pm, "malloc") != 0 && strcmp(pm, "malloc_debug") != 0)
        ml_warn("PYTHONMALLOC=%s replaces memledger's PyMem hooks when Python starts: small Python "
                "objects go untracked (PYTHONMALLOC=malloc shows them as malloc)", pm);
    ml_snapshot_add_header(header);
    atomic_store(&py.state, ST_ATTACHED);
    return true;
}

static void observe(const ml_module_t *m)
{
    if (atomic_load_explicit(&py.state, memory_order_relaxed) != ST_NONE)
        return;
    const char *base = strrchr(m->path, '/');
    base = base ? base + 1 : m->path;
    if (strncmp(base, "libpython3", 10) != 0)
        return;
    const char *none = NULL;
    if (atomic_compare_exchange_strong(&py.pending, &none, m->path))
        ml_dumper_wake();
}

static bool service(void)
{
    ml_python_service();
    return false;
}

void ml_python_init(void)
{
    if (!ml_config.python)
        return;
    if (!attach(RTLD_DEFAULT, true)) {
        ml_dumper_add_service(service, false);
        ml_modules_set_observer(observe);
    }
}

void ml_python_service(void)
{
    const char *path = atomic_load_explicit(&py.pending, memory_order_acquire);
    if (!path || atomic_load(&py.state) != ST_NONE)
        return;
    /* Not dlclose()d: the handle keeps libpython, whose hooks we now are,
     * loaded; and an interpreter cannot be unloaded anyway. */
    void *h = dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
    if (!h || !attach(h, false))
        atomic_store(&py.pending, NULL); /* not an interpreter after all */
}

/* ---- a running interpreter (memledger attach) ---- */

typedef int (*gil_ensure_fn)(void);
typedef void (*gil_release_fn)(int);

static void say(int state, const char *fmt, const char *a, const char *b)
{
    char note[ML_STATUS_NOTE_MAX];
    ml_fmt(note, sizeof note, fmt, a, b);
    ml_status_python(state, note);
}

/* Runs `fn` holding the GIL; false (with the reason in the status page)
 * when the interpreter is not in a state to give it. */
static bool with_gil(void (*fn)(void))
{
    int (*is_init)(void) = (int (*)(void))sym(RTLD_DEFAULT, "Py_IsInitialized");
    int (*fin)(void) = (int (*)(void))sym(RTLD_DEFAULT, "Py_IsFinalizing");
    if (!fin)
        fin = (int (*)(void))sym(RTLD_DEFAULT, "_Py_IsFinalizing");
    gil_ensure_fn ensure = (gil_ensure_fn)sym(RTLD_DEFAULT, "PyGILState_Ensure");
    gil_release_fn release = (gil_release_fn)sym(RTLD_DEFAULT, "PyGILState_Release");
    if (!is_init || !ensure || !release) {
        say(ML_STATUS_PY_FAILED, "the interpreter exports no PyGILState_Ensure%s%s", "", "");
        return false;
    }
    if (!is_init()) { /* an embedder that has not started it yet: as at a late load */
        fn();
        return true;
    }
    /* a thread that asks for the GIL while the interpreter finalizes is
     * ended there: the dumper must not be */
    if (fin && fin()) {
        say(ML_STATUS_PY_FAILED, "the interpreter is shutting down%s%s", "", "");
        return false;
    }
    int g = ensure();
    fn();
    release(g);
    return true;
}

static void hook_running(void)
{
    if (!attach(RTLD_DEFAULT, false))
        say(ML_STATUS_PY_FAILED, "the interpreter exports no PyMem_SetAllocator%s%s", "", "");
}

static void unhook_running(void)
{
    /* only where ours is still on top: a layer put over it since
     * (tracemalloc) keeps calling it, and it passes straight through */
    for (int d = 0; d < ML_PYMEM_DOMAINS; d++) {
        ml_pymem_alloc_t a;
        if (!(py.hooked & (1u << d)) || !py.get_allocator)
            continue;
        py.get_allocator(d, &a);
        if (ml_pymem_is_hook(d, &a)) {
            py.set_allocator(d, &ml_pymem_next[d]);
            py.hooked &= ~(1u << d);
        }
    }
}

static bool service_running(void)
{
    int what = atomic_exchange(&py.running, RUN_IDLE);
    if (what == RUN_HOOK && with_gil(hook_running) && atomic_load(&py.state) == ST_ATTACHED) {
        char doms[32];
        ml_fmt(doms, sizeof doms, "%s%s", py.hooked & (1u << ML_PYMEM_MEM) ? "mem " : "",
               py.hooked & (1u << ML_PYMEM_OBJ) ? "obj" : "");
        char frames[200];
        ml_fmt(frames, sizeof frames, "%s%s", py.frames ? "on" : "off: ", py.frames ? "" : py.why_not);
        char note[ML_STATUS_NOTE_MAX];
        ml_fmt(note, sizeof note, "Python %s: PyMem hooks on %s, frames %s", py.version, doms, frames);
        ml_status_python(py.hooked ? ML_STATUS_PY_HOOKED : ML_STATUS_PY_FAILED,
                         py.hooked ? note : "the PyMem hooks could not go in");
    } else if (what == RUN_UNHOOK) {
        with_gil(unhook_running);
    }
    return false;
}

void ml_python_init_running(void)
{
    if (!ml_config.python) {
        ml_status_python(ML_STATUS_PY_NONE, "MEMLEDGER_PYTHON=0: native allocations only");
        return;
    }
    if (!sym(RTLD_DEFAULT, "PyMem_SetAllocator")) {
        ml_status_python(ML_STATUS_PY_NONE, "not a Python process: native allocations only");
        ml_dumper_add_service(service, false); /* an embedder may still load one */
        ml_modules_set_observer(observe);
        return;
    }
    ml_status_python(ML_STATUS_PY_PENDING, "waiting for the GIL");
    atomic_store(&py.running, RUN_HOOK);
    ml_dumper_add_service(service_running, false);
    ml_dumper_wake();
}

void ml_python_detach(void)
{
    if (!py.hooked)
        return;
    atomic_store(&py.running, RUN_UNHOOK);
    ml_dumper_wake();
}

/* ---- the header lines (docs/format.md, docs/python.md) ---- */

bool ml_python_info(ml_python_info_t *out)
{
    if (atomic_load(&py.state) != ST_ATTACHED)
        return false;
    out->handle = py.handle;
    out->layout = py.frames ? &py.layout : NULL;
    out->hex = py.hex;
    out->version = py.version;
    out->why_not = py.frames ? NULL : py.why_not;
    return true;
}

uintptr_t ml_python_gc_state(void)
{
    const ml_pylayout_t *L = &py.layout;
    if (atomic_load(&py.state) != ST_ATTACHED || !py.frames || !py.is_initialized || !py.interp_main)
        return 0;
    /* Only while the interpreter is up and not being torn down: its state
     * (heap-allocated before 3.12) is freed at the end of finalization. */
    if (!py.is_initialized() || (py.is_finalizing && py.is_finalizing()))
        return 0;
    if (L->gc_in_runtime >= 0 && py.runtime)
        return py.runtime + (uintptr_t)L->gc_in_runtime;
    uintptr_t interp = L->gc_in_interp >= 0 ? (uintptr_t)py.interp_main() : 0;
    return interp ? interp + (uintptr_t)L->gc_in_interp : 0;
}

static void gc_line(ml_out_t *o)
{
    const ml_pylayout_t *L = &py.layout;
    uintptr_t gc = ml_python_gc_state();
    if (!gc)
        return;
    /* plain ints the interpreter updates under its GIL; a torn read is not
     * possible for an aligned int, a stale one is a snapshot's nature */
    const volatile int *enabled = (const volatile int *)(gc + (uintptr_t)L->gc_enabled);
    ml_out_printf(o, "python_gc\t%d", *enabled ? 1 : 0);
    for (int g = 0; g < 3; g++)
        ml_out_printf(o, "\t%d", *(const volatile int *)(gc + (uintptr_t)(L->gc_count0 + g * L->gc_stride)));
    ml_out_char(o, '\n');
}

static void header(ml_out_t *o)
{
    ml_out_str(o, "python_version\t");
    ml_out_field(o, py.version);
    ml_out_str(o, "\npython_pymem");
    unsigned on = 0;
    for (int d = 0; d < ML_PYMEM_DOMAINS; d++) {
        ml_pymem_alloc_t a;
        py.get_allocator(d, &a);
        if (ml_pymem_is_hook(d, &a)) {
            ml_out_printf(o, "\t%s", domain_names[d]);
            on++;
        }
    }
    ml_out_str(o, on ? "\n" : "\t-\n");
    if (py.frames) {
        ml_out_str(o, "python_frames\ton\n");
        const ml_pyframes_conf_t *c = &py.conf;
        ml_out_printf(o, "python_eval\t%llx\t%llx", (unsigned long long)(c->eval_lo - py.bias),
                      (unsigned long long)(c->eval_hi - c->eval_lo));
        if (c->cold_lo)
            ml_out_printf(o, "\t%llx\t%llx\n", (unsigned long long)(c->cold_lo - py.bias),
                          (unsigned long long)(c->cold_hi - c->cold_lo));
        else
            ml_out_str(o, "\t-\t-\n");
        ml_pycode_stats_t s;
        ml_pycode_stats(&s);
        ml_out_printf(o, "python_code\t%llu\t%llu\t%llu\n", (unsigned long long)s.interned,
                      (unsigned long long)s.forgotten, (unsigned long long)s.dropped);
        ml_out_printf(o, "problem\tpython_code_table_full\t%llu\n", (unsigned long long)s.dropped);
    } else {
        ml_out_str(o, "python_frames\toff\t");
        ml_out_field(o, py.why_not);
        ml_out_char(o, '\n');
    }
    gc_line(o);
}
