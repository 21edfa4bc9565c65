/* grow.c — arrays that grow by doubling (see grow.h). The pointer is read
 * and written with memcpy, so one function serves every element type
 * without type-punning a T ** to a void **. */
#include "common/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ML_GROW_FIRST 16

bool ml_grow(void *arrp, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return true;
    size_t nc = *cap ? *cap : ML_GROW_FIRST;
    while (nc < n) {
        if (nc > SIZE_MAX / 2) {
            nc = n;
            break;
        }
        nc *= 2;
    }
    if (!elem || nc > SIZE_MAX / elem) {
        errno = ENOMEM;
        return false;
    }
    void *arr;
    memcpy(&arr, arrp, sizeof arr);
    void *p = realloc(arr, nc * elem);
    if (!p) {
        errno = ENOMEM;
        return false;
    }
    memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
    memcpy(arrp, &p, sizeof p);
    *cap = nc;
    return true;
}
