/* test_cuda_api.c — every CUDA fact memledger declares itself
 * (src/cuda/cuda_api.h, and the versions in src/cuda/cuda_entries.def)
 * agrees with the toolkit's cuda.h and cudaTypedefs.h;
 * built only where the toolkit is installed. The checks are made by the
 * compiler: this program builds only if every one holds. */
#include "cuda/cuda_api.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <stddef.h>
#include <stdio.h>

_Static_assert(sizeof(ml_cu_deviceptr) == sizeof(CUdeviceptr) && (ml_cu_deviceptr)-1 > 0, "CUdeviceptr");
_Static_assert(sizeof(ml_cu_mem_handle) == sizeof(CUmemGenericAllocationHandle), "handle");
_Static_assert(ML_CUDA_SUCCESS == CUDA_SUCCESS && ML_CUDA_ERROR_INVALID_VALUE == CUDA_ERROR_INVALID_VALUE &&
                   ML_CUDA_ERROR_NOT_INITIALIZED == CUDA_ERROR_NOT_INITIALIZED,
               "result codes");
_Static_assert(ML_CU_GET_PROC_ADDRESS_DEFAULT == CU_GET_PROC_ADDRESS_DEFAULT &&
                   ML_CU_GET_PROC_ADDRESS_LEGACY_STREAM == CU_GET_PROC_ADDRESS_LEGACY_STREAM &&
                   ML_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM == CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
               "cuGetProcAddress flags");

#define SAME_FIELD(a, b, f) _Static_assert(offsetof(a, f) == offsetof(b, f), #b "." #f)
_Static_assert(sizeof(ml_cu_array_desc) == sizeof(CUDA_ARRAY_DESCRIPTOR), "array descriptor");
SAME_FIELD(ml_cu_array_desc, CUDA_ARRAY_DESCRIPTOR, Width);
SAME_FIELD(ml_cu_array_desc, CUDA_ARRAY_DESCRIPTOR, Height);
SAME_FIELD(ml_cu_array_desc, CUDA_ARRAY_DESCRIPTOR, Format);
SAME_FIELD(ml_cu_array_desc, CUDA_ARRAY_DESCRIPTOR, NumChannels);
_Static_assert(sizeof(ml_cu_array3d_desc) == sizeof(CUDA_ARRAY3D_DESCRIPTOR), "3D array descriptor");
SAME_FIELD(ml_cu_array3d_desc, CUDA_ARRAY3D_DESCRIPTOR, Depth);
SAME_FIELD(ml_cu_array3d_desc, CUDA_ARRAY3D_DESCRIPTOR, Format);
SAME_FIELD(ml_cu_array3d_desc, CUDA_ARRAY3D_DESCRIPTOR, NumChannels);
SAME_FIELD(ml_cu_array3d_desc, CUDA_ARRAY3D_DESCRIPTOR, Flags);
_Static_assert(ML_CU_AD_FORMAT_UNSIGNED_INT8 == CU_AD_FORMAT_UNSIGNED_INT8 &&
                   ML_CU_AD_FORMAT_UNSIGNED_INT16 == CU_AD_FORMAT_UNSIGNED_INT16 &&
                   ML_CU_AD_FORMAT_UNSIGNED_INT32 == CU_AD_FORMAT_UNSIGNED_INT32 &&
                   ML_CU_AD_FORMAT_SIGNED_INT8 == CU_AD_FORMAT_SIGNED_INT8 &&
                   ML_CU_AD_FORMAT_SIGNED_INT16 == CU_AD_FORMAT_SIGNED_INT16 &&
                   ML_CU_AD_FORMAT_SIGNED_INT32 == CU_AD_FORMAT_SIGNED_INT32 &&
                   ML_CU_AD_FORMAT_HALF == CU_AD_FORMAT_HALF && ML_CU_AD_FORMAT_FLOAT == CU_AD_FORMAT_FLOAT,
               "array formats");

/* The versions: each PFN_<name>_v<version> typedef of cudaTypedefs.h takes
 * exactly the parameters memledger's wrapper of that family takes (the
 * result is CUresult, an enum that has the size of ml_cu_result). */
_Static_assert(sizeof(ml_cu_result) == sizeof(CUresult), "CUresult");
#define SAME_SIG(pfn, ...) _Static_assert(_Generic((CUresult(*)(__VA_ARGS__))0, pfn: 1, default: 0), #pfn)
typedef ml_cu_deviceptr D;
typedef ml_cu_mem_handle H;
SAME_SIG(PFN_cuInit_v2000, unsigned);
SAME_SIG(PFN_cuGetProcAddress_v11030, const char *, void **, int, ml_cu_u64);
SAME_SIG(PFN_cuGetProcAddress_v12000, const char *, void **, int, ml_cu_u64, CUdriverProcAddressQueryResult *);
SAME_SIG(PFN_cuMemAlloc_v3020, D *, size_t);
SAME_SIG(PFN_cuMemAllocPitch_v3020, D *, size_t *, size_t, size_t, unsigned);
SAME_SIG(PFN_cuMemFree_v3020, D);
SAME_SIG(PFN_cuMemAllocHost_v3020, void **, size_t);
SAME_SIG(PFN_cuMemFreeHost_v2000, void *);
SAME_SIG(PFN_cuMemHostAlloc_v2020, void **, size_t, unsigned);
SAME_SIG(PFN_cuMemAllocManaged_v6000, D *, size_t, unsigned);
SAME_SIG(PFN_cuMemCreate_v10020, H *, size_t, const CUmemAllocationProp *, unsigned long long);
SAME_SIG(PFN_cuMemRelease_v10020, H);
SAME_SIG(PFN_cuMemMap_v10020, D, size_t, size_t, H, unsigned long long);
SAME_SIG(PFN_cuMemUnmap_v10020, D, size_t);
SAME_SIG(PFN_cuMemRetainAllocationHandle_v11000, H *, void *);
SAME_SIG(PFN_cuMemAllocAsync_v11020, D *, size_t, CUstream);
SAME_SIG(PFN_cuMemAllocAsync_v11020_ptsz, D *, size_t, CUstream);
SAME_SIG(PFN_cuMemAllocFromPoolAsync_v11020, D *, size_t, CUmemoryPool, CUstream);
SAME_SIG(PFN_cuMemAllocFromPoolAsync_v11020_ptsz, D *, size_t, CUmemoryPool, CUstream);
SAME_SIG(PFN_cuMemFreeAsync_v11020, D, CUstream);
SAME_SIG(PFN_cuMemFreeAsync_v11020_ptsz, D, CUstream);
SAME_SIG(PFN_cuArrayCreate_v3020, CUarray *, const CUDA_ARRAY_DESCRIPTOR *);
SAME_SIG(PFN_cuArray3DCreate_v3020, CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *);
SAME_SIG(PFN_cuArrayDestroy_v2000, CUarray);
/* memledger's handle types stand for these */
_Static_assert(sizeof(ml_cu_stream) == sizeof(CUstream) && sizeof(ml_cu_mempool) == sizeof(CUmemoryPool) &&
                   sizeof(ml_cu_array) == sizeof(CUarray) && sizeof(ml_cu_u64) == sizeof(cuuint64_t),
               "handles");
_Static_assert(ML_CU_V_INIT == 2000 && ML_CU_V_GPA1 == 11030 && ML_CU_V_GPA2 == 12000 && ML_CU_V_MEM_V2 == 3020 &&
                   ML_CU_V_FREE_HOST == 2000 && ML_CU_V_HOST_ALLOC == 2020 && ML_CU_V_MANAGED == 6000 &&
                   ML_CU_V_VMM == 10020 && ML_CU_V_RETAIN == 11000 && ML_CU_V_ASYNC == 11020 &&
                   ML_CU_V_ARRAY_DESTROY == 2000,
               "the versions of the PFN typedefs above");

/* Each line of cuda_entries.def names a cuGetProcAddress base name and a
 * version from which the driver has that entry point: a PFN_<base>_v<since>
 * of cudaTypedefs.h (the _ptsz forms share their base's). */
#define PFN_AT(prefix, version) PFN_AT_(prefix, version)
#define PFN_AT_(prefix, version) prefix##version
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti)                     \
    typedef PFN_AT(PFN_##base##_v, since) pfn_of_##name;
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"

int main(void)
{
    fprintf(stderr, "ok   cuda_api.h agrees with cuda.h and cudaTypedefs.h\n");
    return 0;
}
