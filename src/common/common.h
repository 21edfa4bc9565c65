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

/* A hidden second name for fn, an exported function defined in the same
 * file: its address is the library's own definition, where fn's would be
 * whatever the process's symbol lookup finds first. GCC also copies fn's
 * declared attributes (malloc, nothrow), which it otherwise warns about. */
#if defined(__GNUC__) && !defined(__clang__)
#define ML_OWN_ALIAS(fn, name) extern __typeof(fn) name __attribute__((alias(#fn), visibility("hidden"), copy(fn)))
#else
#define ML_OWN_ALIAS(fn, name) extern __typeof(fn) name __attribute__((alias(#fn), visibility("hidden")))
#endif

#endif
