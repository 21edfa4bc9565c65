/* cuda_entry.c — the table of wrapped CUDA driver entry points (made from
 * cuda_entries.def), and binding what the driver hands out to wrappers
 * (see cuda_entry.h).
 *
 * A program reaches a driver function three ways: by linking to libcuda
 * (memledger's own definitions come first: shim/cuda.c), by dlsym on a
 * libcuda handle (shim/dlsym.c), and by cuGetProcAddress, which the CUDA
 * runtime uses for everything since 11.3. Whatever the way, the caller
 * gets a wrapper only when the function it would have got is one that
 * memledger wraps, and the wrapper then calls exactly that function: a
 * wrapper per family and slot calls the pointer stored in its slot, so
 * the legacy and per-thread-stream forms each keep their own.
 *
 * Which function cuGetProcAddress returned is answered by its address:
 * when it is an exported symbol of the driver, the symbol's name says
 * (and a name we do not wrap, such as the 32-bit cuMemAlloc or a newer
 * _v3, is left alone); when it is not exported, the documented versions
 * of the requested name say. */
#include "cuda/cuda_entry.h"
#include "unwind/capture.h"
#include "common/config.h"
#include "cuda/cuda_record.h"
#include "cuda/cuda_vmm.h"
#include "common/io.h"
#include "core/real.h"
#include "snapshot/snapshot_write.h"
#include "core/thread.h"
#include "core/track.h"
#ifdef ML_HAVE_CUPTI
#include "cuda/cupti_backend.h"
#endif

#include <dlfcn.h>
#include <string.h>

_Atomic(void *) ml_cu_slot[ML_CU_FAMILIES][ML_CU_SLOTS];
_Atomic int ml_cuda_backend;
_Atomic uint64_t ml_cuda_unwrapped;
static _Atomic unsigned bound; /* slots in use, for the header line */

/* Every wrapped entry point (cuda_entries.def): its exported name, its
 * family, and the cuGetProcAddress base name and the version from which
 * that name returns it. */
static const struct {
    const char *name, *base;
    int since;
    enum ml_cu_family family;
} entries[ML_CUX_COUNT] = {
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti)                     \
    [ML_CUX_##name] = {#name, #base, since, family},
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"
};

static int family_of_export(const char *name)
{
    if (name[0] != 'c' || name[1] != 'u')
        return -1;
    for (size_t i = 0; i < ML_ARRAY_LEN(entries); i++)
        if (strcmp(name, entries[i].name) == 0)
            return (int)entries[i].family;
    return -1;
}

/* ---- the real function behind an exported name ---- */

static _Atomic(void *) next_fn[ML_CUX_COUNT];
static _Atomic(void *) libcuda; /* a handle on an already loaded driver */

void *ml_cuda_next(enum ml_cu_export e)
{
    void *f = atomic_load_explicit(&next_fn[e], memory_order_acquire);
    if (ML_LIKELY(f))
        return f;
    /* the loader may allocate (a dlerror message): not the program's */
    bool entered = ml_enter();
    f = dlsym(RTLD_NEXT, entries[e].name);
    if (!f) {
        /* libcuda loaded with RTLD_LOCAL is not in the global scope: ask
         * it directly, through the real dlsym (ours would hand back the
         * wrapper that is asking). RTLD_NOLOAD: never load it ourselves. */
        void *h = atomic_load_explicit(&libcuda, memory_order_acquire);
        if (!h) {
            h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
            void *none = NULL;
            if (h && !atomic_compare_exchange_strong(&libcuda, &none, h))
                h = none; /* another thread kept its own; both are the same object */
        }
        if (h)
            f = ml_real_dlsym()(h, entries[e].name);
    }
    if (entered)
        ml_leave();
    if (f && !ml_capture_is_self((uintptr_t)f))
        atomic_store_explicit(&next_fn[e], f, memory_order_release);
    else
        f = NULL;
    return f;
}

/* ---- first contact and the backend ---- */

static int decide(void)
{
    if (ml_config.cuda == ML_CUDA_OFF)
        return ML_CUDA_BY_NONE;
    ml_cuda_record_init();
    if (ml_config.cuda != ML_CUDA_CUPTI)
        return ML_CUDA_BY_HOOKS;
#ifdef ML_HAVE_CUPTI
    char why[256];
    if (ml_cupti_start(why, sizeof why))
        return ML_CUDA_BY_CUPTI;
    ml_warn("MEMLEDGER_CUDA=cupti: %s; recording CUDA allocations with the driver hooks instead", why);
#else
    ml_warn("MEMLEDGER_CUDA=cupti: this memledger was built without the CUPTI backend (no CUDA toolkit "
            "headers at build time, or -DMEMLEDGER_CUPTI=OFF); recording CUDA allocations with the driver "
            "hooks instead");
#endif
    return ML_CUDA_BY_HOOKS;
}

void ml_cuda_contact(void)
{
    if (ML_LIKELY(atomic_load_explicit(&ml_cuda_backend, memory_order_acquire) != ML_CUDA_UNUSED))
        return;
    if (!ml_tracking() || !ml_enter())
        return;
    int expected = ML_CUDA_UNUSED;
    if (atomic_compare_exchange_strong(&ml_cuda_backend, &expected, ML_CUDA_STARTING))
        atomic_store_explicit(&ml_cuda_backend, decide(), memory_order_release);
    ml_leave();
}

bool ml_cuda_hooks_record(void)
{
    if (!ml_tracking() || ml_self.busy)
        return false;
    ml_cuda_contact();
    return atomic_load_explicit(&ml_cuda_backend, memory_order_acquire) == ML_CUDA_BY_HOOKS;
}

/* ---- handing out wrappers ---- */

/* The wrapper whose slot holds p, claiming a free slot if none does yet;
 * p itself when every slot holds something else. */
static void *bind(int family, void *p)
{
    for (unsigned k = 0; k < ML_CU_SLOTS; k++) {
        void *s = atomic_load_explicit(&ml_cu_slot[family][k], memory_order_acquire);
        if (!s && atomic_compare_exchange_strong(&ml_cu_slot[family][k], &s, p)) {
            atomic_fetch_add_explicit(&bound, 1, memory_order_relaxed);
            return ml_cu_wrappers[family][k];
        }
        if (s == p)
            return ml_cu_wrappers[family][k];
    }
    atomic_fetch_add_explicit(&ml_cuda_unwrapped, 1, memory_order_relaxed);
    return p;
}

/* Whether a pointer handed out now should be exchanged at all: not when
 * tracking is off, not for memledger's own lookups (CUPTI starting up),
 * not when CUPTI records instead, not for memledger's own functions. */
static bool exchange(void *p)
{
    if (!ml_tracking() || ml_config.cuda == ML_CUDA_OFF || ml_self.busy)
        return false;
    ml_cuda_contact();
    int b = atomic_load_explicit(&ml_cuda_backend, memory_order_acquire);
    return b != ML_CUDA_BY_CUPTI && b != ML_CUDA_BY_NONE && !ml_capture_is_self((uintptr_t)p);
}

bool ml_cuda_dlsym_wants(const char *name)
{
    return ml_tracking() && ml_config.cuda != ML_CUDA_OFF && family_of_export(name) >= 0;
}

void *ml_cuda_dlsym_result(const char *name, void *p)
{
    int family = family_of_export(name);
    if (family < 0 || !exchange(p))
        return p;
    return bind(family, p);
}

/* The family of what cuGetProcAddress(symbol, version) returned as p: the
 * exported name at p says; else the entry point that the newest version
 * of symbol at or below `version` returns. */
static int classify(const char *symbol, int version, void *p)
{
    int by_name = -1, newest = -1;
    bool known = false;
    for (size_t i = 0; i < ML_ARRAY_LEN(entries); i++)
        if (strcmp(symbol, entries[i].base) == 0) {
            known = true;
            if (version >= entries[i].since && entries[i].since > newest) {
                newest = entries[i].since;
                by_name = (int)entries[i].family;
            }
        }
    if (!known)
        return -1;
    Dl_info di;
    if (dladdr(p, &di) && di.dli_saddr == p && di.dli_sname)
        return family_of_export(di.dli_sname);
    return by_name;
}

/* After the real cuGetProcAddress(_v2): the pointer it returned exchanged
 * for a wrapper when it is a function memledger wraps. */
static ml_cu_result gpa_result(ml_cu_result r, const char *symbol, void **pfn, int version)
{
    if (r != ML_CUDA_SUCCESS || !symbol || !pfn || !*pfn || symbol[0] != 'c' || symbol[1] != 'u' ||
        !exchange(*pfn))
        return r;
    int family = classify(symbol, version, *pfn);
    if (family >= 0)
        *pfn = bind(family, *pfn);
    return r;
}

ml_cu_result ml_cu_gpa1(void *real, const char *symbol, void **pfn, int version, ml_cu_u64 flags)
{
    ml_cu_gpa1_real_t fn = (ml_cu_gpa1_real_t)real;
    if (ML_UNLIKELY(!fn))
        return ML_CUDA_ERROR_NOT_INITIALIZED;
    return gpa_result(fn(symbol, pfn, version, flags), symbol, pfn, version);
}

ml_cu_result ml_cu_gpa2(void *real, const char *symbol, void **pfn, int version, ml_cu_u64 flags,
                        int *status)
{
    ml_cu_gpa2_real_t fn = (ml_cu_gpa2_real_t)real;
    if (ML_UNLIKELY(!fn))
        return ML_CUDA_ERROR_NOT_INITIALIZED;
    return gpa_result(fn(symbol, pfn, version, flags, status), symbol, pfn, version);
}

/* cuInit: first contact, then the real one. */
ml_cu_result ml_cu_init(void *real, unsigned flags)
{
    ml_cu_init_real_t fn = (ml_cu_init_real_t)real;
    if (ML_UNLIKELY(!fn))
        return ML_CUDA_ERROR_NOT_INITIALIZED;
    /* CUPTI, when asked for, subscribes before the driver starts */
    if (ml_tracking() && !ml_self.busy)
        ml_cuda_contact();
    return fn(flags);
}

/* ---- the snapshot's view ---- */

static void header(ml_out_t *o)
{
    static const char *const names[] = {
        [ML_CUDA_UNUSED] = "unused", [ML_CUDA_STARTING] = "starting", [ML_CUDA_BY_HOOKS] = "hooks",
        [ML_CUDA_BY_CUPTI] = "cupti", [ML_CUDA_BY_NONE] = "off",
    };
    int b = atomic_load_explicit(&ml_cuda_backend, memory_order_acquire);
    if (ml_config.cuda == ML_CUDA_OFF)
        b = ML_CUDA_BY_NONE; /* whether or not the driver was ever touched */
    ml_out_printf(o, "cuda\tbackend\t%s\tbound\t%u\n", names[b], atomic_load(&bound));
    ml_out_printf(o, "problem\tcuda_unwrapped\t%llu\n", (unsigned long long)atomic_load(&ml_cuda_unwrapped));
    ml_out_printf(o, "problem\tcuda_vmm_table_full\t%llu\n",
                  (unsigned long long)atomic_load(&ml_cu_vmm_table_full));
}

void ml_cuda_init(void) { ml_snapshot_add_header(header); }
