/* common.h — the handful of macros every memledger source file shares.
 * Owns: branch hints, visibility, array length. Must never grow behaviour:
 * anything that does something gets its own file. */
#ifndef ML_COMMON_H
#define ML_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ML_LIKELY(x)   __builtin_expect(!!(x), 1)
#define ML_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ML_EXPORT      __attribute__((visibility("default")))
#define ML_NOINLINE    __attribute__((noinline))
#define ML_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ML_CACHELINE   64

#endif
