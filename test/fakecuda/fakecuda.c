/* fakecuda.c — a stand-in CUDA driver (libcuda.so.1) for machines without
 * a GPU: "device" memory is host memory from mmap, physical VMM memory is
 * a memfd that cuMemMap maps (so two mappings of one handle alias), and
 * cuGetProcAddress answers by name, version and per-thread-stream flag as
 * the real driver documents it. It implements what memledger's tests call:
 * cuInit, versions, devices, contexts, streams, pools, every allocating
 * and freeing entry point memledger wraps (and the older signatures it
 * must leave alone), VMM address reservation, copies, and CUPTI-style
 * callbacks for the stand-in CUPTI (fakecupti.c).
 *
 * Knobs, for tests: FAKECUDA_GPA_PRIVATE=1 makes cuGetProcAddress return
 * unexported copies of the allocation entry points (as a driver may);
 * FAKECUDA_TRACE=1 prints each cuGetProcAddress, cuInit and
 * cuGetExportTable call on stderr with the module that made it.
 * fakecuda_calls(name) counts calls per entry point ("private" counts the
 * unexported copies). cuMemAllocHost_v2 is implemented by calling the
 * exported cuMemHostAlloc, through the PLT, as one entry point of a real
 * driver might call another. Test code only: it may allocate and lock. */
#include "cuda/cuda_api.h"
#include "fake_cupti_abi.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
typedef ml_cu_result R;
typedef ml_cu_deviceptr D;
typedef ml_cu_mem_handle H;

enum {
    OK = 0,
    E_INVALID_VALUE = 1,
    E_OUT_OF_MEMORY = 2,
    E_NOT_INITIALIZED = 3,
    E_INVALID_CONTEXT = 201,
    E_INVALID_HANDLE = 400,
    E_NOT_FOUND = 500,
    E_NOT_SUPPORTED = 801,
};

#define GRANULARITY (2u << 20)
#define TOTAL_MEMORY (16ull << 30)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int initialized;
static __thread void *current_ctx;
static __thread int nested; /* inside another entry point: no tool callbacks */
static char the_context[64], the_primary[64];

/* ---- call counters ---- */

#define MAX_COUNTERS 64
static struct {
    const char *name;
    _Atomic long n;
} counters[MAX_COUNTERS];

static void count(const char *name)
{
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < MAX_COUNTERS && counters[i].name && strcmp(counters[i].name, name) != 0)
        i++;
    if (i < MAX_COUNTERS) {
        counters[i].name = name;
        counters[i].n++;
    }
    pthread_mutex_unlock(&mu);
}

EXPORT long fakecuda_calls(const char *name)
{
    for (int i = 0; i < MAX_COUNTERS && counters[i].name; i++)
        if (strcmp(counters[i].name, name) == 0)
            return counters[i].n;
    return 0;
}

static int trace(void) { return getenv("FAKECUDA_TRACE") && atoi(getenv("FAKECUDA_TRACE")); }

static const char *module_of(const void *pc)
{
    Dl_info di;
    if (!dladdr(pc, &di) || !di.dli_fname)
        return "?";
    const char *s = strrchr(di.dli_fname, '/');
    return s ? s + 1 : di.dli_fname;
}

/* ---- the tool (stand-in CUPTI) ---- */

static _Atomic(fake_tool_fn) tool;

EXPORT void fakecuda_set_tool(fake_tool_fn fn) { atomic_store(&tool, fn); }

typedef struct {
    fake_cb_data cb;
    uint64_t corr;
    R result;
} call_t;

static void tool_enter(call_t *c, unsigned cbid, const char *name, const void *params)
{
    memset(c, 0, sizeof *c);
    c->cb.functionName = name;
    c->cb.functionParams = params;
    c->cb.functionReturnValue = &c->result;
    c->cb.correlationData = &c->corr;
    fake_tool_fn t = atomic_load(&tool);
    if (t && !nested) {
        c->cb.callbackSite = 0;
        t(FAKE_CB_DOMAIN_DRIVER_API, cbid, &c->cb);
    }
    nested++;
}

static R tool_exit(call_t *c, unsigned cbid, R r)
{
    nested--;
    c->result = r;
    fake_tool_fn t = atomic_load(&tool);
    if (t && !nested) {
        c->cb.callbackSite = 1;
        t(FAKE_CB_DOMAIN_DRIVER_API, cbid, &c->cb);
    }
    return r;
}

/* Runs `body` (which sets r) between the tool's entry and exit callbacks. */
#define WITH_TOOL(cbid, params, body)                                                        \
    do {                                                                                     \
        call_t c_;                                                                           \
        tool_enter(&c_, FAKE_CBID_##cbid, #cbid, &(params));                                  \
        R r = E_INVALID_VALUE;                                                               \
        body;                                                                                \
        return tool_exit(&c_, FAKE_CBID_##cbid, r);                                           \
    } while (0)

/* ---- memory: every block is its own mapping, listed here ---- */

enum kind { K_DEVICE = 1, K_MANAGED, K_HOST, K_ARRAY };
#define MAX_BLOCKS 8192
static struct {
    uintptr_t addr;
    size_t size;
    int kind;
} blocks[MAX_BLOCKS];
static uint64_t device_used;

static R ready(void)
{
    if (!initialized)
        return E_NOT_INITIALIZED;
    return current_ctx ? OK : E_INVALID_CONTEXT;
}

static R block_new(size_t size, int kind, uintptr_t *out)
{
    R r = ready();
    if (r != OK)
        return r;
    if (!out || !size)
        return E_INVALID_VALUE;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return E_OUT_OF_MEMORY;
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < MAX_BLOCKS && blocks[i].addr)
        i++;
    if (i == MAX_BLOCKS) {
        pthread_mutex_unlock(&mu);
        munmap(p, size);
        return E_OUT_OF_MEMORY;
    }
    blocks[i].addr = (uintptr_t)p;
    blocks[i].size = size;
    blocks[i].kind = kind;
    if (kind != K_HOST)
        device_used += size;
    pthread_mutex_unlock(&mu);
    *out = (uintptr_t)p;
    return OK;
}

static R block_free(uintptr_t addr, int kind_a, int kind_b)
{
    R r = ready();
    if (r != OK)
        return r;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].addr == addr && addr && (blocks[i].kind == kind_a || blocks[i].kind == kind_b)) {
            size_t size = blocks[i].size;
            if (blocks[i].kind != K_HOST)
                device_used -= size;
            blocks[i].addr = 0;
            pthread_mutex_unlock(&mu);
            munmap((void *)addr, size);
            return OK;
        }
    pthread_mutex_unlock(&mu);
    return E_INVALID_VALUE;
}

/* ---- initialisation, devices, contexts ---- */

EXPORT R cuInit(unsigned flags)
{
    if (trace())
        fprintf(stderr, "fakecuda: cuInit(%u) from %s\n", flags, module_of(__builtin_return_address(0)));
    count("cuInit");
    if (flags != 0)
        return E_INVALID_VALUE;
    initialized = 1;
    return OK;
}

EXPORT R cuDriverGetVersion(int *v)
{
    if (!v)
        return E_INVALID_VALUE;
    *v = 13000;
    return OK;
}

EXPORT R cuDeviceGetCount(int *n)
{
    if (!initialized)
        return E_NOT_INITIALIZED;
    *n = 1;
    return OK;
}

EXPORT R cuDeviceGet(int *dev, int ordinal)
{
    if (!initialized)
        return E_NOT_INITIALIZED;
    if (ordinal != 0)
        return E_INVALID_VALUE;
    *dev = 0;
    return OK;
}

EXPORT R cuDeviceGetName(char *name, int len, int dev)
{
    (void)dev;
    snprintf(name, (size_t)len, "memledger stand-in GPU");
    return OK;
}

EXPORT R cuDeviceTotalMem_v2(size_t *bytes, int dev)
{
    (void)dev;
    *bytes = TOTAL_MEMORY;
    return OK;
}

EXPORT R cuDeviceGetAttribute(int *v, int attr, int dev)
{
    (void)attr;
    (void)dev;
    *v = 1;
    return OK;
}

EXPORT R cuCtxCreate_v2(void **ctx, unsigned flags, int dev)
{
    (void)flags;
    if (!initialized)
        return E_NOT_INITIALIZED;
    if (dev != 0 || !ctx)
        return E_INVALID_VALUE;
    *ctx = current_ctx = the_context;
    return OK;
}

EXPORT R cuCtxCreate_v4(void **ctx, void *params, unsigned flags, int dev)
{
    (void)params;
    return cuCtxCreate_v2(ctx, flags, dev);
}

EXPORT R cuCtxDestroy_v2(void *ctx)
{
    if (ctx == current_ctx)
        current_ctx = NULL;
    return OK;
}

EXPORT R cuCtxSetCurrent(void *ctx)
{
    current_ctx = ctx;
    return OK;
}

EXPORT R cuCtxGetCurrent(void **ctx)
{
    *ctx = current_ctx;
    return OK;
}

EXPORT R cuCtxSynchronize(void) { return ready(); }

EXPORT R cuDevicePrimaryCtxRetain(void **ctx, int dev)
{
    if (!initialized)
        return E_NOT_INITIALIZED;
    if (dev != 0)
        return E_INVALID_VALUE;
    *ctx = the_primary;
    return OK;
}

EXPORT R cuDevicePrimaryCtxRelease_v2(int dev) { return dev == 0 ? OK : E_INVALID_VALUE; }

EXPORT R cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    R r = ready();
    if (r != OK)
        return r;
    pthread_mutex_lock(&mu);
    *free_bytes = TOTAL_MEMORY - device_used;
    pthread_mutex_unlock(&mu);
    *total = TOTAL_MEMORY;
    return OK;
}

EXPORT R cuGetErrorString(R e, const char **s)
{
    *s = e == OK ? "no error" : "stand-in driver error";
    return OK;
}

EXPORT R cuGetErrorName(R e, const char **s)
{
    *s = e == OK ? "CUDA_SUCCESS" : "CUDA_ERROR";
    return OK;
}

/* The runtime asks for private tables of the driver by UUID; the stand-in
 * has none (see docs/cuda.md). */
EXPORT R cuGetExportTable(const void **table, const unsigned char *uuid)
{
    if (trace()) {
        fprintf(stderr, "fakecuda: cuGetExportTable ");
        for (int i = 0; i < 16; i++)
            fprintf(stderr, "%02x", uuid[i]);
        fprintf(stderr, " from %s: not found\n", module_of(__builtin_return_address(0)));
    }
    if (table)
        *table = NULL;
    return E_NOT_FOUND;
}

/* ---- streams and pools: tokens only, work is synchronous ---- */

static char streams[64], pools[64], default_pool;
static _Atomic int nstreams, npools;

EXPORT R cuStreamCreate(void **s, unsigned flags)
{
    (void)flags;
    R r = ready();
    if (r == OK)
        *s = &streams[atomic_fetch_add(&nstreams, 1) % 64];
    return r;
}

EXPORT R cuStreamDestroy_v2(void *s) { return s ? OK : E_INVALID_HANDLE; }
EXPORT R cuStreamSynchronize(void *s) { (void)s; return ready(); }

EXPORT R cuMemPoolCreate(void **pool, const void *props)
{
    (void)props;
    R r = ready();
    if (r == OK)
        *pool = &pools[atomic_fetch_add(&npools, 1) % 64];
    return r;
}

EXPORT R cuMemPoolDestroy(void *pool) { return pool ? OK : E_INVALID_HANDLE; }

EXPORT R cuDeviceGetDefaultMemPool(void **pool, int dev)
{
    (void)dev;
    *pool = &default_pool;
    return OK;
}

/* ---- the allocation entry points ---- */

static R impl_alloc(D *d, size_t n)
{
    fake_p_alloc p = {d, n};
    WITH_TOOL(cuMemAlloc_v2, p, { uintptr_t a = 0; r = block_new(n, K_DEVICE, &a); if (r == OK) *d = a; });
}

static R impl_alloc_pitch(D *d, size_t *pitch, size_t w, size_t h, unsigned elem)
{
    fake_p_pitch p = {d, pitch, w, h, elem};
    /* rows padded to 512 bytes, as a driver aligns them */
    WITH_TOOL(cuMemAllocPitch_v2, p, {
        if (elem == 4 || elem == 8 || elem == 16) {
            size_t row = (w + 511) & ~(size_t)511;
            uintptr_t a = 0;
            r = block_new(row * h, K_DEVICE, &a);
            if (r == OK) {
                *d = a;
                *pitch = row;
            }
        }
    });
}

static R impl_free(D d)
{
    fake_p_free p = {d};
    WITH_TOOL(cuMemFree_v2, p, r = block_free(d, K_DEVICE, K_MANAGED));
}

static R impl_alloc_async(D *d, size_t n, void *s, int ptsz)
{
    fake_p_async p = {d, n, s};
    if (ptsz)
        WITH_TOOL(cuMemAllocAsync_ptsz, p, { uintptr_t a = 0; r = block_new(n, K_DEVICE, &a); if (r == OK) *d = a; });
    WITH_TOOL(cuMemAllocAsync, p, { uintptr_t a = 0; r = block_new(n, K_DEVICE, &a); if (r == OK) *d = a; });
}

static R impl_alloc_pool(D *d, size_t n, void *pool, void *s, int ptsz)
{
    fake_p_pool p = {d, n, pool, s};
    if (!pool)
        return E_INVALID_VALUE;
    if (ptsz)
        WITH_TOOL(cuMemAllocFromPoolAsync_ptsz, p,
                  { uintptr_t a = 0; r = block_new(n, K_DEVICE, &a); if (r == OK) *d = a; });
    WITH_TOOL(cuMemAllocFromPoolAsync, p, { uintptr_t a = 0; r = block_new(n, K_DEVICE, &a); if (r == OK) *d = a; });
}

static R impl_free_async(D d, void *s, int ptsz)
{
    fake_p_free_async p = {d, s};
    if (ptsz)
        WITH_TOOL(cuMemFreeAsync_ptsz, p, r = block_free(d, K_DEVICE, K_DEVICE));
    WITH_TOOL(cuMemFreeAsync, p, r = block_free(d, K_DEVICE, K_DEVICE));
}

static R impl_alloc_managed(D *d, size_t n, unsigned flags)
{
    fake_p_managed p = {d, n, flags};
    WITH_TOOL(cuMemAllocManaged, p, { uintptr_t a = 0; r = block_new(n, K_MANAGED, &a); if (r == OK) *d = a; });
}

static R impl_host_alloc(void **pp, size_t n, unsigned flags)
{
    fake_p_host_alloc p = {pp, n, flags};
    WITH_TOOL(cuMemHostAlloc, p, {
        uintptr_t a = 0;
        r = block_new(n, K_HOST, &a);
        if (r == OK)
            *pp = (void *)a;
    });
}

EXPORT R cuMemHostAlloc(void **pp, size_t n, unsigned flags);

static R impl_alloc_host(void **pp, size_t n)
{
    fake_p_alloc_host p = {pp, n};
    WITH_TOOL(cuMemAllocHost_v2, p, r = cuMemHostAlloc(pp, n, 0));
}

static R impl_free_host(void *ptr)
{
    fake_p_free_host p = {ptr};
    WITH_TOOL(cuMemFreeHost, p, r = block_free((uintptr_t)ptr, K_HOST, K_HOST));
}

static R impl_array(ml_cu_array *a, const ml_cu_array_desc *desc)
{
    fake_p_array p = {a, desc};
    WITH_TOOL(cuArrayCreate_v2, p, {
        uintptr_t x = 0;
        size_t bytes = desc->Width * (desc->Height ? desc->Height : 1) * desc->NumChannels * 4;
        r = block_new(bytes, K_ARRAY, &x);
        if (r == OK)
            *a = (ml_cu_array)x;
    });
}

static R impl_array3d(ml_cu_array *a, const ml_cu_array3d_desc *desc)
{
    fake_p_array p = {a, desc};
    WITH_TOOL(cuArray3DCreate_v2, p, {
        uintptr_t x = 0;
        size_t bytes = desc->Width * (desc->Height ? desc->Height : 1) * (desc->Depth ? desc->Depth : 1) *
                       desc->NumChannels * 4;
        r = block_new(bytes, K_ARRAY, &x);
        if (r == OK)
            *a = (ml_cu_array)x;
    });
}

static R impl_array_destroy(ml_cu_array a)
{
    fake_p_array_destroy p = {a};
    WITH_TOOL(cuArrayDestroy, p, r = block_free((uintptr_t)a, K_ARRAY, K_ARRAY));
}

/* ---- virtual memory: handles are memfds, freed with their last reference ---- */

#define MAX_HANDLES 1024
#define HANDLE_BASE 0xc0de0000ull
static struct {
    int fd; /* -1: free slot */
    size_t size;
    int refs; /* the handle, each mapping, each retain */
    int released;
} handles[MAX_HANDLES];
#define MAX_MAPS 2048
static struct {
    uintptr_t va;
    size_t size;
    int h;
} vmaps[MAX_MAPS];

__attribute__((constructor)) static void init_handles(void)
{
    for (int i = 0; i < MAX_HANDLES; i++)
        handles[i].fd = -1;
}

static int handle_index(H h)
{
    if (h < HANDLE_BASE || (h - HANDLE_BASE) % 16)
        return -1;
    uint64_t i = (h - HANDLE_BASE) / 16;
    return i < MAX_HANDLES && handles[i].fd >= 0 ? (int)i : -1;
}

/* Drops one reference; lock held. */
static void handle_unref(int i)
{
    if (--handles[i].refs == 0) {
        close(handles[i].fd);
        handles[i].fd = -1;
        device_used -= handles[i].size;
    }
}

EXPORT long fakecuda_live_handles(void)
{
    long n = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_HANDLES; i++)
        n += handles[i].fd >= 0;
    pthread_mutex_unlock(&mu);
    return n;
}

EXPORT R cuMemGetAllocationGranularity(size_t *g, const void *prop, int option)
{
    (void)prop;
    (void)option;
    *g = GRANULARITY;
    return OK;
}

EXPORT R cuMemAddressReserve(D *ptr, size_t size, size_t align, D addr, unsigned long long flags)
{
    (void)align;
    (void)flags;
    R r = ready();
    if (r != OK)
        return r;
    if (!size || size % GRANULARITY)
        return E_INVALID_VALUE;
    void *p = mmap((void *)(uintptr_t)addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return E_OUT_OF_MEMORY;
    *ptr = (uintptr_t)p;
    return OK;
}

EXPORT R cuMemAddressFree(D ptr, size_t size) { return munmap((void *)(uintptr_t)ptr, size) == 0 ? OK : E_INVALID_VALUE; }

EXPORT R cuMemSetAccess(D ptr, size_t size, const void *desc, size_t count)
{
    (void)desc;
    (void)count;
    return mprotect((void *)(uintptr_t)ptr, size, PROT_READ | PROT_WRITE) == 0 ? OK : E_INVALID_VALUE;
}

static R impl_create(H *h, size_t size, const void *prop, unsigned long long flags)
{
    fake_p_create p = {h, size, prop, flags};
    WITH_TOOL(cuMemCreate, p, {
        r = ready();
        if (r == OK && (!size || size % GRANULARITY || !h))
            r = E_INVALID_VALUE;
        if (r == OK) {
            int fd = memfd_create("fakecuda-vmm", MFD_CLOEXEC);
            if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
                if (fd >= 0)
                    close(fd);
                r = E_OUT_OF_MEMORY;
            } else {
                pthread_mutex_lock(&mu);
                int i = 0;
                while (i < MAX_HANDLES && handles[i].fd >= 0)
                    i++;
                if (i == MAX_HANDLES) {
                    close(fd);
                    r = E_OUT_OF_MEMORY;
                } else {
                    handles[i].fd = fd;
                    handles[i].size = size;
                    handles[i].refs = 1;
                    handles[i].released = 0;
                    device_used += size;
                    *h = HANDLE_BASE + 16 * (H)i;
                }
                pthread_mutex_unlock(&mu);
            }
        }
    });
}

static R impl_release(H h)
{
    fake_p_release p = {h};
    WITH_TOOL(cuMemRelease, p, {
        pthread_mutex_lock(&mu);
        int i = handle_index(h);
        if (ready() != OK) {
            r = ready();
        } else if (i < 0) {
            r = E_INVALID_HANDLE;
        } else {
            handle_unref(i);
            r = OK;
        }
        pthread_mutex_unlock(&mu);
    });
}

static R impl_map(D va, size_t size, size_t offset, H h, unsigned long long flags)
{
    fake_p_map p = {va, size, offset, h, flags};
    WITH_TOOL(cuMemMap, p, {
        pthread_mutex_lock(&mu);
        int i = handle_index(h);
        int m = 0;
        while (m < MAX_MAPS && vmaps[m].va)
            m++;
        if (i < 0) {
            r = E_INVALID_HANDLE;
        } else if (m == MAX_MAPS || offset + size > handles[i].size || !va) {
            r = E_INVALID_VALUE;
        } else if (mmap((void *)(uintptr_t)va, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, handles[i].fd,
                        (off_t)offset) == MAP_FAILED) {
            r = E_OUT_OF_MEMORY;
        } else {
            vmaps[m].va = va;
            vmaps[m].size = size;
            vmaps[m].h = i;
            handles[i].refs++;
            r = OK;
        }
        pthread_mutex_unlock(&mu);
    });
}

/* The range must be whole mappings lying end to end. */
static R impl_unmap(D va, size_t size)
{
    fake_p_unmap p = {va, size};
    WITH_TOOL(cuMemUnmap, p, {
        pthread_mutex_lock(&mu);
        r = ready();
        for (uintptr_t at = va; r == OK && at < va + size;) {
            int m = 0;
            while (m < MAX_MAPS && vmaps[m].va != at)
                m++;
            if (m == MAX_MAPS) {
                r = E_INVALID_VALUE;
                break;
            }
            mmap((void *)at, vmaps[m].size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
            handle_unref(vmaps[m].h);
            at += vmaps[m].size;
            vmaps[m].va = 0;
        }
        pthread_mutex_unlock(&mu);
    });
}

static R impl_retain(H *h, void *addr)
{
    fake_p_retain p = {h, addr};
    WITH_TOOL(cuMemRetainAllocationHandle, p, {
        pthread_mutex_lock(&mu);
        r = E_INVALID_VALUE;
        for (int m = 0; m < MAX_MAPS; m++)
            if (vmaps[m].va && (uintptr_t)addr >= vmaps[m].va && (uintptr_t)addr < vmaps[m].va + vmaps[m].size) {
                handles[vmaps[m].h].refs++;
                *h = HANDLE_BASE + 16 * (H)vmaps[m].h;
                r = OK;
                break;
            }
        pthread_mutex_unlock(&mu);
    });
}

/* ---- copies ---- */

EXPORT R cuMemcpyHtoD_v2(D dst, const void *src, size_t n)
{
    memcpy((void *)(uintptr_t)dst, src, n);
    return ready();
}

EXPORT R cuMemcpyDtoH_v2(void *dst, D src, size_t n)
{
    memcpy(dst, (const void *)(uintptr_t)src, n);
    return ready();
}

/* ---- exported entry points and their unexported copies ---- */

#define ENTRY(name, params, call)                                                            \
    EXPORT R name params                                                                     \
    {                                                                                        \
        count(#name);                                                                        \
        return call;                                                                         \
    }                                                                                        \
    static R priv_##name params                                                              \
    {                                                                                        \
        count(#name);                                                                        \
        count("private");                                                                    \
        return call;                                                                         \
    }

ENTRY(cuMemAlloc_v2, (D * d, size_t n), impl_alloc(d, n))
ENTRY(cuMemAllocPitch_v2, (D * d, size_t *pitch, size_t w, size_t h, unsigned e), impl_alloc_pitch(d, pitch, w, h, e))
ENTRY(cuMemFree_v2, (D d), impl_free(d))
ENTRY(cuMemAllocAsync, (D * d, size_t n, void *s), impl_alloc_async(d, n, s, 0))
ENTRY(cuMemAllocAsync_ptsz, (D * d, size_t n, void *s), impl_alloc_async(d, n, s, 1))
ENTRY(cuMemAllocFromPoolAsync, (D * d, size_t n, void *pool, void *s), impl_alloc_pool(d, n, pool, s, 0))
ENTRY(cuMemAllocFromPoolAsync_ptsz, (D * d, size_t n, void *pool, void *s), impl_alloc_pool(d, n, pool, s, 1))
ENTRY(cuMemFreeAsync, (D d, void *s), impl_free_async(d, s, 0))
ENTRY(cuMemFreeAsync_ptsz, (D d, void *s), impl_free_async(d, s, 1))
ENTRY(cuMemAllocManaged, (D * d, size_t n, unsigned f), impl_alloc_managed(d, n, f))
ENTRY(cuMemHostAlloc, (void **pp, size_t n, unsigned f), impl_host_alloc(pp, n, f))
ENTRY(cuMemAllocHost_v2, (void **pp, size_t n), impl_alloc_host(pp, n))
ENTRY(cuMemFreeHost, (void *p), impl_free_host(p))
ENTRY(cuMemCreate, (H * h, size_t n, const void *prop, unsigned long long f), impl_create(h, n, prop, f))
ENTRY(cuMemRelease, (H h), impl_release(h))
ENTRY(cuMemMap, (D va, size_t n, size_t off, H h, unsigned long long f), impl_map(va, n, off, h, f))
ENTRY(cuMemUnmap, (D va, size_t n), impl_unmap(va, n))
ENTRY(cuMemRetainAllocationHandle, (H * h, void *addr), impl_retain(h, addr))
ENTRY(cuArrayCreate_v2, (ml_cu_array * a, const ml_cu_array_desc *d), impl_array(a, d))
ENTRY(cuArray3DCreate_v2, (ml_cu_array * a, const ml_cu_array3d_desc *d), impl_array3d(a, d))
ENTRY(cuArrayDestroy, (ml_cu_array a), impl_array_destroy(a))

/* The pre-3.2 signatures (32-bit sizes and pointers): distinct functions a
 * tool must never wrap as the _v2 ones. The stand-in refuses them. */
EXPORT R cuMemAlloc(unsigned *d, unsigned n) { (void)d; (void)n; count("cuMemAlloc"); return E_NOT_SUPPORTED; }
EXPORT R cuMemAllocPitch(unsigned *d, unsigned *p, unsigned w, unsigned h, unsigned e)
{
    (void)d; (void)p; (void)w; (void)h; (void)e;
    return E_NOT_SUPPORTED;
}
EXPORT R cuMemFree(unsigned d) { (void)d; count("cuMemFree"); return E_NOT_SUPPORTED; }
EXPORT R cuMemAllocHost(void **pp, unsigned n) { (void)pp; (void)n; return E_NOT_SUPPORTED; }
EXPORT R cuArrayCreate(ml_cu_array *a, const void *d) { (void)a; (void)d; return E_NOT_SUPPORTED; }
EXPORT R cuArray3DCreate(ml_cu_array *a, const void *d) { (void)a; (void)d; return E_NOT_SUPPORTED; }

/* ---- cuGetProcAddress ---- */

EXPORT R cuGetProcAddress(const char *symbol, void **pfn, int version, ml_cu_u64 flags);
EXPORT R cuGetProcAddress_v2(const char *symbol, void **pfn, int version, ml_cu_u64 flags, int *status);

/* base name, first version, stream form (0 either, 1 legacy, 2 per-thread),
 * exported function, unexported copy (NULL: the export) */
/* The table refers to the driver's functions through hidden aliases: the
 * exported names may be interposed (by memledger), and the driver must
 * hand out its own functions, as a real one does. */
#define LOCAL(name) extern __typeof__(name) local_##name __attribute__((alias(#name), visibility("hidden")));
LOCAL(cuArray3DCreate)
LOCAL(cuArray3DCreate_v2)
LOCAL(cuArrayCreate)
LOCAL(cuArrayCreate_v2)
LOCAL(cuArrayDestroy)
LOCAL(cuCtxCreate_v2)
LOCAL(cuCtxDestroy_v2)
LOCAL(cuCtxGetCurrent)
LOCAL(cuCtxSetCurrent)
LOCAL(cuCtxSynchronize)
LOCAL(cuDeviceGet)
LOCAL(cuDeviceGetAttribute)
LOCAL(cuDeviceGetCount)
LOCAL(cuDeviceGetDefaultMemPool)
LOCAL(cuDeviceGetName)
LOCAL(cuDevicePrimaryCtxRelease_v2)
LOCAL(cuDevicePrimaryCtxRetain)
LOCAL(cuDeviceTotalMem_v2)
LOCAL(cuDriverGetVersion)
LOCAL(cuGetErrorName)
LOCAL(cuGetErrorString)
LOCAL(cuGetExportTable)
LOCAL(cuGetProcAddress)
LOCAL(cuGetProcAddress_v2)
LOCAL(cuInit)
LOCAL(cuMemAddressFree)
LOCAL(cuMemAddressReserve)
LOCAL(cuMemAlloc)
LOCAL(cuMemAllocAsync)
LOCAL(cuMemAllocAsync_ptsz)
LOCAL(cuMemAllocFromPoolAsync)
LOCAL(cuMemAllocFromPoolAsync_ptsz)
LOCAL(cuMemAllocHost)
LOCAL(cuMemAllocHost_v2)
LOCAL(cuMemAllocManaged)
LOCAL(cuMemAllocPitch)
LOCAL(cuMemAllocPitch_v2)
LOCAL(cuMemAlloc_v2)
LOCAL(cuMemCreate)
LOCAL(cuMemFree)
LOCAL(cuMemFreeAsync)
LOCAL(cuMemFreeAsync_ptsz)
LOCAL(cuMemFreeHost)
LOCAL(cuMemFree_v2)
LOCAL(cuMemGetAllocationGranularity)
LOCAL(cuMemGetInfo_v2)
LOCAL(cuMemHostAlloc)
LOCAL(cuMemMap)
LOCAL(cuMemPoolCreate)
LOCAL(cuMemPoolDestroy)
LOCAL(cuMemRelease)
LOCAL(cuMemRetainAllocationHandle)
LOCAL(cuMemSetAccess)
LOCAL(cuMemUnmap)
LOCAL(cuMemcpyDtoH_v2)
LOCAL(cuMemcpyHtoD_v2)
LOCAL(cuStreamCreate)
LOCAL(cuStreamDestroy_v2)
LOCAL(cuStreamSynchronize)

static const struct {
    const char *base;
    int since, stream;
    void *fn, *priv;
} procs[] = {
#define P(base, since, stream, fn, priv) {base, since, stream, (void *)(local_##fn), (void *)(priv)}
    P("cuInit", 2000, 0, cuInit, NULL),
    P("cuDriverGetVersion", 2020, 0, cuDriverGetVersion, NULL),
    P("cuGetProcAddress", 12000, 0, cuGetProcAddress_v2, NULL),
    P("cuGetProcAddress", 11030, 0, cuGetProcAddress, NULL),
    P("cuGetExportTable", 3000, 0, cuGetExportTable, NULL),
    P("cuGetErrorString", 6000, 0, cuGetErrorString, NULL),
    P("cuGetErrorName", 6000, 0, cuGetErrorName, NULL),
    P("cuDeviceGet", 2000, 0, cuDeviceGet, NULL),
    P("cuDeviceGetCount", 2000, 0, cuDeviceGetCount, NULL),
    P("cuDeviceGetName", 2000, 0, cuDeviceGetName, NULL),
    P("cuDeviceTotalMem", 3020, 0, cuDeviceTotalMem_v2, NULL),
    P("cuDeviceGetAttribute", 2000, 0, cuDeviceGetAttribute, NULL),
    P("cuCtxCreate", 3020, 0, cuCtxCreate_v2, NULL),
    P("cuCtxDestroy", 4000, 0, cuCtxDestroy_v2, NULL),
    P("cuCtxSetCurrent", 4000, 0, cuCtxSetCurrent, NULL),
    P("cuCtxGetCurrent", 4000, 0, cuCtxGetCurrent, NULL),
    P("cuCtxSynchronize", 2000, 0, cuCtxSynchronize, NULL),
    P("cuDevicePrimaryCtxRetain", 7000, 0, cuDevicePrimaryCtxRetain, NULL),
    P("cuDevicePrimaryCtxRelease", 11000, 0, cuDevicePrimaryCtxRelease_v2, NULL),
    P("cuMemGetInfo", 3020, 0, cuMemGetInfo_v2, NULL),
    P("cuStreamCreate", 2000, 0, cuStreamCreate, NULL),
    P("cuStreamDestroy", 4000, 0, cuStreamDestroy_v2, NULL),
    P("cuStreamSynchronize", 2000, 0, cuStreamSynchronize, NULL),
    P("cuMemPoolCreate", 11020, 0, cuMemPoolCreate, NULL),
    P("cuMemPoolDestroy", 11020, 0, cuMemPoolDestroy, NULL),
    P("cuDeviceGetDefaultMemPool", 11020, 0, cuDeviceGetDefaultMemPool, NULL),
    P("cuMemGetAllocationGranularity", 10020, 0, cuMemGetAllocationGranularity, NULL),
    P("cuMemAddressReserve", 10020, 0, cuMemAddressReserve, NULL),
    P("cuMemAddressFree", 10020, 0, cuMemAddressFree, NULL),
    P("cuMemSetAccess", 10020, 0, cuMemSetAccess, NULL),
    P("cuMemcpyHtoD", 3020, 0, cuMemcpyHtoD_v2, NULL),
    P("cuMemcpyDtoH", 3020, 0, cuMemcpyDtoH_v2, NULL),
    P("cuMemAlloc", 3020, 0, cuMemAlloc_v2, priv_cuMemAlloc_v2),
    P("cuMemAlloc", 2000, 0, cuMemAlloc, NULL),
    P("cuMemAllocPitch", 3020, 0, cuMemAllocPitch_v2, priv_cuMemAllocPitch_v2),
    P("cuMemAllocPitch", 2000, 0, cuMemAllocPitch, NULL),
    P("cuMemFree", 3020, 0, cuMemFree_v2, priv_cuMemFree_v2),
    P("cuMemFree", 2000, 0, cuMemFree, NULL),
    P("cuMemAllocAsync", 11020, 2, cuMemAllocAsync_ptsz, priv_cuMemAllocAsync_ptsz),
    P("cuMemAllocAsync", 11020, 1, cuMemAllocAsync, priv_cuMemAllocAsync),
    P("cuMemAllocFromPoolAsync", 11020, 2, cuMemAllocFromPoolAsync_ptsz, priv_cuMemAllocFromPoolAsync_ptsz),
    P("cuMemAllocFromPoolAsync", 11020, 1, cuMemAllocFromPoolAsync, priv_cuMemAllocFromPoolAsync),
    P("cuMemFreeAsync", 11020, 2, cuMemFreeAsync_ptsz, priv_cuMemFreeAsync_ptsz),
    P("cuMemFreeAsync", 11020, 1, cuMemFreeAsync, priv_cuMemFreeAsync),
    P("cuMemAllocManaged", 6000, 0, cuMemAllocManaged, priv_cuMemAllocManaged),
    P("cuMemHostAlloc", 2020, 0, cuMemHostAlloc, priv_cuMemHostAlloc),
    P("cuMemAllocHost", 3020, 0, cuMemAllocHost_v2, priv_cuMemAllocHost_v2),
    P("cuMemAllocHost", 2000, 0, cuMemAllocHost, NULL),
    P("cuMemFreeHost", 2000, 0, cuMemFreeHost, priv_cuMemFreeHost),
    P("cuMemCreate", 10020, 0, cuMemCreate, priv_cuMemCreate),
    P("cuMemRelease", 10020, 0, cuMemRelease, priv_cuMemRelease),
    P("cuMemMap", 10020, 0, cuMemMap, priv_cuMemMap),
    P("cuMemUnmap", 10020, 0, cuMemUnmap, priv_cuMemUnmap),
    P("cuMemRetainAllocationHandle", 11000, 0, cuMemRetainAllocationHandle, priv_cuMemRetainAllocationHandle),
    P("cuArrayCreate", 3020, 0, cuArrayCreate_v2, priv_cuArrayCreate_v2),
    P("cuArrayCreate", 2000, 0, cuArrayCreate, NULL),
    P("cuArray3DCreate", 3020, 0, cuArray3DCreate_v2, priv_cuArray3DCreate_v2),
    P("cuArray3DCreate", 2000, 0, cuArray3DCreate, NULL),
    P("cuArrayDestroy", 2000, 0, cuArrayDestroy, priv_cuArrayDestroy),
#undef P
};

static R get_proc_address(const char *symbol, void **pfn, int version, ml_cu_u64 flags, int *status,
                          const void *caller)
{
    if (trace() && caller)
        fprintf(stderr, "fakecuda: cuGetProcAddress %s %d %llu from %s\n", symbol ? symbol : "(null)", version,
                (unsigned long long)flags, module_of(caller));
    if (!symbol || !pfn)
        return E_INVALID_VALUE;
    *pfn = NULL;
    int want = flags & ML_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM ? 2 : 1;
    int priv = getenv("FAKECUDA_GPA_PRIVATE") && atoi(getenv("FAKECUDA_GPA_PRIVATE"));
    int found_name = 0;
    for (size_t i = 0; i < sizeof procs / sizeof *procs; i++) {
        if (strcmp(procs[i].base, symbol) != 0)
            continue;
        found_name = 1;
        if (version < procs[i].since || (procs[i].stream && procs[i].stream != want))
            continue;
        *pfn = priv && procs[i].priv ? procs[i].priv : procs[i].fn;
        if (status)
            *status = 0;
        return OK;
    }
    /* 2: the name exists, but not at this version */
    if (status)
        *status = found_name ? 2 : 1;
    return E_NOT_FOUND;
}

EXPORT R cuGetProcAddress_v2(const char *symbol, void **pfn, int version, ml_cu_u64 flags, int *status)
{
    return get_proc_address(symbol, pfn, version, flags, status, __builtin_return_address(0));
}

EXPORT R cuGetProcAddress(const char *symbol, void **pfn, int version, ml_cu_u64 flags)
{
    return get_proc_address(symbol, pfn, version, flags, NULL, __builtin_return_address(0));
}

/* What the driver returns, under a name no hook knows and without going
 * through its exported (interposable) cuGetProcAddress_v2, so tests can
 * compare it with what memledger hands out. */
EXPORT R fakecuda_get_proc_address(const char *symbol, void **pfn, int version, ml_cu_u64 flags)
{
    return get_proc_address(symbol, pfn, version, flags, NULL, NULL);
}
