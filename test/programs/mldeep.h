/* mldeep.h — what programs/mldeep.c hands the program that opens it. */
#ifndef ML_TEST_MLDEEP_H
#define ML_TEST_MLDEEP_H

#include <stddef.h>

typedef struct {
    void *(*malloc)(size_t n);
    void *(*calloc)(size_t k, size_t n);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);
    void (*release)(void *p); /* free, called through a pointer */
    int (*kept)(void);        /* the blocks it keeps */
} deep_api_t;

#endif
