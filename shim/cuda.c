/* shim/cuda.c — the CUDA driver's entry points that memledger wraps.
 * The driver's exported names (a program linked to libcuda calls these
 * first), one definition per line of src/cuda/cuda_entries.def, each
 * forwarding to the next definition through its handler. The anonymous
 * wrappers that dlsym and cuGetProcAddress hand out are not interposed
 * names; they live in src/cuda/cuda_wrappers.c. Must never do more than
 * pass the real function to its handler (src/cuda/cuda_record.c,
 * src/cuda/cuda_entry.c). */
#include "common/common.h"
#include "cuda/cuda_entry.h"

/* e.g. ML_EXPORT ml_cu_result cuMemFree_v2(ml_cu_deviceptr dptr)
 *      { return ml_cu_mem_free(ml_cuda_next(ML_CUX_cuMemFree_v2), dptr); } */
#define ML_CU_FAMILY(family, name, handler, params, args, base, since, cupti)                     \
    ML_EXPORT ml_cu_result name params { return handler(ml_cuda_next(ML_CUX_##name), ML_CU_UNPACK args); }
#define ML_CU_MORE ML_CU_FAMILY
#include "cuda/cuda_entries.def"
