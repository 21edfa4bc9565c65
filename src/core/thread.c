/* thread.c — the per-thread block itself (see thread.h). Defined here, at
 * the bottom of the library, so that every folder above and the unit tests
 * link it from the one place that owns it. */
#include "core/thread.h"

__thread ml_thread_t ml_self __attribute__((tls_model("initial-exec")));
