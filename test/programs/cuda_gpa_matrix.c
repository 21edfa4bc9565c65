/* cuda_gpa_matrix.c — what a program gets from cuGetProcAddress_v2 and
 * dlsym under memledger, compared request by request with what the
 * stand-in driver itself returns (fakecuda_get_proc_address, a name no
 * hook knows): for every base name the driver has, every version from 2.0
 * to 13.0 and every stream flag, the result is a memledger wrapper exactly
 * when the driver returned an entry point memledger wraps (by the versions
 * of cudaTypedefs.h), and otherwise the driver's own pointer, untouched;
 * the return code is the driver's. The same for dlsym by name.
 * Argument "off": memledger must wrap nothing (MEMLEDGER_CUDA=off).
 * Prints "requests N wrapped W distinct D"; exits 1 on the first mismatch. */
#include "cuda/cuda_api.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ml_cu_result (*gpa2_t)(const char *, void **, int, ml_cu_u64, int *);
typedef ml_cu_result (*raw_t)(const char *, void **, int, ml_cu_u64);

/* wrapped base names and the version from which the driver returns the
 * signature memledger wraps */
static const struct {
    const char *base;
    int since;
} wrapped[] = {
    {"cuInit", 2000}, {"cuGetProcAddress", 11030}, {"cuMemAlloc", 3020}, {"cuMemAllocPitch", 3020},
    {"cuMemFree", 3020}, {"cuMemAllocHost", 3020}, {"cuArrayCreate", 3020}, {"cuArray3DCreate", 3020},
    {"cuMemFreeHost", 2000}, {"cuMemHostAlloc", 2020}, {"cuArrayDestroy", 2000}, {"cuMemAllocManaged", 6000},
    {"cuMemCreate", 10020}, {"cuMemRelease", 10020}, {"cuMemMap", 10020}, {"cuMemUnmap", 10020},
    {"cuMemRetainAllocationHandle", 11000}, {"cuMemAllocAsync", 11020}, {"cuMemAllocFromPoolAsync", 11020},
    {"cuMemFreeAsync", 11020},
};

static const char *const names[] = {
    "cuInit", "cuDriverGetVersion", "cuGetProcAddress", "cuGetExportTable", "cuGetErrorString", "cuDeviceGet",
    "cuDeviceGetCount", "cuDeviceTotalMem", "cuCtxCreate", "cuCtxSetCurrent", "cuMemGetInfo", "cuStreamCreate",
    "cuMemPoolCreate", "cuMemAddressReserve", "cuMemSetAccess", "cuMemcpyHtoD", "cuMemAlloc", "cuMemAllocPitch",
    "cuMemFree", "cuMemAllocAsync", "cuMemAllocFromPoolAsync", "cuMemFreeAsync", "cuMemAllocManaged",
    "cuMemHostAlloc", "cuMemAllocHost", "cuMemFreeHost", "cuMemCreate", "cuMemRelease", "cuMemMap", "cuMemUnmap",
    "cuMemRetainAllocationHandle", "cuArrayCreate", "cuArray3DCreate", "cuArrayDestroy", "cuNoSuchFunction", "",
};
static const int versions[] = {2000, 2020, 3000, 3020, 6000, 10020, 11000, 11020, 11030, 11080, 12000, 13000};
static const ml_cu_u64 flags[] = {ML_CU_GET_PROC_ADDRESS_DEFAULT, ML_CU_GET_PROC_ADDRESS_LEGACY_STREAM,
                                  ML_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM};

/* the exported names of the driver, and whether memledger wraps each */
static const struct {
    const char *name;
    bool wrapped;
} exported[] = {
    {"cuInit", true}, {"cuGetProcAddress", true}, {"cuGetProcAddress_v2", true}, {"cuMemAlloc_v2", true},
    {"cuMemAllocPitch_v2", true}, {"cuMemFree_v2", true}, {"cuMemAllocAsync", true},
    {"cuMemAllocAsync_ptsz", true}, {"cuMemAllocFromPoolAsync", true}, {"cuMemAllocFromPoolAsync_ptsz", true},
    {"cuMemFreeAsync", true}, {"cuMemFreeAsync_ptsz", true}, {"cuMemAllocManaged", true},
    {"cuMemHostAlloc", true}, {"cuMemAllocHost_v2", true}, {"cuMemFreeHost", true}, {"cuMemCreate", true},
    {"cuMemRelease", true}, {"cuMemMap", true}, {"cuMemUnmap", true}, {"cuMemRetainAllocationHandle", true},
    {"cuArrayCreate_v2", true}, {"cuArray3DCreate_v2", true}, {"cuArrayDestroy", true},
    /* older signatures and everything else: never */
    {"cuMemAlloc", false}, {"cuMemAllocPitch", false}, {"cuMemFree", false}, {"cuMemAllocHost", false},
    {"cuArrayCreate", false}, {"cuArray3DCreate", false}, {"cuDeviceGet", false}, {"cuMemGetInfo_v2", false},
    {"cuGetExportTable", false}, {"cuMemAddressReserve", false}, {"fakecuda_calls", false},
};

static bool by_memledger(void *p)
{
    Dl_info di;
    return p && dladdr(p, &di) && di.dli_fname && strstr(di.dli_fname, "libmemledger");
}

static bool wraps(const char *base, int version)
{
    for (size_t i = 0; i < sizeof wrapped / sizeof *wrapped; i++)
        if (strcmp(wrapped[i].base, base) == 0)
            return version >= wrapped[i].since;
    return false;
}

static void mismatch(const char *what, const char *name, int version, ml_cu_u64 f, void *raw, void *got)
{
    fprintf(stderr, "%s: %s version %d flags %llu: driver %p, memledger handed out %p\n", what, name, version,
            (unsigned long long)f, raw, got);
    exit(1);
}

int main(int argc, char **argv)
{
    bool off = argc > 1 && strcmp(argv[1], "off") == 0;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    gpa2_t gpa = (gpa2_t)dlsym(lib, "cuGetProcAddress_v2");
    raw_t raw = (raw_t)dlsym(lib, "fakecuda_get_proc_address");
    if (!gpa || !raw || by_memledger((void *)raw) || by_memledger(gpa) == off) {
        fprintf(stderr, "cuGetProcAddress_v2 %p (by memledger: %d), raw %p\n", (void *)gpa, by_memledger(gpa),
                (void *)raw);
        return 1;
    }
    int requests = 0, nwrapped = 0;
    void *seen_got[256], *seen_want[256]; /* wrapper -> driver function: one to one */
    int nseen = 0;
    for (size_t n = 0; n < sizeof names / sizeof *names; n++)
        for (size_t v = 0; v < sizeof versions / sizeof *versions; v++)
            for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
                void *want = NULL, *got = (void *)1, *again = (void *)2;
                int status = -1;
                ml_cu_result rw = raw(names[n], &want, versions[v], flags[f]);
                ml_cu_result rg = gpa(names[n], &got, versions[v], flags[f], &status);
                gpa(names[n], &again, versions[v], flags[f], NULL);
                requests++;
                if (rw != rg || (rw == 0) != (status == 0))
                    mismatch("return code", names[n], versions[v], flags[f], want, got);
                if (got != again)
                    mismatch("not the same twice", names[n], versions[v], flags[f], got, again);
                bool should = !off && want && wraps(names[n], versions[v]);
                if (should ? (!by_memledger(got) || got == want) : got != want)
                    mismatch(should ? "not wrapped" : "wrapped", names[n], versions[v], flags[f], want, got);
                if (should) {
                    nwrapped++;
                    bool known = false;
                    for (int i = 0; i < nseen; i++) {
                        if ((seen_got[i] == got) != (seen_want[i] == want))
                            mismatch("one wrapper for two functions", names[n], versions[v], flags[f], want, got);
                        known |= seen_got[i] == got;
                    }
                    if (!known && nseen < 256) {
                        seen_got[nseen] = got;
                        seen_want[nseen++] = want;
                    }
                }
            }
    for (size_t i = 0; i < sizeof exported / sizeof *exported; i++) {
        void *got = dlsym(lib, exported[i].name);
        void *want = dlsym(lib, exported[i].name); /* stable */
        bool should = exported[i].wrapped && !off;
        if (!got || got != want || by_memledger(got) != should)
            mismatch("dlsym", exported[i].name, 0, 0, want, got);
    }
    if (dlsym(lib, "cuNoSuchFunction") != NULL || !dlerror()) {
        fprintf(stderr, "dlsym of a missing name: no NULL and error\n");
        return 1;
    }
    printf("requests %d wrapped %d distinct %d\n", requests, nwrapped, nseen);
    return 0;
}
