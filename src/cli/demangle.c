/* demangle.c — C++ names through __cxa_demangle (see demangle.h). */
#include "cli/demangle.h"

#include <stdlib.h>
#include <string.h>

/* The Itanium C++ ABI entry point, provided by libstdc++. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

char *ml_demangle(const char *name)
{
    if (strncmp(name, "_Z", 2) == 0) {
        int status = 0;
        char *d = __cxa_demangle(name, NULL, NULL, &status);
        if (d && status == 0)
            return d;
        free(d);
    }
    return strdup(name);
}
