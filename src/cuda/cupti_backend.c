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
    uint64_t words[ML_STACK_WORDS];
    unsigned n = ml_capture(words, ML_STACK_WORDS);
    unsigned skip = 0;
    while (skip < n && is_foreign(words[skip]))
        skip++;
    return ml_ledger_intern(domain, words + skip, n - skip);
}

/* The undo log of the free in flight on this thread, numbered so that the
 * exit callback takes only its own. */
static __thread ml_cu_undo_t pending __attribute__((tls_model("initial-exec")));
static __thread uint64_t pending_no __attribute__((tls_model("initial-exec")));

/* ---- what each entry point's callback does (cuda_entries.def, column
 * cupti): the helpers its statements use, then one function per watched
 * entry point, cupti_<name>, and the table of their callback ids ---- */

static bool returned_success(const CUpti_CallbackData *cb)
{
    return cb->callbackSite != CUPTI_API_ENTER && *(const CUresult *)cb->functionReturnValue == CUDA_SUCCESS;
}

static void alloc_exit(unsigned domain, ml_addrtab_t *t, uint64_t key, uint64_t size)
{
    ml_cu_rec_alloc(domain, t, key, size, callback_stack);
}

/* Arrays of a format without a plain element size count 0 bytes: not recorded. */
static void array_exit(uint64_t key, uint64_t bytes)
{
    if (bytes)
        alloc_exit(ML_DOM_CUDA, &ml_cuda_arrays, key, bytes);
}

/* A free-like call's entry: a new undo log, numbered for its exit. */
static ml_cu_undo_t *undo_begin(const CUpti_CallbackData *cb)
{
    ml_cu_rec_keep(&pending); /* a log whose exit never came: let its holds go */
    *cb->correlationData = ++pending_no;
    return &pending;
}

/* Its exit: puts back what the entry forgot if the driver refused the call. */
static void undo_end(const CUpti_CallbackData *cb)
{
    if (*cb->correlationData != pending_no)
        return; /* not this free's log */
    if (*(const CUresult *)cb->functionReturnValue != CUDA_SUCCESS)
        ml_cu_rec_undo(&pending);
    else
        ml_cu_rec_keep(&pending);
}

typedef void cupti_fn(const CUpti_CallbackData *cb);

/* e.g. static void cupti_cuMemFree_v2(const CUpti_CallbackData *cb): p is
 * the entry point's cuMemFree_v2_params */
#define CUPTI_NONE
#define CUPTI_AT_EXIT(name, record)                                                                \
    static void cupti_##name(const CUpti_CallbackData *cb)                                         \
    {                                                                                              \
        const name##_params *p = cb->functionParams;                                               \
        if (returned_success(cb))                                                                  \
            record;                                                                                \
    }
#define CUPTI_AT_ENTER(name, forget)                                                               \
    static void cupti_##name(const CUpti_CallbackData *cb)                                         \
    {                                                                                              \
        const name##_params *p = cb->functionParams;                                               \
        if (cb->callbackSite == CUPTI_API_ENTER) {                                                 \
            ml_cu_undo_t *u = undo_begin(cb);                                                      \
            forget;                                                                                \
        } else {                                                                                   \
            undo_end(cb);                                                                          \
        }                                                                                          \
    }
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti) cupti
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"
#undef CUPTI_AT_EXIT
#undef CUPTI_AT_ENTER

/* The callback ids subscribed to, each with its function. */
static const struct {
    CUpti_CallbackId cbid;
    cupti_fn *fn;
} watched[] = {
#define CUPTI_AT_EXIT(name, record) {CUPTI_DRIVER_TRACE_CBID_##name, cupti_##name},
#define CUPTI_AT_ENTER(name, forget) {CUPTI_DRIVER_TRACE_CBID_##name, cupti_##name},
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti) cupti
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"
#undef CUPTI_AT_EXIT
#undef CUPTI_AT_ENTER
#undef CUPTI_NONE
};

static void CUPTIAPI callback(void *userdata, CUpti_CallbackDomain domain, CUpti_CallbackId cbid,
                              const void *cbdata)
{
    (void)userdata;
    if (domain != CUPTI_CB_DOMAIN_DRIVER_API || !ml_tracking() || !ml_enter())
        return;
    for (size_t i = 0; i < ML_ARRAY_LEN(watched); i++)
        if (watched[i].cbid == cbid) {
            watched[i].fn(cbdata);
            break;
        }
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
    for (size_t i = 0; i < ML_ARRAY_LEN(watched); i++) {
        r = enable(1, sub, CUPTI_CB_DOMAIN_DRIVER_API, watched[i].cbid);
        if (r != CUPTI_SUCCESS) {
            describe(why, cap, "cuptiEnableCallback", r, str);
            unsubscribe(sub);
            return false;
        }
    }
    return true;
}
