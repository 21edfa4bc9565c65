/* shim/cuda.c — the CUDA driver's entry points that memledger wraps.
 * The driver's exported names (a program linked to libcuda calls these
 * first), each one line forwarding to the next definition through its
 * handler. The anonymous wrappers that dlsym and cuGetProcAddress hand out
 * are not interposed names; they live in src/cuda/cuda_wrappers.c. Must
 * never do more than pass the real function to its handler
 * (src/cuda/cuda_record.c, src/cuda/cuda_entry.c). */
#include "common/common.h"
#include "cuda/cuda_entry.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_record.h"

typedef ml_cu_result R;
typedef ml_cu_deviceptr D;
typedef ml_cu_mem_handle H;

#define NEXT(name) ml_cuda_next(ML_CUX_##name)

ML_EXPORT R cuInit(unsigned flags) { return ml_cu_init(NEXT(cuInit), flags); }
ML_EXPORT R cuGetProcAddress(const char *s, void **pfn, int v, ml_cu_u64 f)
{
    return ml_cu_gpa1(NEXT(cuGetProcAddress), s, pfn, v, f);
}
ML_EXPORT R cuGetProcAddress_v2(const char *s, void **pfn, int v, ml_cu_u64 f, int *st)
{
    return ml_cu_gpa2(NEXT(cuGetProcAddress_v2), s, pfn, v, f, st);
}
ML_EXPORT R cuMemAlloc_v2(D *d, size_t n) { return ml_cu_mem_alloc(NEXT(cuMemAlloc_v2), d, n); }
ML_EXPORT R cuMemAllocPitch_v2(D *d, size_t *p, size_t w, size_t h, unsigned e)
{
    return ml_cu_mem_alloc_pitch(NEXT(cuMemAllocPitch_v2), d, p, w, h, e);
}
ML_EXPORT R cuMemFree_v2(D d) { return ml_cu_mem_free(NEXT(cuMemFree_v2), d); }
ML_EXPORT R cuMemAllocAsync(D *d, size_t n, ml_cu_stream s)
{
    return ml_cu_mem_alloc_async(NEXT(cuMemAllocAsync), d, n, s);
}
ML_EXPORT R cuMemAllocAsync_ptsz(D *d, size_t n, ml_cu_stream s)
{
    return ml_cu_mem_alloc_async(NEXT(cuMemAllocAsync_ptsz), d, n, s);
}
ML_EXPORT R cuMemAllocFromPoolAsync(D *d, size_t n, ml_cu_mempool p, ml_cu_stream s)
{
    return ml_cu_mem_alloc_pool(NEXT(cuMemAllocFromPoolAsync), d, n, p, s);
}
ML_EXPORT R cuMemAllocFromPoolAsync_ptsz(D *d, size_t n, ml_cu_mempool p, ml_cu_stream s)
{
    return ml_cu_mem_alloc_pool(NEXT(cuMemAllocFromPoolAsync_ptsz), d, n, p, s);
}
ML_EXPORT R cuMemFreeAsync(D d, ml_cu_stream s) { return ml_cu_mem_free_async(NEXT(cuMemFreeAsync), d, s); }
ML_EXPORT R cuMemFreeAsync_ptsz(D d, ml_cu_stream s)
{
    return ml_cu_mem_free_async(NEXT(cuMemFreeAsync_ptsz), d, s);
}
ML_EXPORT R cuMemAllocManaged(D *d, size_t n, unsigned f)
{
    return ml_cu_mem_alloc_managed(NEXT(cuMemAllocManaged), d, n, f);
}
ML_EXPORT R cuMemHostAlloc(void **p, size_t n, unsigned f) { return ml_cu_mem_host_alloc(NEXT(cuMemHostAlloc), p, n, f); }
ML_EXPORT R cuMemAllocHost_v2(void **p, size_t n) { return ml_cu_mem_alloc_host(NEXT(cuMemAllocHost_v2), p, n); }
ML_EXPORT R cuMemFreeHost(void *p) { return ml_cu_mem_free_host(NEXT(cuMemFreeHost), p); }
ML_EXPORT R cuMemCreate(H *h, size_t n, const void *prop, unsigned long long f)
{
    return ml_cu_mem_create(NEXT(cuMemCreate), h, n, prop, f);
}
ML_EXPORT R cuMemRelease(H h) { return ml_cu_mem_release(NEXT(cuMemRelease), h); }
ML_EXPORT R cuMemMap(D va, size_t n, size_t off, H h, unsigned long long f)
{
    return ml_cu_mem_map(NEXT(cuMemMap), va, n, off, h, f);
}
ML_EXPORT R cuMemUnmap(D va, size_t n) { return ml_cu_mem_unmap(NEXT(cuMemUnmap), va, n); }
ML_EXPORT R cuMemRetainAllocationHandle(H *h, void *addr)
{
    return ml_cu_mem_retain(NEXT(cuMemRetainAllocationHandle), h, addr);
}
ML_EXPORT R cuArrayCreate_v2(ml_cu_array *a, const ml_cu_array_desc *d)
{
    return ml_cu_array_create(NEXT(cuArrayCreate_v2), a, d);
}
ML_EXPORT R cuArray3DCreate_v2(ml_cu_array *a, const ml_cu_array3d_desc *d)
{
    return ml_cu_array3d_create(NEXT(cuArray3DCreate_v2), a, d);
}
ML_EXPORT R cuArrayDestroy(ml_cu_array a) { return ml_cu_array_destroy(NEXT(cuArrayDestroy), a); }
