/* check.h — the unit tests' whole framework: CHECK and CHECK_EQ record a
 * failure with file:line and keep going; main returns the failure count. */
#ifndef ML_CHECK_H
#define ML_CHECK_H

#include <inttypes.h>
#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                      \
    do {                                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                                 \
        if (a_ != b_) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", __FILE__,   \
                    __LINE__, #a, a_, #b, b_);                                              \
            check_failures++;                                                               \
        }                                                                                   \
    } while (0)

#define RUN(test)                                                                    \
    do {                                                                             \
        int before_ = check_failures;                                                \
        test();                                                                      \
        fprintf(stderr, "%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test); \
    } while (0)

#endif
