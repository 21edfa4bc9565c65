/* cuda_api.h — the few facts of the CUDA driver API memledger relies on:
 * handle types, result codes, flags, the array descriptors, and the
 * versions at which cuGetProcAddress hands out each entry point.
 * Declared here, prefixed ml_cu / ML_CU, so the library builds on machines
 * without the CUDA toolkit; test/unit/test_cuda_api.c checks each against
 * cuda.h where the toolkit is installed. Must never include a toolkit
 * header or hold code. */
#ifndef ML_CUDA_API_H
#define ML_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

typedef int ml_cu_result;                       /* CUresult */
typedef unsigned long long ml_cu_deviceptr;     /* CUdeviceptr (_v2) */
typedef unsigned long long ml_cu_mem_handle;    /* CUmemGenericAllocationHandle */
typedef void *ml_cu_stream;                     /* CUstream */
typedef void *ml_cu_mempool;                    /* CUmemoryPool */
typedef void *ml_cu_array;                      /* CUarray */
typedef uint64_t ml_cu_u64;                     /* cuuint64_t */

#define ML_CUDA_SUCCESS               0
#define ML_CUDA_ERROR_INVALID_VALUE   1
#define ML_CUDA_ERROR_NOT_INITIALIZED 3

/* cuGetProcAddress flags (CUdriverProcAddress_flags). */
#define ML_CU_GET_PROC_ADDRESS_DEFAULT                0
#define ML_CU_GET_PROC_ADDRESS_LEGACY_STREAM          (1 << 0)
#define ML_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM (1 << 1)

/* CUDA_ARRAY_DESCRIPTOR (_v2) and CUDA_ARRAY3D_DESCRIPTOR (_v2). */
typedef struct {
    size_t Width, Height;
    int Format; /* CUarray_format */
    unsigned NumChannels;
} ml_cu_array_desc;

typedef struct {
    size_t Width, Height, Depth;
    int Format;
    unsigned NumChannels, Flags;
} ml_cu_array3d_desc;

/* CUarray_format values whose element size is plain. */
#define ML_CU_AD_FORMAT_UNSIGNED_INT8  0x01
#define ML_CU_AD_FORMAT_UNSIGNED_INT16 0x02
#define ML_CU_AD_FORMAT_UNSIGNED_INT32 0x03
#define ML_CU_AD_FORMAT_SIGNED_INT8    0x08
#define ML_CU_AD_FORMAT_SIGNED_INT16   0x09
#define ML_CU_AD_FORMAT_SIGNED_INT32   0x0a
#define ML_CU_AD_FORMAT_HALF           0x10
#define ML_CU_AD_FORMAT_FLOAT          0x20

/* The CUDA version from which cuGetProcAddress returns each entry point
 * memledger wraps, under its base name (the PFN_<name>_v<version> typedefs
 * of cudaTypedefs.h). Below it the driver hands out an older entry point
 * with another signature (e.g. cuMemAlloc with 32-bit sizes before 3020),
 * which is never wrapped. */
#define ML_CU_V_INIT          2000
#define ML_CU_V_GPA1          11030 /* cuGetProcAddress, four arguments */
#define ML_CU_V_GPA2          12000 /* cuGetProcAddress_v2, five */
#define ML_CU_V_MEM_V2        3020  /* cuMemAlloc/AllocPitch/Free/AllocHost _v2, cuArray(3D)Create_v2 */
#define ML_CU_V_FREE_HOST     2000
#define ML_CU_V_HOST_ALLOC    2020
#define ML_CU_V_ARRAY_DESTROY 2000
#define ML_CU_V_MANAGED       6000
#define ML_CU_V_VMM           10020 /* cuMemCreate, Release, Map, Unmap */
#define ML_CU_V_RETAIN        11000 /* cuMemRetainAllocationHandle */
#define ML_CU_V_ASYNC         11020 /* cuMemAllocAsync, FreeAsync, AllocFromPoolAsync */

#endif
