/* cuda_wrappers.c — the anonymous wrappers that dlsym and cuGetProcAddress
 * hand out for the driver's entry points (cuda_entry.c binds them): per
 * family of cuda_entries.def, ML_CU_SLOTS wrappers, each forwarding to
 * the pointer in its slot through the family's handler. Must never do
 * more than pass the real function to its handler (cuda_record.c,
 * cuda_entry.c). */
#include "common/common.h"
#include "cuda/cuda_entry.h"

/* Slot wrappers, named <handler>_slot<k>: e.g.
 *   static ml_cu_result ml_cu_mem_free_slot0(ml_cu_deviceptr dptr)
 *   { return ml_cu_mem_free(ml_cu_slot_fn(ML_CU_FREE, 0), dptr); } */
#define SLOT(family, handler, params, args, k)                                                     \
    static ml_cu_result handler##_slot##k params { return handler(ml_cu_slot_fn(family, k), ML_CU_UNPACK args); }
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti)                     \
    SLOT(family, handler, params, args, 0)                                                         \
    SLOT(family, handler, params, args, 1)                                                         \
    SLOT(family, handler, params, args, 2)                                                         \
    SLOT(family, handler, params, args, 3)
#define ML_CU_MORE(...)
#include "cuda/cuda_entries.def"

_Static_assert(ML_CU_SLOTS == 4, "one wrapper per slot: SLOT(..., k) above for each k");

void *const ml_cu_wrappers[ML_CU_FAMILIES][ML_CU_SLOTS] = {
#define ML_CU_FAMILY(family, name, handler, ...)                                                   \
    [family] = {(void *)handler##_slot0, (void *)handler##_slot1, (void *)handler##_slot2,          \
                (void *)handler##_slot3},
#define ML_CU_MORE(...)
#include "cuda/cuda_entries.def"
};
