/* cupti_backend.h — recording CUDA allocations from CUPTI callbacks
 * (MEMLEDGER_CUDA=cupti). Built only when the CUDA toolkit's headers were
 * found (ML_HAVE_CUPTI); libcupti itself is loaded at run time, and only
 * when this backend is asked for and the process has loaded the driver.
 * Owns: loading libcupti, subscribing to the driver API callbacks of every
 * entry point that allocates or frees (those of cuda_entries.def whose
 * cupti column is not CUPTI_NONE), and the stacks those callbacks
 * take (the caller's, with the driver's and CUPTI's own frames left out,
 * so they equal the hooks'). Must never fail a driver call or keep CUPTI
 * half set up: on any failure it unsubscribes and says why. */
#ifndef ML_CUPTI_BACKEND_H
#define ML_CUPTI_BACKEND_H

#include "common/common.h"

/* Loads libcupti and subscribes. Returns true when CUPTI now records;
 * false with the reason in why[cap] (another subscriber such as a
 * profiler, libcupti missing, a CUPTI error). */
bool ml_cupti_start(char *why, size_t cap);

#endif
