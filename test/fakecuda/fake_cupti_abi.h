/* fake_cupti_abi.h — the part of CUPTI's callback interface the stand-in
 * driver (fakecuda.c) and the stand-in CUPTI (fakecupti.c) share: the
 * callback data record, the driver API callback ids and the parameter
 * records of the entry points memledger wraps, mirrored from cupti.h and
 * generated_cuda_meta.h so that the stand-in driver builds without the
 * toolkit. fakecupti.c, built only with the toolkit, checks every layout
 * and value here against the real headers. Test code only. */
#ifndef FAKE_CUPTI_ABI_H
#define FAKE_CUPTI_ABI_H

#include "cuda/cuda_api.h"
#include <stdint.h>

typedef struct {
    int callbackSite; /* 0 enter, 1 exit */
    const char *functionName;
    const void *functionParams;
    void *functionReturnValue;
    const char *symbolName;
    void *context;
    uint32_t contextUid;
    uint64_t *correlationData;
    uint32_t correlationId;
} fake_cb_data;

#define FAKE_CB_DOMAIN_DRIVER_API 1

enum {
    FAKE_CBID_cuMemFreeHost = 38,
    FAKE_CBID_cuMemHostAlloc = 39,
    FAKE_CBID_cuArrayDestroy = 89,
    FAKE_CBID_cuMemAlloc_v2 = 243,
    FAKE_CBID_cuMemAllocPitch_v2 = 244,
    FAKE_CBID_cuMemFree_v2 = 245,
    FAKE_CBID_cuArrayCreate_v2 = 272,
    FAKE_CBID_cuArray3DCreate_v2 = 274,
    FAKE_CBID_cuMemAllocHost_v2 = 294,
    FAKE_CBID_cuMemAllocManaged = 371,
    FAKE_CBID_cuMemCreate = 549,
    FAKE_CBID_cuMemRelease = 550,
    FAKE_CBID_cuMemMap = 551,
    FAKE_CBID_cuMemUnmap = 552,
    FAKE_CBID_cuMemRetainAllocationHandle = 565,
    FAKE_CBID_cuMemAllocAsync = 598,
    FAKE_CBID_cuMemAllocAsync_ptsz = 599,
    FAKE_CBID_cuMemFreeAsync = 600,
    FAKE_CBID_cuMemFreeAsync_ptsz = 601,
    FAKE_CBID_cuMemAllocFromPoolAsync = 611,
    FAKE_CBID_cuMemAllocFromPoolAsync_ptsz = 612,
};

typedef ml_cu_deviceptr D_;
typedef struct { D_ *dptr; size_t bytesize; } fake_p_alloc;
typedef struct { D_ *dptr; size_t *pPitch; size_t WidthInBytes, Height; unsigned ElementSizeBytes; } fake_p_pitch;
typedef struct { D_ dptr; } fake_p_free;
typedef struct { D_ *dptr; size_t bytesize; void *hStream; } fake_p_async;
typedef struct { D_ *dptr; size_t bytesize; void *pool; void *hStream; } fake_p_pool;
typedef struct { D_ dptr; void *hStream; } fake_p_free_async;
typedef struct { D_ *dptr; size_t bytesize; unsigned flags; } fake_p_managed;
typedef struct { void **pp; size_t bytesize; unsigned Flags; } fake_p_host_alloc;
typedef struct { void **pp; size_t bytesize; } fake_p_alloc_host;
typedef struct { void *p; } fake_p_free_host;
typedef struct { ml_cu_mem_handle *handle; size_t size; const void *prop; unsigned long long flags; } fake_p_create;
typedef struct { ml_cu_mem_handle handle; } fake_p_release;
typedef struct { D_ ptr; size_t size, offset; ml_cu_mem_handle handle; unsigned long long flags; } fake_p_map;
typedef struct { D_ ptr; size_t size; } fake_p_unmap;
typedef struct { ml_cu_mem_handle *handle; void *addr; } fake_p_retain;
typedef struct { ml_cu_array *pHandle; const void *pAllocateArray; } fake_p_array;
typedef struct { ml_cu_array hArray; } fake_p_array_destroy;

/* The stand-in driver calls this for each of the entry points above, at
 * entry and at exit, once the stand-in CUPTI has registered it. */
typedef void (*fake_tool_fn)(int domain, unsigned cbid, const fake_cb_data *cb);

#endif
