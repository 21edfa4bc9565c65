/* fakecupti.c — a stand-in libcupti.so for the stand-in driver: the
 * callback part of CUPTI (subscribe, enable per callback id, unsubscribe,
 * result strings), fed by fakecuda.c at the entry and exit of each
 * allocating entry point, on the calling thread, as CUPTI is by a real
 * driver. Built only with the CUDA toolkit, whose headers it checks the
 * shared layouts of fake_cupti_abi.h against.
 * FAKECUPTI_OTHER_SUBSCRIBER=1 plays a profiler already attached: every
 * cuptiSubscribe fails with CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED,
 * as a second subscriber does. Test code only. */
#include "fake_cupti_abi.h"

#include <cupti.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- the stand-in driver speaks CUPTI's layouts ---- */
#define SAME_FIELD(a, b, f) _Static_assert(offsetof(a, f) == offsetof(b, f), #a "." #f)
_Static_assert(sizeof(fake_cb_data) == sizeof(CUpti_CallbackData), "callback data size");
SAME_FIELD(fake_cb_data, CUpti_CallbackData, callbackSite);
SAME_FIELD(fake_cb_data, CUpti_CallbackData, functionParams);
SAME_FIELD(fake_cb_data, CUpti_CallbackData, functionReturnValue);
SAME_FIELD(fake_cb_data, CUpti_CallbackData, correlationData);
SAME_FIELD(fake_cb_data, CUpti_CallbackData, correlationId);
_Static_assert(FAKE_CB_DOMAIN_DRIVER_API == CUPTI_CB_DOMAIN_DRIVER_API, "driver domain");
#define SAME_CBID(n) _Static_assert((int)FAKE_CBID_##n == (int)CUPTI_DRIVER_TRACE_CBID_##n, #n)
SAME_CBID(cuMemFreeHost);
SAME_CBID(cuMemHostAlloc);
SAME_CBID(cuArrayDestroy);
SAME_CBID(cuMemAlloc_v2);
SAME_CBID(cuMemAllocPitch_v2);
SAME_CBID(cuMemFree_v2);
SAME_CBID(cuArrayCreate_v2);
SAME_CBID(cuArray3DCreate_v2);
SAME_CBID(cuMemAllocHost_v2);
SAME_CBID(cuMemAllocManaged);
SAME_CBID(cuMemCreate);
SAME_CBID(cuMemRelease);
SAME_CBID(cuMemMap);
SAME_CBID(cuMemUnmap);
SAME_CBID(cuMemRetainAllocationHandle);
SAME_CBID(cuMemAllocAsync);
SAME_CBID(cuMemAllocAsync_ptsz);
SAME_CBID(cuMemFreeAsync);
SAME_CBID(cuMemFreeAsync_ptsz);
SAME_CBID(cuMemAllocFromPoolAsync);
SAME_CBID(cuMemAllocFromPoolAsync_ptsz);
#define SAME_PARAMS(fake, real, f) SAME_FIELD(fake, real, f); _Static_assert(sizeof(fake) == sizeof(real), #real)
SAME_PARAMS(fake_p_alloc, cuMemAlloc_v2_params, bytesize);
SAME_PARAMS(fake_p_pitch, cuMemAllocPitch_v2_params, ElementSizeBytes);
SAME_PARAMS(fake_p_free, cuMemFree_v2_params, dptr);
SAME_PARAMS(fake_p_async, cuMemAllocAsync_params, hStream);
SAME_PARAMS(fake_p_async, cuMemAllocAsync_ptsz_params, hStream);
SAME_PARAMS(fake_p_pool, cuMemAllocFromPoolAsync_params, hStream);
SAME_PARAMS(fake_p_free_async, cuMemFreeAsync_params, hStream);
SAME_PARAMS(fake_p_managed, cuMemAllocManaged_params, flags);
SAME_PARAMS(fake_p_host_alloc, cuMemHostAlloc_params, Flags);
SAME_PARAMS(fake_p_alloc_host, cuMemAllocHost_v2_params, bytesize);
SAME_PARAMS(fake_p_free_host, cuMemFreeHost_params, p);
SAME_PARAMS(fake_p_create, cuMemCreate_params, flags);
SAME_PARAMS(fake_p_release, cuMemRelease_params, handle);
SAME_PARAMS(fake_p_map, cuMemMap_params, flags);
SAME_PARAMS(fake_p_unmap, cuMemUnmap_params, size);
SAME_PARAMS(fake_p_retain, cuMemRetainAllocationHandle_params, addr);
SAME_PARAMS(fake_p_array, cuArrayCreate_v2_params, pAllocateArray);
SAME_PARAMS(fake_p_array_destroy, cuArrayDestroy_params, hArray);

/* ---- one subscriber, as CUPTI allows ---- */

static _Atomic(CUpti_CallbackFunc) subscriber;
static void *subscriber_data;
static _Atomic unsigned char enabled[CUPTI_DRIVER_TRACE_CBID_SIZE];
static char handle_token;

static void dispatch(int domain, unsigned cbid, const fake_cb_data *cb)
{
    CUpti_CallbackFunc f = atomic_load(&subscriber);
    if (f && domain == CUPTI_CB_DOMAIN_DRIVER_API && cbid < CUPTI_DRIVER_TRACE_CBID_SIZE && atomic_load(&enabled[cbid]))
        f(subscriber_data, (CUpti_CallbackDomain)domain, cbid, cb);
}

EXPORT CUptiResult cuptiSubscribe(CUpti_SubscriberHandle *sub, CUpti_CallbackFunc cb, void *userdata)
{
    const char *other = getenv("FAKECUPTI_OTHER_SUBSCRIBER");
    if ((other && atoi(other)) || atomic_load(&subscriber))
        return CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED;
    if (!sub || !cb)
        return CUPTI_ERROR_INVALID_PARAMETER;
    void *cuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    void (*set_tool)(fake_tool_fn) = cuda ? (void (*)(fake_tool_fn))dlsym(cuda, "fakecuda_set_tool") : NULL;
    if (!set_tool)
        return CUPTI_ERROR_NOT_INITIALIZED; /* not the stand-in driver */
    subscriber_data = userdata;
    atomic_store(&subscriber, cb);
    set_tool(dispatch);
    *sub = (CUpti_SubscriberHandle)(void *)&handle_token;
    return CUPTI_SUCCESS;
}

EXPORT CUptiResult cuptiEnableCallback(uint32_t enable, CUpti_SubscriberHandle sub, CUpti_CallbackDomain domain,
                                       CUpti_CallbackId cbid)
{
    if ((void *)sub != &handle_token || domain != CUPTI_CB_DOMAIN_DRIVER_API || cbid >= CUPTI_DRIVER_TRACE_CBID_SIZE)
        return CUPTI_ERROR_INVALID_PARAMETER;
    atomic_store(&enabled[cbid], enable ? 1 : 0);
    return CUPTI_SUCCESS;
}

EXPORT CUptiResult cuptiUnsubscribe(CUpti_SubscriberHandle sub)
{
    if ((void *)sub != &handle_token)
        return CUPTI_ERROR_INVALID_PARAMETER;
    atomic_store(&subscriber, NULL);
    return CUPTI_SUCCESS;
}

EXPORT CUptiResult cuptiGetResultString(CUptiResult r, const char **s)
{
    if (!s)
        return CUPTI_ERROR_INVALID_PARAMETER;
    switch (r) {
    case CUPTI_SUCCESS:
        *s = "CUPTI_SUCCESS";
        break;
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
        *s = "CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED";
        break;
    case CUPTI_ERROR_NOT_INITIALIZED:
        *s = "CUPTI_ERROR_NOT_INITIALIZED";
        break;
    default:
        *s = "CUPTI_ERROR_UNKNOWN";
        break;
    }
    return CUPTI_SUCCESS;
}
