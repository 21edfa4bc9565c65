/* cuda_wrappers.c — the anonymous wrappers that dlsym and cuGetProcAddress
 * hand out for the driver's allocating entry points (cuda_entry.c binds
 * them): per family, ML_CU_SLOTS wrappers, each forwarding to the pointer
 * in its slot through the family's handler. Must never do more than pass
 * the real function to its handler (cuda_record.c, cuda_entry.c). */
#include "common/common.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_entry.h"
#include "cuda/cuda_record.h"

typedef ml_cu_result R;
typedef ml_cu_deviceptr D;
typedef ml_cu_mem_handle H;

/* Slot wrappers: four per family, named <family>_<slot>. */
#define SLOT(fam, k) ml_cu_slot_fn(fam, k)
#define FOUR(name, fam, params, call)                                                        \
    static R name##_0 params { return call(SLOT(fam, 0)); }                                  \
    static R name##_1 params { return call(SLOT(fam, 1)); }                                  \
    static R name##_2 params { return call(SLOT(fam, 2)); }                                  \
    static R name##_3 params { return call(SLOT(fam, 3)); }

#define C_INIT(r) ml_cu_init(r, flags)
FOUR(init, ML_CU_INIT, (unsigned flags), C_INIT)
#define C_GPA1(r) ml_cu_gpa1(r, s, pfn, v, f)
FOUR(gpa1, ML_CU_GPA1, (const char *s, void **pfn, int v, ml_cu_u64 f), C_GPA1)
#define C_GPA2(r) ml_cu_gpa2(r, s, pfn, v, f, st)
FOUR(gpa2, ML_CU_GPA2, (const char *s, void **pfn, int v, ml_cu_u64 f, int *st), C_GPA2)
#define C_ALLOC(r) ml_cu_mem_alloc(r, d, n)
FOUR(alloc, ML_CU_ALLOC, (D * d, size_t n), C_ALLOC)
#define C_PITCH(r) ml_cu_mem_alloc_pitch(r, d, p, w, h, e)
FOUR(pitch, ML_CU_ALLOC_PITCH, (D * d, size_t *p, size_t w, size_t h, unsigned e), C_PITCH)
#define C_FREE(r) ml_cu_mem_free(r, d)
FOUR(mfree, ML_CU_FREE, (D d), C_FREE)
#define C_ASYNC(r) ml_cu_mem_alloc_async(r, d, n, s)
FOUR(async, ML_CU_ALLOC_ASYNC, (D * d, size_t n, ml_cu_stream s), C_ASYNC)
#define C_POOL(r) ml_cu_mem_alloc_pool(r, d, n, p, s)
FOUR(pool, ML_CU_ALLOC_POOL, (D * d, size_t n, ml_cu_mempool p, ml_cu_stream s), C_POOL)
#define C_FREE_ASYNC(r) ml_cu_mem_free_async(r, d, s)
FOUR(free_async, ML_CU_FREE_ASYNC, (D d, ml_cu_stream s), C_FREE_ASYNC)
#define C_MANAGED(r) ml_cu_mem_alloc_managed(r, d, n, f)
FOUR(managed, ML_CU_ALLOC_MANAGED, (D * d, size_t n, unsigned f), C_MANAGED)
#define C_HOST_ALLOC(r) ml_cu_mem_host_alloc(r, p, n, f)
FOUR(host_alloc, ML_CU_HOST_ALLOC, (void **p, size_t n, unsigned f), C_HOST_ALLOC)
#define C_ALLOC_HOST(r) ml_cu_mem_alloc_host(r, p, n)
FOUR(alloc_host, ML_CU_ALLOC_HOST, (void **p, size_t n), C_ALLOC_HOST)
#define C_FREE_HOST(r) ml_cu_mem_free_host(r, p)
FOUR(free_host, ML_CU_FREE_HOST, (void *p), C_FREE_HOST)
#define C_CREATE(r) ml_cu_mem_create(r, h, n, prop, f)
FOUR(create, ML_CU_CREATE, (H * h, size_t n, const void *prop, unsigned long long f), C_CREATE)
#define C_RELEASE(r) ml_cu_mem_release(r, h)
FOUR(release, ML_CU_RELEASE, (H h), C_RELEASE)
#define C_MAP(r) ml_cu_mem_map(r, va, n, off, h, f)
FOUR(map, ML_CU_MAP, (D va, size_t n, size_t off, H h, unsigned long long f), C_MAP)
#define C_UNMAP(r) ml_cu_mem_unmap(r, va, n)
FOUR(unmap, ML_CU_UNMAP, (D va, size_t n), C_UNMAP)
#define C_RETAIN(r) ml_cu_mem_retain(r, h, addr)
FOUR(retain, ML_CU_RETAIN, (H * h, void *addr), C_RETAIN)
#define C_ARRAY(r) ml_cu_array_create(r, a, d)
FOUR(array, ML_CU_ARRAY, (ml_cu_array * a, const ml_cu_array_desc *d), C_ARRAY)
#define C_ARRAY3D(r) ml_cu_array3d_create(r, a, d)
FOUR(array3d, ML_CU_ARRAY3D, (ml_cu_array * a, const ml_cu_array3d_desc *d), C_ARRAY3D)
#define C_ARRAY_DESTROY(r) ml_cu_array_destroy(r, a)
FOUR(array_destroy, ML_CU_ARRAY_DESTROY, (ml_cu_array a), C_ARRAY_DESTROY)

#define ROW(name) {(void *)name##_0, (void *)name##_1, (void *)name##_2, (void *)name##_3}
void *const ml_cu_wrappers[ML_CU_FAMILIES][ML_CU_SLOTS] = {
    [ML_CU_INIT] = ROW(init),
    [ML_CU_GPA1] = ROW(gpa1),
    [ML_CU_GPA2] = ROW(gpa2),
    [ML_CU_ALLOC] = ROW(alloc),
    [ML_CU_ALLOC_PITCH] = ROW(pitch),
    [ML_CU_FREE] = ROW(mfree),
    [ML_CU_ALLOC_ASYNC] = ROW(async),
    [ML_CU_ALLOC_POOL] = ROW(pool),
    [ML_CU_FREE_ASYNC] = ROW(free_async),
    [ML_CU_ALLOC_MANAGED] = ROW(managed),
    [ML_CU_HOST_ALLOC] = ROW(host_alloc),
    [ML_CU_ALLOC_HOST] = ROW(alloc_host),
    [ML_CU_FREE_HOST] = ROW(free_host),
    [ML_CU_CREATE] = ROW(create),
    [ML_CU_RELEASE] = ROW(release),
    [ML_CU_MAP] = ROW(map),
    [ML_CU_UNMAP] = ROW(unmap),
    [ML_CU_RETAIN] = ROW(retain),
    [ML_CU_ARRAY] = ROW(array),
    [ML_CU_ARRAY3D] = ROW(array3d),
    [ML_CU_ARRAY_DESTROY] = ROW(array_destroy),
};
