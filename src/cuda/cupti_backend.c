/* cupti_backend.c — CUDA allocations from CUPTI driver API callbacks (see
 * cupti_backend.h).
 *
 * Only driver API callbacks are taken: the CUDA runtime allocates through
 * the driver, so runtime callbacks would count everything twice. Each
 * callback runs on the thread that called the driver, inside it: the
 * stack is that thread's, and its innermost frames are CUPTI's and the
 * driver's own, which are left out so that the stack begins, as the hooks'
 * do, at the caller of the driver entry point.
 *
 * An allocation is recorded at the API's exit when it succeeded; a free is
 * forgotten at its entry (the address may be handed out again as soon as
 * the driver has freed it) and put back at the exit if the driver refused
 * it; the callback pair shares correlationData, which carries the number
 * of the pending undo log held per thread. */
#include "cuda/cupti_backend.h"
#include "unwind/capture.h"
#include "cuda/cuda_record.h"
#include "cuda/cuda_vmm.h"
#include "common/io.h"
#include "core/ledger.h"
#include "core/real.h"
#include "common/format.h"
#include "core/thread.h"
#include "core/track.h"

#include <cupti.h>
#include <dlfcn.h>
#include <link.h>

#ifndef ML_CUPTI_SOVERSION
#define ML_CUPTI_SOVERSION ""
#endif

typedef CUptiResult (*subscribe_fn)(CUpti_SubscriberHandle *, CUpti_CallbackFunc, void *);
typedef CUptiResult (*enable_fn)(uint32_t, CUpti_SubscriberHandle, CUpti_CallbackDomain, CUpti_CallbackId);
typedef CUptiResult (*unsubscribe_fn)(CUpti_SubscriberHandle);
typedef CUptiResult (*result_string_fn)(CUptiResult, const char **);

/* The code of libcupti and of the driver: frames there are left out. */
#define MAX_RANGES 16
static struct {
    uintptr_t lo, hi;
} foreign[MAX_RANGES];
static unsigned nforeign;

static const CUpti_CallbackId cbids[] = {
    CUPTI_DRIVER_TRACE_CBID_cuMemAlloc_v2,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocPitch_v2,
    CUPTI_DRIVER_TRACE_CBID_cuMemFree_v2,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocAsync,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocAsync_ptsz,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocFromPoolAsync,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocFromPoolAsync_ptsz,
    CUPTI_DRIVER_TRACE_CBID_cuMemFreeAsync,
    CUPTI_DRIVER_TRACE_CBID_cuMemFreeAsync_ptsz,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocManaged,
    CUPTI_DRIVER_TRACE_CBID_cuMemHostAlloc,
    CUPTI_DRIVER_TRACE_CBID_cuMemAllocHost_v2,
    CUPTI_DRIVER_TRACE_CBID_cuMemFreeHost,
    CUPTI_DRIVER_TRACE_CBID_cuMemCreate,
    CUPTI_DRIVER_TRACE_CBID_cuMemRelease,
    CUPTI_DRIVER_TRACE_CBID_cuMemMap,
    CUPTI_DRIVER_TRACE_CBID_cuMemUnmap,
    CUPTI_DRIVER_TRACE_CBID_cuMemRetainAllocationHandle,
    CUPTI_DRIVER_TRACE_CBID_cuArrayCreate_v2,
    CUPTI_DRIVER_TRACE_CBID_cuArray3DCreate_v2,
    CUPTI_DRIVER_TRACE_CBID_cuArrayDestroy,
};

static bool is_foreign(uint64_t w)
{
    if (w & ML_WORD_PY)
        return false;
    for (unsigned i = 0; i < nforeign; i++)
        if (w >= foreign[i].lo && w < foreign[i].hi)
            return true;
    return ml_capture_is_self((uintptr_t)w);
}

static uint32_t callback_stack(unsigned domain)
{
    uint64_t words[ML_STACK_WORDS], h;
    unsigned n = ml_capture(words, ML_STACK_WORDS, &h);
    unsigned skip = 0;
    while (skip < n && is_foreign(words[skip]))
        skip++;
    if (skip) {
        h = ml_hash_begin();
        for (unsigned i = skip; i < n; i++)
            h = ml_hash_word(h, words[i]);
    }
    return ml_ledger_intern(domain, words + skip, n - skip, ml_hash_end(h, domain, n - skip));
}

/* The undo log of the free in flight on this thread, numbered so that the
 * exit callback takes only its own. */
static __thread ml_cu_undo_t pending __attribute__((tls_model("initial-exec")));
static __thread uint64_t pending_no __attribute__((tls_model("initial-exec")));

static void alloc_exit(unsigned domain, ml_addrtab_t *t, uint64_t key, uint64_t size)
{
    ml_cu_rec_alloc(domain, t, key, size, callback_stack);
}

static void free_enter(const CUpti_CallbackData *cb, ml_addrtab_t *t, uint64_t key)
{
    pending.n = 0;
    if (t)
        ml_cu_rec_free(t, key, &pending);
    *cb->correlationData = ++pending_no;
}

/* For VMM frees, whose forgetting cuda_vmm.c does into `pending`. */
static void vmm_enter(const CUpti_CallbackData *cb)
{
    pending.n = 0;
    *cb->correlationData = ++pending_no;
}

static void free_exit(const CUpti_CallbackData *cb, CUresult r)
{
    if (r != CUDA_SUCCESS && *cb->correlationData == pending_no)
        ml_cu_rec_undo(&pending);
    pending.n = 0;
}

static void record(CUpti_CallbackId cbid, const CUpti_CallbackData *cb)
{
    bool enter = cb->callbackSite == CUPTI_API_ENTER;
    CUresult r = enter ? CUDA_SUCCESS : *(const CUresult *)cb->functionReturnValue;
    bool ok = !enter && r == CUDA_SUCCESS;
    const void *prm = cb->functionParams;
    switch (cbid) {
    case CUPTI_DRIVER_TRACE_CBID_cuMemAlloc_v2: {
        const cuMemAlloc_v2_params *p = prm;
        if (ok)
            alloc_exit(ML_DOM_CUDA, &ml_cuda_ptrs, *p->dptr, p->bytesize);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocPitch_v2: {
        const cuMemAllocPitch_v2_params *p = prm;
        if (ok)
            alloc_exit(ML_DOM_CUDA, &ml_cuda_ptrs, *p->dptr, (uint64_t)*p->pPitch * p->Height);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocAsync:
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocAsync_ptsz: {
        const cuMemAllocAsync_params *p = prm; /* the _ptsz params are the same */
        if (ok)
            alloc_exit(ML_DOM_CUDA, &ml_cuda_ptrs, *p->dptr, p->bytesize);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocFromPoolAsync:
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocFromPoolAsync_ptsz: {
        const cuMemAllocFromPoolAsync_params *p = prm;
        if (ok)
            alloc_exit(ML_DOM_CUDA, &ml_cuda_ptrs, *p->dptr, p->bytesize);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocManaged: {
        const cuMemAllocManaged_params *p = prm;
        if (ok)
            alloc_exit(ML_DOM_CUDA_MANAGED, &ml_cuda_ptrs, *p->dptr, p->bytesize);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemHostAlloc: {
        const cuMemHostAlloc_params *p = prm;
        if (ok)
            alloc_exit(ML_DOM_CUDA_HOST, &ml_cuda_ptrs, (uintptr_t)*p->pp, p->bytesize);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemAllocHost_v2: {
        const cuMemAllocHost_v2_params *p = prm;
        if (ok)
            alloc_exit(ML_DOM_CUDA_HOST, &ml_cuda_ptrs, (uintptr_t)*p->pp, p->bytesize);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuArrayCreate_v2: {
        const cuArrayCreate_v2_params *p = prm;
        uint64_t bytes = ml_cu_array_bytes((const ml_cu_array_desc *)p->pAllocateArray);
        if (ok && bytes)
            alloc_exit(ML_DOM_CUDA, &ml_cuda_arrays, (uintptr_t)*p->pHandle, bytes);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuArray3DCreate_v2: {
        const cuArray3DCreate_v2_params *p = prm;
        uint64_t bytes = ml_cu_array3d_bytes((const ml_cu_array3d_desc *)p->pAllocateArray);
        if (ok && bytes)
            alloc_exit(ML_DOM_CUDA, &ml_cuda_arrays, (uintptr_t)*p->pHandle, bytes);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemFree_v2:
        if (enter)
            free_enter(cb, &ml_cuda_ptrs, ((const cuMemFree_v2_params *)prm)->dptr);
        else
            free_exit(cb, r);
        break;
    case CUPTI_DRIVER_TRACE_CBID_cuMemFreeAsync:
    case CUPTI_DRIVER_TRACE_CBID_cuMemFreeAsync_ptsz:
        if (enter)
            free_enter(cb, &ml_cuda_ptrs, ((const cuMemFreeAsync_params *)prm)->dptr);
        else
            free_exit(cb, r);
        break;
    case CUPTI_DRIVER_TRACE_CBID_cuMemFreeHost:
        if (enter)
            free_enter(cb, &ml_cuda_ptrs, (uintptr_t)((const cuMemFreeHost_params *)prm)->p);
        else
            free_exit(cb, r);
        break;
    case CUPTI_DRIVER_TRACE_CBID_cuArrayDestroy:
        if (enter)
            free_enter(cb, &ml_cuda_arrays, (uintptr_t)((const cuArrayDestroy_params *)prm)->hArray);
        else
            free_exit(cb, r);
        break;
    case CUPTI_DRIVER_TRACE_CBID_cuMemCreate: {
        const cuMemCreate_params *p = prm;
        if (ok)
            ml_cu_vmm_created(*p->handle, p->size, callback_stack);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemRetainAllocationHandle: {
        const cuMemRetainAllocationHandle_params *p = prm;
        if (ok)
            ml_cu_vmm_retained(*p->handle);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemMap: {
        const cuMemMap_params *p = prm;
        if (ok)
            ml_cu_vmm_mapped(p->ptr, p->size, p->handle);
        break;
    }
    case CUPTI_DRIVER_TRACE_CBID_cuMemRelease:
        if (enter) {
            vmm_enter(cb);
            ml_cu_vmm_release(((const cuMemRelease_params *)prm)->handle, &pending);
        } else {
            free_exit(cb, r);
        }
        break;
    case CUPTI_DRIVER_TRACE_CBID_cuMemUnmap:
        if (enter) {
            const cuMemUnmap_params *p = prm;
            vmm_enter(cb);
            ml_cu_vmm_unmap(p->ptr, p->size, &pending);
        } else {
            free_exit(cb, r);
        }
        break;
    default:
        break;
    }
}

static void CUPTIAPI callback(void *userdata, CUpti_CallbackDomain domain, CUpti_CallbackId cbid,
                              const void *cbdata)
{
    (void)userdata;
    if (domain != CUPTI_CB_DOMAIN_DRIVER_API || !ml_tracking() || !ml_enter())
        return;
    record(cbid, cbdata);
    ml_leave();
}

/* ---- starting up ---- */

static void *load(void)
{
    static const char *const names[] = {
        "libcupti.so",
        ("libcupti.so." ML_CUPTI_SOVERSION),
#ifdef ML_CUPTI_PATH
        ML_CUPTI_PATH,
#endif
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(names); i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    return NULL;
}

static int add_ranges(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if ((void *)info->dlpi_addr != data)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nforeign < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            foreign[nforeign].lo = info->dlpi_addr + ph->p_vaddr;
            foreign[nforeign].hi = foreign[nforeign].lo + ph->p_memsz;
            nforeign++;
        }
    }
    return 1;
}

/* Leaves out the frames of the object that holds `code`. */
static void leave_out(const void *code)
{
    Dl_info di;
    if (code && dladdr(code, &di))
        dl_iterate_phdr(add_ranges, di.dli_fbase);
}

static void describe(char *why, size_t cap, const char *what, CUptiResult r, result_string_fn str)
{
    const char *s = NULL;
    if (!str || str(r, &s) != CUPTI_SUCCESS || !s)
        s = "unknown error";
    if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED)
        ml_fmt(why, cap, "another CUPTI subscriber (a profiler such as Nsight Systems, or a "
               "CUDA_INJECTION64_PATH tool) is already attached (%s)", s);
    else
        ml_fmt(why, cap, "%s failed: %s (%d)", what, s, (int)r);
}

bool ml_cupti_start(char *why, size_t cap)
{
    void *lib = load();
    if (!lib) {
        ml_fmt(why, cap, "libcupti is not installed (looked for libcupti.so%s%s%s%s)",
               *ML_CUPTI_SOVERSION ? ", libcupti.so." : "", ML_CUPTI_SOVERSION,
#ifdef ML_CUPTI_PATH
               " and ", ML_CUPTI_PATH
#else
               "", ""
#endif
        );
        return false;
    }
    ml_dlsym_fn sym = ml_real_dlsym();
    subscribe_fn subscribe = (subscribe_fn)sym(lib, "cuptiSubscribe");
    enable_fn enable = (enable_fn)sym(lib, "cuptiEnableCallback");
    unsubscribe_fn unsubscribe = (unsubscribe_fn)sym(lib, "cuptiUnsubscribe");
    result_string_fn str = (result_string_fn)sym(lib, "cuptiGetResultString");
    if (!subscribe || !enable || !unsubscribe) {
        ml_fmt(why, cap, "the libcupti found lacks cuptiSubscribe, cuptiEnableCallback or cuptiUnsubscribe");
        return false;
    }
    /* before subscribing: callbacks may start on other threads at once */
    nforeign = 0;
    leave_out((const void *)subscribe);
    void *cuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (cuda)
        leave_out(sym(cuda, "cuInit"));
    CUpti_SubscriberHandle sub;
    CUptiResult r = subscribe(&sub, callback, NULL);
    if (r != CUPTI_SUCCESS) {
        describe(why, cap, "cuptiSubscribe", r, str);
        return false;
    }
    for (size_t i = 0; i < ML_ARRAY_LEN(cbids); i++) {
        r = enable(1, sub, CUPTI_CB_DOMAIN_DRIVER_API, cbids[i]);
        if (r != CUPTI_SUCCESS) {
            describe(why, cap, "cuptiEnableCallback", r, str);
            unsubscribe(sub);
            return false;
        }
    }
    return true;
}
