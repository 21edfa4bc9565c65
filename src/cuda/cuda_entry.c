/* cuda_entry.c — the table of wrapped CUDA driver entry points, and binding what
 * the driver hands out to wrappers (see cuda_entry.h).
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

static const struct {
    const char *name;
    enum ml_cu_family family;
} exports[ML_CUX_COUNT] = {
    [ML_CUX_cuInit] = {"cuInit", ML_CU_INIT},
    [ML_CUX_cuGetProcAddress] = {"cuGetProcAddress", ML_CU_GPA1},
    [ML_CUX_cuGetProcAddress_v2] = {"cuGetProcAddress_v2", ML_CU_GPA2},
    [ML_CUX_cuMemAlloc_v2] = {"cuMemAlloc_v2", ML_CU_ALLOC},
    [ML_CUX_cuMemAllocPitch_v2] = {"cuMemAllocPitch_v2", ML_CU_ALLOC_PITCH},
    [ML_CUX_cuMemFree_v2] = {"cuMemFree_v2", ML_CU_FREE},
    [ML_CUX_cuMemAllocAsync] = {"cuMemAllocAsync", ML_CU_ALLOC_ASYNC},
    [ML_CUX_cuMemAllocAsync_ptsz] = {"cuMemAllocAsync_ptsz", ML_CU_ALLOC_ASYNC},
    [ML_CUX_cuMemAllocFromPoolAsync] = {"cuMemAllocFromPoolAsync", ML_CU_ALLOC_POOL},
    [ML_CUX_cuMemAllocFromPoolAsync_ptsz] = {"cuMemAllocFromPoolAsync_ptsz", ML_CU_ALLOC_POOL},
    [ML_CUX_cuMemFreeAsync] = {"cuMemFreeAsync", ML_CU_FREE_ASYNC},
    [ML_CUX_cuMemFreeAsync_ptsz] = {"cuMemFreeAsync_ptsz", ML_CU_FREE_ASYNC},
    [ML_CUX_cuMemAllocManaged] = {"cuMemAllocManaged", ML_CU_ALLOC_MANAGED},
    [ML_CUX_cuMemHostAlloc] = {"cuMemHostAlloc", ML_CU_HOST_ALLOC},
    [ML_CUX_cuMemAllocHost_v2] = {"cuMemAllocHost_v2", ML_CU_ALLOC_HOST},
    [ML_CUX_cuMemFreeHost] = {"cuMemFreeHost", ML_CU_FREE_HOST},
    [ML_CUX_cuMemCreate] = {"cuMemCreate", ML_CU_CREATE},
    [ML_CUX_cuMemRelease] = {"cuMemRelease", ML_CU_RELEASE},
    [ML_CUX_cuMemMap] = {"cuMemMap", ML_CU_MAP},
    [ML_CUX_cuMemUnmap] = {"cuMemUnmap", ML_CU_UNMAP},
    [ML_CUX_cuMemRetainAllocationHandle] = {"cuMemRetainAllocationHandle", ML_CU_RETAIN},
    [ML_CUX_cuArrayCreate_v2] = {"cuArrayCreate_v2", ML_CU_ARRAY},
    [ML_CUX_cuArray3DCreate_v2] = {"cuArray3DCreate_v2", ML_CU_ARRAY3D},
    [ML_CUX_cuArrayDestroy] = {"cuArrayDestroy", ML_CU_ARRAY_DESTROY},
};

/* cuGetProcAddress's base names, and the version from which each returns
 * the family's function; for one name, higher versions come first. */
static const struct {
    const char *base;
    int since;
    enum ml_cu_family family;
} by_version[] = {
    {"cuInit", ML_CU_V_INIT, ML_CU_INIT},
    {"cuGetProcAddress", ML_CU_V_GPA2, ML_CU_GPA2},
    {"cuGetProcAddress", ML_CU_V_GPA1, ML_CU_GPA1},
    {"cuMemAlloc", ML_CU_V_MEM_V2, ML_CU_ALLOC},
    {"cuMemAllocPitch", ML_CU_V_MEM_V2, ML_CU_ALLOC_PITCH},
    {"cuMemFree", ML_CU_V_MEM_V2, ML_CU_FREE},
    {"cuMemAllocAsync", ML_CU_V_ASYNC, ML_CU_ALLOC_ASYNC},
    {"cuMemAllocFromPoolAsync", ML_CU_V_ASYNC, ML_CU_ALLOC_POOL},
    {"cuMemFreeAsync", ML_CU_V_ASYNC, ML_CU_FREE_ASYNC},
    {"cuMemAllocManaged", ML_CU_V_MANAGED, ML_CU_ALLOC_MANAGED},
    {"cuMemHostAlloc", ML_CU_V_HOST_ALLOC, ML_CU_HOST_ALLOC},
    {"cuMemAllocHost", ML_CU_V_MEM_V2, ML_CU_ALLOC_HOST},
    {"cuMemFreeHost", ML_CU_V_FREE_HOST, ML_CU_FREE_HOST},
    {"cuMemCreate", ML_CU_V_VMM, ML_CU_CREATE},
    {"cuMemRelease", ML_CU_V_VMM, ML_CU_RELEASE},
    {"cuMemMap", ML_CU_V_VMM, ML_CU_MAP},
    {"cuMemUnmap", ML_CU_V_VMM, ML_CU_UNMAP},
    {"cuMemRetainAllocationHandle", ML_CU_V_RETAIN, ML_CU_RETAIN},
    {"cuArrayCreate", ML_CU_V_MEM_V2, ML_CU_ARRAY},
    {"cuArray3DCreate", ML_CU_V_MEM_V2, ML_CU_ARRAY3D},
    {"cuArrayDestroy", ML_CU_V_ARRAY_DESTROY, ML_CU_ARRAY_DESTROY},
};

static int family_of_export(const char *name)
{
    if (name[0] != 'c' || name[1] != 'u')
        return -1;
    for (size_t i = 0; i < ML_ARRAY_LEN(exports); i++)
        if (strcmp(name, exports[i].name) == 0)
            return (int)exports[i].family;
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
    f = dlsym(RTLD_NEXT, exports[e].name);
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
            f = ml_real_dlsym()(h, exports[e].name);
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

/* The family of what cuGetProcAddress(symbol, version) returned as p. */
static int classify(const char *symbol, int version, void *p)
{
    int by_name = -1;
    bool known = false;
    for (size_t i = 0; i < ML_ARRAY_LEN(by_version); i++)
        if (strcmp(symbol, by_version[i].base) == 0) {
            known = true;
            if (by_name < 0 && version >= by_version[i].since)
                by_name = (int)by_version[i].family;
        }
    if (!known)
        return -1;
    Dl_info di;
    if (dladdr(p, &di) && di.dli_saddr == p && di.dli_sname)
        return family_of_export(di.dli_sname);
    return by_name;
}

static void *gpa_result(const char *symbol, int version, void *p)
{
    if (symbol[0] != 'c' || symbol[1] != 'u' || !exchange(p))
        return p;
    int family = classify(symbol, version, p);
    return family < 0 ? p : bind(family, p);
}

ml_cu_result ml_cu_gpa1(void *real, const char *symbol, void **pfn, int version, ml_cu_u64 flags)
{
    ml_cu_result (*fn)(const char *, void **, int, ml_cu_u64) = real;
    if (ML_UNLIKELY(!fn))
        return ML_CUDA_ERROR_NOT_INITIALIZED;
    ml_cu_result r = fn(symbol, pfn, version, flags);
    if (r == ML_CUDA_SUCCESS && symbol && pfn && *pfn)
        *pfn = gpa_result(symbol, version, *pfn);
    return r;
}

ml_cu_result ml_cu_gpa2(void *real, const char *symbol, void **pfn, int version, ml_cu_u64 flags,
                        int *status)
{
    ml_cu_result (*fn)(const char *, void **, int, ml_cu_u64, int *) = real;
    if (ML_UNLIKELY(!fn))
        return ML_CUDA_ERROR_NOT_INITIALIZED;
    ml_cu_result r = fn(symbol, pfn, version, flags, status);
    if (r == ML_CUDA_SUCCESS && symbol && pfn && *pfn)
        *pfn = gpa_result(symbol, version, *pfn);
    return r;
}

ml_cu_result ml_cu_init(void *real, unsigned flags)
{
    ml_cu_result (*fn)(unsigned) = real;
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
