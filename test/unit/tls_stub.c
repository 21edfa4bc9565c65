/* tls_stub.c — the per-thread block init.c defines in the library, for unit
 * tests that link the core pieces without the library around them. */
#include "thread.h"

__thread ml_thread_t ml_self __attribute__((tls_model("initial-exec")));
