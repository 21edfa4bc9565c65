/* cuda_leaks.c — one leak per CUDA driver allocation family, at a line the
 * test finds by its LEAK marker, plus churn through every alloc/free pair
 * (including frees the driver refuses) that must net to zero. Between
 * snapshot 1 and 2 each leak runs exactly ITER times.
 *
 * How the program reaches the driver is the point of the test:
 *   built with ML_LINKED: linked to libcuda, calling entry points by name;
 *   "dlsym":  dlopen("libcuda.so.1") and dlsym for each entry point;
 *   "gpa":    dlsym only cuGetProcAddress_v2, then everything through it,
 *             the per-thread-stream forms with that flag, as the runtime does;
 *   "gpa_v1": the same through the four-argument cuGetProcAddress (11.x),
 *             itself fetched with cuGetProcAddress_v2.
 * At the end it prints how often the stand-in driver ran each entry point,
 * so the test can see the per-thread-stream forms were the ones called. */
#include "snapshot_wait.h"

#include "cuda/cuda_api.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITER 25
#define NOINLINE __attribute__((noinline))
#define VMM_SIZE (2u << 20)

typedef ml_cu_result R;
typedef ml_cu_deviceptr D;
typedef ml_cu_mem_handle H;

/* The entry points, by the names the program uses. */
#define CU_FUNCTIONS(X)                                                                      \
    X(cuInit, R, (unsigned))                                                                 \
    X(cuDeviceGet, R, (int *, int))                                                          \
    X(cuCtxCreate_v2, R, (void **, unsigned, int))                                           \
    X(cuCtxSetCurrent, R, (void *))                                                          \
    X(cuStreamCreate, R, (void **, unsigned))                                                \
    X(cuMemPoolCreate, R, (void **, const void *))                                           \
    X(cuMemAddressReserve, R, (D *, size_t, size_t, D, unsigned long long))                  \
    X(cuMemSetAccess, R, (D, size_t, const void *, size_t))                                  \
    X(cuMemAlloc_v2, R, (D *, size_t))                                                       \
    X(cuMemAllocPitch_v2, R, (D *, size_t *, size_t, size_t, unsigned))                      \
    X(cuMemFree_v2, R, (D))                                                                  \
    X(cuMemAllocAsync, R, (D *, size_t, void *))                                             \
    X(cuMemAllocAsync_ptsz, R, (D *, size_t, void *))                                        \
    X(cuMemAllocFromPoolAsync, R, (D *, size_t, void *, void *))                             \
    X(cuMemAllocFromPoolAsync_ptsz, R, (D *, size_t, void *, void *))                        \
    X(cuMemFreeAsync, R, (D, void *))                                                        \
    X(cuMemFreeAsync_ptsz, R, (D, void *))                                                   \
    X(cuMemAllocManaged, R, (D *, size_t, unsigned))                                         \
    X(cuMemHostAlloc, R, (void **, size_t, unsigned))                                        \
    X(cuMemAllocHost_v2, R, (void **, size_t))                                               \
    X(cuMemFreeHost, R, (void *))                                                            \
    X(cuMemCreate, R, (H *, size_t, const void *, unsigned long long))                       \
    X(cuMemRelease, R, (H))                                                                  \
    X(cuMemMap, R, (D, size_t, size_t, H, unsigned long long))                               \
    X(cuMemUnmap, R, (D, size_t))                                                            \
    X(cuMemRetainAllocationHandle, R, (H *, void *))                                         \
    X(cuArrayCreate_v2, R, (ml_cu_array *, const ml_cu_array_desc *))                        \
    X(cuArray3DCreate_v2, R, (ml_cu_array *, const ml_cu_array3d_desc *))                    \
    X(cuArrayDestroy, R, (ml_cu_array))

#ifdef ML_LINKED
#define DECLARE(name, ret, args) ret name args;
CU_FUNCTIONS(DECLARE)
long fakecuda_calls(const char *name);
#define CU(name) name
static void load(const char *mode) { (void)mode; }
static long calls(const char *name) { return fakecuda_calls(name); }
#else
#define FIELD(name, ret, args) ret(*name) args;
static struct {
    CU_FUNCTIONS(FIELD)
} api;
#define CU(name) api.name
static void *lib;

typedef R (*gpa2_t)(const char *, void **, int, ml_cu_u64, int *);
typedef R (*gpa1_t)(const char *, void **, int, ml_cu_u64);
static gpa2_t gpa2;
static gpa1_t gpa1;

/* cuGetProcAddress's base name: the _v2 suffix and the _ptsz form go */
static void *by_gpa(const char *name)
{
    char base[128];
    snprintf(base, sizeof base, "%s", name);
    ml_cu_u64 flags = ML_CU_GET_PROC_ADDRESS_DEFAULT;
    char *s;
    if ((s = strstr(base, "_ptsz"))) {
        *s = '\0';
        flags = ML_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    }
    if ((s = strstr(base, "_v2")) && s[3] == '\0')
        *s = '\0';
    void *p = NULL;
    int status = -1;
    R r = gpa1 ? gpa1(base, &p, 11080, flags) : gpa2(base, &p, 13000, flags, &status);
    if (r != 0 || !p) {
        fprintf(stderr, "cuGetProcAddress(%s) failed: %d\n", base, r);
        exit(3);
    }
    return p;
}

static void load(const char *mode)
{
    lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror());
        exit(3);
    }
    bool use_gpa = strcmp(mode, "gpa") == 0 || strcmp(mode, "gpa_v1") == 0;
    if (use_gpa) {
        gpa2 = (gpa2_t)dlsym(lib, "cuGetProcAddress_v2");
        /* the runtime fetches cuGetProcAddress itself through it, too */
        void *p = NULL;
        if (!gpa2 || gpa2("cuGetProcAddress", &p, 12000, 0, NULL) != 0 || !p) {
            fprintf(stderr, "no cuGetProcAddress_v2\n");
            exit(3);
        }
        gpa2 = (gpa2_t)p;
        if (strcmp(mode, "gpa_v1") == 0 && (gpa2("cuGetProcAddress", &p, 11030, 0, NULL) != 0 || !(gpa1 = (gpa1_t)p))) {
            fprintf(stderr, "no cuGetProcAddress (11.3)\n");
            exit(3);
        }
    }
#define LOAD(name, ret, args)                                                                \
    api.name = (ret(*) args)(use_gpa ? by_gpa(#name) : dlsym(lib, #name));                  \
    if (!api.name) {                                                                         \
        fprintf(stderr, "cannot find %s\n", #name);                                          \
        exit(3);                                                                             \
    }
    CU_FUNCTIONS(LOAD)
}

static long calls(const char *name)
{
    long (*f)(const char *) = (long (*)(const char *))dlsym(lib, "fakecuda_calls");
    return f ? f(name) : -1;
}
#endif

static void check(R r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "%s failed: %d\n", what, r);
        exit(3);
    }
}

static void *ctx, *stream, *pool;

/* ---- the leaks, one per family ---- */

NOINLINE static void leak_alloc(void) { D d; check(CU(cuMemAlloc_v2)(&d, 1 << 20), "cuMemAlloc_v2"); /* LEAK:alloc */ }
NOINLINE static void leak_pitch(void)
{
    D d;
    size_t pitch;
    check(CU(cuMemAllocPitch_v2)(&d, &pitch, 1000, 30, 4), "cuMemAllocPitch_v2"); /* LEAK:pitch */
}
NOINLINE static void leak_async(void) { D d; check(CU(cuMemAllocAsync)(&d, 3000, stream), "cuMemAllocAsync"); /* LEAK:async */ }
NOINLINE static void leak_async_ptsz(void)
{
    D d;
    check(CU(cuMemAllocAsync_ptsz)(&d, 5000, stream), "cuMemAllocAsync_ptsz"); /* LEAK:async_ptsz */
}
NOINLINE static void leak_pool(void)
{
    D d;
    check(CU(cuMemAllocFromPoolAsync)(&d, 7000, pool, stream), "cuMemAllocFromPoolAsync"); /* LEAK:pool */
}
NOINLINE static void leak_pool_ptsz(void)
{
    D d;
    check(CU(cuMemAllocFromPoolAsync_ptsz)(&d, 9000, pool, stream), "cuMemAllocFromPoolAsync_ptsz"); /* LEAK:pool_ptsz */
}
NOINLINE static void leak_managed(void) { D d; check(CU(cuMemAllocManaged)(&d, 11000, 1), "cuMemAllocManaged"); /* LEAK:managed */ }
NOINLINE static void leak_host_alloc(void)
{
    void *p;
    check(CU(cuMemHostAlloc)(&p, 13000, 0), "cuMemHostAlloc"); /* LEAK:host_alloc */
}
NOINLINE static void leak_alloc_host(void) { void *p; check(CU(cuMemAllocHost_v2)(&p, 15000), "cuMemAllocHost_v2"); /* LEAK:alloc_host */ }

static D reserve(size_t size)
{
    D va;
    check(CU(cuMemAddressReserve)(&va, size, 0, 0, 0), "cuMemAddressReserve");
    return va;
}

static void map(D va, H h)
{
    check(CU(cuMemMap)(va, VMM_SIZE, 0, h, 0), "cuMemMap");
    check(CU(cuMemSetAccess)(va, VMM_SIZE, NULL, 0), "cuMemSetAccess");
}

/* One physical handle mapped at two addresses: one allocation. */
NOINLINE static void leak_vmm(void)
{
    H h;
    check(CU(cuMemCreate)(&h, VMM_SIZE, NULL, 0), "cuMemCreate"); /* LEAK:vmm */
    D a = reserve(VMM_SIZE), b = reserve(VMM_SIZE);
    map(a, h);
    map(b, h);
    *(volatile int *)(uintptr_t)a = 42;
    if (*(volatile int *)(uintptr_t)b != 42) {
        fprintf(stderr, "the two mappings do not alias\n");
        exit(3);
    }
}

/* Released at once, but its mapping keeps the memory: still live. */
NOINLINE static void leak_vmm_mapped(void)
{
    H h;
    check(CU(cuMemCreate)(&h, VMM_SIZE, NULL, 0), "cuMemCreate"); /* LEAK:vmm_mapped */
    map(reserve(VMM_SIZE), h);
    check(CU(cuMemRelease)(h), "cuMemRelease");
}

NOINLINE static void leak_array(void)
{
    ml_cu_array a;
    ml_cu_array_desc d = {64, 32, ML_CU_AD_FORMAT_FLOAT, 4};
    check(CU(cuArrayCreate_v2)(&a, &d), "cuArrayCreate_v2"); /* LEAK:array */
}

NOINLINE static void leak_array3d(void)
{
    ml_cu_array a;
    ml_cu_array3d_desc d = {16, 16, 8, ML_CU_AD_FORMAT_UNSIGNED_INT8, 1, 0};
    check(CU(cuArray3DCreate_v2)(&a, &d), "cuArray3DCreate_v2"); /* LEAK:array3d */
}

/* ---- churn: everything allocated here is freed here ---- */

NOINLINE static void churn_device(void)
{
    D d;
    size_t pitch;
    for (int i = 1; i <= 4; i++) {
        check(CU(cuMemAlloc_v2)(&d, (size_t)i * 4096), "cuMemAlloc_v2");
        /* refused without a context: the ledger must keep it */
        check(CU(cuCtxSetCurrent)(NULL), "cuCtxSetCurrent");
        if (CU(cuMemFree_v2)(d) == 0) {
            fprintf(stderr, "cuMemFree_v2 without a context succeeded\n");
            exit(3);
        }
        check(CU(cuCtxSetCurrent)(ctx), "cuCtxSetCurrent");
        check(CU(cuMemFree_v2)(d), "cuMemFree_v2");
        check(CU(cuMemAllocPitch_v2)(&d, &pitch, (size_t)i * 100, 8, 8), "cuMemAllocPitch_v2");
        check(CU(cuMemFree_v2)(d), "cuMemFree_v2");
        check(CU(cuMemAllocAsync)(&d, 100, stream), "cuMemAllocAsync");
        check(CU(cuMemFreeAsync)(d, stream), "cuMemFreeAsync");
        check(CU(cuMemAllocAsync_ptsz)(&d, 200, stream), "cuMemAllocAsync_ptsz");
        check(CU(cuMemFreeAsync_ptsz)(d, stream), "cuMemFreeAsync_ptsz");
        check(CU(cuMemAllocFromPoolAsync)(&d, 300, pool, stream), "cuMemAllocFromPoolAsync");
        check(CU(cuMemFreeAsync)(d, stream), "cuMemFreeAsync");
        check(CU(cuMemAllocFromPoolAsync_ptsz)(&d, 400, pool, stream), "cuMemAllocFromPoolAsync_ptsz");
        check(CU(cuMemFreeAsync_ptsz)(d, stream), "cuMemFreeAsync_ptsz");
        check(CU(cuMemAllocManaged)(&d, 500, 1), "cuMemAllocManaged");
        check(CU(cuMemFree_v2)(d), "cuMemFree_v2");
        /* an address the driver never gave out: nothing to forget */
        if (CU(cuMemFree_v2)((D)0x1000) == 0)
            exit(3);
    }
}

NOINLINE static void churn_host(void)
{
    void *p;
    check(CU(cuMemHostAlloc)(&p, 600, 0), "cuMemHostAlloc");
    /* cuMemFree_v2 refuses host memory: the ledger must keep it */
    if (CU(cuMemFree_v2)((D)(uintptr_t)p) == 0)
        exit(3);
    check(CU(cuMemFreeHost)(p), "cuMemFreeHost");
    check(CU(cuMemAllocHost_v2)(&p, 700), "cuMemAllocHost_v2");
    check(CU(cuMemFreeHost)(p), "cuMemFreeHost");
}

NOINLINE static void churn_vmm(void)
{
    H h, again;
    D a = reserve(VMM_SIZE), b = reserve(VMM_SIZE);
    /* mapped twice and retained once: four references, all dropped */
    check(CU(cuMemCreate)(&h, VMM_SIZE, NULL, 0), "cuMemCreate");
    map(a, h);
    map(b, h);
    check(CU(cuMemRetainAllocationHandle)(&again, (void *)(uintptr_t)(a + 100)), "cuMemRetainAllocationHandle");
    check(CU(cuMemRelease)(again), "cuMemRelease");
    check(CU(cuMemUnmap)(a, VMM_SIZE), "cuMemUnmap");
    check(CU(cuMemRelease)(h), "cuMemRelease");
    /* refused without a context: the mapping and the memory stay */
    check(CU(cuCtxSetCurrent)(NULL), "cuCtxSetCurrent");
    if (CU(cuMemUnmap)(b, VMM_SIZE) == 0)
        exit(3);
    check(CU(cuCtxSetCurrent)(ctx), "cuCtxSetCurrent");
    check(CU(cuMemUnmap)(b, VMM_SIZE), "cuMemUnmap"); /* the last reference */
    /* two handles mapped end to end, unmapped in one call */
    H h2;
    D ab = reserve(2 * VMM_SIZE);
    check(CU(cuMemCreate)(&h, VMM_SIZE, NULL, 0), "cuMemCreate");
    check(CU(cuMemCreate)(&h2, VMM_SIZE, NULL, 0), "cuMemCreate");
    map(ab, h);
    map(ab + VMM_SIZE, h2);
    check(CU(cuMemRelease)(h), "cuMemRelease");
    check(CU(cuMemRelease)(h2), "cuMemRelease");
    check(CU(cuMemUnmap)(ab, 2 * VMM_SIZE), "cuMemUnmap");
}

NOINLINE static void churn_arrays(void)
{
    ml_cu_array a;
    ml_cu_array_desc d = {128, 0, ML_CU_AD_FORMAT_HALF, 2};
    check(CU(cuArrayCreate_v2)(&a, &d), "cuArrayCreate_v2");
    check(CU(cuArrayDestroy)(a), "cuArrayDestroy");
    ml_cu_array3d_desc d3 = {8, 8, 8, ML_CU_AD_FORMAT_SIGNED_INT32, 1, 0};
    check(CU(cuArray3DCreate_v2)(&a, &d3), "cuArray3DCreate_v2");
    check(CU(cuArrayDestroy)(a), "cuArrayDestroy");
}

static void round_of_leaks(void)
{
    leak_alloc();
    leak_pitch();
    leak_async();
    leak_async_ptsz();
    leak_pool();
    leak_pool_ptsz();
    leak_managed();
    leak_host_alloc();
    leak_alloc_host();
    leak_vmm();
    leak_vmm_mapped();
    leak_array();
    leak_array3d();
    churn_device();
    churn_host();
    churn_vmm();
    churn_arrays();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "linked";
    load(mode);
    int dev;
    check(CU(cuInit)(0), "cuInit");
    check(CU(cuDeviceGet)(&dev, 0), "cuDeviceGet");
    check(CU(cuCtxCreate_v2)(&ctx, 0, dev), "cuCtxCreate_v2");
    check(CU(cuStreamCreate)(&stream, 0), "cuStreamCreate");
    check(CU(cuMemPoolCreate)(&pool, NULL), "cuMemPoolCreate");
    round_of_leaks(); /* every stack exists before the first snapshot */
    snapshot_wait(1);
    for (int i = 0; i < ITER; i++)
        round_of_leaks();
    snapshot_wait(2);
    static const char *const counted[] = {"cuMemAllocAsync", "cuMemAllocAsync_ptsz", "cuMemAllocFromPoolAsync",
                                          "cuMemAllocFromPoolAsync_ptsz", "cuMemFreeAsync", "cuMemFreeAsync_ptsz",
                                          "cuMemHostAlloc", "cuMemAllocHost_v2", "private"};
    for (size_t i = 0; i < sizeof counted / sizeof *counted; i++)
        printf("calls %s %ld\n", counted[i], calls(counted[i]));
    printf("iterations %d mode %s\n", ITER, mode);
    return 0;
}
